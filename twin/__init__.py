"""twin: a Telegram digital twin. The composition root: settings and the CLI."""

__version__ = "0.1.0"
