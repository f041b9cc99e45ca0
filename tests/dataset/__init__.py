"""The tests of dataset/."""
