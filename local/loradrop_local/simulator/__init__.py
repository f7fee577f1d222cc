"""The WaveSpeed simulator: a real HTTP server that follows shared/wavespeed-api.md.

It authenticates with a Bearer key, validates the trainer's parameters against the documented
ranges, rate-limits task starts, downloads the ZIP from the `data` URL like WaveSpeed would,
moves tasks created → processing → completed|failed, serves `.safetensors` outputs (streamed,
never held in memory), and delivers v3-signed webhooks with retries. Faults are injected through
`Simulator.faults`; every request is recorded in `Simulator.requests` for tests to assert on.
Its signing code is deliberately its own (not loradrop's), so the two check each other.

`model` (configuration, faults, tasks), `outputs` (safetensors streams), `server` (the Simulator),
`http_api` (the routes, answering for what its `SimulatedWaveSpeed` protocol names, so it does not import
`server`), `__main__` (run it alone).
"""
