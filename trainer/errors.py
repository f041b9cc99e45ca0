"""The one error a training run reports to its user: why it cannot start or go on."""


class TrainingError(Exception):
    """A run cannot start or cannot go on; the message says why."""
