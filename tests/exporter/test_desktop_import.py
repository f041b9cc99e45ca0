"""`twin import` of Telegram Desktop exports: real samples, both roots, old and new
formats, idempotency, atomicity, and the owner."""

from __future__ import annotations

import copy
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from exporter.desktop_export import ExportFormatError
from exporter.desktop_import import ImportReport, OwnerError, import_desktop_export
from exporter.peers import CHANNEL_OFFSET
from storage import open_database
from storage.rows import MessageRow
from tests.conftest import FIXTURES, SHARED_EXPORTS
from tests.exports import (
    OWNER,
    PEER,
    T0,
    all_fields_chat,
    chat,
    group_chat,
    legacy_channel,
    message,
    repeated_ids_chat,
    write_json,
)
from tests.synthetic_export import write_export

FULL = FIXTURES / "full_account" / "result.json"
LEGACY = FIXTURES / "legacy_2020" / "result.json"


async def run_import(db_path: Path, path: Path, **kwargs: Any) -> ImportReport:
    async with open_database(db_path) as db:
        return await import_desktop_export(db, path, **kwargs)


async def rows(db_path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    async with open_database(db_path) as db:
        return await db.fetchall(sql, params)


# -- real exports from public repositories, beside the repository ----------------------
# Other people's data: read in place, never copied here. A clone without ../shared
# skips these; the project's own exports below cover every behaviour they check.
shared = pytest.mark.skipif(
    not SHARED_EXPORTS.is_dir(),
    reason="../shared/fixtures/telegram is absent (real exports, beside the repository in CI)",
)


@pytest.mark.parametrize(
    ("name", "me", "chat_id", "new", "skipped", "owner_messages"),
    [
        # Owner inferred: the peer of a personal chat is the chat id, the owner the other.
        (
            "tkonverter_personal_chat_allfields.json",
            None,
            10001,
            25,
            {"service": 61, "unsupported": 1},
            12,
        ),
        ("tkonverter_group.json", 777000, -20001, 23, {"service": 21, "unsupported": 1}, 9),
        # Hand-edited: every id is 69420; the first message with the id is kept.
        (
            "tele_dashboard_private_group.json",
            280666525,
            -69420,
            1,
            {"service": 6, "repeated_id": 249},
            0,
        ),
        # A 2020 channel export: channel ids are marked -100N.
        (
            "tg2md_private_channel_legacy2020.json",
            1,
            -(CHANNEL_OFFSET + 1292077344),
            18,
            {"service": 1},
            0,
        ),
    ],
)
@shared
async def test_shared_samples_import_with_exact_counts(
    db_path: Path,
    name: str,
    me: int | None,
    chat_id: int,
    new: int,
    skipped: dict[str, int],
    owner_messages: int,
) -> None:
    await imports_exactly(db_path, SHARED_EXPORTS / name, me, chat_id, new, skipped, owner_messages)


async def imports_exactly(
    db_path: Path,
    path: Path,
    me: int | None,
    chat_id: int,
    new: int,
    skipped: dict[str, int],
    owner_messages: int,
) -> None:
    """A single-chat export imports into one chat with exactly these counts."""
    report = await run_import(db_path, path, owner_id=me)
    assert (report.chats, report.new, report.duplicates, report.skipped) == (1, new, 0, skipped)
    assert await rows(db_path, "SELECT id FROM chats") == [(chat_id,)]
    counted = await rows(db_path, "SELECT COUNT(*), SUM(is_owner) FROM messages")
    assert counted == [(new, owner_messages)]


@shared
async def test_all_fields_sample_is_read_faithfully(db_path: Path) -> None:
    await run_import(db_path, SHARED_EXPORTS / "tkonverter_personal_chat_allfields.json")
    got = dict(
        (r[0], r[1:])
        for r in await rows(
            db_path,
            "SELECT message_id, sender_id, is_owner, text, reply_to, forwarded_from, media, "
            "media_detail, edited FROM messages",
        )
    )
    # The plain text a reader sees, not the entity objects.
    assert got[1][:3] == (777000, 1, "Base text with entities")
    # A reply to a message of another peer keeps no reply id; forwards keep the origin.
    assert got[2][3:5] == (None, "Channel News")
    assert got[2][7] == 1769936580  # edited_unixtime
    assert got[4][5:7] == ("sticker", "🙂")
    assert got[5][5] == "video_message" and got[6][5] == "voice_message"
    assert (
        got[10][5] == "contact"
        and got[13][5] == "venue"
        and got[17][5:] == ("poll", "Best language?", None)
    )
    assert got[22][5:7] == ("document", "missing.bin")  # a file name, never a path
    assert not any("files/" in str(v) or "photos/" in str(v) for r in got.values() for v in r)


# -- the project's own exports ----------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "me", "chat_id", "new", "skipped", "owner_messages"),
    [
        # Owner inferred: the peer of a personal chat is the chat id, the owner the other.
        (all_fields_chat, None, PEER, 15, {"service": 1, "unsupported": 1}, 8),
        (group_chat, 7002, -4401, 4, {}, 2),
        # Every id the same: the first message with the id is kept.
        (repeated_ids_chat, OWNER, -69, 1, {"repeated_id": 4}, 1),
        # A 2020 channel export: channel ids are marked -100N.
        (legacy_channel, OWNER, -(CHANNEL_OFFSET + 1292000001), 3, {}, 0),
    ],
)
async def test_own_samples_import_with_exact_counts(
    db_path: Path,
    tmp_path: Path,
    make: Any,
    me: int | None,
    chat_id: int,
    new: int,
    skipped: dict[str, int],
    owner_messages: int,
) -> None:
    export = write_json(tmp_path / "result.json", make())
    await imports_exactly(db_path, export, me, chat_id, new, skipped, owner_messages)


async def test_all_fields_export_is_read_faithfully(db_path: Path, tmp_path: Path) -> None:
    await run_import(db_path, write_json(tmp_path / "result.json", all_fields_chat()))
    got = {
        r.message_id: r
        for r in map(
            MessageRow._make,
            await rows(db_path, f"SELECT {', '.join(MessageRow._fields)} FROM messages"),
        )
    }
    # The plain text a reader sees, not the entity objects.
    assert (got[1].sender_id, got[1].is_owner, got[1].text) == (6660001, 1, "Hello you and @vera")
    # A reply to a message of another peer keeps no reply id; forwards keep the origin.
    assert (got[2].reply_to, got[2].forwarded_from) == (None, "Evening News")
    assert got[2].edited == T0 + 180  # edited_unixtime
    assert (got[3].media, got[3].text) == ("photo", "a photo")
    assert (got[4].media, got[4].media_detail) == ("sticker", "🙂")
    kinds = {i: got[i].media for i in (5, 6, 7, 8, 9, 10, 11, 12)}
    assert kinds == {
        5: "video_message",
        6: "voice_message",
        7: "animation",
        8: "video_file",
        9: "audio_file",
        10: "contact",
        11: "location",
        12: "venue",
    }
    assert (got[13].media, got[13].media_detail) == ("poll", "Tea or coffee?")
    assert (got[14].media, got[14].media_detail) == ("document", "notes.pdf")  # never a path
    assert not any("files/" in str(v) or "photos/" in str(v) for r in got.values() for v in r)


async def test_full_account_export(db_path: Path) -> None:
    report = await run_import(db_path, FULL)
    assert report.owner_id == 5550001
    assert (report.chats, report.new, report.skipped) == (7, 24, {"service": 4, "unsupported": 1})
    chats = dict((r[0], r[1:]) for r in await rows(db_path, "SELECT id, type, title FROM chats"))
    assert chats == {
        5550002: ("personal_chat", "Alice"),
        5550003: ("personal_chat", "Борис"),
        -4440001: ("private_group", "Team"),
        3330001: ("bot_chat", "HelperBot"),
        5550001: ("saved_messages", None),
        -(CHANNEL_OFFSET + 1234567): ("public_supergroup", "Meetups"),
        -(CHANNEL_OFFSET + 7777): ("private_channel", "Old News"),  # from left_chats
    }
    alice = await rows(
        db_path,
        "SELECT message_id, is_owner, text, reply_to, forwarded_from, media, media_detail, "
        "edited FROM messages WHERE chat_id = 5550002 ORDER BY message_id",
    )
    assert alice == [
        (1, 0, "hi! are you coming tonight?", None, None, None, None, None),
        (2, 1, "yesss", None, None, None, None, None),
        (3, 1, "see you at the bar", None, None, None, None, None),
        (4, 0, "", None, None, "sticker", "😂", None),
        (5, 1, "photo of the menu", None, None, "photo", None, None),
        (6, 0, "lol ok", 5, None, None, None, None),
        (7, 1, "typo fixed", None, None, None, None, 1772359560),
        (9, 0, "look at this", None, "Daily Memes", None, None, None),
        (10, 1, "", None, None, "voice_message", None, None),
        (11, 0, "ping @nika and mail alice@example.org", None, None, None, None, None),
    ]
    names = dict(await rows(db_path, "SELECT id, name FROM people"))
    assert names[5550002] == "Alice" and names[5550003] == "Борис"


async def test_legacy_format_without_unixtime_or_entities(db_path: Path) -> None:
    report = await run_import(db_path, LEGACY)
    assert report.owner_id == 5550001  # integer from_id, owner inferred
    assert (report.new, report.skipped) == (4, {"empty": 1, "service": 1})
    got = await rows(db_path, "SELECT message_id, sender_id, is_owner, text, edited FROM messages")
    assert got[1][1:4] == (5550001, 1, "indeed ages!")
    assert got[1][4] is not None  # ISO "edited" read as local time
    # ISO dates are local time of the exporting computer: read in local time here.
    from datetime import datetime

    date = (await rows(db_path, "SELECT date FROM messages WHERE message_id = 2"))[0][0]
    assert datetime.fromtimestamp(date).isoformat() == "2020-03-01T09:05:00"


async def test_export_folder_is_accepted(db_path: Path) -> None:
    report = await run_import(db_path, FULL.parent)
    assert report.new == 24


# -- idempotency -------------------------------------------------------------------------


async def test_importing_twice_adds_nothing(db_path: Path) -> None:
    await run_import(db_path, FULL)
    before = await rows(db_path, "SELECT * FROM messages ORDER BY chat_id, message_id")
    again = await run_import(db_path, FULL)
    assert (again.new, again.updated, again.duplicates) == (0, 0, 24)
    assert await rows(db_path, "SELECT * FROM messages ORDER BY chat_id, message_id") == before
    assert len(await rows(db_path, "SELECT * FROM imports")) == 2


async def test_overlapping_newer_export_adds_only_what_is_new(
    db_path: Path, tmp_path: Path
) -> None:
    old = [message(i, 42 if i % 2 else 7, f"message {i}", at=i * 60) for i in range(1, 7)]
    newer = copy.deepcopy(old[3:]) + [
        message(i, 42 if i % 2 else 7, f"message {i}", at=i * 60) for i in range(7, 11)
    ]
    newer[1]["text"] = "message 5, corrected"  # edited since the first export
    newer[1]["edited"] = "2026-01-02T00:00:00"
    newer[1]["edited_unixtime"] = "1767312000"
    await run_import(db_path, write_json(tmp_path / "a.json", chat(42, old)), owner_id=7)
    report = await run_import(db_path, write_json(tmp_path / "b.json", chat(42, newer)), owner_id=7)
    assert (report.new, report.updated, report.duplicates) == (4, 1, 2)
    texts = dict(await rows(db_path, "SELECT message_id, text FROM messages"))
    assert len(texts) == 10 and texts[5] == "message 5, corrected"
    # Importing the older export again does not undo the newer edit.
    await run_import(db_path, tmp_path / "a.json", owner_id=7)
    assert dict(await rows(db_path, "SELECT message_id, text FROM messages"))[5] == texts[5]


# -- atomicity ---------------------------------------------------------------------------


async def _seeded(db_path: Path) -> bytes:
    await run_import(db_path, LEGACY)
    return db_path.read_bytes()


def _truncated(tmp_path: Path) -> Path:
    data = FULL.read_bytes()
    return _bytes(tmp_path, data[: len(data) * 2 // 3])


def _bytes(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "broken.json"
    path.write_bytes(data)
    return path


def _wrong_type(tmp_path: Path) -> Path:
    export = json.loads(FULL.read_text(encoding="utf-8"))
    export["chats"]["list"][1]["messages"][2]["id"] = "three"
    return write_json(tmp_path / "broken.json", export)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            _truncated,
            r"broken\.json: chats\.list\[\d\]\.messages\[\d+\]: not valid JSON: .*line \d+",
        ),
        (
            _wrong_type,
            r"broken\.json: chats\.list\[1\]\.messages\[2\] \(line \d+\): 'id' must be an integer",
        ),
        (lambda p: _bytes(p, b"hello, I am not JSON"), r"not a Telegram Desktop export"),
        (
            lambda p: _bytes(p, b'{"some": "json"}'),
            r"not a Telegram Desktop export \(no 'messages'",
        ),
        (lambda p: _bytes(p, b"[1, 2, 3]"), r"not a JSON object"),
        (lambda p: _bytes(p, b""), r"not a Telegram Desktop export"),
        (lambda p: _bytes(p, b'{"messages": []}'), r"integer 'id' before its 'messages'"),
        (
            lambda p: _bytes(
                p,
                b'{"id": 1, "type": "personal_chat", "messages": [{"id": 1, '
                b'"type": "message", "text": "no date"}]}',
            ),
            r"'date' is missing",
        ),
        (lambda p: _bytes(p, FULL.read_bytes() + b"\n{}"), r"after the end of the document"),
    ],
)
async def test_a_broken_file_leaves_the_database_byte_for_byte(
    db_path: Path, tmp_path: Path, make: Any, message: str
) -> None:
    before = await _seeded(db_path)
    with pytest.raises(ExportFormatError, match=message):
        await run_import(db_path, make(tmp_path))
    assert db_path.read_bytes() == before


async def test_a_broken_file_creates_no_database(tmp_path: Path) -> None:
    db_path = tmp_path / "fresh" / "twin.db"
    with pytest.raises(ExportFormatError):
        await run_import(db_path, _truncated(tmp_path))
    assert not db_path.exists()


async def test_dry_run_counts_but_writes_nothing(db_path: Path) -> None:
    before = await _seeded(db_path)
    report = await run_import(db_path, FULL, owner_id=5550001, dry_run=True)
    assert (report.new, report.dry_run) == (24, True)
    assert db_path.read_bytes() == before


# -- the owner ---------------------------------------------------------------------------


async def test_unknown_owner_lists_the_senders(db_path: Path, tmp_path: Path) -> None:
    with pytest.raises(OwnerError) as caught:
        await run_import(db_path, write_json(tmp_path / "result.json", group_chat()))
    text = str(caught.value)
    assert "--me" in text and "7002 (User 7002: 2 messages)" in text and "7001 (User 7001" in text
    assert not db_path.exists() or await rows(db_path, "SELECT COUNT(*) FROM messages") == [(0,)]


async def test_owner_is_remembered_for_later_imports(db_path: Path, tmp_path: Path) -> None:
    await run_import(db_path, FULL)  # personal_information names the owner
    group = write_json(tmp_path / "result.json", group_chat())
    report = await run_import(db_path, group, dry_run=True)
    assert report.owner_id == 5550001


async def test_me_contradicting_the_export_is_refused(db_path: Path) -> None:
    with pytest.raises(OwnerError, match="export of user 5550001, but --me"):
        await run_import(db_path, FULL, owner_id=123)


async def test_another_accounts_export_is_refused(db_path: Path, tmp_path: Path) -> None:
    await run_import(db_path, FULL)
    before = db_path.read_bytes()
    with pytest.raises(OwnerError, match="neither the chat's peer nor you"):
        await run_import(db_path, write_json(tmp_path / "result.json", all_fields_chat()))
    assert db_path.read_bytes() == before


# -- streaming ---------------------------------------------------------------------------


async def test_peak_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    peaks = []
    for count in (4_000, 16_000):
        export = write_export(tmp_path / f"e{count}.json", count, chats=2)
        tracemalloc.start()
        try:
            report = await run_import(tmp_path / f"{count}.db", export)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert report.new + sum(report.skipped.values()) == count
    # Four times the messages, about the same peak (batches, not the file, are held).
    assert peaks[1] < peaks[0] * 1.5, peaks
