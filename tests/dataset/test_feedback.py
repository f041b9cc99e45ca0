"""The owner's decisions on drafts become preference pairs and signals, each from its
own source, and nothing comes from what must not teach."""

from __future__ import annotations

from pathlib import Path

from storage import Database
from storage import drafts as drafts_table
from storage import messages as messages_table
from storage.reader import Reader
from storage.rows import MessageRow
from twin.dataset.feedback import preferences_path, read_feedback, write_feedback

ANNA, BORIS, OWNER = 42, 43, 1
GAP = 24 * 3600
T = 1_700_000_000


async def decided(
    db: Database,
    chat_id: int,
    draft: str,
    status: str,
    final: str | None = None,
    at: int = T,
    incoming: int | None = None,
) -> int:
    """A draft (of the message `incoming`) made at `at` and decided a minute later: sent
    (as `final`, if given), discarded or expired."""
    draft_id = await drafts_table.create(
        db, chat_id, incoming, "когда встречаемся?", "PROMPT", draft
    )
    if status == "sent":
        await drafts_table.claim_for_sending(db, draft_id, final or draft, "button")
        await drafts_table.mark_sent(db, draft_id, 99)
    elif status == "auto":
        await drafts_table.claim_for_sending(db, draft_id, draft, "auto")
        await drafts_table.mark_sent(db, draft_id, 99)
    elif status == "discarded":
        await drafts_table.discard(db, draft_id)
    else:
        await drafts_table.expire(db, draft_id)
    async with db.transaction():  # made at `at`: `updated` stays as the decision left it
        await db.execute(
            "UPDATE drafts SET created = ?, decided = ? WHERE id = ?", (at, at + 60, draft_id)
        )
    return draft_id


async def said(db: Database, chat_id: int, *lines: tuple[int, bool, str]) -> None:
    rows = [
        MessageRow(
            chat_id, at, OWNER if mine else chat_id, mine, at, text, None, None, None, None, None
        )
        for at, mine, text in lines
    ]
    async with db.transaction():
        await messages_table.upsert(db, rows)


def feedback(db: Database, tmp_path: Path, chats: tuple[int, ...] = (ANNA,)) -> tuple[list, dict]:
    path = preferences_path(tmp_path / "samples.jsonl")
    with Reader(db.path) as reader:
        stats = write_feedback(reader, path, set(chats), GAP, "\n")
    return read_feedback(path), stats.as_dict()


async def test_each_decision_teaches_what_it_says(db: Database, tmp_path: Path) -> None:
    await decided(db, ANNA, "в шесть", "sent", final="в семь, у метро")
    await decided(db, ANNA, "в восемь", "sent")
    await decided(db, ANNA, "не знаю", "discarded")
    await decided(db, ANNA, "завтра", "expired", at=T + 1000)
    await said(
        db,
        ANNA,
        (T + 1030, True, "давай в семь"),
        (T + 1040, True, "у кино"),
        (T + 1050, False, "ок"),
        (T + 1060, True, "не это"),
    )
    rows, stats = feedback(db, tmp_path)
    pairs = [(r["source"], r["chosen"], r["rejected"]) for r in rows if "chosen" in r]
    signals = [(r["source"], r["reply"], r["desirable"]) for r in rows if "reply" in r]
    assert pairs == [
        ("edited", "в семь, у метро", "в шесть"),
        ("answered", "давай в семь\nу кино", "завтра"),  # his burst, up to Anna's "ок"
    ]
    assert signals == [("sent", "в восемь", True), ("discarded", "не знаю", False)]
    assert stats == {
        "pairs": 2,
        "signals": 2,
        "sources": {"answered": 1, "discarded": 1, "edited": 1, "sent": 1},
        "dropped": {},
    }
    assert all(r["prompt"] == "PROMPT" and r["chat_id"] == ANNA for r in rows)


async def test_his_own_answer_is_what_came_after_the_message_drafted_for(
    db: Database, tmp_path: Path
) -> None:
    """A draft made within the second its message came, or on a clock behind Telegram's,
    is not older than that message: his answer is found after the message, not after
    the draft's time."""
    await said(db, ANNA, (T, False, "когда?"), (T + 30, True, "в семь"))
    await decided(db, ANNA, "завтра", "expired", at=T, incoming=T)  # the same second
    await said(db, ANNA, (T + 100, False, "где?"), (T + 130, True, "у кино"))
    await decided(db, ANNA, "дома", "expired", at=T + 97, incoming=T + 100)  # 3 s behind
    rows, stats = feedback(db, tmp_path)
    assert [(r["source"], r["chosen"], r["rejected"]) for r in rows] == [
        ("answered", "в семь", "завтра"),
        ("answered", "у кино", "дома"),
    ]
    assert stats["dropped"] == {}


async def test_a_draft_is_as_old_as_its_last_revision(db: Database, tmp_path: Path) -> None:
    """A draft redrafted as the conversation went on is judged from its newest text."""
    draft_id = await decided(db, ANNA, "в шесть", "sent", final="в семь", at=T)
    async with db.transaction():  # created two days before, redrafted a minute before
        await db.execute(
            "UPDATE drafts SET created = ?, revised = ? WHERE id = ?", (T - 2 * GAP, T, draft_id)
        )
    rows, stats = feedback(db, tmp_path)
    assert [r["source"] for r in rows] == ["edited"] and stats["dropped"] == {}


async def test_a_regenerated_draft_is_a_reply_he_did_not_want(db: Database, tmp_path: Path) -> None:
    draft_id = await drafts_table.create(db, ANNA, None, "когда?", "PROMPT 1", "первый")
    first = await drafts_table.get(db, draft_id)
    assert await drafts_table.regenerate(db, first, "PROMPT 2", "второй")
    assert not await drafts_table.regenerate(db, first, "PROMPT 3", "третий")  # an old card
    now = await drafts_table.get(db, draft_id)
    assert (now.draft_text, now.revision) == ("второй", 1)
    rows, stats = feedback(db, tmp_path)
    assert [(r["source"], r["prompt"], r["reply"], r["desirable"]) for r in rows] == [
        ("regenerated", "PROMPT 1", "первый", False)
    ]
    assert stats["sources"] == {"regenerated": 1}


async def test_nothing_comes_from_what_must_not_teach(db: Database, tmp_path: Path) -> None:
    await decided(db, BORIS, "в шесть", "sent", final="в семь")  # a chat not chosen
    await decided(db, ANNA, "в восемь", "auto")  # the twin sent it by itself
    await decided(db, ANNA, "звони", "sent", final="звони +7 921 555-13-07")  # [PHONE]
    stale = await decided(db, ANNA, "в девять", "sent", final="в десять")
    async with db.transaction():  # decided two days after it was drafted
        await db.execute("UPDATE drafts SET decided = created + ? WHERE id = ?", (2 * GAP, stale))
    await decided(db, ANNA, "завтра", "expired", at=T)
    await said(db, ANNA, (T + 30, False, "алло?"), (T + 40, True, "да"))  # not his first
    await decided(db, ANNA, "послезавтра", "expired", at=T + 5000)
    await said(db, ANNA, (T + 5000 + 2 * GAP, True, "извини, пропустил"))  # days later
    rows, stats = feedback(db, tmp_path)
    assert rows == []
    assert stats["dropped"] == {
        "auto_sent": 1,
        "chat_not_used": 1,
        "no_answer": 2,
        "placeholder": 1,
        "stale": 1,
    }
