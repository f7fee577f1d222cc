"""The `loradrop` command: what users run against their deployed stack (or the local one).

`cli` (the parser and `main`), `commands` (submit, jobs, status, fetch, retry, and the exit codes),
`job_client` (reaching a stack's jobs and moving their files), `view` (how jobs are shown), and the two
commands that start a local stack: `local_stack` (`loradrop local`) and `demo` (`loradrop demo`). Only
those two import the local stack (`loradrop_local`: moto, the WaveSpeed simulator), and only when they run.
"""
