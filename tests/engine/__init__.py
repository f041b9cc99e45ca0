"""The tests of twin/engine/."""
