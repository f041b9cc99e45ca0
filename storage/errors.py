"""Errors that storage raises for the caller to show as one line."""


class StorageError(Exception):
    """The database cannot be used as asked; the message says why and what to do."""


class SchemaTooNewError(StorageError):
    """The file was written by a newer twin: migrating it down would lose data."""
