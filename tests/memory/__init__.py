"""The tests of twin/memory/."""
