"""The local stack: loradrop without AWS or Docker, for the demo, the tests and the development tooling.

`aws` (template.yaml provisioned in moto's server, IAM enforced, the functions in worker processes),
`simulator` (WaveSpeed), `sam` (SAM's own emulators against the stack, and the arm64 image they run),
`dataset` (small, real training datasets), `loopback` (the HTTP server both serve with).
"""
