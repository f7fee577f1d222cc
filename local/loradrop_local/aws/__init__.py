"""The emulated AWS side of the local stack: the template translated as CloudFormation would, resources
provisioned in moto, IAM enforced per function, and a Lambda-like runtime with a process per worker.

`stack` (LocalStack: start, stop, clients, invoke) with `options` (how it runs) and `probes` (what callers
do with it: upload, wait for jobs, drain queues); `cloudformation` and `provision` (the template, deployed
in moto); `moto_front` (moto's server, every request seen: fault injection) and `iam`; `lambda_runtime`,
`lambda_worker` and `remote_runtime` (the functions, in worker processes or SAM's emulator); `pollers`,
`events` and `http_api` (the event sources and the API Gateway front).
"""
