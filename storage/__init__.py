"""SQLite storage: the schema, its migrations, and the only code in twin that speaks SQL."""

from storage.database import BlockingDatabase, Database, open_database, with_database
from storage.errors import SchemaTooNewError, StorageError

__all__ = [
    "BlockingDatabase",
    "Database",
    "SchemaTooNewError",
    "StorageError",
    "open_database",
    "with_database",
]
