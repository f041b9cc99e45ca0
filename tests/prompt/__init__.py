"""The tests of twin/prompt/."""
