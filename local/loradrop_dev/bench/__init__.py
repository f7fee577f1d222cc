"""The benchmark behind `make bench` (docs/benchmarks.md): `processes` (moto and the simulator out of process),
the measurements (`inspection`, `transfer`, `cold_start` and `emulated`, `pipeline`, `dataset`), `charts`,
`costs`, and `report` with `cold_start_report`."""
