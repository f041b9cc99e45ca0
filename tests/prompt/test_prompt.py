"""Train/serve parity: every training sample is the prompt a reply for that turn is
served (twin.prompt builds both), memory included; nothing recalled from a sample's own
conversation or after it, and bot users kept to their chat."""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import messages, open_database
from storage.memory import ExchangeSearch
from storage.rows import ExchangeRow, HistoryRow
from tests.exports import T0, chat, dialogue, full_export, import_into
from twin.commands.demo import sample_export
from twin.dataset.build import build_dataset, read_samples
from twin.dataset.settings import DatasetSettings
from twin.engine.generate import ReplyEngine
from twin.engine.service import ReplyService
from twin.memory.index import refresh
from twin.memory.recall import Recall
from twin.memory.scopes import EVERYONE, Scope, chat_first
from twin.memory.settings import MemorySettings
from twin.model import registry
from twin.model.checkpoints import read_config, token_counter
from twin.model.lora import adapter_state
from twin.prompt.memory import MemorySection, SampleMemory
from twin.prompt.reply import ReplyPrompts
from twin.prompt.samples import SampleMaker
from twin.prompt.settings import DEFAULT_TEMPLATE, PromptSettings
from twin.prompt.text import Prompt

PEER, OTHER = 2000, 3000
DAY = 86400
FACTS = "Живу в Казани, зовут Тёма."


async def samples_with_memory(
    db_path: Path,
    out: Path,
    dataset: DatasetSettings,
    memory: MemorySettings,
    measure: Callable[[str], int],
    checkpoint: Path | None = None,
) -> int:
    """The samples file as a training run writes it with memory on: the index brought
    up to the history, then every sample written with its memories; how many recalled."""
    async with open_database(db_path) as db:
        await refresh(db, dataset, PromptSettings().burst_separator)
    with SampleMemory(db_path, Prompt(), memory, measure, memory.facts) as recall:
        build_dataset(
            db_path, out, dataset, SampleMaker(PromptSettings()), checkpoint, enrich=recall
        )
    return recall.recalled


def prompts_over(db_path: Path, memory: MemorySettings, context_tokens: int = 384) -> ReplyPrompts:
    prompts = ReplyPrompts(Prompt(), DAY, context_tokens, memory, db_path)
    prompts.remembers = True  # as refresh() decides for an adapter trained with memory
    return prompts


async def test_a_prompt_without_memory_is_the_template_as_before() -> None:
    assert Prompt().render("I: hi", "как дела?") == DEFAULT_TEMPLATE.replace("{memory}", "").format(
        context="I: hi", instruction="как дела?"
    )


async def test_samples_are_trained_with_the_prompt_replies_are_served(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    db_path = tmp_path / "twin.db"
    await import_into(db_path, sample_export())
    out = tmp_path / "samples.jsonl"
    dataset = DatasetSettings(val_fraction=0.1, context_tokens=64)
    memory = MemorySettings(facts=FACTS)
    measure = token_counter(tiny_checkpoint)
    recalled = await samples_with_memory(db_path, out, dataset, memory, measure, tiny_checkpoint)
    samples = read_samples(out)
    assert recalled > len(samples) // 2
    prompts = prompts_over(db_path, memory, dataset.context_tokens)
    chat_id = samples[0]["chat_id"]
    async with open_database(db_path) as db:
        rows = await messages.recent(db, chat_id, limit=10**6)
    checked = 0
    for sample in [s for s in samples if s["chat_id"] == chat_id][:60]:
        if not sample["instruction"]:
            continue
        before = [r for r in rows if r.date < sample["date"]]
        served = prompts(before, measure, Scope(chat_id))
        assert served == Prompt().render_sample(sample)
        checked += "### How you answered" in served
    assert checked >= 20
    prompts.close()


SAMPLE = json.loads(sample_export().read_text())
SAMPLE_CHATS = [c for c in SAMPLE["chats"]["list"] if c["type"] == "personal_chat"]


@st.composite
def histories(draw: st.DrawFn) -> dict:
    """A history drawn from the sample persona's chats: one to three of them, each a
    stretch of 30 to 150 messages from anywhere in it."""
    chosen = draw(st.lists(st.sampled_from(SAMPLE_CHATS), min_size=1, max_size=3, unique_by=id))
    stretches = []
    for one in chosen:
        messages = one["messages"]
        length = draw(st.integers(30, min(150, len(messages))))
        start = draw(st.integers(0, len(messages) - length))
        stretches.append({**one, "messages": messages[start : start + length]})
    return {**SAMPLE, "chats": {"about": "", "list": stretches}}


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=histories(),
    context_tokens=st.sampled_from([48, 160, 384]),
    k=st.integers(1, 5),
    memory_tokens=st.integers(30, 400),
)
def test_every_sample_is_the_prompt_served_for_that_turn(
    tiny_checkpoint: Path, history: dict, context_tokens: int, k: int, memory_tokens: int
) -> None:
    """Train/serve parity: for every owner turn of a drawn history, the prompt the
    reply service builds from the chat as it stood before that turn is the training
    sample's prompt for it, memory and facts included, with one tokenizer on both sides
    (recall: earlier conversations only, that chat first, in both)."""
    memory = MemorySettings(k=k, tokens=memory_tokens, facts=FACTS)
    dataset = DatasetSettings(val_fraction=0.2, context_tokens=context_tokens)
    with tempfile.TemporaryDirectory() as folder:
        checked = asyncio.run(_parity(Path(folder), tiny_checkpoint, history, dataset, memory))
    assert checked > 0


async def _parity(
    folder: Path, checkpoint: Path, history: dict, dataset: DatasetSettings, memory: MemorySettings
) -> int:
    db_path, out = folder / "twin.db", folder / "samples.jsonl"
    await import_into(db_path, history)
    measure = token_counter(checkpoint)
    await samples_with_memory(db_path, out, dataset, memory, measure, checkpoint)
    prompts = prompts_over(db_path, memory, dataset.context_tokens)
    checked = 0
    async with open_database(db_path) as db:
        for sample in read_samples(out):
            if not sample["instruction"]:
                continue  # an opener answers no message: no reply is served for it
            rows = await messages.recent(db, sample["chat_id"], limit=10**6)
            before = [r for r in rows if r.date < sample["date"]]
            served = prompts(before, measure, chat_first(sample["chat_id"]))
            assert served == Prompt().render_sample(sample)
            checked += 1
    prompts.close()
    return checked


async def test_a_sample_recalls_only_conversations_older_than_its_own(tmp_path: Path) -> None:
    """The same request every day, answered differently: the sample of day n may recall
    the replies of days before n, never its own, never a later one."""
    days = [
        line
        for n in range(8)
        for line in (
            (2 * n * DAY, "them: займёшь денег до пятницы?"),
            (2 * n * DAY + 60, f"me: ответ {n}"),
        )
    ]
    db_path = tmp_path / "twin.db"
    await import_into(db_path, full_export([chat(PEER, dialogue(PEER, days))]))
    out = tmp_path / "samples.jsonl"
    dataset = DatasetSettings(val_fraction=0.25)
    await samples_with_memory(db_path, out, dataset, MemorySettings(k=5, tokens=1000), len)
    samples = read_samples(out)
    assert {s["split"] for s in samples} == {"train", "val"}
    for sample in samples:
        day = int(sample["output"].split()[-1])
        shown = [int(n) for n in re.findall(r"ответ (\d)", sample["memory"])]
        assert shown and all(n < day for n in shown) if day else shown == []
        assert len(shown) == min(day, 5)


async def test_memory_keeps_to_its_budget_and_the_facts_come_first(tmp_path: Path) -> None:
    db_path = tmp_path / "twin.db"
    rows = [(0, "them: pizza tonight?"), (30, "me: " + "sure " * 40), (DAY, "them: pizza?")]
    rows += [(DAY + 30, "me: ok")]
    await import_into(db_path, full_export([chat(PEER, dialogue(PEER, rows))]))
    async with open_database(db_path) as db:
        await refresh(db, DatasetSettings(), PromptSettings().burst_separator)
    with ExchangeSearch(db_path) as search:
        section = MemorySection(Prompt(), MemorySettings(tokens=40), Recall(search), len)
        text = section("pizza", Scope(PEER), FACTS)
        assert text == (
            f"### About you:\n{FACTS}\n\n"
            "### How you answered similar messages before:\nR: pizza?\nI: ok\n\n"
        )  # the long reply does not fit 40 characters: left out, not cut
        assert section("", Scope(PEER), "") == ""  # an opener, no facts: nothing at all
        assert section('🙂 "*" NEAR -', Scope(PEER), "") == ""


async def test_bot_users_recall_only_their_own_chat_with_the_owner(tmp_path: Path) -> None:
    pizza = [(0, "them: pizza tonight?"), (30, "me: sure, the usual place at 8")]
    db_path = tmp_path / "twin.db"
    await import_into(db_path, full_export([chat(OTHER, dialogue(OTHER, pizza))]))
    async with open_database(db_path) as db:
        await refresh(db, DatasetSettings(), PromptSettings().burst_separator)
    prompts = prompts_over(db_path, MemorySettings())
    asked = [HistoryRow(PEER, False, T0 + 9 * DAY, "pizza tonight?")]
    assert "usual place" in prompts(asked, len, EVERYONE)  # the owner's view
    assert "usual place" in prompts(asked, len, Scope(OTHER, only_this_chat=True))
    assert "usual place" not in prompts(asked, len, Scope(PEER, only_this_chat=True))
    prompts.close()


async def test_an_adapter_trained_without_memory_is_served_without_it(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    db_path = tmp_path / "twin.db"
    engine = ReplyEngine(tiny_checkpoint, Prompt(), "32-true", "cpu", max_seq_length=256)
    service = ReplyService(
        lambda: engine, ReplyPrompts(Prompt(), DAY, 64, MemorySettings(), db_path)
    )
    async with open_database(db_path) as db:
        await service.refresh(db)
        assert service.remembers  # the base model: memory as configured
        state = adapter_state(engine.model)
        for trained_with in (False, True):
            meta = {
                "base_model": read_config(tiny_checkpoint).name,
                "dataset_fingerprint": str(trained_with),
                "lora": engine.lora.model_dump(),
                "memory": trained_with,
            }
            path = registry.save(tmp_path / "adapters", state, meta)
            await registry.activate(db, await registry.register(db, path, meta, None, 1.0))
            await service.refresh(db)
            assert service.remembers is trained_with
    await service.close()
    off = ReplyService(
        lambda: engine, ReplyPrompts(Prompt(), DAY, 64, MemorySettings(enabled=False), db_path)
    )
    async with open_database(db_path) as db:
        await off.refresh(db)
    assert not off.remembers
    await off.close()


def test_exchange_rows_name_their_fields() -> None:
    assert ExchangeRow._fields == ("chat_id", "conversation", "date", "message", "reply")
