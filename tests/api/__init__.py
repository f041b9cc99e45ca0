"""The tests of twin/api/."""
