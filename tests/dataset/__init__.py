"""The tests of twin/dataset/."""
