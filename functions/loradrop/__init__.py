"""loradrop's domain package: everything the five Lambda handlers share.

The handlers (`functions/<name>/app.py`) only parse events and call a use case built by `services`.
Which module owns which rule:

- `models`: job states and the one table of allowed moves (`ALLOWED_MOVES`), training parameters and
  their limits, WaveSpeed predictions and what their failure codes mean (retry or fix, and the hint).
- `jobs`: the jobs table; every write is a conditional move checked against `ALLOWED_MOVES`.
- `submission`: upload → one WaveSpeed task (claim, inspect, validate, submit once, `loradrop retry`).
- `tracking`: WaveSpeed task state → job state for the webhook and the reconciler (each job checked in
  isolation and in turn, to a deadline); tasks of earlier attempts that turn up later.
- `settling`: an uncertain submission settled from WaveSpeed's prediction history, on an account of
  any size (the window, the order, the cursor, what counts as proof of absence).
- `storing`: STORING → COMPLETED, one copy at a time under a lease; `weights` streams the bytes.
- `ending`: a job ending FAILED or REJECTED, with its reason and metric.
- `events`: job ends from the table's change stream → events on the bus (PublishEvents).
- `ports`: what the use cases need from outside (WaveSpeed, a queue), as protocols the adapters and the
  unit tests' fakes both fit.
- `archive` (ZIP inspection by range reads), `egress` (where weights may come from), `signing`
  (webhook HMAC), `wavespeed` (the REST client), `deadline` (time budgets from the invocation),
  `credentials` (Secrets Manager), `queues` (SQS delays), `settings` (each function's environment,
  composed from parts), `redaction` (no secrets in what leaves), `tls` (the one TLS context),
  `log_context` (job and task keys on log lines).
"""
