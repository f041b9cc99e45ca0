"""The engine's errors, importable without loading the model code (torch takes seconds)."""


class DegenerateReply(Exception):
    """Every attempt produced nothing usable; nothing must be sent."""
