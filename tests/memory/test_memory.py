"""The memory: the owner's exchanges indexed as history arrives, and recalled safely."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from storage import memory as index
from storage import open_database
from storage.memory import ExchangeSearch
from storage.rows import ExchangeRow
from tests.exports import T0, chat, dialogue, full_export, import_into
from twin.dataset.settings import DatasetSettings
from twin.memory import index as memory_index
from twin.memory.index import refresh
from twin.memory.recall import Recall, words
from twin.prompt.settings import PromptSettings

PEER, OTHER, CHANNEL = 2000, 3000, 4000
DAY = 86400
PROMPT = PromptSettings()
LOAN_REPLY = "ща гляну\nмогу 500, остальное в понедельник"  # two messages, one turn


async def indexed(db_path: Path, **settings: object) -> list[ExchangeRow]:
    async with open_database(db_path) as db:
        await refresh(db, DatasetSettings(**settings), PROMPT.burst_separator)
    with sqlite3.connect(db_path) as conn:
        found = conn.execute(f"SELECT {', '.join(ExchangeRow._fields)} FROM exchanges")
        return [ExchangeRow._make(values) for values in found]


def history() -> list[dict]:
    money = [
        (0, "them: бро можешь 1000 до пятницы скинуть?"),
        (30, "me: ща гляну"),
        (60, "me: могу 500, остальное в понедельник"),
        (2 * DAY, "them: как там матч вчера?"),
        (2 * DAY + 30, "me: проиграли опять, вратарь спал"),
    ]
    pizza = [
        (DAY, "them: pizza tonight?"),
        (DAY + 20, "me: sure, the usual place at 8"),
        (DAY + 40, "them: my number is +7 921 555-13-07 call me"),
        (DAY + 50, "me: ok, mail me at kostya@mail.example"),
    ]
    return [
        chat(PEER, dialogue(PEER, money)),
        chat(OTHER, dialogue(OTHER, pizza)),
        chat(CHANNEL, dialogue(CHANNEL, pizza), chat_type="public_channel"),
    ]


async def test_every_reply_of_the_owner_is_indexed_with_what_it_answered(tmp_path: Path) -> None:
    db_path = tmp_path / "twin.db"
    await import_into(db_path, full_export(history()))
    rows = await indexed(db_path)
    assert {(r.chat_id, r.message, r.reply) for r in rows} == {
        (PEER, "бро можешь 1000 до пятницы скинуть?", LOAN_REPLY),
        (PEER, "как там матч вчера?", "проиграли опять, вратарь спал"),
        (OTHER, "pizza tonight?", "sure, the usual place at 8"),
        (OTHER, "my number is [PHONE] call me", "ok, mail me at [EMAIL]"),
    }
    first = next(r for r in rows if r.message.startswith("бро"))
    assert first.conversation == T0 and first.date == T0 + 30
    later = next(r for r in rows if r.message.startswith("как там"))
    assert later.conversation == T0 + 2 * DAY


async def test_personal_data_and_excluded_chats_never_reach_the_index(tmp_path: Path) -> None:
    db_path = tmp_path / "twin.db"
    await import_into(db_path, full_export(history()))
    text = json.dumps([list(r) for r in await indexed(db_path)], ensure_ascii=False)
    assert "555-13-07" not in text and "kostya@" not in text
    assert CHANNEL not in {r.chat_id for r in await indexed(db_path)}
    # A chat the owner excludes later leaves the index at the next refresh.
    assert {r.chat_id for r in await indexed(db_path, exclude_chats=[OTHER])} == {PEER}
    assert {r.chat_id for r in await indexed(db_path, include_chats=[OTHER])} == {OTHER}


async def test_new_messages_give_what_indexing_everything_at_once_gives(tmp_path: Path) -> None:
    """Messages arrive in three batches, one of them continuing the last conversation:
    the index is then what one refresh of the whole history makes."""
    lines = [
        (0, "them: привет"),
        (10, "me: привет!"),
        (2 * DAY, "them: завтра в кино?"),
        (2 * DAY + 10, "me: давай"),
        (2 * DAY + 20, "them: во сколько"),
        (2 * DAY + 30, "me: в семь"),
        (5 * DAY, "them: ну как фильм"),
        (5 * DAY + 10, "me: огонь"),
    ]
    messages = dialogue(PEER, lines)
    step = tmp_path / "step.db"
    for batch in (messages[:4], messages[4:5], messages[5:]):
        await import_into(step, full_export([chat(PEER, batch)]))
        stepwise = await indexed(step)
    whole = tmp_path / "whole.db"
    await import_into(whole, full_export([chat(PEER, messages)]))
    assert sorted(stepwise) == sorted(await indexed(whole))
    assert len(stepwise) == 4
    # Nothing new: nothing is read again.
    async with open_database(step) as db:
        report = await refresh(db, DatasetSettings(), PROMPT.burst_separator)
    assert (report.chats, report.messages, report.exchanges) == (0, 0, 0)


async def test_a_large_first_index_in_worker_processes_is_the_same_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "twin.db"
    await import_into(db_path, full_export(history()))
    alone = await indexed(db_path, workers=1)
    async with open_database(db_path) as db:
        await index.clear(db)
    monkeypatch.setattr(memory_index, "PARALLEL_FROM_MESSAGES", 1)  # "large"
    assert sorted(await indexed(db_path, workers=2)) == sorted(alone)


async def test_changed_rules_index_everything_again(tmp_path: Path) -> None:
    """A shorter session gap cuts conversations differently: the index is rebuilt, as a
    new one would be."""
    db_path = tmp_path / "twin.db"
    await import_into(db_path, full_export(history()))
    await indexed(db_path)
    again = await indexed(db_path, session_gap=15)
    fresh = tmp_path / "fresh.db"
    await import_into(fresh, full_export(history()))
    assert sorted(again) == sorted(await indexed(fresh, session_gap=15))
    # Only one reply came within 15 s of what it answered.
    assert [r.message for r in again] == ["my number is [PHONE] call me"]


@pytest.fixture
async def recall(tmp_path: Path) -> Recall:
    db_path = tmp_path / "twin.db"
    await import_into(db_path, full_export(history()))
    await indexed(db_path)
    search = ExchangeSearch(db_path)
    yield Recall(search)
    search.close()


@pytest.mark.parametrize(
    "text",
    [
        '"',
        "*",
        "NEAR",
        "-",
        "pizza -tonight",
        'a " OR "b',
        "col:umn",
        "NEAR(a b)",
        "^x",
        "🙂🍕",
        "",
        "   ",
        "ё",
        "(",
        "AND OR NOT",
    ],
)
async def test_any_message_gives_memories_or_none_never_an_error(recall: Recall, text: str) -> None:
    assert isinstance(recall([text], 3), list)


async def test_the_telling_words_find_the_exchange(recall: Recall) -> None:
    found = recall(["можешь скинуть 2000 до пятницы?"], 1)
    assert [r.reply for r in found] == [LOAN_REPLY]
    assert recall(["PIZZA, tonight!!"], 1)[0].reply == "sure, the usual place at 8"


async def test_only_earlier_conversations_are_recalled(recall: Recall) -> None:
    """A sample is never shown its own reply or anything said after its conversation began."""
    assert recall(["как там матч вчера?"], 3, before=T0 + 2 * DAY) == []
    assert recall(["как там матч вчера?"], 3, before=T0 + 2 * DAY + 1)[0].chat_id == PEER
    everything = recall(["pizza tonight? матч"], 10, before=T0 + DAY)
    assert all(r.conversation < T0 + DAY for r in everything)


async def test_the_same_person_first_and_alone_when_asked(recall: Recall) -> None:
    both = "pizza матч"
    assert recall([both], 1, chat_id=PEER)[0].chat_id == PEER
    assert recall([both], 1, chat_id=OTHER)[0].chat_id == OTHER
    alone = recall([both], 5, chat_id=PEER, only_this_chat=True)
    assert alone and {r.chat_id for r in alone} == {PEER}
    assert recall(["pizza"], 5, chat_id=PEER, only_this_chat=True) == []


def test_words_are_folded_as_the_index_folds_them() -> None:
    assert words("Café NAÏVE x_y Ёлка йогурт café") == ["cafe", "naive", "x", "y", "ёлка", "йогурт"]
    assert words('🙂 ... "*" -') == []


async def test_an_empty_history_recalls_nothing(tmp_path: Path) -> None:
    db_path = tmp_path / "twin.db"
    async with open_database(db_path):
        pass  # a new database: nothing imported yet
    assert await indexed(db_path) == []
    with ExchangeSearch(db_path) as search:
        assert Recall(search)(["hello"], 3) == []


async def test_an_exchange_said_word_for_word_again_is_recalled_once(tmp_path: Path) -> None:
    days = [
        (2 * n * DAY + at, line)
        for n in range(3)
        for at, line in ((0, "them: pizza?"), (9, "me: sure"))
    ]
    days += [(7 * DAY, "them: pizza tonight?"), (7 * DAY + 9, "me: not today")]
    db_path = tmp_path / "twin.db"
    await import_into(db_path, full_export([chat(PEER, dialogue(PEER, days))]))
    await indexed(db_path)
    with ExchangeSearch(db_path) as search:
        found = Recall(search)(["pizza"], 3)
    assert sorted(r.reply for r in found) == ["not today", "sure"]


async def test_common_words_alone_recall_nothing(tmp_path: Path) -> None:
    """ "hello" is in every one of 80 exchanges: it picks none out. A rare word does."""
    days = [
        (2 * n * DAY + at, line)
        for n in range(80)
        for at, line in ((0, f"them: hello {'zebra' if n == 5 else 'there'}"), (9, f"me: hi {n}"))
    ]
    db_path = tmp_path / "twin.db"
    await import_into(db_path, full_export([chat(PEER, dialogue(PEER, days))]))
    await indexed(db_path)
    with ExchangeSearch(db_path) as search:
        recall = Recall(search)
        assert recall(["hello"], 3) == []
        assert recall(["hello there"], 3) == []
        assert [r.reply for r in recall(["hello zebra"], 3)] == ["hi 5"]


async def test_a_word_in_common_by_chance_recalls_nothing(tmp_path: Path) -> None:
    """A memory must say much of what the message says: "pizza" alone in a message about
    a flat tire does not bring back the pizza exchange; the tire one comes back."""
    days = [
        (0, "them: are we still on for pizza tonight?"),
        (9, "me: yes, 8 at Mario's"),
        (2 * DAY, "them: my bike has a flat tire"),
        (2 * DAY + 9, "me: take the bus"),
    ]
    db_path = tmp_path / "twin.db"
    await import_into(db_path, full_export([chat(PEER, dialogue(PEER, days))]))
    await indexed(db_path)
    with ExchangeSearch(db_path) as search:
        recall = Recall(search)
        assert [r.reply for r in recall(["pizza and a flat tire"], 3)] == ["take the bus"]
        assert [r.reply for r in recall(["still on for pizza?"], 3)] == ["yes, 8 at Mario's"]


async def test_the_owners_facts_win_over_the_configured_ones(tmp_path: Path) -> None:
    """One rule for every prompt: what /facts stored (an empty text after /facts clear
    included) wins over memory.facts; with nothing stored the configuration's apply."""
    from storage import settings as stored_settings
    from twin.memory.settings import MemorySettings
    from twin.prompt.facts import owner_facts

    configured = MemorySettings(facts="I live in Kazan")
    async with open_database(tmp_path / "t.db") as db:
        assert await owner_facts(db, configured) == "I live in Kazan"
        await stored_settings.put(db, stored_settings.FACTS, "I moved to Perm")
        assert await owner_facts(db, configured) == "I moved to Perm"
        await stored_settings.put(db, stored_settings.FACTS, "")
        assert await owner_facts(db, configured) == ""
