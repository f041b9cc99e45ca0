"""The tests of model/."""
