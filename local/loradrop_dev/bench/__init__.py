"""The benchmark behind `make bench` (docs/benchmarks.md): processes, the five measurements, costs, report."""
