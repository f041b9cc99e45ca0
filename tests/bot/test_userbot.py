"""The userbot and the draft loop, offline: Telethon's real client answering from a
script, the real bot against the fake Bot API, the tiny model drafting."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rapidfuzz.distance import Levenshtein

from bot.config import BotConfig
from bot.drafts import draft_scope, feedback
from bot.keyboards import DraftAction
from bot.settings import BotSettings, RetrainSettings, UserbotSettings
from exporter.live import LiveUserbot
from exporter.sync import sync
from storage import Database, open_database
from storage import chats as chats_table
from storage import drafts as drafts_table
from storage import settings as settings_table
from tests.bot_harness import Harness, Recording
from tests.fake_telegram import FakeTelegram
from tests.fake_telethon import OWNER, ScriptedTelegram, user
from twin.dataset.build import build_dataset, read_samples
from twin.dataset.feedback import preferences_path, read_feedback
from twin.dataset.settings import DatasetSettings
from twin.engine.generate import ReplyEngine
from twin.engine.settings import GenerationSettings
from twin.memory.keeper import MemoryKeeper
from twin.memory.scopes import Scope
from twin.memory.settings import MemorySettings
from twin.prompt.reply import ReplyPrompts
from twin.prompt.samples import SampleMaker
from twin.prompt.settings import PromptSettings
from twin.prompt.text import Prompt

ANNA, BORIS = 201, 202


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path) -> ReplyEngine:
    return ReplyEngine(tiny_checkpoint, Prompt(), "32-true", "cpu", max_seq_length=512)


class Loop:
    """Bot, userbot and workflow wired as `twin run` wires them."""

    def __init__(
        self,
        harness: Harness,
        telegram: ScriptedTelegram,
        memory: MemoryKeeper | None = None,
    ) -> None:
        self.harness, self.telegram, self.fake, self.db = (
            harness,
            telegram,
            harness.fake,
            harness.db,
        )
        self.live = LiveUserbot(
            telegram,
            harness.db,
            OWNER,
            harness.workflow.on_incoming,
            harness.workflow.on_outgoing,
            memory.chat_changed if memory else None,
        )
        harness.workflow.userbot = self.live

    async def start(self) -> None:
        self.live.attach()
        await self.harness.start()
        await self.harness.workflow.reconcile()

    async def stop(self) -> None:
        self.telegram.remove_event_handler(self.live._new_message)
        self.telegram.remove_event_handler(self.live._edited)
        await self.harness.workflow.stop()
        await self.harness.stop()

    def cards(self) -> list[dict]:
        return [p for p in self.fake.sent(OWNER) if "reply_markup" in p]

    async def card(self, count: int = 1) -> dict:
        return (await self.fake.wait_for(lambda: len(self.cards()) >= count and self.cards()))[-1]

    def press(self, card: dict, action: str, draft_id: int | None = None) -> None:
        """The button `action` of `card`, as the card shows its draft (its revision)."""
        markup = json.loads(card["reply_markup"])
        shown = DraftAction.unpack(markup["inline_keyboard"][0][0]["callback_data"])
        draft = draft_id if draft_id is not None else shown.id
        pressed = DraftAction(id=draft, action=action, rev=shown.rev)
        self.fake.press(OWNER, card["_message_id"], pressed.pack())

    async def edit(self, card: dict, text: str, confirm: bool = True) -> None:
        """Edit, type the corrected text, see it shown back, then Send (or Cancel)."""
        asked = self.edits_asked()
        self.press(card, "edit")
        await self.fake.wait_for(lambda: self.edits_asked() > asked)
        self.fake.send(OWNER, text)
        echo = await self.fake.wait_for(lambda: self.echoes(text))
        self.choose(echo[-1], confirm)

    def edits_asked(self) -> int:
        return sum(t.startswith("Send me the reply") for t in self.fake.texts(OWNER))

    def echoes(self, text: str) -> list[dict]:
        return [
            p
            for p in self.fake.sent(OWNER)
            if "reply_markup" in p and p["text"].endswith(f"as you:\n\n{text}")
        ]

    def choose(self, echo: dict, confirm: bool) -> None:
        buttons = json.loads(echo["reply_markup"])["inline_keyboard"][0]
        data = buttons[0 if confirm else 1]["callback_data"]
        self.fake.press(OWNER, echo["_message_id"], data)

    async def draft(self, chat_id: int) -> drafts_table.Draft:
        rows = await self.db.fetchall(
            "SELECT id FROM drafts WHERE chat_id = ? ORDER BY id DESC", (chat_id,)
        )
        return await drafts_table.get(self.db, rows[0][0])


def make_loop(
    fake: FakeTelegram,
    db: Database,
    engine: ReplyEngine,
    telegram: ScriptedTelegram,
    memory: MemoryKeeper | None = None,
    bot: BotSettings | None = None,
    **drafts: object,
) -> Loop:
    config = BotConfig(
        token="123456:TEST-token",
        api_url=fake.base_url,
        owner_id=OWNER,
        train_command=["true"],
        bot=bot or BotSettings(),
        generation=GenerationSettings(max_new_tokens=10, seed=5),
        retrain=RetrainSettings(schedule=""),
        drafts=UserbotSettings.model_validate({"auto_delay": 0.3, **drafts}),
    )
    replies = Recording(
        lambda: engine, ReplyPrompts(Prompt(), session_gap=86400, context_tokens=128)
    )
    return Loop(Harness(fake, db, replies, config), telegram, memory)


@pytest.fixture
async def world(
    tmp_path: Path, engine: ReplyEngine
) -> AsyncIterator[tuple[FakeTelegram, Database, ScriptedTelegram]]:
    fake = FakeTelegram()
    await fake.start()
    telegram = ScriptedTelegram(
        user(OWNER, "Kostya", is_self=True), [user(ANNA, "Anna"), user(BORIS, "Boris")]
    )
    telegram.message(ANNA, "привет! давно не виделись", at=time.time() - 3600)
    telegram.message(ANNA, "привет)))", out=True, at=time.time() - 3500)
    engine.use_adapter(None)
    async with open_database(tmp_path / "twin.db") as db:
        await settings_table.put(db, settings_table.OWNER_ID, OWNER)
        await sync(telegram, db, wait_time=0)
        yield fake, db, telegram
    await fake.stop()


@pytest.fixture
async def loop(world, engine: ReplyEngine) -> AsyncIterator[Loop]:
    fake, db, telegram = world
    running = make_loop(fake, db, engine, telegram)
    await running.start()
    yield running
    await running.stop()


async def test_send_sends_exactly_the_draft_to_exactly_that_peer(loop: Loop) -> None:
    await loop.telegram.arrive(loop.telegram.message(ANNA, "как дела?"))
    card = await loop.card()
    assert card["text"].startswith("✉️ Anna wrote:\nкак дела?")
    draft = await loop.draft(ANNA)
    assert draft.status == "pending"
    loop.press(card, "send")
    await loop.fake.wait_for(lambda: loop.telegram.sent)
    expected = Prompt().split_burst(draft.draft_text)
    assert loop.telegram.sent == [(ANNA, text) for text in expected]
    draft = await loop.draft(ANNA)
    assert draft.status == "sent" and draft.final_text == draft.draft_text and draft.via == "button"
    # What was sent is the owner's now: stored as their message, training data.
    stored = await loop.db.fetchall(
        "SELECT text FROM messages WHERE chat_id = ? AND is_owner = 1 "
        "ORDER BY message_id DESC LIMIT 1",
        (ANNA,),
    )
    assert stored[0][0] == expected[-1]
    # The card lost its buttons and says what happened.
    await loop.fake.wait_for(lambda: any("✅ Sent." in t for t in loop.fake._texts.values()))
    # A second tap on the old button sends nothing.
    loop.press(card, "send", draft.id)
    await asyncio.sleep(0.5)
    assert len(loop.telegram.sent) == len(expected)


async def test_edit_sends_the_owners_words(loop: Loop) -> None:
    await loop.telegram.arrive(loop.telegram.message(ANNA, "придёшь завтра?"))
    card = await loop.card()
    await loop.edit(card, "да, после смены 🤙")
    await loop.fake.wait_for(lambda: loop.telegram.sent)
    assert loop.telegram.sent == [(ANNA, "да, после смены 🤙")]
    draft = await loop.draft(ANNA)
    assert draft.status == "edited_sent" and draft.final_text == "да, после смены 🤙"
    assert draft.draft_text != draft.final_text and draft.via == "edit"


async def test_what_the_owner_writes_or_approves_is_remembered_at_once(
    world, engine: ReplyEngine
) -> None:
    fake, db, telegram = world
    memory = MemoryKeeper(db, MemorySettings(), DatasetSettings(), PromptSettings().burst_separator)
    loop = make_loop(fake, db, engine, telegram, memory)
    await loop.start()
    try:
        memory.start()
        await telegram.arrive(telegram.message(ANNA, "как дела?"))
        await loop.edit(await loop.card(), "отлично, а ты?")  # approved through the bot
        await fake.wait_for(lambda: telegram.sent)
        await telegram.arrive(telegram.message(ANNA, "тоже норм"))
        await loop.card(2)
        await telegram.arrive(telegram.message(ANNA, "давай в пятницу", out=True))  # his phone
        await fake.wait_for(lambda: any("answered yourself" in t for t in fake._texts.values()))
        await memory.stop()
        remembered = await db.fetchall("SELECT message, reply FROM exchanges ORDER BY date")
        assert remembered == [
            ("привет! давно не виделись", "привет)))"),
            ("как дела?", "отлично, а ты?"),
            ("тоже норм", "давай в пятницу"),
        ]
    finally:
        await loop.stop()


async def test_regenerate_redrafts_in_place(loop: Loop, engine: ReplyEngine) -> None:
    await loop.telegram.arrive(loop.telegram.message(ANNA, "что нового?"))
    card = await loop.card()
    first = await loop.draft(ANNA)
    loop.harness.config.generation.seed = 99  # another draft this time
    loop.press(card, "again")
    await loop.fake.wait_for(lambda: any(c.method == "editMessageText" for c in loop.fake.calls))
    again = await loop.draft(ANNA)
    assert again.id == first.id and again.draft_text != first.draft_text
    assert len(loop.cards()) == 1  # edited, not a second card
    assert loop.telegram.sent == []


async def test_discard_sends_nothing(loop: Loop) -> None:
    await loop.telegram.arrive(loop.telegram.message(ANNA, "ну что"))
    loop.press(await loop.card(), "discard")
    await loop.fake.wait_for(lambda: any("🗑 Discarded." in t for t in loop.fake._texts.values()))
    assert (await loop.draft(ANNA)).status == "discarded" and loop.telegram.sent == []


async def test_owner_answering_first_expires_the_draft(loop: Loop) -> None:
    await loop.telegram.arrive(loop.telegram.message(ANNA, "ты тут?"))
    card = await loop.card()
    await loop.telegram.arrive(loop.telegram.message(ANNA, "тут, щас", out=True))
    await loop.fake.wait_for(
        lambda: any("answered yourself" in t for t in loop.fake._texts.values())
    )
    assert (await loop.draft(ANNA)).status == "expired"
    edit = [c for c in loop.fake.calls if c.method == "editMessageText"][-1]
    assert "reply_markup" not in edit.params  # the buttons are gone
    loop.press(card, "send")
    await asyncio.sleep(0.5)
    assert loop.telegram.sent == []


async def test_new_messages_update_the_pending_draft(loop: Loop) -> None:
    await loop.telegram.arrive(loop.telegram.message(ANNA, "слушай"))
    await loop.card()
    await loop.telegram.arrive(loop.telegram.message(ANNA, "а где ключи?"))
    await loop.fake.wait_for(lambda: any(c.method == "editMessageText" for c in loop.fake.calls))
    rows = await loop.db.fetchall(
        "SELECT status, incoming_text FROM drafts WHERE chat_id = ?", (ANNA,)
    )
    assert rows == [("pending", "а где ключи?")]
    assert len(loop.cards()) == 1


async def test_a_pending_draft_survives_a_restart(world, engine: ReplyEngine) -> None:
    fake, db, telegram = world
    first = make_loop(fake, db, engine, telegram)
    await first.start()
    await telegram.arrive(telegram.message(ANNA, "вечером созвон?"))
    card = await first.card()
    await first.stop()
    second = make_loop(fake, db, engine, telegram)
    await second.start()
    try:
        second.press(card, "send")
        await fake.wait_for(lambda: telegram.sent)
        assert (await second.draft(ANNA)).status == "sent"
    finally:
        await second.stop()


async def test_an_edit_begun_before_a_restart_is_finished_after_it(
    world, engine: ReplyEngine
) -> None:
    fake, db, telegram = world
    first = make_loop(fake, db, engine, telegram)
    await first.start()
    await telegram.arrive(telegram.message(ANNA, "во сколько завтра?"))
    first.press(await first.card(), "edit")
    await fake.wait_for(lambda: any(t.startswith("Send me the reply") for t in fake.texts(OWNER)))
    await first.stop()
    second = make_loop(fake, db, engine, telegram)
    await second.start()
    try:
        fake.send(OWNER, "к девяти)")  # the correction, not a chat with the twin
        second.choose((await fake.wait_for(lambda: second.echoes("к девяти)")))[-1], True)
        await fake.wait_for(lambda: telegram.sent)
        assert telegram.sent == [(ANNA, "к девяти)")]
        assert (await second.draft(ANNA)).status == "edited_sent"
    finally:
        await second.stop()


async def test_a_crash_between_send_and_record_never_sends_twice(
    world, engine: ReplyEngine
) -> None:
    fake, db, telegram = world
    loop = make_loop(fake, db, engine, telegram)
    await loop.start()
    await telegram.arrive(telegram.message(ANNA, "ну что, идёшь?"))
    await loop.card()
    await loop.stop()
    draft = await loop.draft(ANNA)
    # The process died right after the userbot sent: intent recorded, the send happened,
    # its record never written.
    assert await drafts_table.claim_for_sending(db, draft.id, draft.draft_text, "button")
    parts = await drafts_table.plan_parts(db, draft.id, Prompt().split_burst(draft.draft_text))
    for part in parts:
        await loop.live.send_part(ANNA, part.text, part.random_id)
    sent_before = list(telegram.sent)
    restarted = make_loop(fake, db, engine, telegram)
    await restarted.start()  # reconciles
    try:
        assert (await restarted.draft(ANNA)).status == "sent"
        assert telegram.sent == sent_before  # nothing sent again
    finally:
        await restarted.stop()


async def test_a_crash_before_the_send_makes_the_draft_pending_again(
    world, engine: ReplyEngine
) -> None:
    fake, db, telegram = world
    loop = make_loop(fake, db, engine, telegram)
    await loop.start()
    await telegram.arrive(telegram.message(ANNA, "алло"))
    await loop.card()
    await loop.stop()
    draft = await loop.draft(ANNA)
    assert await drafts_table.claim_for_sending(db, draft.id, draft.draft_text, "button")
    restarted = make_loop(fake, db, engine, telegram)
    await restarted.start()
    try:
        assert (await restarted.draft(ANNA)).status == "pending"
        assert telegram.sent == []
    finally:
        await restarted.stop()


def drafting(loop: Loop, *texts: str) -> None:
    """The twin drafts these texts, in turn (the tiny model's words are random, and
    auto mode's filter judges words)."""
    queue = list(texts)

    async def draft_text(chat_id: int, mode: str) -> tuple[str, str]:
        return "the prompt", queue.pop(0)

    loop.harness.workflow._draft_text = draft_text  # type: ignore[method-assign]


def test_a_draft_sent_by_itself_recalls_only_its_own_chat() -> None:
    assert draft_scope(ANNA, "draft") == Scope(ANNA)
    assert draft_scope(ANNA, "auto") == Scope(ANNA, only_this_chat=True)


async def test_a_draft_recalls_what_the_owner_said_to_others(loop: Loop) -> None:
    await loop.telegram.arrive(loop.telegram.message(ANNA, "как дела?"))
    await loop.card()
    assert loop.harness.replies.requests[-1][2] == Scope(ANNA)


async def test_modes_off_auto_and_muted_chats(world, engine: ReplyEngine) -> None:
    fake, db, telegram = world
    loop = make_loop(fake, db, engine, telegram)
    drafting(loop, "ну норм, скоро буду")
    await loop.start()
    try:
        await chats_table.set_mode(db, ANNA, "off")
        await telegram.arrive(telegram.message(ANNA, "эй"))
        telegram.muted.add(BORIS)
        await telegram.arrive(telegram.message(BORIS, "привет"))
        await asyncio.sleep(1.0)
        assert loop.cards() == [] and await db.fetchall("SELECT * FROM drafts") == []
        # Stored all the same: the history stays complete.
        assert await db.fetchone("SELECT COUNT(*) FROM messages WHERE chat_id = ?", (BORIS,)) == (
            1,
        )
        telegram.muted.clear()
        loop.live._muted.clear()
        await chats_table.set_mode(db, ANNA, "auto")
        await telegram.arrive(telegram.message(ANNA, "ты где?"))
        await fake.wait_for(lambda: telegram.sent)
        assert (await loop.draft(ANNA)).via == "auto"
        assert telegram.sent == [(ANNA, "ну норм, скоро буду")]
        # Sent by the twin alone: marked, so it never trains the next adapter.
        marked = await db.fetchall("SELECT text FROM messages WHERE by_twin = 1")
        assert marked == [("ну норм, скоро буду",)]
    finally:
        await loop.stop()


async def test_auto_mode_never_sends_what_a_person_should_read(world, engine: ReplyEngine) -> None:
    fake, db, telegram = world
    loop = make_loop(fake, db, engine, telegram)
    drafting(loop, "звони [PHONE]")
    await loop.start()
    try:
        await chats_table.set_mode(db, ANNA, "auto")
        await telegram.arrive(telegram.message(ANNA, "какой у тебя номер?"))
        await fake.wait_for(lambda: any("Not sent on its own" in t for t in fake.texts(OWNER)))
        assert telegram.sent == [] and (await loop.draft(ANNA)).status == "pending"
    finally:
        await loop.stop()


async def test_buttons_are_for_the_owner_and_real_drafts_only(loop: Loop) -> None:
    await loop.telegram.arrive(loop.telegram.message(ANNA, "ок"))
    card = await loop.card()
    draft = await loop.draft(ANNA)
    message_id = card["_message_id"]
    loop.fake.press(
        5555, message_id, DraftAction(id=draft.id, action="send").pack()
    )  # not the owner
    loop.fake.press(
        OWNER, message_id, DraftAction(id=draft.id + 100, action="send").pack()
    )  # no such
    await asyncio.sleep(1.0)
    assert loop.telegram.sent == [] and (await loop.draft(ANNA)).status == "pending"
    assert len(DraftAction(id=2**62, action="discard").pack().encode()) <= 64


async def test_with_the_bot_open_to_everyone_drafts_stay_the_owners(
    world, engine: ReplyEngine
) -> None:
    """bot.allow = "everyone" lets anyone chat with the twin; then the drafts router's
    owner filter is all that stands between a stranger and a Send button (or /drafts,
    the contacts' messages; /mode; an edit's text)."""
    fake, db, telegram = world
    loop = make_loop(fake, db, engine, telegram, bot=BotSettings(allow="everyone"))
    await loop.start()
    try:
        await loop.telegram.arrive(loop.telegram.message(ANNA, "ключи под ковриком у двери"))
        card = await loop.card()
        draft = await loop.draft(ANNA)
        stranger = 5555
        for action in ("send", "edit", "discard", "again"):
            data = DraftAction(id=draft.id, action=action, rev=draft.revision).pack()
            loop.fake.press(stranger, card["_message_id"], data)
        for text in ("/drafts", f"/mode {ANNA} auto", "/cancel"):
            loop.fake.send(stranger, text)
        await loop.fake.wait_for(lambda: len(loop.fake.texts(stranger)) >= 1)  # the twin talks
        await asyncio.sleep(1.0)
        assert loop.telegram.sent == []
        now = await loop.draft(ANNA)
        assert (now.status, now.revision, now.draft_text) == (
            "pending",
            draft.revision,
            draft.draft_text,
        )
        assert await loop.harness.workflow.mode(ANNA) == "draft"
        shown = loop.fake.texts(stranger)
        assert not any(draft.incoming_text in t or t.startswith("Send me") for t in shown)
        assert not [p for p in loop.fake.sent(stranger) if "reply_markup" in p]
    finally:
        await loop.stop()


async def test_mode_command_and_picker(loop: Loop) -> None:
    loop.fake.send(OWNER, "/mode Anna auto")
    await loop.fake.wait_for(lambda: "Anna: auto." in loop.fake.texts(OWNER))
    assert await chats_table.mode(loop.db, ANNA) == "auto"
    loop.fake.send(OWNER, "/mode")
    picker = await loop.fake.wait_for(
        lambda: [p for p in loop.fake.sent(OWNER) if p["text"].startswith("Draft mode per chat")]
    )
    buttons = json.loads(picker[0]["reply_markup"])["inline_keyboard"]
    assert buttons == [[{"text": "Anna · auto", "callback_data": "m:201:"}]]
    loop.fake.press(OWNER, picker[0]["_message_id"], "m:201:")
    modes = await loop.fake.wait_for(
        lambda: [p for p in loop.fake.sent(OWNER) if p["text"] == "Anna: now auto."]
    )
    loop.fake.press(OWNER, modes[0]["_message_id"], "m:201:off")
    await loop.fake.wait_for(
        lambda: any(c.method == "editMessageReplyMarkup" for c in loop.fake.calls)
    )
    assert await chats_table.mode(loop.db, ANNA) == "off"


# -- sync ------------------------------------------------------------------------------


async def test_sync_resumes_after_a_flood_wait_and_adds_nothing_twice(tmp_path: Path) -> None:
    telegram = ScriptedTelegram(
        user(OWNER, "Kostya", is_self=True), [user(ANNA, "Anna"), user(BORIS, "Boris")]
    )
    for i in range(230):
        telegram.message(ANNA, f"a{i}", out=i % 2 == 0, at=1_700_000_000 + i * 60)
    for i in range(40):
        telegram.message(BORIS, f"b{i}", at=1_700_000_000 + i * 60)
    async with open_database(tmp_path / "twin.db") as db:
        telegram.flood_on_page[2] = 3600  # the second page: come back in an hour
        report = await sync(telegram, db, wait_time=0)
        assert report.blocked_until is not None and report.chats == 0
        with pytest.raises(Exception, match="Telegram asked to wait"):
            await sync(telegram, db, wait_time=0)
        await settings_table.put(db, "sync_blocked_until", int(time.time()) - 1)  # the hour passed
        telegram.flood_on_page[telegram._history_calls + 1] = 1  # a short one: slept through
        report = await sync(telegram, db, wait_time=0, flood_sleep=5)
        assert report.chats == 2
        counts = dict(await db.fetchall("SELECT chat_id, COUNT(*) FROM messages GROUP BY chat_id"))
        assert counts == {ANNA: 230, BORIS: 40}
        again = await sync(telegram, db, wait_time=0)
        assert again.new == 0
        telegram.message(BORIS, "новое", at=1_700_100_000)
        assert (await sync(telegram, db, wait_time=0)).new == 1


async def test_an_interrupted_sync_loses_nothing(tmp_path: Path) -> None:
    telegram = ScriptedTelegram(user(OWNER, "Kostya", is_self=True), [user(ANNA, "Anna")])
    for i in range(600):
        telegram.message(ANNA, f"m{i}", at=1_700_000_000 + i)
    async with open_database(tmp_path / "twin.db") as db:
        telegram.flood_on_page[4] = 10**6  # dies after three pages (300 messages)
        await sync(telegram, db, wait_time=0)
        assert (await db.fetchone("SELECT COUNT(*) FROM messages"))[0] == 300
        assert await db.fetchone("SELECT max_message_id FROM sync_state") is None  # not done
        await settings_table.delete(db, "sync_blocked_until")
        await sync(telegram, db, wait_time=0)
        assert (await db.fetchone("SELECT COUNT(*) FROM messages"))[0] == 600


async def test_corrections_become_training_data(loop: Loop, tmp_path: Path) -> None:
    await loop.telegram.arrive(loop.telegram.message(ANNA, "во сколько встречаемся?"))
    await loop.edit(await loop.card(), "в семь у метро, пиши мне на ivan@example.com")
    await loop.fake.wait_for(lambda: loop.telegram.sent)
    out = tmp_path / "samples.jsonl"
    stats = build_dataset(
        loop.db.path, out, DatasetSettings(val_fraction=0), SampleMaker(PromptSettings())
    )
    samples = read_samples(out)
    # The owner's own words are an owner turn answering the message (scrubbed).
    assert any(s["output"] == "в семь у метро, пиши мне на [EMAIL]" for s in samples)
    # A reply with a placeholder teaches nothing as a preference: no pair.
    assert read_feedback(preferences_path(out)) == []
    assert stats.feedback["dropped"] == {"placeholder": 1}

    await loop.telegram.arrive(loop.telegram.message(ANNA, "а кто ещё будет?"))
    second = await loop.fake.wait_for(
        lambda: [c for c in loop.cards() if "а кто ещё будет?" in c["text"]]
    )
    await loop.edit(second[-1], "все наши")
    await loop.fake.wait_for(lambda: len(loop.telegram.sent) == 2)
    stats = build_dataset(
        loop.db.path, out, DatasetSettings(val_fraction=0), SampleMaker(PromptSettings())
    )
    pairs = read_feedback(preferences_path(out))
    draft = await loop.draft(ANNA)
    assert pairs == [
        {
            "source": "edited",
            "prompt": pairs[0]["prompt"],
            "chosen": "все наши",
            "rejected": draft.draft_text,
            "chat_id": ANNA,
            "date": draft.decided,
        }
    ]
    assert "а кто ещё будет?" in pairs[0]["prompt"]
    assert stats.feedback["sources"] == {"edited": 1}
    edited = [await drafts_table.get(loop.db, i) for i in (1, 2)]
    distances = [Levenshtein.distance(d.draft_text, d.final_text) for d in edited]
    assert await feedback(loop.db) == {
        "decided": 2,
        "approval_rate": 0.0,
        "edit_rate": 1.0,
        "discard_rate": 0.0,
        "mean_edit_distance": sum(distances) / 2,
    }


async def test_a_failed_send_leaves_the_draft_pending(loop: Loop) -> None:
    await loop.telegram.arrive(loop.telegram.message(ANNA, "ну что там?"))
    card = await loop.card()

    loop.telegram.fail_send[1] = "before"  # Telegram never got it
    loop.press(card, "send")
    await loop.fake.wait_for(
        lambda: any(
            c.method == "answerCallbackQuery" and "did not take it" in c.params.get("text", "")
            for c in loop.fake.calls
        )
    )
    draft = await loop.draft(ANNA)
    assert draft.status == "pending" and loop.telegram.sent == []


# -- acting as the owner: nothing goes out that the owner did not mean ----------------


async def test_commands_during_an_edit_are_never_sent(loop: Loop) -> None:
    await loop.telegram.arrive(loop.telegram.message(ANNA, "когда?"))
    card = await loop.card()
    loop.press(card, "edit")
    await loop.fake.wait_for(
        lambda: any(t.startswith("Send me the reply") for t in loop.fake.texts(OWNER))
    )
    loop.fake.send(OWNER, "/drafts")
    await loop.card(2)  # /drafts answered with the card again
    loop.fake.send(OWNER, "/Cancel")
    await loop.fake.wait_for(
        lambda: "Editing cancelled; the draft is still waiting." in loop.fake.texts(OWNER)
    )
    loop.fake.send(OWNER, "а это уже просто болтовня с твином")
    await asyncio.sleep(1.5)
    assert loop.telegram.sent == [] and (await loop.draft(ANNA)).status == "pending"


async def test_the_corrected_text_goes_out_only_after_confirming(loop: Loop) -> None:
    await loop.telegram.arrive(loop.telegram.message(ANNA, "идёшь?"))
    card = await loop.card()
    await loop.edit(card, "не, сегодня пас", confirm=False)
    await loop.fake.wait_for(
        lambda: any(
            "Cancelled; the draft is still waiting." in c.params.get("text", "")
            for c in loop.fake.calls
            if c.method == "answerCallbackQuery"
        )
    )
    await asyncio.sleep(0.5)
    assert loop.telegram.sent == [] and (await loop.draft(ANNA)).status == "pending"


async def test_an_edit_expires(world, engine: ReplyEngine) -> None:
    fake, db, telegram = world
    loop = make_loop(fake, db, engine, telegram, edit_minutes=0.01)
    await loop.start()
    try:
        await telegram.arrive(telegram.message(ANNA, "ау"))
        loop.press(await loop.card(), "edit")
        await fake.wait_for(
            lambda: any(t.startswith("Send me the reply") for t in fake.texts(OWNER))
        )
        await asyncio.sleep(1.0)  # 0.6 s: the edit is over
        fake.send(OWNER, "days later, a line meant for the twin")
        await fake.wait_for(lambda: any("edit had expired" in t for t in fake.texts(OWNER)))
        assert telegram.sent == [] and loop.echoes("days later, a line meant for the twin") == []
    finally:
        await loop.stop()


async def test_an_edit_ends_when_its_draft_settles(loop: Loop) -> None:
    await loop.telegram.arrive(loop.telegram.message(ANNA, "ты где"))
    card = await loop.card()
    loop.press(card, "edit")
    await loop.fake.wait_for(
        lambda: any(t.startswith("Send me the reply") for t in loop.fake.texts(OWNER))
    )
    await loop.telegram.arrive(loop.telegram.message(ANNA, "уже дома", out=True))  # answered
    await loop.fake.wait_for(
        lambda: any("answered yourself" in t for t in loop.fake._texts.values())
    )
    loop.fake.send(OWNER, "текст после")
    await asyncio.sleep(1.5)
    assert loop.echoes("текст после") == []
    assert loop.telegram.sent == [(ANNA, "уже дома")] or loop.telegram.sent == []


async def test_sends_go_out_exactly_as_written(loop: Loop) -> None:
    text = "call __init__ and see [the docs](https://example.org) *now*"
    await loop.telegram.arrive(loop.telegram.message(ANNA, "как вызвать?"))
    await loop.edit(await loop.card(), text)
    await loop.fake.wait_for(lambda: loop.telegram.sent)
    assert loop.telegram.sent == [(ANNA, text)]
    request = loop.telegram.send_requests[-1]
    assert request.entities is None and request.no_webpage is True


@pytest.mark.parametrize("action", ["send", "discard", "edit", "again"])
async def test_a_button_on_an_older_card_does_nothing(loop: Loop, action: str) -> None:
    """The owner decided on the draft the card showed: a newer one (redrafted since) is
    neither sent, dropped, edited nor regenerated by an old card's button."""
    await loop.telegram.arrive(loop.telegram.message(ANNA, "слушай"))
    card = await loop.card()
    first = await loop.draft(ANNA)
    await loop.telegram.arrive(loop.telegram.message(ANNA, "а где ключи?"))  # redrafted
    await loop.fake.wait_for(lambda: any(c.method == "editMessageText" for c in loop.fake.calls))
    newer = await loop.draft(ANNA)
    assert newer.revision == first.revision + 1
    loop.press(card, action)  # the card as it was sent: the first revision
    await loop.fake.wait_for(
        lambda: any("changed since" in c.params.get("text", "") for c in loop.fake.calls)
    )
    await asyncio.sleep(0.3)
    now = await loop.draft(ANNA)
    assert loop.telegram.sent == [] and now.status == "pending"
    assert (now.revision, now.draft_text) == (newer.revision, newer.draft_text)
    assert not any(t.startswith("Send me the reply") for t in loop.fake.texts(OWNER))


THREE_PARTS = "первое\nвторое\nтретье"


@pytest.mark.parametrize(
    ("sent_before_crash", "recorded", "failure"),
    [
        (0, 0, None),  # planned, nothing sent
        (1, 1, None),  # part 1 sent and recorded
        (2, 1, None),  # part 2 sent, its id never recorded
        (3, 2, None),  # all sent, the last id never recorded
        (3, 3, None),  # all sent and recorded, the draft not marked
    ],
)
async def test_a_crash_between_parts_neither_repeats_nor_loses_one(
    world, engine: ReplyEngine, sent_before_crash: int, recorded: int, failure: None
) -> None:
    fake, db, telegram = world
    loop = make_loop(fake, db, engine, telegram)
    await loop.start()
    await telegram.arrive(telegram.message(ANNA, "расскажи по порядку"))
    await loop.card()
    await loop.stop()
    draft = await loop.draft(ANNA)
    assert await drafts_table.claim_for_sending(db, draft.id, THREE_PARTS, "edit")
    parts = await drafts_table.plan_parts(db, draft.id, THREE_PARTS.split("\n"))
    for part in parts[:sent_before_crash]:
        message_id = await loop.live.send_part(ANNA, part.text, part.random_id)
        if part.part < recorded:
            await drafts_table.part_sent(db, part, message_id)
    restarted = make_loop(fake, db, engine, telegram)
    await restarted.start()  # reconciles: the rest goes out, once
    try:
        assert telegram.sent == [(ANNA, "первое"), (ANNA, "второе"), (ANNA, "третье")]
        done = await restarted.draft(ANNA)
        assert done.status == "edited_sent"
        ids = [p.message_id for p in await drafts_table.parts(db, draft.id)]
        assert None not in ids and ids == sorted(ids) and done.sent_message_id == ids[-1]
    finally:
        await restarted.stop()


@pytest.mark.parametrize(("send", "failure"), [(1, "after"), (2, "after"), (2, "before")])
async def test_a_failed_part_is_neither_repeated_nor_lost(
    loop: Loop, send: int, failure: str
) -> None:
    """Telegram refused a part, or took it and lost the answer: nothing goes out twice
    (the part is found in the chat, or refused again by its random id), and the
    reconciliation finishes the reply."""
    await loop.telegram.arrive(loop.telegram.message(ANNA, "по пунктам?"))
    card = await loop.card()
    loop.telegram.fail_send[send] = failure
    await loop.edit(card, THREE_PARTS)
    await loop.fake.wait_for(lambda: any("rest will follow" in t for t in loop.fake.texts(OWNER)))
    assert (await loop.draft(ANNA)).status == "sending"
    loop.harness.workflow.keep_reconciling(every=0.3)  # as twin run does, every minute
    await loop.fake.wait_for(lambda: len(loop.telegram.sent) == 3)
    await asyncio.sleep(0.5)
    assert loop.telegram.sent == [(ANNA, "первое"), (ANNA, "второе"), (ANNA, "третье")]
    assert (await loop.draft(ANNA)).status == "edited_sent"


async def test_only_chats_with_people_are_stored_live(loop: Loop) -> None:
    bot = user(909, "SomeBot", bot=True)
    loop.telegram.people[bot.id] = bot
    loop.telegram.history[bot.id] = []
    saved = loop.telegram.me
    loop.telegram.history[saved.id] = []
    await loop.telegram.arrive(loop.telegram.message(bot.id, "/start", out=True))
    await loop.telegram.arrive(loop.telegram.message(saved.id, "note to self", out=True))
    await asyncio.sleep(0.5)
    stored = await loop.db.fetchall(
        "SELECT chat_id FROM messages WHERE chat_id IN (909, ?)", (OWNER,)
    )
    assert stored == []


async def test_a_stored_chat_keeps_its_type(db: Database) -> None:
    await chats_table.upsert(db, chats_table.Chat(OWNER, "saved_messages", None))
    await chats_table.upsert(db, chats_table.Chat(OWNER, "personal_chat", "Me"))
    assert await chats_table.get(db, OWNER) == chats_table.Chat(OWNER, "saved_messages", "Me")


async def test_regenerate_shows_the_next_candidate_at_once(loop: Loop) -> None:
    loop.harness.config.generation.candidates = 3
    await loop.telegram.arrive(loop.telegram.message(ANNA, "что нового?"))
    card = await loop.card()
    first = await loop.draft(ANNA)
    replies = len(loop.harness.replies.asked)
    loop.press(card, "again")
    await loop.fake.wait_for(lambda: any(c.method == "editMessageText" for c in loop.fake.calls))
    again = await loop.draft(ANNA)
    assert again.revision == first.revision + 1 and again.prompt == first.prompt
    assert len(loop.harness.replies.asked) == replies  # shown, not generated
    rejected = await loop.db.fetchall("SELECT text FROM draft_rejections")
    assert rejected == [(first.draft_text,)]
