"""loradrop's domain package: everything the four Lambda handlers share.

The handlers (`functions/<name>/app.py`) only parse events and call a use case built by `services`.
Which module owns which rule:

- `models`: job states and the one table of allowed moves (`ALLOWED_MOVES`), training parameters and
  their limits, WaveSpeed predictions and what their failure codes mean (retry or fix, and the hint).
- `jobs`: the jobs table; every write is a conditional move checked against `ALLOWED_MOVES`.
- `submission`: upload → one WaveSpeed task (claim, inspect, validate, submit once, `loradrop retry`).
- `tracking`: WaveSpeed task state → job state for the webhook and the reconciler; settling an
  uncertain submission from WaveSpeed's own records.
- `storing`: STORING → COMPLETED, one copy at a time under a lease; `weights` streams the bytes.
- `ending`: a job ending FAILED or REJECTED, with its reason, metric and event.
- `ports`: what the use cases need from outside (WaveSpeed, the bus, a queue), as protocols the
  adapters and the unit tests' fakes both fit.
- `archive` (ZIP inspection by range reads), `egress` (where weights may come from), `signing`
  (webhook HMAC), `wavespeed` (the REST client), `credentials` (Secrets Manager), `events`
  (EventBridge), `queues` (SQS delays), `settings` (each function's environment, composed from
  parts), `redaction` (no secrets in what leaves), `tls` (the one TLS context), `log_context` (job
  and task keys on log lines).
"""
