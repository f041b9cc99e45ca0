"""The tests of bot/."""
