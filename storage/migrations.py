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
    # 2: training runs (one at a time: the partial unique index is the lock) and the
    # adapter registry (at most one active adapter).
    """
    CREATE TABLE training_runs (
        id                  INTEGER PRIMARY KEY,
        trigger             TEXT NOT NULL,     -- cli, bot, schedule
        status              TEXT NOT NULL,     -- running, finished, failed, interrupted
        pid                 INTEGER,
        host                TEXT,
        started             INTEGER NOT NULL,
        finished            INTEGER,
        heartbeat           INTEGER,
        step                INTEGER NOT NULL DEFAULT 0,
        total_steps         INTEGER,
        dataset_fingerprint TEXT,
        run_dir             TEXT,
        adapter_id          INTEGER,
        metrics             TEXT,              -- JSON: losses, tokens/s, promotion
        error               TEXT
    );
    CREATE UNIQUE INDEX training_runs_one_running ON training_runs (status)
        WHERE status = 'running';
    CREATE TABLE adapters (
        id                  INTEGER PRIMARY KEY,
        path                TEXT NOT NULL,
        base_model          TEXT NOT NULL,
        dataset_fingerprint TEXT NOT NULL,
        created             INTEGER NOT NULL,
        status              TEXT NOT NULL,     -- candidate, active, rejected
        val_loss            REAL,
        metrics             TEXT,              -- JSON
        reason              TEXT,              -- why it was rejected, or promoted
        run_id              INTEGER,
        activated           INTEGER            -- when it last became active
    );
    CREATE UNIQUE INDEX adapters_one_active ON adapters (status) WHERE status = 'active';
    """,
    # 3: conversations people have with the twin through the bot. Kept apart from
    # `messages`: the twin's own words must never become training data.
    """
    CREATE TABLE bot_messages (
        id        INTEGER PRIMARY KEY,
        chat_id   INTEGER NOT NULL,
        sender_id INTEGER NOT NULL,
        is_twin   INTEGER NOT NULL,
        date      INTEGER NOT NULL,
        text      TEXT NOT NULL
    );
    CREATE INDEX bot_messages_chat ON bot_messages (chat_id, id);
    """,
    # 4: drafted replies to the owner's real chats, a persisted state machine:
    # pending -> sending -> sent | edited_sent; pending -> discarded | expired.
    # 'sending' is written before the userbot sends, so a crash between the send and
    # its record is found at start-up and reconciled, never sent twice.
    """
    ALTER TABLE chats ADD COLUMN mode TEXT;  -- draft, auto, off; NULL: the default
    CREATE TABLE drafts (
        id                  INTEGER PRIMARY KEY,
        chat_id             INTEGER NOT NULL,
        status              TEXT NOT NULL,
        incoming_message_id INTEGER,
        incoming_text       TEXT NOT NULL,
        prompt              TEXT NOT NULL,      -- what the model was asked
        draft_text          TEXT NOT NULL,      -- what it answered
        final_text          TEXT,               -- what was sent (the owner's edit, if any)
        card_message_id     INTEGER,            -- the draft's message in the owner's bot chat
        sent_message_id     INTEGER,
        via                 TEXT,               -- button, edit, auto
        created             INTEGER NOT NULL,
        updated             INTEGER NOT NULL,
        decided             INTEGER
    );
    CREATE UNIQUE INDEX drafts_one_open_per_chat ON drafts (chat_id)
        WHERE status IN ('pending', 'sending');
    """,
    # 5: sending as the owner, part by part. Each part of a reply gets its row, with the
    # random id Telegram deduplicates sends by, before it goes out; its message id after.
    # A crash between parts resumes from the first part without an id, never repeating
    # one. A draft's revision changes with every redraft, so a button pressed on an
    # older card cannot send a text the owner never saw. Messages the twin sent by
    # itself (auto mode, unedited) are marked: they are not the owner's words to learn.
    """
    ALTER TABLE drafts ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE draft_parts (
        draft_id   INTEGER NOT NULL REFERENCES drafts (id),
        part       INTEGER NOT NULL,
        text       TEXT NOT NULL,
        random_id  INTEGER NOT NULL,
        message_id INTEGER,  -- NULL until Telegram has it
        PRIMARY KEY (draft_id, part)
    );
    ALTER TABLE messages ADD COLUMN by_twin INTEGER NOT NULL DEFAULT 0;
    """,
    # 6: the owner's exchanges (another person's turn, the owner's reply), scrubbed, in a
    # full-text index ranked by BM25: what the twin recalls when a similar message
    # comes. Words are split by Unicode letters and digits, case and accents folded
    # (storage.memory says why this tokenizer). `exchange_state` says how far each
    # chat is indexed, so that new messages re-index only the chat's last conversation.
    """
    CREATE VIRTUAL TABLE exchanges USING fts5 (
        message,
        reply,
        chat_id UNINDEXED,
        conversation UNINDEXED,
        date UNINDEXED,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TABLE exchange_state (
        chat_id       INTEGER PRIMARY KEY,
        first_message INTEGER NOT NULL,  -- the first message of its last indexed conversation
        last_message  INTEGER NOT NULL   -- the last message indexed
    );
    """,
    # 7: the drafts the owner turned down by asking for another (Regenerate). A draft's
    # row holds only its newest revision; the ones regenerated away are kept here, what
    # the model was asked and what it said, for training to learn what not to say. And
    # when a draft's text was last made (`updated` moves with every transition): a
    # decision long after it judged a conversation that had moved on.
    """
    ALTER TABLE drafts ADD COLUMN revised INTEGER;  -- NULL: never revised since created
    CREATE TABLE draft_rejections (
        draft_id  INTEGER NOT NULL REFERENCES drafts (id),
        revision  INTEGER NOT NULL,
        prompt    TEXT NOT NULL,
        text      TEXT NOT NULL,
        at        INTEGER NOT NULL,
        PRIMARY KEY (draft_id, revision)
    );
    """,
]

LATEST_VERSION = len(MIGRATIONS)
