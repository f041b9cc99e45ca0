"""The tests of twin/model/."""
