"""loradrop's domain package: everything the five Lambda handlers share.

Each handler (`functions/<name>/app.py`, under 40 lines) imports with the collector paused (`startup`),
reads its event, calls one use case that `services` builds on first use, and answers:

- SubmitTraining → `intake.IntakeBatch` (queue messages or a bare S3 event) → `submission.Submitter`;
- ReceiveWebhook → `webhooks.receive` → `tracking.Tracker.on_webhook`;
- StoreWeights → `storing.Storer.store_message` (a sample's message → `sample_worker.SampleWorker.handle`);
- ReconcileJobs → `reconciling.Reconciler.run`;
- PublishEvents → `events.EventPublisher.publish`.

Which module owns which rule:

- `models`: job states and the one table of allowed moves (`ALLOWED_MOVES`), training parameters and
  their limits, WaveSpeed's tasks (`Task`; its API says "prediction") and what their failure codes mean.
- `codes`: the words loradrop records and answers with: error codes (`ErrorCode`) and what a use case
  did (`Outcome`), as StrEnums whose values are the stored texts.
- `job`: a job as stored (`Job`, its `HistoryEntry`s, `JobParams`, `SettleProgress`) and what users
  and events see of it.
- `jobs`: the job store in the use cases' words (begin a submission, record a task, take the copy
  lease, reopen, complete, end — FAILED or REJECTED with a reason, counted), each a conditional move that
  answers with what happened (`Moved`);
  `job_table` underneath: DynamoDB items, the one move (its parts and conditions from `table_moves`), the reads;
  `sample_table` the same for sample rows. No DynamoDB expression is written anywhere else.
- `submission`: upload → one WaveSpeed task (claim, inspect, validate, price, submit once, `loradrop
  retry`); `intake`: SubmitTraining's batches (a 429 or a short clock defers the rest); `pricing`: the
  quote for the exact body, MaxJobUsd and the balance (a job waits rather than pay for what cannot be paid).
- `budgets`: a month's spending (MonthlyBudgetUsd) as a row beside the jobs, reserved and given back in one
  transaction with the job's move.
- `tracking`: WaveSpeed task state → job state for the webhook and the reconciler; tasks of earlier
  attempts that turn up later. `webhooks`: the webhook request (size, signature, body, answer).
- `reconciling`: each stale job checked in isolation and in turn, to a deadline.
- `settling`: an uncertain submission settled from WaveSpeed's prediction history, on an account of
  any size (the window, the order, the cursor, what counts as proof of absence).
- `storing`: STORING → COMPLETED, one copy at a time under a lease; `weights` streams the bytes,
  `safetensors` reads their header, `model_card` writes what sits beside them.
- `samples`: the sample images rendered with a stored LoRA — rows beside the job, their states and the input that
  tells their tasks apart; `sample_worker` plans, submits once and copies them (StoreWeights), `sampling` tracks
  their tasks (webhook, reconciler), `sample_reconciling` finishes what a lost webhook or message left and settles
  an uncertain POST from WaveSpeed's history.
- `events`: job ends, and a completed job's samples, from the table's change stream → events on the bus
  (PublishEvents).
- `ports`: what the use cases need from outside (WaveSpeed, a queue), as protocols the adapters and the
  unit tests' fakes both fit.
- `archive` (ZIP inspection) over `ranges` (a file of range reads), `dataset` and `images` (the
  dataset survey; `findings` says what it found, `captions` judges the captions, `hygiene` names zip
  tools' junk, odd names and EXIF orientations), `egress` (where weights may come from), `signing`
  (webhook HMAC), `wavespeed` (the REST client), `deadline` (time budgets from the invocation),
  `credentials` (Secrets Manager), `messages` (queue message shapes), `queues` (the partial-batch loop
  and redelivery delays), `settings` (each function's environment, composed from parts), `redaction`
  (no secrets in what leaves), `tls` (the one TLS context), `log_context` (job and task keys on log lines).
"""
