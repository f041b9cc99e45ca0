"""The model room's errors that the CLI reports, importable without torch or litgpt
(which take seconds to load: `twin export --help` needs neither)."""


class ExportError(Exception):
    """The adapter cannot be written in the format asked for; the message says why."""
