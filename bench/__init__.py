"""Benchmarks behind `make bench`: each bench_*.py module has ``main(argv) -> None``."""
