"""The tests of memory/."""
