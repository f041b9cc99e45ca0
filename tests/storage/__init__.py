"""The tests of storage/."""
