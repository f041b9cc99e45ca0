"""The tests of engine/."""
