"""The tests of benchmarks/: the benchmarks keep working where they cannot measure."""
