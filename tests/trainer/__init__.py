"""The tests of trainer/."""
