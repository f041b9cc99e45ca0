"""The reply engine on the tiny model: seeds, stop rules, bursts, degenerate output,
adapter hot-swap, ordering under concurrency, and training/generation prompt parity."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import twin.engine.generate as generate_module
from bot.telegram_text import fit, split_long
from storage import messages, open_database
from tests.exports import import_into
from twin.commands.demo import sample_export
from twin.dataset.build import build_dataset, read_samples
from twin.dataset.conversations import conversation_turns, sendable_text
from twin.dataset.pii import ScrubStats
from twin.dataset.settings import DatasetSettings
from twin.engine.generate import DegenerateReply, ReplyEngine
from twin.engine.service import ReplyService
from twin.engine.settings import RETRY_PENALTY, RETRY_TEMPERATURE, GenerationSettings, Sampling
from twin.engine.stream import TextStream
from twin.model import registry
from twin.model.lora import adapter_state
from twin.prompt.reply import ReplyPrompts, reply_prompt
from twin.prompt.samples import SampleMaker
from twin.prompt.settings import PromptSettings
from twin.prompt.text import Prompt

SETTINGS = GenerationSettings(max_new_tokens=30, seed=11)
PROMPT = Prompt().render("R: привет\nI: ку", "как дела?")


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path) -> ReplyEngine:
    # Exact arithmetic for the tests that compare logits; int8 decoding has its own test.
    return ReplyEngine(
        tiny_checkpoint, Prompt(), "32-true", "cpu", max_seq_length=1024, int8_decoding=False
    )


samplings: list[Sampling] = []  # what each attempt of the scripted sampler was given


@pytest.fixture
def scripted(engine: ReplyEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make the sampler emit the tokens of scripted texts, one text per attempt."""
    texts: list[str] = []
    samplings.clear()
    state = {"tokens": [], "attempt": -1}

    def fake_sample(
        logits: torch.Tensor, previous: list[int], sampling: Sampling, *_: object
    ) -> int:
        if not previous:
            state["attempt"] += 1
            samplings.append(sampling)
            text = texts[min(state["attempt"], len(texts) - 1)]
            state["tokens"] = [
                *engine.tokenizer.encode(text, bos=False).tolist(),
                engine.tokenizer.eos_id,
            ]
        return state["tokens"][len(previous)]

    monkeypatch.setattr(generate_module, "sample", fake_sample)
    yield texts


def test_same_seed_same_reply(engine: ReplyEngine) -> None:
    first = engine.generate(PROMPT, SETTINGS)
    assert first.tokens > 0 and first.prompt_tokens > 10
    assert engine.generate(PROMPT, SETTINGS).text == first.text
    other = engine.generate(PROMPT, SETTINGS.model_copy(update={"seed": 12}))
    assert other.text != first.text


def test_stops_at_the_template_or_a_speaker_tag(engine: ReplyEngine, scripted: list[str]) -> None:
    scripted.append("ну норм\nR: а ты?\nI: тоже")
    assert engine.generate(PROMPT, SETTINGS).messages == ["ну норм"]
    scripted[0] = "окей\n### His new message:\nmore"
    assert engine.generate(PROMPT, SETTINGS).messages == ["окей"]


def test_an_echo_of_the_template_is_no_reply(engine: ReplyEngine, scripted: list[str]) -> None:
    scripted.extend(["### Your response:\nэхо шаблона", "норм"])
    reply = engine.generate(PROMPT, SETTINGS)
    assert (reply.messages, reply.attempts, reply.discarded) == (["норм"], 2, [""])


def test_a_reply_splits_into_messages(engine: ReplyEngine, scripted: list[str]) -> None:
    scripted.append("короче\nГриша опять умер\n[sticker 🙃]\n[photo]")
    reply = engine.generate(PROMPT, SETTINGS)
    assert reply.messages == ["короче", "Гриша опять умер", "🙃"]


def test_degenerate_output_is_retried_then_reported(
    engine: ReplyEngine, scripted: list[str]
) -> None:
    scripted.extend(["   ", "ха " * 30, "норм"])
    reply = engine.generate(PROMPT, SETTINGS.model_copy(update={"max_new_tokens": 60}))
    assert reply.messages == ["норм"] and reply.attempts == 3
    assert len(reply.discarded) == 2
    scripted[:] = ["", "\n\n"]
    with pytest.raises(DegenerateReply, match="no usable reply after 3 attempts"):
        engine.generate(PROMPT, SETTINGS)


def test_each_retry_samples_hotter_with_a_harsher_penalty_and_a_new_seed(
    engine: ReplyEngine, scripted: list[str]
) -> None:
    scripted.extend(["", "  ", "норм"])
    reply = engine.generate(PROMPT, SETTINGS)
    first, second, third = samplings
    assert first == Sampling.of(SETTINGS, seed=11)
    assert second.temperature == pytest.approx(first.temperature + RETRY_TEMPERATURE)
    assert third.repetition_penalty == pytest.approx(first.repetition_penalty + 2 * RETRY_PENALTY)
    assert [s.seed for s in samplings] == [11, 12, 13] and reply.seed == 13
    assert {s.max_new for s in samplings} == {30}


def test_a_degenerate_reply_never_quotes_what_the_model_wrote(
    engine: ReplyEngine, scripted: list[str]
) -> None:
    """The error reaches logs and the API's 503: model output, which can repeat the
    owner's private chats, stays out of it."""
    scripted[:] = ["qwerty123 " + "ха " * 40]
    with pytest.raises(DegenerateReply) as raised:
        engine.generate(PROMPT, SETTINGS.model_copy(update={"max_new_tokens": 60}))
    assert "looped" in str(raised.value)
    assert "qwerty" not in str(raised.value) and "ха" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "stop", "expected"),
    [
        ("ну норм\nR: а ты?", [], "ну норм"),  # a speaker tag, its "\nR" held until it is one
        ("  окей)))  \n\n### His new message:", [], "окей)))"),  # whitespace never shown
        ("да, завтра в 8 END лишнее", ["END"], "да, завтра в 8"),  # the caller's own stop
        ("ок\nR", [], "ок\nR"),  # held back, then it ended: not a tag after all
        ("привет 🙃🙃", [], "привет 🙃🙃"),  # byte-spelled emoji wait for their last byte
    ],
)
def test_a_streamed_reply_adds_up_to_the_reply(
    engine: ReplyEngine, scripted: list[str], text: str, stop: list[str], expected: str
) -> None:
    scripted.append(text)
    pieces: list[str] = []
    settings = SETTINGS.model_copy(update={"stop": stop, "max_new_tokens": 60})
    reply = engine.generate(PROMPT, settings, on_text=pieces.append)
    assert reply.text == expected == "".join(pieces)
    assert all("\ufffd" not in piece for piece in pieces)
    assert len(pieces) > 1  # it streamed, not one piece at the end


def test_stream_pieces_never_show_a_marker_being_spelled() -> None:
    shown: list[str] = []
    stream = TextStream(Prompt().stop_markers, shown.append)
    for text in ("ну", "ну\n", "ну\nR", "ну\nR:", "ну\nR: а ты"):
        stream.update(text)
    assert shown == ["ну"]
    stream.finish("ну")
    assert "".join(shown) == "ну"


def test_long_messages_fit_telegram() -> None:
    text = ("слово " * 2000).strip()
    pieces = split_long(text)
    assert all(len(p) <= 4096 for p in pieces) and " ".join(pieces) == text
    assert fit(["x" * 5000, "ok"]) == ["x" * 4096, "x" * 904, "ok"]


def test_media_placeholders_are_not_sent() -> None:
    assert sendable_text("[sticker 🙃]") == "🙃"
    assert sendable_text("[photo] смотри") == "смотри"
    assert sendable_text("[voice message]") == ""
    assert sendable_text("[photographer] нет") == "[photographer] нет"


def test_adapter_hot_swap_changes_the_reply_and_back(
    engine: ReplyEngine, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    base = engine.generate(PROMPT, SETTINGS).text
    state = adapter_state(engine.model)
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=generator) * 0.5 for k, v in state.items()}
    meta = {
        "base_model": "Gemma-3-tiny",
        "dataset_fingerprint": "x",
        "lora": engine.lora.model_dump(),
    }
    path = registry.save(tmp_path, state, meta)
    weights_before = engine.model.transformer.h[0].attn.qkv.linear.weight.clone()
    engine.use_adapter(path)
    tuned = engine.generate(PROMPT, SETTINGS).text
    assert tuned != base
    engine.use_adapter(None)
    assert engine.generate(PROMPT, SETTINGS).text == base
    assert torch.equal(engine.model.transformer.h[0].attn.qkv.linear.weight, weights_before)
    engine.use_adapter(path)  # and again: the same adapter gives the same reply
    assert engine.generate(PROMPT, SETTINGS).text == tuned
    engine.use_adapter(None)


async def test_replies_are_served_in_order_without_blocking_the_loop(
    tiny_checkpoint: Path,
) -> None:
    service = ReplyService(
        lambda: ReplyEngine(tiny_checkpoint, Prompt(), "32-true", "cpu", max_seq_length=512),
        ReplyPrompts(Prompt(), session_gap=86400, context_tokens=128),
    )
    now = int(time.time())
    finished: list[int] = []

    async def ask(n: int) -> None:
        rows = [(7, 0, now, f"вопрос {n}", None, None)]
        await service.reply(rows, GenerationSettings(max_new_tokens=8, seed=n))
        finished.append(n)

    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while len(finished) < 5:
            ticks += 1
            await asyncio.sleep(0.01)

    await asyncio.gather(*(ask(n) for n in range(5)), heartbeat())
    assert finished == [0, 1, 2, 3, 4]
    assert ticks > 5  # the event loop kept running while the model worked
    assert service.pending == 0
    await service.close()


async def test_generation_prompt_equals_the_training_prompt(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    db_path = tmp_path / "twin.db"
    await import_into(db_path, sample_export())
    out = tmp_path / "samples.jsonl"
    settings = DatasetSettings(val_fraction=0.1, context_tokens=64)
    build_dataset(db_path, out, settings, SampleMaker(PromptSettings()), tiny_checkpoint)
    samples = read_samples(out)
    engine_counter = ReplyEngine(tiny_checkpoint, Prompt(), "32-true", "cpu", 512).count_tokens
    chat_id = samples[0]["chat_id"]
    async with open_database(db_path) as db:
        rows = await messages.recent(db, chat_id, limit=10**6)
    prompt = Prompt()
    checked = 0
    for sample in [s for s in samples if s["chat_id"] == chat_id][:40]:
        if not sample["instruction"]:
            continue  # the owner opened the conversation: there was nothing to reply to
        # Everything stored before the reply: the history generation would see.
        before = [r for r in rows if r[2] < sample["date"]]
        turns = list(
            conversation_turns(
                before, settings.session_gap, prompt.settings.burst_separator, ScrubStats()
            )
        )[-1]
        expected = prompt.render(sample["input"], sample["instruction"])
        assert reply_prompt(turns, prompt, settings.context_tokens, engine_counter) == expected
        checked += 1
    assert checked >= 20


def test_a_prompt_longer_than_the_sliding_window_is_prefilled_exactly(
    engine: ReplyEngine,
) -> None:
    """The KV-cached prefill of a prompt three windows long predicts what the plain
    forward over the whole prompt predicts."""
    window = engine.model.config.sliding_window_size
    ids = torch.randint(5, 500, (1, window * 3 + 7))
    with torch.inference_mode():
        cached = engine.prefill(ids)
        engine.model.set_kv_cache(batch_size=1)  # leave a clean cache for the other tests
        plain = engine.model(ids)[:, -1:]
    torch.testing.assert_close(cached, plain, rtol=1e-4, atol=1e-4)


def test_int8_decoding_stays_close_to_the_full_precision_model(tiny_checkpoint: Path) -> None:
    exact = ReplyEngine(tiny_checkpoint, Prompt(), "bf16-true", "cpu", 512, int8_decoding=False)
    fast = ReplyEngine(tiny_checkpoint, Prompt(), "bf16-true", "cpu", 512, int8_decoding=True)
    ids = exact.tokenizer.encode(PROMPT, bos=True).view(1, -1)
    with torch.inference_mode():
        a, b = exact.prefill(ids).float(), fast.prefill(ids).float()
    assert (a - b).norm() / a.norm() < 0.05
    assert (
        torch.topk(a.reshape(-1), 5).indices.tolist()[:1]
        == torch.topk(b.reshape(-1), 5).indices.tolist()[:1]
    )
    assert fast.generate(PROMPT, SETTINGS).tokens > 0


# -- candidates ranked by what the conversation raises ------------------------------------


def test_one_candidate_is_todays_reply_and_each_candidate_keeps_its_seed(
    engine: ReplyEngine,
) -> None:
    alone = engine.generate(PROMPT, SETTINGS.model_copy(update={"candidates": 1}))
    assert alone.text == engine.generate(PROMPT, SETTINGS).text and alone.alternatives == []
    ranked = engine.generate(PROMPT, SETTINGS.model_copy(update={"candidates": 3}))
    assert len(ranked.alternatives) == 2
    # The first candidate was sampled with the seed itself: today's reply, somewhere.
    assert alone.messages in [ranked.messages, *ranked.alternatives]


def test_the_reply_the_conversation_raises_most_comes_first(
    engine: ReplyEngine, scripted: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted.extend(["один", "два", "три"])
    neutral = engine.encode(engine.prompt.neutral())
    lifts = {"один": (-2.0, -1.0), "два": (-1.0, -3.0), "три": (-1.5, -1.6)}  # given, alone

    def scored(prefix: list[int], replies: list[list[int]]) -> list[float]:
        pairs = [lifts[engine.detokenize(reply)] for reply in replies]
        return [alone if prefix == neutral else given for given, alone in pairs]

    monkeypatch.setattr(engine, "reply_logprobs", scored)
    reply = engine.generate(PROMPT, SETTINGS.model_copy(update={"candidates": 3}))
    assert reply.messages == ["два"]  # lifted by 2.0, then "три" by 0.1, "один" by -1.0
    assert reply.alternatives == [["три"], ["один"]]


def test_candidates_are_scored_as_selection_scores(engine: ReplyEngine) -> None:
    """The engine's plain head and selection's fused loss (trainer.sense) agree, and the
    engine decodes as before afterwards (its cache set back)."""
    from trainer.sense import reply_logprobs

    before = engine.generate(PROMPT, SETTINGS).text
    prefix = engine.encode(PROMPT)
    replies = [engine.tokenizer.encode(t, bos=False).tolist() for t in ("привет, как ты?", "ок")]
    expected = reply_logprobs(engine.model, prefix, replies, "cpu")
    assert engine.reply_logprobs(prefix, replies) == pytest.approx(expected, abs=1e-4)
    assert engine.generate(PROMPT, SETTINGS).text == before
