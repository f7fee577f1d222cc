"""The WaveSpeed simulator: a real HTTP server that follows shared/wavespeed-api.md.

It authenticates with a Bearer key and plays three models. The trainers (`flux-dev-lora-trainer` and
-turbo): it validates their parameters against the documented ranges, downloads the ZIP from the `data`
URL like WaveSpeed would, and serves `.safetensors` outputs (streamed, never held in memory). FLUX dev with
LoRAs (`flux-dev-lora`, the sample images): it validates the prompt, LoRAs, size and the rest, fetches each
LoRA given as a link while the task runs (a Hugging Face repo id is taken as found; with
`SimulatorConfig.lora_urls_refused` a link is refused at the POST instead), and serves `num_images` small
deterministic images with the prompt and seed drawn in. For every model it rate-limits task starts, spends
the balance at the pricing endpoint's price, moves tasks created → processing → completed|failed, and
delivers v3-signed webhooks with retries. Faults are injected through `Simulator.faults`; every request is
recorded in `Simulator.requests` for tests to assert on. Its signing code is deliberately its own (not
loradrop's), so the two check each other.

`model` (configuration, faults, tasks, prices), `validation` (each model's parameter rules), `media` (what a
running task downloads), `outputs` (safetensors streams), `images` (the sample images), `server` (the
Simulator), `http_api` (the routes, answering for what its `SimulatedWaveSpeed` protocol names, so it does
not import `server`), `__main__` (run it alone).
"""
