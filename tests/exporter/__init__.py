"""The tests of exporter/."""
