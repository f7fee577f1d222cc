"""Tooling that only develops loradrop, neither deployed nor run by users: `bench` (`make bench`,
docs/benchmarks.md) and `reliability` (`make reliability`, docs/reliability.md), both on the local stack."""
