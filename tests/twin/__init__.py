"""The tests of twin/."""
