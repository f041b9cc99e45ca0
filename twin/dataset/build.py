"""`twin dataset`: the owner's chats become a JSONL file of instruction samples.

Conversations (dataset.conversations) become samples (dataset.samples; their context as
twin.prompt.samples renders it, handed in by the caller), personal data scrubbed, exact
duplicates dropped. The newest conversations are the validation split, so a score is
on replies the model never saw, and no conversation is on both sides. The file is
litgpt's instruction format (`instruction`, `input`, `output`) plus `split`, `chat_id`
and `date`; split "other" holds the other people's turns of training conversations
when dataset.other_turns is on.

The work is cut into jobs of whole conversations that worker processes build in
parallel (a large history on two cores takes half the time); the result is
byte-identical to a serial build, in chat and message order.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from storage.chats import Chat
from storage.reader import Reader
from twin.dataset.conversations import conversation_starts, conversation_turns
from twin.dataset.feedback import preferences_path, write_feedback
from twin.dataset.pii import ScrubStats
from twin.dataset.samples import MakesSamples, SampleRules, seen_from_the_other_side
from twin.dataset.settings import DatasetSettings
from twin.dataset.workers import worker_pool

# Chat types that are a person talking to the owner; groups only on request; bots,
# channels, saved messages and Telegram's service chats never.
PERSONAL_TYPES = frozenset({"personal_chat"})
GROUP_TYPES = frozenset({"private_group", "private_supergroup", "public_supergroup"})
# Below this many messages, starting worker processes costs more than it saves.
PARALLEL_FROM_MESSAGES = 100_000
# The held-out part grows past dataset.val_fraction until it holds this many messages
# (about a hundred of the owner's replies on real typed chat, where a tenth of the
# conversations held a dozen), but never past this share of the history.
VAL_MIN_MESSAGES = 400
VAL_CAP = 0.25
JOB_MESSAGES = 50_000


@dataclass
class DatasetStats:
    chats: int = 0
    messages: int = 0
    conversations: int = 0
    samples: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0, "other": 0})
    characters: int = 0  # of instruction + input + output, over the samples written
    tokens: bool = False  # whether the context budget was measured in tokens
    dropped: dict[str, int] = field(default_factory=dict)
    pii: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""  # sha256 of the file: the dataset's identity for adapters
    path: str = ""
    # what the owner's decisions on drafts gave (dataset.feedback), in
    # <name>.preferences.jsonl: pairs and signals by source, and what was left out
    feedback: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_chats(chats: Iterable[Chat], settings: DatasetSettings) -> list[Chat]:
    allowed = PERSONAL_TYPES | (GROUP_TYPES if settings.include_groups else frozenset())
    include = {str(c) for c in settings.include_chats}
    exclude = {str(c) for c in settings.exclude_chats}
    chosen = []
    for chat in chats:
        keys = {str(chat.id), chat.title or ""}
        if chat.type not in allowed or keys & exclude:
            continue
        if include and not keys & include:
            continue
        chosen.append(chat)
    return chosen


def sample_rules(settings: DatasetSettings, budget: int) -> SampleRules:
    """Which of the owner's turns count, as the settings say (the memory obeys them too)."""
    return SampleRules(
        budget=budget,
        drop_openers=settings.drop_openers,
        min_response_chars=settings.min_response_chars,
        max_response_chars=settings.max_response_chars,
    )


# -- planning ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    """Whole conversations of one chat: messages with ids in [first_id, last_id]."""

    chat_id: int
    first_id: int
    last_id: int
    messages: int


def _plan(
    reader: Reader, chat_ids: list[int], gap: int
) -> tuple[list[_Job], list[tuple[int, int]]]:
    """Jobs of about JOB_MESSAGES messages cut at conversation starts, and the (date,
    chat_id, messages) of every conversation."""
    jobs: list[_Job] = []
    starts: list[tuple[int, int, int]] = []
    for chat_id in chat_ids:
        dates = reader.chat_dates(chat_id)
        if not dates:
            continue
        opening = conversation_starts((date for _, date in dates), gap)
        ends = [*opening[1:], len(dates)]
        starts.extend((dates[i][1], chat_id, end - i) for i, end in zip(opening, ends, strict=True))
        first = 0
        for at in opening[1:]:
            if at - first >= JOB_MESSAGES:
                jobs.append(_Job(chat_id, dates[first][0], dates[at - 1][0], at - first))
                first = at
        jobs.append(_Job(chat_id, dates[first][0], dates[-1][0], len(dates) - first))
    return jobs, starts


def _validation_cutoff(
    starts: list[tuple[int, int, int]], fraction: float
) -> tuple[int, int] | None:
    """The (start date, chat id) from which conversations are validation: the newest
    `fraction` of them (at least one when there are two or more), and more of the
    newest while those hold fewer than VAL_MIN_MESSAGES messages, up to VAL_CAP of all
    messages. A history of a few long conversations (people who talk all day) would
    otherwise hold out one of them: a dozen replies, which measure nothing."""
    if fraction <= 0 or len(starts) < 2:
        return None
    ordered = sorted(starts)
    count = min(len(ordered) - 1, max(1, round(len(ordered) * fraction)))
    held = sum(messages for _, _, messages in ordered[len(ordered) - count :])
    cap = VAL_CAP * sum(messages for _, _, messages in ordered)
    while count < len(ordered) - 1 and held < VAL_MIN_MESSAGES:
        following = ordered[len(ordered) - count - 1][2]
        if held + following > cap:
            break
        count += 1
        held += following
    date, chat_id, _ = ordered[len(ordered) - count]
    return date, chat_id


# -- building (in this process or in workers) -----------------------------------------


@dataclass(frozen=True)
class _Context:
    db_path: str
    samples: MakesSamples
    rules: SampleRules
    gap: int
    cutoff: tuple[int, int] | None
    other_turns: bool  # the other people's turns as samples too (split "other")
    tokenizer: str | None  # a checkpoint whose tokenizer measures the budget; None: chars


_KEY = 16  # bytes of a sample's dedup key (blake2b of instruction, input, output)


@dataclass
class _JobResult:
    """A job's samples as the file's bytes, one key per line, and what it counted.

    Bytes rather than objects: passing a result between processes is then a copy, and
    the parent only checks keys against the samples it already wrote."""

    lines: bytes  # JSONL, one line per sample, in order
    keys: bytes  # _KEY bytes per line
    samples: dict[str, int]  # per split
    characters: int
    dropped: Counter[str]
    pii: Counter[str]
    messages: int


_worker: dict[str, Any] = {}  # this process's context, reader and measure


def _start_worker(context: _Context) -> None:
    measure: Callable[[str], int] = len
    if context.tokenizer is not None:
        from twin.model.checkpoints import token_counter  # torch and litgpt: only when needed

        measure = token_counter(Path(context.tokenizer))
    _worker.update(
        context=context,
        reader=Reader(Path(context.db_path)),
        measure=measure,
    )


def _build(job: _Job) -> _JobResult:
    context: _Context = _worker["context"]
    rows = _worker["reader"].chat_rows(job.chat_id, job.first_id, job.last_id)
    pii = ScrubStats()
    dropped: Counter[str] = Counter()
    lines: list[str] = []
    keys: list[bytes] = []
    counts = {"train": 0, "val": 0, "other": 0}
    characters = 0
    for turns in conversation_turns(rows, context.gap, context.samples.burst_separator, pii):
        is_val = context.cutoff is not None and (turns[0].date, job.chat_id) >= context.cutoff
        sides = [("val" if is_val else "train", turns, dropped)]
        if context.other_turns and not is_val:  # held-out conversations stay unseen
            sides.append(("other", seen_from_the_other_side(turns), Counter()))
        for split, seen, counter in sides:
            for sample in context.samples(
                seen,
                chat_id=job.chat_id,
                split=split,
                rules=context.rules,
                measure=_worker["measure"],
                dropped=counter,
            ):
                text = "\0".join((sample.instruction, sample.input, sample.output))
                keys.append(hashlib.blake2b(text.encode(), digest_size=_KEY).digest())
                lines.append(sample.as_json())
                counts[split] += 1
                characters += len(text) - 2
    blob = ("\n".join(lines) + "\n").encode() if lines else b""
    return _JobResult(blob, b"".join(keys), counts, characters, dropped, pii.counts, len(rows))


def _results(jobs: list[_Job], context: _Context, workers: int) -> Iterator[_JobResult]:
    """Job results in job order, from a pool of worker processes or from this one."""
    if workers > 1 and len(jobs) > 1:
        with worker_pool(workers, _start_worker, (context,)) as pool:
            yield from pool.map(_build, jobs)
        return
    _start_worker(context)
    try:
        yield from map(_build, jobs)
    finally:
        _worker.pop("reader").close()


# -- the command ---------------------------------------------------------------------


def build_dataset(
    db_path: Path,
    out: Path,
    settings: DatasetSettings,
    samples: MakesSamples,
    tokenizer: Path | None = None,
    enrich: Callable[[dict[str, Any]], None] | None = None,
) -> DatasetStats:
    """Write the samples of every selected chat to `out`, atomically: a failure leaves
    any previous file in place. `samples` makes a conversation's samples (their context
    as the prompt shows it: twin.prompt.samples.SampleMaker). `tokenizer` (a checkpoint
    folder) measures the context budget in its tokens; without it the budget is in
    characters. `enrich` adds to each sample before it is written (its memories:
    twin.prompt.memory.SampleMemory), so the file is written once, whole."""
    with Reader(db_path) as reader:
        chat_ids = [chat.id for chat in select_chats(reader.chats(), settings)]
        jobs, starts = _plan(reader, chat_ids, settings.session_gap)
    if tokenizer is None:
        budget = int(settings.context_tokens * settings.chars_per_token)
    else:
        budget = settings.context_tokens
    context = _Context(
        db_path=str(db_path),
        samples=samples,
        rules=sample_rules(settings, budget),
        gap=settings.session_gap,
        cutoff=_validation_cutoff(starts, settings.val_fraction),
        other_turns=settings.other_turns,
        tokenizer=str(tokenizer) if tokenizer else None,
    )
    total = sum(job.messages for job in jobs)
    workers = settings.workers or os.cpu_count() or 1
    if total < PARALLEL_FROM_MESSAGES:
        workers = 1

    stats = DatasetStats(
        chats=len(chat_ids), conversations=len(starts), tokens=tokenizer is not None, path=str(out)
    )
    dropped: Counter[str] = Counter()
    pii: Counter[str] = Counter()
    seen: set[bytes] = set()  # keys of the samples written so far
    digest = hashlib.sha256()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("wb") as file:
            for result in _results(jobs, context, workers):
                stats.messages += result.messages
                dropped.update(result.dropped)
                pii.update(result.pii)
                blob = _drop_seen(result, seen, dropped)
                if enrich is not None:
                    blob = _enriched(blob, enrich)
                for split, count in result.samples.items():
                    stats.samples[split] += count
                stats.characters += result.characters
                file.write(blob)
                digest.update(blob)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    stats.dropped = dict(sorted(dropped.items()))
    stats.pii = dict(sorted(pii.items()))
    stats.fingerprint = digest.hexdigest()
    with Reader(db_path) as reader:  # an excluded chat gives no feedback either
        feedback = write_feedback(
            reader,
            preferences_path(out),
            set(chat_ids),
            settings.session_gap,
            samples.burst_separator,
        )
    stats.feedback = feedback.as_dict()
    return stats


def _drop_seen(result: _JobResult, seen: set[bytes], dropped: Counter[str]) -> bytes:
    """The job's lines without the samples already written (exact duplicates), its
    counts adjusted; and its keys remembered."""
    keys = result.keys
    repeats = []
    for index in range(len(keys) // _KEY):
        key = keys[index * _KEY : (index + 1) * _KEY]
        if key in seen:
            repeats.append(index)
        else:
            seen.add(key)
    if not repeats:
        return result.lines
    lines = result.lines.split(b"\n")
    for index in repeats:
        sample = json.loads(lines[index])
        result.samples[sample["split"]] -= 1
        result.characters -= len(sample["instruction"]) + len(sample["input"])
        result.characters -= len(sample["output"])
        lines[index] = b""
    dropped["duplicate"] += len(repeats)
    kept = [line for line in lines if line]
    return b"\n".join(kept) + b"\n" if kept else b""


def _enriched(blob: bytes, enrich: Callable[[dict[str, Any]], None]) -> bytes:
    """The JSON lines of `blob`, each sample given to `enrich` first."""
    lines = []
    for line in blob.splitlines():
        sample = json.loads(line)
        enrich(sample)
        lines.append(json.dumps(sample, ensure_ascii=False).encode() + b"\n")
    return b"".join(lines)


def read_samples(path: Path, split: str | None = None) -> list[dict[str, Any]]:
    """The samples of a dataset file, optionally of one split."""
    samples = []
    with Path(path).open(encoding="utf-8") as file:
        for line in file:
            sample = json.loads(line)
            if split is None or sample.get("split") == split:
                samples.append(sample)
    return samples
