# Benchmarks (built by make, run by scripts/bench-*; never part of make check).
