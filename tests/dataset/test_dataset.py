"""`twin dataset`: conversations, turns, context, splits, scrubbing, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from litgpt.data.json_data import load_split

import twin.dataset.build as dataset_module
from tests.exports import OWNER, chat, dialogue, full_export, import_into, message
from twin.commands.demo import sample_export
from twin.dataset.build import (
    VAL_CAP,
    VAL_MIN_MESSAGES,
    DatasetStats,
    _validation_cutoff,
    build_dataset,
    read_samples,
)
from twin.dataset.settings import DatasetSettings
from twin.prompt.samples import SampleMaker
from twin.prompt.settings import PromptSettings
from twin.prompt.text import Prompt

PEER = 2000
DAY = 86400


async def build(
    tmp_path: Path, chats: list[dict], prompt: PromptSettings | None = None, **settings: object
) -> tuple[list[dict], DatasetStats]:
    db_path = tmp_path / "twin.db"
    await import_into(db_path, full_export(chats))
    out = tmp_path / "samples.jsonl"
    stats = build_dataset(
        db_path,
        out,
        DatasetSettings(**{"val_fraction": 0, **settings}),
        SampleMaker(prompt or PromptSettings()),
    )
    return read_samples(out), stats


async def test_a_gap_of_exactly_the_threshold_stays_one_conversation(tmp_path: Path) -> None:
    lines = [(0, "them: hi"), (1, "me: hey"), (1 + DAY, "them: still there?"), (2 + DAY, "me: yes")]
    samples, stats = await build(tmp_path, [chat(PEER, dialogue(PEER, lines))])
    assert stats.conversations == 1
    assert samples[1]["input"] == "R: hi\nI: hey"


async def test_one_second_more_starts_a_new_conversation(tmp_path: Path) -> None:
    lines = [(0, "them: hi"), (1, "me: hey"), (2 + DAY, "them: still there?"), (3 + DAY, "me: yes")]
    samples, stats = await build(tmp_path, [chat(PEER, dialogue(PEER, lines))])
    assert stats.conversations == 2
    assert samples[1] == {
        "instruction": "still there?",
        "input": "",  # nothing of the earlier conversation
        "output": "yes",
        "split": "train",
        "chat_id": PEER,
        "date": samples[1]["date"],
        "conversation": samples[1]["date"] - 1,  # began with their message, a second before
    }


async def test_bursts_merge_into_turns_with_the_separator(tmp_path: Path) -> None:
    lines = [
        (0, "them: ты где?"),
        (5, "them: ау"),
        (30, "me: тут"),
        (33, "me: щас буду"),
        (40, "me: 🙃"),
    ]
    samples, _ = await build(tmp_path, [chat(PEER, dialogue(PEER, lines))])
    assert [(s["instruction"], s["output"]) for s in samples] == [
        ("ты где?\nау", "тут\nщас буду\n🙃")
    ]
    assert Prompt().split_burst(samples[0]["output"]) == ["тут", "щас буду", "🙃"]


async def test_a_newline_inside_a_message_does_not_split_it_later(tmp_path: Path) -> None:
    lines = [(0, "them: list?"), (10, "me: eggs\nmilk")]
    samples, _ = await build(tmp_path, [chat(PEER, dialogue(PEER, lines))])
    assert samples[0]["output"] == "eggs milk"


async def test_context_is_trimmed_from_the_oldest_side(tmp_path: Path) -> None:
    lines = [(i * 60, f"{'them' if i % 2 == 0 else 'me'}: turn number {i}") for i in range(8)]
    # Budget of 60 characters: each tagged turn is 16 characters plus a newline.
    samples, _ = await build(
        tmp_path, [chat(PEER, dialogue(PEER, lines))], context_tokens=15, chars_per_token=4
    )
    last = samples[-1]
    assert last["instruction"] == "turn number 6" and last["output"] == "turn number 7"
    assert last["input"] == "I: turn number 3\nR: turn number 4\nI: turn number 5"
    assert len(last["input"]) <= 60


async def test_speaker_tags_follow_the_prompt_settings(tmp_path: Path) -> None:
    lines = [(0, "them: a"), (10, "me: b"), (20, "them: c"), (30, "me: d")]
    prompt = PromptSettings(owner_tag="Me", other_tag="Friend")
    samples, _ = await build(tmp_path, [chat(PEER, dialogue(PEER, lines))], prompt=prompt)
    assert samples[1]["input"] == "Friend: a\nMe: b"


async def test_the_other_side_learns_only_from_training_conversations(tmp_path: Path) -> None:
    old = [(0, "them: a"), (10, "me: b"), (20, "them: c"), (30, "me: d")]
    new = [(5 * DAY, "them: held"), (5 * DAY + 10, "me: out"), (5 * DAY + 20, "them: bye")]
    chats = [chat(PEER, dialogue(PEER, old + new))]
    samples, stats = await build(tmp_path, chats, val_fraction=0.5)
    assert {s["split"] for s in samples} == {"train", "val"}  # off unless asked for

    samples, stats = await build(tmp_path / "on", chats, val_fraction=0.5, other_turns=True)
    theirs = [(s["instruction"], s["input"], s["output"]) for s in samples if s["split"] == "other"]
    # Their turns, with the tags the other way round; nothing of the held-out conversation.
    assert theirs == [("", "", "a"), ("b", "I: a", "c")]
    assert [s["output"] for s in samples if s["split"] != "other"] == ["b", "d", "out"]
    assert stats.samples == {"train": 2, "val": 1, "other": 2}


async def test_openers_have_an_empty_instruction_unless_dropped(tmp_path: Path) -> None:
    lines = [(0, "me: доброе утро"), (10, "them: привет"), (20, "me: как ты")]
    samples, _ = await build(tmp_path, [chat(PEER, dialogue(PEER, lines))])
    assert [(s["instruction"], s["input"], s["output"]) for s in samples] == [
        ("", "", "доброе утро"),
        ("привет", "I: доброе утро", "как ты"),
    ]
    samples, stats = await build(
        tmp_path / "b", [chat(PEER, dialogue(PEER, lines))], drop_openers=True
    )
    assert [s["output"] for s in samples] == ["как ты"]
    assert stats.dropped == {"opener": 1}


async def test_media_become_placeholders_never_paths(tmp_path: Path) -> None:
    messages = [
        message(
            1, PEER, "", at=0, file="stickers/s.webp", media_type="sticker", sticker_emoji="😂"
        ),
        message(2, OWNER, "look", at=10, photo="photos/photo_1@01-01-2026.jpg"),
        message(3, PEER, "", at=20, file="voice/v.ogg", media_type="voice_message"),
        message(4, OWNER, "the plan", at=30, file="files/plan.pdf", file_name="plan.pdf"),
        message(5, PEER, "ok", at=40),
        message(6, OWNER, "", at=50, photo="photos/photo_2.jpg"),
    ]
    samples, stats = await build(tmp_path, [chat(PEER, messages)])
    assert samples[0]["instruction"] == "[sticker 😂]"
    assert samples[0]["output"] == "[photo] look"
    assert samples[1]["instruction"] == "[voice message]"
    assert samples[1]["output"] == "[file] the plan"
    assert stats.dropped == {"media_only": 1}  # a reply that is only a photo teaches nothing
    text = json.dumps(samples, ensure_ascii=False)
    assert "photos/" not in text and ".pdf" not in text and ".ogg" not in text


async def test_only_personal_chats_by_default(tmp_path: Path) -> None:
    def talk(chat_id: int) -> list[dict]:
        return dialogue(chat_id, [(0, f"them: q{chat_id}"), (10, f"me: a{chat_id}")])

    chats = [
        chat(PEER, talk(PEER)),
        chat(3000, talk(3000), "private_group", "Band"),
        chat(4000, talk(4000), "bot_chat"),
        chat(OWNER, [message(1, OWNER, "note", at=0)], "saved_messages"),
        chat(5000, talk(5000), "public_channel"),
    ]
    samples, _ = await build(tmp_path, chats)
    assert {s["chat_id"] for s in samples} == {PEER}
    samples, _ = await build(tmp_path / "b", chats, include_groups=True)
    assert {s["chat_id"] for s in samples} == {PEER, -3000}


async def test_chats_included_or_excluded_by_id_or_title(tmp_path: Path) -> None:
    talk = [(0, "them: q"), (10, "me: a")]
    chats = [chat(p, dialogue(p, talk), name=f"Friend {p}") for p in (2001, 2002, 2003)]
    samples, _ = await build(tmp_path, chats, exclude_chats=[2001, "Friend 2002"])
    assert {s["chat_id"] for s in samples} == {2003}
    samples, _ = await build(tmp_path / "b", chats, include_chats=["Friend 2001"])
    assert {s["chat_id"] for s in samples} == {2001}


async def test_personal_data_never_reaches_a_sample(tmp_path: Path) -> None:
    lines = [
        (0, "them: твой номер?"),
        (10, "me: +7 921 555-13-07, почта kostya@mail.example"),
        (20, "them: card?"),
        (30, "me: 4111 1111 1111 1111"),
    ]
    samples, stats = await build(tmp_path, [chat(PEER, dialogue(PEER, lines))])
    text = json.dumps(samples, ensure_ascii=False)
    assert "555-13-07" not in text and "kostya@" not in text and "4111" not in text
    assert samples[0]["output"] == "[PHONE], почта [EMAIL]"
    assert stats.pii == {"CARD": 1, "EMAIL": 1, "PHONE": 1}


async def test_exact_duplicates_and_length_bounds(tmp_path: Path) -> None:
    lines = [
        (0, "them: hi"),
        (10, "me: hey"),
        (DAY * 2, "them: hi"),
        (DAY * 2 + 10, "me: hey"),
        (DAY * 4, "them: tell me"),
        (DAY * 4 + 10, "me: " + "x" * 50),
    ]
    samples, stats = await build(
        tmp_path, [chat(PEER, dialogue(PEER, lines))], max_response_chars=20
    )
    assert [s["output"] for s in samples] == ["hey"]
    assert stats.dropped == {"duplicate": 1, "response_too_long": 1}


async def test_the_newest_conversations_are_validation_with_no_leak(tmp_path: Path) -> None:
    export = sample_export()
    db_path = tmp_path / "twin.db"
    await import_into(db_path, export)
    out = tmp_path / "samples.jsonl"
    stats = build_dataset(
        db_path, out, DatasetSettings(val_fraction=0.2), SampleMaker(PromptSettings())
    )
    samples = read_samples(out)
    train = [s for s in samples if s["split"] == "train"]
    val = [s for s in samples if s["split"] == "val"]
    assert stats.samples == {"train": len(train), "val": len(val), "other": 0} and len(val) > 20
    # Every validation sample is newer than every training sample of its chat, and
    # no (instruction, context, reply) appears on both sides.
    for chat_id in {s["chat_id"] for s in val}:
        newest_train = max((s["date"] for s in train if s["chat_id"] == chat_id), default=0)
        assert min(s["date"] for s in val if s["chat_id"] == chat_id) > newest_train
    keys = lambda items: {(s["instruction"], s["input"], s["output"]) for s in items}  # noqa: E731
    assert not keys(train) & keys(val)
    assert min(s["date"] for s in val) > sorted(s["date"] for s in train)[len(train) // 2]


async def test_same_database_same_bytes_serial_or_parallel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "twin.db"
    await import_into(db_path, sample_export())
    settings = DatasetSettings(val_fraction=0.1)
    first = build_dataset(db_path, tmp_path / "a.jsonl", settings, SampleMaker(PromptSettings()))
    again = build_dataset(db_path, tmp_path / "b.jsonl", settings, SampleMaker(PromptSettings()))
    # Small jobs in two worker processes: the same file, byte for byte.
    monkeypatch.setattr(dataset_module, "PARALLEL_FROM_MESSAGES", 0)
    monkeypatch.setattr(dataset_module, "JOB_MESSAGES", 200)
    parallel = build_dataset(
        db_path,
        tmp_path / "c.jsonl",
        settings.model_copy(update={"workers": 2}),
        SampleMaker(PromptSettings()),
    )
    data = (tmp_path / "a.jsonl").read_bytes()
    assert data == (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "c.jsonl").read_bytes()
    assert first.fingerprint == again.fingerprint == parallel.fingerprint
    assert first.as_dict() | {"path": ""} == parallel.as_dict() | {"path": ""}


async def test_litgpt_reads_the_file(tmp_path: Path) -> None:
    lines = [(0, "them: hi"), (10, "me: hey")]
    await build(tmp_path, [chat(PEER, dialogue(PEER, lines))])
    loaded = load_split(tmp_path / "samples.jsonl")
    assert loaded[0]["instruction"] == "hi" and loaded[0]["output"] == "hey"
    assert "input" in loaded[0]


def test_a_history_of_few_long_conversations_holds_out_more_than_its_tenth() -> None:
    """A tenth of ten long conversations is one: a dozen replies that measure nothing.
    The held-out part takes more of the newest until it holds VAL_MIN_MESSAGES, but
    never more than VAL_CAP of the history."""
    long = [(1000 * day, 7, 100) for day in range(10)]  # (start, chat, messages)
    cutoff = _validation_cutoff(long, 0.1)
    assert cutoff == (8000, 7)  # two conversations: a third would pass a quarter
    held = sum(m for start, chat, m in long if (start, chat) >= cutoff)
    assert held < VAL_MIN_MESSAGES and held <= VAL_CAP * 1000
    many = [(1000 * day, 7, 50) for day in range(100)]  # a tenth already holds 500
    assert _validation_cutoff(many, 0.1) == (90_000, 7)
    assert _validation_cutoff(long[:1], 0.1) is None  # one conversation: nothing to hold out
