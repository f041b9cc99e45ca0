"""The schema, as an append-only list of migrations.

Version N is `MIGRATIONS[N - 1]`. A released migration is never edited: a change to the
schema is a new entry, so that every older database reaches the same shape by running
the steps it has not seen yet.
"""

MIGRATIONS: list[str] = [
    # 1: what a Telegram import needs.
    """
    CREATE TABLE chats (
        id    INTEGER PRIMARY KEY,  -- marked peer id: user > 0, group -N, channel -100N
        type  TEXT NOT NULL,        -- personal_chat, bot_chat, private_group, ...
        title TEXT
    );
    CREATE TABLE people (
        id       INTEGER PRIMARY KEY,
        name     TEXT,
        username TEXT,
        is_bot   INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        chat_id        INTEGER NOT NULL,
        message_id     INTEGER NOT NULL,
        sender_id      INTEGER,
        is_owner       INTEGER NOT NULL DEFAULT 0,
        date           INTEGER NOT NULL,  -- unix seconds
        text           TEXT NOT NULL DEFAULT '',
        reply_to       INTEGER,
        forwarded_from TEXT,              -- NULL: not forwarded; '' forwarded, origin hidden
        media          TEXT,              -- photo, sticker, voice_message, ... or NULL
        media_detail   TEXT,              -- a sticker's emoji, a poll's question, a file name
        edited         INTEGER,           -- unix seconds of the last edit
        PRIMARY KEY (chat_id, message_id)
    ) WITHOUT ROWID;
    CREATE TABLE imports (
        id         INTEGER PRIMARY KEY,
        source     TEXT NOT NULL,         -- desktop_export, sync
        path       TEXT,
        started    INTEGER NOT NULL,
        finished   INTEGER NOT NULL,
        chats      INTEGER NOT NULL,
        new        INTEGER NOT NULL,
        updated    INTEGER NOT NULL,
        duplicates INTEGER NOT NULL,
        skipped    TEXT NOT NULL          -- JSON object: reason -> count
    );
    CREATE TABLE sync_state (
        chat_id        INTEGER PRIMARY KEY,
        max_message_id INTEGER NOT NULL,
        updated        INTEGER NOT NULL
    );
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL               -- JSON
    );
    """,
]

LATEST_VERSION = len(MIGRATIONS)
