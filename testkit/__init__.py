"""Test kit shared by the tests and the benchmarks."""
