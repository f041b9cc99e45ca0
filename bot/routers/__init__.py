"""One router per feature of the bot."""
