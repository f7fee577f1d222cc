"""loradrop's domain package: everything the four Lambda handlers share.

Split by what each module talks to: models (data), settings (environment), jobs (DynamoDB),
wavespeed (the WaveSpeed API), archive (ZIP inspection by range reads), weights (streamed
transfer into S3), egress (which hosts weights may come from), signing (webhook HMAC),
events (EventBridge), and lifecycle (the job state machine that ties them together).
"""
