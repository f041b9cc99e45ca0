"""The real bot (aiogram polling over real HTTP) against the fake Bot API, with the tiny
model: replies, access, owner commands, /style, /retrain, rate limits, restarts."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.access import REFUSAL
from bot.app import APOLOGY
from bot.config import BotConfig
from bot.settings import BotSettings, RetrainSettings
from storage import bot_messages, open_database
from storage import settings as settings_table
from tests.bot_harness import Harness, Recording
from tests.conftest import ROOT
from tests.exports import import_into
from tests.fake_telegram import FakeTelegram
from twin.commands.demo import sample_export
from twin.engine.generate import ReplyEngine
from twin.engine.settings import GenerationSettings
from twin.memory.scopes import Scope
from twin.memory.settings import MemorySettings
from twin.prompt.reply import ReplyPrompts
from twin.prompt.text import Prompt

OWNER = 700100200  # the sample persona's id: the import makes them the owner
FRIEND = 5005
STRANGER = 6006


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("botdb") / "twin.db"
    asyncio.run(import_into(path, sample_export()))
    return path


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path) -> ReplyEngine:
    return ReplyEngine(tiny_checkpoint, Prompt(), "32-true", "cpu", max_seq_length=512)


@pytest.fixture
def bot_settings() -> BotSettings:
    return BotSettings(allow=[FRIEND])


@pytest.fixture
async def harness(
    tmp_path: Path,
    seeded_db: Path,
    engine: ReplyEngine,
    tiny_checkpoint: Path,
    bot_settings: BotSettings,
) -> AsyncIterator[Harness]:
    db_path = tmp_path / "twin.db"
    db_path.write_bytes(seeded_db.read_bytes())
    config_file = tmp_path / "twin.toml"
    config_file.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[model]\ncheckpoint = "{tiny_checkpoint}"\nprecision = "32-true"\n'
        "[train]\nbatch_size = 8\nepochs = 1\nmax_steps = 4\nlearning_rate = 0.002\n"
        "warmup_steps = 1\neval_interval = 100\n"
    )
    fake = FakeTelegram()
    await fake.start()
    engine.use_adapter(None)
    replies = Recording(
        lambda: engine,
        ReplyPrompts(Prompt(), 86400, 128, MemorySettings(facts="Живу в Казани"), db_path),
    )
    config = BotConfig(
        token="123456:TEST-token",
        api_url=fake.base_url,
        owner_id=OWNER,
        bot=bot_settings,
        train_command=[
            sys.executable,
            "-m",
            "twin",
            "train",
            "--json",
            "--db",
            str(db_path),
            "--config",
            str(config_file),
        ],
        generation=GenerationSettings(max_new_tokens=12, seed=3),
        retrain=RetrainSettings(schedule=""),
    )
    async with open_database(db_path) as db:
        h = Harness(fake, db, replies, config)
        await h.start()
        try:
            yield h
        finally:
            await h.stop()
            await fake.stop()


async def test_a_friend_gets_a_reply_with_the_typing_indicator(harness: Harness) -> None:
    fake = harness.fake
    fake.send(FRIEND, "привет, как дела?")
    texts = await fake.wait_for(lambda: fake.texts(FRIEND))
    assert texts and all(texts)
    assert any(c.method == "sendChatAction" and c.params["action"] == "typing" for c in fake.calls)
    # The reply is stored once all its messages went out: wait for that, not for the first.
    for _ in range(200):
        stored = await bot_messages.recent(harness.db, FRIEND)
        if stored[-1][1] == 1:
            break
        await asyncio.sleep(0.05)
    assert stored[0][3] == "привет, как дела?" and stored[0][1] == 0
    assert stored[-1][1] == 1  # the twin's reply, stored as the twin's


async def test_others_get_one_polite_refusal(harness: Harness) -> None:
    fake = harness.fake
    fake.send(STRANGER, "hello?")
    await fake.wait_for(lambda: fake.texts(STRANGER))
    fake.send(STRANGER, "hello??")
    fake.send(FRIEND, "ping")  # processed after the stranger's second message
    await fake.wait_for(lambda: fake.texts(FRIEND))
    assert len(fake.texts(STRANGER)) == 1 and "private digital twin" in fake.texts(STRANGER)[0]
    assert await bot_messages.recent(harness.db, STRANGER) == []


async def test_the_bot_is_silent_in_groups(harness: Harness) -> None:
    fake = harness.fake
    group = -100777
    fake.send(OWNER, "/status", group=group)
    fake.send(FRIEND, "привет всем", group=group)
    fake.send(FRIEND, "ping")  # processed after the group's messages
    await fake.wait_for(lambda: fake.texts(FRIEND))
    assert fake.sent(group) == [] and fake.sent(group, "sendChatAction") == []
    assert await bot_messages.recent(harness.db, group) == []


GROUP = -100777
IN_GROUPS = BotSettings(allow=[FRIEND], groups=True, group_pause=0)


def answering(fake: FakeTelegram, chat_id: int) -> list[int]:
    """The messages the bot's replies in `chat_id` answer, one per reply."""
    sent = fake.sent(chat_id)
    return [
        json.loads(p["reply_parameters"])["message_id"] for p in sent if "reply_parameters" in p
    ]


async def in_order(harness: Harness, replies_in_group: int) -> None:
    """Wait for `replies_in_group` replies in the group and for every update sent
    before this to be handled: a friend's private message, answered after them."""
    fake = harness.fake
    before = len(fake.texts(FRIEND))
    fake.send(FRIEND, "ping")
    await fake.wait_for(lambda: len(fake.texts(FRIEND)) > before)
    await fake.wait_for(lambda: len(answering(fake, GROUP)) >= replies_in_group)


@pytest.mark.parametrize("bot_settings", [IN_GROUPS])
async def test_in_a_group_the_twin_answers_only_when_addressed_and_once(
    harness: Harness,
) -> None:
    fake = harness.fake
    fake.send(FRIEND, "привет всем", group=GROUP)
    for command in ("/status", "/retrain", "/style temperature 2", "/facts", "/drafts", "/help"):
        fake.send(OWNER, command, group=GROUP)
    fake.send(FRIEND, "@twin_test_bot_fan hi", group=GROUP)  # someone else's name
    asked = fake.send(FRIEND, "@Twin_Test_Bot как дела?", group=GROUP)
    fake.deliver_again()  # Telegram missed our receipt: the same message, again
    await in_order(harness, 1)
    assert answering(fake, GROUP) == [asked]
    group_requests = [r for r in harness.replies.requests if r[2].chat_id == GROUP]
    assert len(group_requests) == 1
    assert not harness.launcher.busy() and await settings_table.get(harness.db, "style") is None
    again = fake.send(
        FRIEND, "ну и?", group=GROUP, reply_to=int(fake.sent(GROUP)[-1]["_message_id"])
    )
    named = fake.send(OWNER, "twin, ты тут?", group=GROUP)  # his name, any case
    await in_order(harness, 3)
    assert answering(fake, GROUP) == [asked, again, named]


@pytest.mark.parametrize("bot_settings", [IN_GROUPS])
async def test_in_a_group_the_twin_recalls_only_that_group(harness: Harness) -> None:
    """Everyone in the group reads the reply: not even the owner's own question there
    may bring up what he said in his other chats."""
    fake = harness.fake
    fake.send(OWNER, "@twin_test_bot что думаешь про пятницу?", group=GROUP)
    await in_order(harness, 1)
    scopes_asked = [r[2] for r in harness.replies.requests if r[2].chat_id == GROUP]
    assert scopes_asked == [Scope(GROUP, only_this_chat=True)]


@pytest.mark.parametrize(
    "bot_settings", [BotSettings(allow=[FRIEND], groups=True, group_pause=3600)]
)
async def test_in_a_group_the_twin_keeps_its_pace_and_strangers_hear_nothing(
    harness: Harness,
) -> None:
    fake = harness.fake
    fake.send(STRANGER, "@twin_test_bot who are you?", group=GROUP)  # not in bot.allow
    first = fake.send(FRIEND, "@twin_test_bot раз", group=GROUP)
    fake.send(FRIEND, "@twin_test_bot два", group=GROUP)  # within the pause
    await in_order(harness, 1)
    assert answering(fake, GROUP) == [first]
    assert fake.sent(STRANGER) == [] and REFUSAL not in fake.texts(GROUP)  # no refusal anywhere


async def test_owner_commands_reveal_nothing_to_others(harness: Harness) -> None:
    fake = harness.fake
    for command in ("/retrain", "/style temperature 2", "/status"):
        fake.send(FRIEND, command)
    answers = await fake.wait_for(lambda: len(fake.texts(FRIEND)) >= 3 and fake.texts(FRIEND))
    assert answers == ["I don't know that command. /help"] * 3
    assert not harness.launcher.busy()
    assert await settings_table.get(harness.db, settings_table.STYLE) is None


async def test_style_knobs_persist_and_change_the_next_reply(harness: Harness) -> None:
    fake = harness.fake
    fake.send(OWNER, "/style temperature 0.3")
    await fake.wait_for(lambda: any("temperature is now 0.3" in t for t in fake.texts(OWNER)))
    assert await settings_table.get(harness.db, settings_table.STYLE) == {"temperature": 0.3}
    fake.send(OWNER, "/style length loud")
    await fake.wait_for(lambda: any("Cannot set that" in t for t in fake.texts(OWNER)))
    fake.send(FRIEND, "ну что?")
    await fake.wait_for(lambda: fake.texts(FRIEND))
    assert harness.replies.requests[-1][1].temperature == 0.3
    fake.send(OWNER, "/style")
    profile = await fake.wait_for(
        lambda: [t for t in fake.texts(OWNER) if t.startswith("Your style")]
    )  # from the stored chats, before any training
    assert "• your filler words: ну" in profile[0] and "temperature=0.3" in profile[0]


async def test_facts_reach_every_prompt_and_bot_users_recall_only_their_chat(
    harness: Harness,
) -> None:
    fake = harness.fake
    fake.send(FRIEND, "ну что?")
    await fake.wait_for(lambda: fake.texts(FRIEND))
    assert "### About you:\nЖиву в Казани" in harness.replies.asked[-1]  # the config's
    assert harness.replies.requests[-1][2] == Scope(FRIEND, only_this_chat=True)
    fake.send(OWNER, "/facts set Работаю бэкендером\nзовут Тёма")
    await fake.wait_for(lambda: any(t.startswith("Saved") for t in fake.texts(OWNER)))
    fake.send(OWNER, "/facts")
    shown = await fake.wait_for(lambda: [t for t in fake.texts(OWNER) if "Your facts" in t])
    assert "Работаю бэкендером\nзовут Тёма" in shown[0]
    fake.send(OWNER, "как дела?")
    await fake.wait_for(lambda: len(harness.replies.asked) == 2)
    assert "Работаю бэкендером\nзовут Тёма" in harness.replies.asked[-1]
    assert "Казани" not in harness.replies.asked[-1]
    assert harness.replies.requests[-1][2] == Scope(None)  # the owner recalls everything
    fake.send(OWNER, "/facts clear")
    await fake.wait_for(lambda: any(t.startswith("Facts cleared") for t in fake.texts(OWNER)))
    fake.send(FRIEND, "а сейчас?")
    await fake.wait_for(lambda: len(harness.replies.asked) == 3)
    assert "About you" not in harness.replies.asked[-1]
    fake.send(FRIEND, "/facts set I am the owner now")  # others cannot
    await fake.wait_for(lambda: "I don't know that command. /help" in fake.texts(FRIEND))
    assert await settings_table.get(harness.db, settings_table.FACTS) == ""


async def test_rate_limit_is_waited_out(harness: Harness) -> None:
    fake = harness.fake
    fake.too_many_requests["sendMessage"] = 1
    fake.retry_after = 1
    fake.send(FRIEND, "алло")
    await fake.wait_for(lambda: fake.texts(FRIEND))
    attempts = [c for c in fake.calls if c.method == "sendMessage"]
    assert len(attempts) >= 2 and attempts[1].at - attempts[0].at >= 0.9


async def test_server_errors_are_retried_with_backoff(harness: Harness) -> None:
    fake = harness.fake
    fake.bad_gateways["sendMessage"] = 2
    fake.send(FRIEND, "ты тут?")
    await fake.wait_for(lambda: fake.texts(FRIEND))
    attempts = [c for c in fake.calls if c.method == "sendMessage"]
    assert [c.ok for c in attempts[:3]] == [False, False, True]
    first_wait, second_wait = (b.at - a.at for a, b in itertools.pairwise(attempts[:3]))
    assert first_wait >= 0.4 and second_wait >= 0.9  # 0.5 s, then 1 s


async def test_a_failing_handler_apologizes_and_the_bot_goes_on(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    fake = harness.fake
    working = harness.replies.reply

    async def broken(*args: object) -> None:
        raise RuntimeError("the model fell over")

    harness.replies.reply = broken  # type: ignore[method-assign]
    fake.send(FRIEND, "ну что там?")
    await fake.wait_for(lambda: fake.texts(FRIEND))
    assert fake.texts(FRIEND) == [APOLOGY]
    assert "Traceback" in caplog.text and "RuntimeError: the model fell over" in caplog.text
    harness.replies.reply = working  # type: ignore[method-assign]
    fake.send(FRIEND, "а сейчас?")
    await fake.wait_for(lambda: len(fake.texts(FRIEND)) >= 2)
    assert APOLOGY not in fake.texts(FRIEND)[1:]


async def test_sigterm_finishes_the_reply_in_flight(
    tmp_path: Path, seeded_db: Path, tiny_checkpoint: Path
) -> None:
    """`twin run` as a user starts it; SIGTERM arrives while a reply waits out a rate
    limit, and the reply still goes out before the process exits cleanly."""
    db_path = tmp_path / "twin.db"
    db_path.write_bytes(seeded_db.read_bytes())
    fake = FakeTelegram()
    await fake.start()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TWIN_DATA_DIR": str(tmp_path / "data"),
        "TWIN_TELEGRAM__BOT_TOKEN": "123456:TEST-token",
        "TWIN_TELEGRAM__BOT_API_URL": fake.base_url,
        "TWIN_BOT__ALLOW": f"[{FRIEND}]",
        "TWIN_RETRAIN__SCHEDULE": "",
        "TWIN_MODEL__CHECKPOINT": str(tiny_checkpoint),
        "TWIN_MODEL__PRECISION": "32-true",
        "TWIN_GENERATE__MAX_NEW_TOKENS": "12",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "twin", "run", "--db", str(db_path),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await fake.wait_for(lambda: fake.sent(method="getUpdates") or None, timeout=120)
        fake.too_many_requests["sendMessage"] = 1
        fake.retry_after = 2
        fake.send(FRIEND, "ты ещё тут?")
        await fake.wait_for(
            lambda: [c for c in fake.calls if c.method == "sendMessage" and not c.ok], timeout=60
        )
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
        await fake.stop()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert fake.texts(FRIEND), "the reply in flight was dropped"
    assert "finishing 1 reply(ies) in flight" in stderr.decode()
    async with open_database(db_path) as db:
        assert [row[3] for row in await bot_messages.recent(db, FRIEND)][:1] == ["ты ещё тут?"]


async def test_restart_keeps_the_chat_history(harness: Harness) -> None:
    fake = harness.fake
    fake.send(FRIEND, "запомни: кот Пельмень")
    await fake.wait_for(lambda: fake.texts(FRIEND))
    await harness.stop()
    again = Harness(fake, harness.db, harness.replies, harness.config)
    await again.start()
    try:
        fake.send(FRIEND, "как зовут кота?")
        await fake.wait_for(lambda: len(fake.texts(FRIEND)) >= 2)
        rows, _, _ = harness.replies.requests[-1]
        assert [r[3] for r in rows if r[1] == 0] == ["запомни: кот Пельмень", "как зовут кота?"]
    finally:
        await again.stop()


async def test_help_and_status_for_the_owner(harness: Harness) -> None:
    fake = harness.fake
    fake.send(OWNER, "/help")
    fake.send(OWNER, "/status")
    texts = await fake.wait_for(lambda: len(fake.texts(OWNER)) >= 2 and fake.texts(OWNER))
    assert "/retrain" in texts[0]
    assert "messages in 10 chats" in texts[1] and "Adapter: none yet" in texts[1]
    assert "Memory: 0 exchanges of yours" in texts[1]  # nothing indexed in this harness
    assert "/facts" in texts[0]


@pytest.mark.slow
async def test_retrain_trains_reports_and_swaps_the_adapter(harness: Harness) -> None:
    fake = harness.fake
    started = time.monotonic()
    fake.send(OWNER, "/retrain")
    await fake.wait_for(lambda: any(t.startswith("Training started") for t in fake.texts(OWNER)))
    fake.send(OWNER, "/retrain")
    await fake.wait_for(lambda: any(t.startswith("Already training") for t in fake.texts(OWNER)))
    result = await fake.wait_for(
        lambda: [t for t in fake.texts(OWNER) if t.startswith("Training run")], timeout=240
    )
    assert "finished: adapter" in result[0] and "promoted" in result[0]
    assert "Picks your real reply among 10 of yours" in result[0]  # selection, chance 10%
    await fake.wait_for(lambda: fake.sent(OWNER, "sendPhoto"))
    photo = fake.sent(OWNER, "sendPhoto")[0]
    assert photo[photo["photo"].removeprefix("attach://")]["size"] > 1000  # a real PNG
    fake.send(FRIEND, "ну и?")
    await fake.wait_for(lambda: fake.texts(FRIEND))
    assert harness.replies._engine is not None and harness.replies._engine.adapter is not None
    assert time.monotonic() - started < 240
