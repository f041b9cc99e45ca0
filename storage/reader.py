"""Read-only access to the database without an event loop.

Building a dataset reads every message once, in parallel worker processes; each
opens its own read-only connection here. Everything that writes goes through
`storage.Database`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from storage.chats import Chat
from storage.errors import StorageError


class Reader:
    def __init__(self, path: Path, any_thread: bool = False) -> None:
        """`any_thread`: usable from any thread, one at a time (the caller's to ensure)."""
        try:
            self._conn = sqlite3.connect(
                f"file:{Path(path).resolve()}?mode=ro", uri=True, check_same_thread=not any_thread
            )
        except sqlite3.Error as err:
            raise StorageError(f"cannot read database {path}: {err}") from err

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chats(self) -> list[Chat]:
        rows = self._conn.execute("SELECT id, type, title FROM chats ORDER BY id")
        return [Chat(*row) for row in rows]

    def message_count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def chat_dates(self, chat_id: int, first_id: int | None = None) -> list[tuple[int, int]]:
        """(message_id, date) of a chat's messages (from `first_id` on), in order:
        cheap, for planning.

        Here and in chat_rows, what the twin sent by itself (auto mode) is left out:
        training on the model's own words would teach it its own habits, not the
        owner's."""
        return self._conn.execute(
            "SELECT message_id, date FROM messages WHERE chat_id = ? AND message_id >= ? "
            "AND by_twin = 0 ORDER BY message_id",
            (chat_id, -(2**63) if first_id is None else first_id),
        ).fetchall()

    def chat_rows(self, chat_id: int, first_id: int, last_id: int) -> list[tuple[Any, ...]]:
        """The chat's messages with ids in [first_id, last_id], in order.

        Plain tuples in HistoryRow's field order, which is what its readers unpack: a
        dataset build reads every message, and making a million NamedTuples here costs
        a quarter of the build."""
        return self._conn.execute(
            "SELECT sender_id, is_owner, date, text, media, media_detail FROM messages "
            "WHERE chat_id = ? AND message_id BETWEEN ? AND ? AND by_twin = 0 "
            "ORDER BY message_id",
            (chat_id, first_id, last_id),
        ).fetchall()

    def decided_drafts(
        self,
    ) -> list[tuple[int, str, str | None, str, str, str | None, int | None, int, int]]:
        """(chat_id, status, via, prompt, draft_text, final_text, incoming_message_id,
        drafted, decided) of the drafts the owner decided (sent, edited, discarded, or
        answered himself: expired), oldest first: what his decisions teach. `drafted`:
        when its text was made; `incoming_message_id`: the message it answered."""
        return self._conn.execute(
            "SELECT chat_id, status, via, prompt, draft_text, final_text, incoming_message_id, "
            "COALESCE(revised, created), decided "
            "FROM drafts WHERE status IN ('sent', 'edited_sent', 'discarded', 'expired') "
            "AND decided IS NOT NULL ORDER BY id"
        ).fetchall()

    def draft_rejections(self) -> list[tuple[int, str, str, int]]:
        """(chat_id, prompt, text, at) of the drafts the owner regenerated away."""
        return self._conn.execute(
            "SELECT d.chat_id, r.prompt, r.text, r.at FROM draft_rejections AS r "
            "JOIN drafts AS d ON d.id = r.draft_id ORDER BY r.draft_id, r.revision"
        ).fetchall()

    def owner_burst(
        self, chat_id: int, after_message: int | None, since: int, within: int
    ) -> list[str]:
        """The texts of the owner's messages in a chat that open what came after the
        message `after_message` (None: at `since` or later), until someone else writes or
        `within` seconds of silence pass (from `since` on): how he answered himself.
        Empty when the first message after is not his. After a message, not after a
        time: a draft made within the second its message came (or on a clock behind
        Telegram's) would otherwise find that message first, and never his answer."""
        if after_message is None:
            where, value = "date >= ?", since
        else:
            where, value = "message_id > ?", after_message
        rows = self._conn.execute(
            f"SELECT is_owner, date, text FROM messages WHERE chat_id = ? AND {where} "
            "AND by_twin = 0 ORDER BY message_id LIMIT 50",
            (chat_id, value),
        ).fetchall()
        texts: list[str] = []
        last = since
        for is_owner, date, text in rows:
            if not is_owner or date - last > within:
                break
            texts.append(text)
            last = date
        return texts
