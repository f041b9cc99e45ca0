"""The engine's errors, importable without loading the model code (torch takes seconds)."""


class DegenerateReply(Exception):
    """Every attempt produced nothing usable; nothing must be sent."""


class BackendError(Exception):
    """The configured generation backend cannot run here; the message says why."""
