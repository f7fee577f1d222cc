"""The `loradrop` command: what users run against their deployed stack (or the local one).

`cli` (the parser, `main` and the exit codes), `job_client` (reaching a stack's jobs and moving their
files), `view` (how jobs are shown), and `demo` (the pipeline once, on a fresh local stack). Only
`loradrop local` and `loradrop demo` import the local stack (`loradrop_local`), when they run.
"""
