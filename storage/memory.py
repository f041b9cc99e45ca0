"""The `exchanges` index: the owner's past replies, searchable by what they answered.

An SQLite FTS5 table ranked by BM25. Writes come from the memory room whenever a chat's
messages change; reads come from wherever a prompt is built, often a worker thread or
process with no event loop, so searching has its own read-only connection
(`ExchangeSearch`).

The tokenizer is `unicode61` with accents folded: it splits on anything that is not
a letter or digit in any script, so Russian and English both work. Both the message
and the reply are indexed: on the sample persona and three development personas
(`benchmarks/memory_bench.py --tokenizers`) that recalled replies closer to the real
one than indexing the message alone on three of the four, and `trigram` (which matches
inside words, e.g. Russian endings, at the price of an entry for every three letters)
or Porter stemming did no better overall. Nor did a dense retriever made of the base
model's mean-pooled hidden states (`--dense`: 96.9 against 97.3 on the sample persona,
15.75 against 15.85 on average over the four plays), which would cost a model pass for
every message indexed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.database import Database
from storage.errors import StorageError
from storage.reader import Reader
from storage.rows import ExchangeRow

_COLUMNS = ", ".join(ExchangeRow._fields)


@dataclass(frozen=True, slots=True)
class IndexedUntil:
    """How far a chat is indexed: its last conversation is re-indexed when messages come."""

    first_message: int  # the first message of the chat's last indexed conversation
    last_message: int  # the last message indexed


async def indexed_until(db: Database) -> dict[int, IndexedUntil]:
    rows = await db.fetchall("SELECT chat_id, first_message, last_message FROM exchange_state")
    return {chat_id: IndexedUntil(*rest) for chat_id, *rest in rows}


async def replace_from(
    db: Database,
    chat_id: int,
    rows: Sequence[ExchangeRow],
    since: int | None,
    until: IndexedUntil,
) -> None:
    """The chat's exchanges of conversations that began at `since` or later are `rows`
    (None: the chat has none indexed yet), and the chat is indexed `until` there. One
    transaction: a search sees the chat as it was or as it is, never half."""
    async with db.transaction():
        if since is not None:  # a scan of the index: only where there is something to replace
            await db.execute(
                "DELETE FROM exchanges WHERE chat_id = ? AND conversation >= ?", (chat_id, since)
            )
        await db.executemany(f"INSERT INTO exchanges ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", rows)
        await db.execute(
            "INSERT OR REPLACE INTO exchange_state (chat_id, first_message, last_message) "
            "VALUES (?, ?, ?)",
            (chat_id, until.first_message, until.last_message),
        )


async def count(db: Database) -> int:
    row = await db.fetchone("SELECT COUNT(*) FROM exchanges")
    return int(row[0]) if row else 0


async def clear(db: Database) -> None:
    """Empty the index: it is rebuilt from the history."""
    async with db.transaction():
        await db.execute("DELETE FROM exchanges")
        await db.execute("DELETE FROM exchange_state")


async def forget(db: Database, keep: Sequence[int]) -> int:
    """Remove every chat but `keep` from the index (a chat the owner excluded, or one
    the dataset may not use); how many exchanges went."""
    marks = ", ".join("?" * len(keep))
    async with db.transaction():
        gone = await db.execute(f"DELETE FROM exchanges WHERE chat_id NOT IN ({marks})", keep)
        await db.execute(f"DELETE FROM exchange_state WHERE chat_id NOT IN ({marks})", keep)
    return gone


def match_expression(terms: Sequence[str]) -> str:
    """An FTS5 query matching any of `terms`, each quoted: whatever a message holds
    (quotes, `*`, `NEAR`, `-`, `:`) is searched for as text, never read as syntax."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


class ExchangeSearch(Reader):
    """Read-only searches of the index, without an event loop (a prompt is built in the
    reply engine's worker thread, a dataset in worker processes)."""

    def __init__(self, path: Path, any_thread: bool = False) -> None:
        super().__init__(path, any_thread)
        try:
            # How many exchanges hold a word: a view of the index, in this connection's
            # own temporary schema (the database itself is opened read-only).
            self._conn.execute(
                "CREATE VIRTUAL TABLE temp.exchange_terms USING fts5vocab(main, exchanges, row)"
            )
        except sqlite3.Error as err:
            self.close()
            raise StorageError(f"cannot search the memory of {path}: {err}") from err

    def __enter__(self) -> ExchangeSearch:
        return self

    def size(self) -> int:
        row = self._conn.execute("SELECT COUNT(*) FROM exchanges").fetchone()
        return int(row[0])

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """In how many exchanges each term occurs (terms as the index folds them)."""
        if not terms:
            return {}
        marks = ", ".join("?" * len(terms))
        rows = self._conn.execute(
            f"SELECT term, doc FROM temp.exchange_terms WHERE term IN ({marks})", list(terms)
        )
        return dict(rows.fetchall())

    def search(
        self,
        terms: Sequence[str],
        limit: int,
        before: int | None = None,
        chat_id: int | None = None,
    ) -> list[tuple[ExchangeRow, float]]:
        """Up to `limit` exchanges holding any of `terms`, best first, with their BM25
        scores (higher is better): only those of conversations that started before
        `before`, and only chat `chat_id`'s when it is given."""
        if not terms or limit <= 0:
            return []
        sql = f"SELECT {_COLUMNS}, -bm25(exchanges) FROM exchanges WHERE exchanges MATCH ?"
        params: list[object] = [match_expression(terms)]
        if before is not None:
            sql += " AND conversation < ?"
            params.append(before)
        if chat_id is not None:
            sql += " AND chat_id = ?"
            params.append(chat_id)
        sql += " ORDER BY rank LIMIT ?"
        params.append(limit)
        found = self._conn.execute(sql, params).fetchall()
        return [(ExchangeRow._make(values[:-1]), values[-1]) for values in found]
