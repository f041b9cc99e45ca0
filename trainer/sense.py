"""Does the model use the conversation, or only its owner's voice?

`selection`: for each held-out reply that answers a message, the owner's real reply is
hidden among nine other replies of his from other conversations (training ones
included: they are his words, which is the point), and the model picks the one the
conversation makes most likely. Each candidate is scored by how much the sample's
prompt raises its likelihood over a prompt with no context and no message: mean
log-probability per reply token with the prompt, minus without it. Every candidate is
the owner's own words, so a model that has only learned his style scores chance (1 in
CANDIDATES); only using what was said can win.

The headline is measured with memory off: with the recalled exchanges in the prompt, a
model can win by spotting the real reply among them when the owner repeats himself,
which is copying, not sense. `twin eval` measures memory on beside it, split into
*repeat* tasks (the real reply, or one close to it, was among the recalled exchanges or
the training replies) and *novel* ones. Every share comes with a 95 % interval that
resamples whole conversations (trainer.intervals).

The prompt is computed once per sample and its keys and values copied to every
candidate (a KV cache), so ten candidates cost little more than one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from litgpt import Tokenizer

from trainer.batches import encode_texts
from trainer.copies import REPEAT, Replies
from trainer.intervals import conversation_intervals
from trainer.loss import Meter, NoMeter, token_losses
from twin.model import scoring
from twin.model.lora import TwinGPT, base_and_adapter
from twin.prompt.text import Prompt

CANDIDATES = 10  # the real reply and nine others: chance is 0.1
REPLY_TOKENS = 64  # the first tokens of each reply: enough to tell replies apart
DRAW = 4 * CANDIDATES  # replies drawn at first for a task's distractors (all if too few)
NO_TASK = (
    "no held-out reply answers a message, or none has nine other replies of yours "
    "from other conversations to hide among"
)


@dataclass(frozen=True)
class SelectionTask:
    prompt: list[int]  # <bos> and the sample's prompt
    candidates: list[list[int]]  # reply tokens, the real reply first
    conversation: tuple[int, int] = (0, 0)  # (chat, its start): resampled as one
    repeat: bool = False  # with memory: the real reply was there to copy


@dataclass
class SelectionReport:
    tasks: int
    conversations: int
    candidates: int
    base: float | None  # hits@1: how often the real reply scored highest; None: no tasks
    adapter: float | None
    base_ci95: list[float] | None = None  # [low, high]: None with no tasks or one conversation
    adapter_ci95: list[float] | None = None
    difference_ci95: list[float] | None = None  # adapter - base, paired
    reason: str | None = None  # why there is no number, when there is none
    # [tasks, base hits, adapter hits] of each conversation: reports of several owners
    # pool into one interval (benchmarks/persona_eval.py --all).
    by_conversation: list[list[int]] = field(default_factory=list)
    # With memory on (twin eval): the same keys, plus repeat_tasks and novel.
    memory: dict[str, Any] | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def selection_tasks(
    samples: list[dict[str, Any]],
    tokenizer: Tokenizer,
    prompt: Prompt,
    max_seq_length: int,
    pool: list[dict[str, Any]] | None = None,
    memory: bool = False,
    seed: int = 0,
) -> list[SelectionTask]:
    """One task per sample of `samples` that answers a message, its distractors drawn
    (fixed by `seed`) from the replies of `pool` (default: `samples`) in other
    conversations. With `memory`, the prompt holds the sample's recalled exchanges and
    each task says whether its real reply repeats one the model could have seen."""
    pool = samples if pool is None else pool
    answering = [s for s in samples if s["instruction"]]
    rendered = [
        prompt.render_sample(s) if memory else prompt.render(s["input"], s["instruction"])
        for s in answering
    ]
    prompts = encode_texts(tokenizer, rendered)
    replies = _reply_tokens(tokenizer, [s["output"] for s in answering])
    theirs = _reply_tokens(tokenizer, [s["output"] for s in pool])
    pool_conversations = [_conversation(s) for s in pool]
    trained = Replies(s["output"] for s in pool if s.get("split") == "train") if memory else None
    room = max_seq_length - REPLY_TOKENS - 1
    tasks = []
    for index, sample in enumerate(answering):
        conversation = _conversation(sample)
        chosen = [replies[index]]
        for other in _draw(len(pool), random.Random(f"{seed}:{index}")):
            if len(chosen) == CANDIDATES:
                break
            if pool_conversations[other] != conversation and theirs[other] not in chosen:
                chosen.append(theirs[other])  # nine distinct replies, none the real one's words
        if len(chosen) < CANDIDATES:
            continue
        repeat = trained is not None and _repeats(sample, trained)
        tasks.append(
            SelectionTask([tokenizer.bos_id, *prompts[index][-room:]], chosen, conversation, repeat)
        )
    return tasks


def _reply_tokens(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [[*ids[: REPLY_TOKENS - 1], tokenizer.eos_id] for ids in encode_texts(tokenizer, texts)]


def _conversation(sample: dict[str, Any]) -> tuple[int, int]:
    return sample["chat_id"], sample["conversation"]


def _draw(size: int, rng: random.Random) -> Iterator[int]:
    """Indexes of the pool in a random order: a few first, then (only if those were not
    enough) the rest, so that a large pool costs little and a small one is tried to
    the end."""
    first = rng.sample(range(size), min(size, DRAW))
    yield from first
    taken = set(first)
    rest = [i for i in range(size) if i not in taken]
    rng.shuffle(rest)
    yield from rest


def _repeats(sample: dict[str, Any], trained: Replies) -> bool:
    """Whether the real reply (or one with chrF >= REPEAT to it) was among the sample's
    recalled exchanges or the training replies."""
    reply = sample["output"]
    return Replies(sample.get("recalled", [])).near(reply, REPEAT) or trained.near(reply, REPEAT)


def task_cost(task: SelectionTask) -> int:
    """Forward tokens a task costs the comparison: its prompt and candidates, through
    the base model and the adapter."""
    return 2 * (len(task.prompt) + sum(map(len, task.candidates)))


def one_task(
    model: TwinGPT, task: SelectionTask, neutral_prompt: list[int], device: torch.device | str
) -> int:
    """Score one task with one model, as `task_hits` does, and say the tokens that cost in
    task_cost's count (for one model): what the time budget times selection by."""
    task_hits(model, [task], neutral_prompt, device)
    return task_cost(task) // 2


def spread(tasks: list[SelectionTask]) -> list[SelectionTask]:
    """The tasks in a fixed random order: a prefix of it spans the held-out
    conversations, where the tasks themselves come in the order of the samples."""
    order = list(range(len(tasks)))
    random.Random("selection").shuffle(order)
    return [tasks[i] for i in order]


def compare_selection(
    model: TwinGPT,
    adapter: dict[str, torch.Tensor],
    tasks: list[SelectionTask],
    neutral_prompt: list[int],
    device: torch.device | str,
    meter: Meter | None = None,
    reason: str = NO_TASK,
) -> SelectionReport:
    """hits@1 of the base model (LoRA off) and of the adapter on the same tasks, with
    their intervals; with no tasks, no number, and `reason` says why."""
    base, tuned = _both_models(model, adapter, tasks, neutral_prompt, device, meter)
    return summary(tasks, base, tuned, reason)


def compare_memory(
    model: TwinGPT,
    adapter: dict[str, torch.Tensor],
    tasks: list[SelectionTask],
    neutral_prompt: list[int],
    device: torch.device | str,
    meter: Meter | None = None,
    reason: str = NO_TASK,
) -> dict[str, Any]:
    """Selection with memory on (`tasks` made with memory=True): compare_selection's
    keys, how many tasks repeat an earlier reply, and the shares on the novel ones,
    where copying cannot win."""
    base, tuned = _both_models(model, adapter, tasks, neutral_prompt, device, meter)
    return with_memory(tasks, base, tuned, reason)


def _both_models(
    model: TwinGPT,
    adapter: dict[str, torch.Tensor],
    tasks: list[SelectionTask],
    neutral_prompt: list[int],
    device: torch.device | str,
    meter: Meter | None,
) -> tuple[list[bool], list[bool]]:
    """Each task's hit by the base model, then by the adapter (left in place)."""
    if not tasks:
        return [], []
    return base_and_adapter(
        model, adapter, lambda: task_hits(model, tasks, neutral_prompt, device, meter)
    )


def summary(
    tasks: Sequence[SelectionTask], base: list[bool], adapter: list[bool], reason: str = NO_TASK
) -> SelectionReport:
    """The shares of `tasks` each model got right, with their 95 % intervals."""
    counts: dict[tuple[int, int], list[int]] = {}
    for task, hit_base, hit_adapter in zip(tasks, base, adapter, strict=True):
        count = counts.setdefault(task.conversation, [0, 0, 0])
        count[0] += 1
        count[1] += hit_base
        count[2] += hit_adapter
    return from_conversations(list(counts.values()), reason)


def from_conversations(conversations: list[list[int]], reason: str = NO_TASK) -> SelectionReport:
    """The report of [tasks, base hits, adapter hits] per conversation: the shares over
    all of them and their intervals; with no task, no number, and `reason` says why."""
    tasks = sum(count for count, _, _ in conversations)
    if not tasks:
        return SelectionReport(0, 0, CANDIDATES, None, None, reason=reason)
    intervals = conversation_intervals(conversations)
    return SelectionReport(
        tasks=tasks,
        conversations=len(conversations),
        candidates=CANDIDATES,
        base=round(sum(base for _, base, _ in conversations) / tasks, 4),
        adapter=round(sum(adapter for _, _, adapter in conversations) / tasks, 4),
        base_ci95=intervals.base if intervals else None,
        adapter_ci95=intervals.adapter if intervals else None,
        difference_ci95=intervals.difference if intervals else None,
        by_conversation=conversations,
    )


def with_memory(
    tasks: list[SelectionTask], base: list[bool], adapter: list[bool], reason: str = NO_TASK
) -> dict[str, Any]:
    """The memory-on report of tasks already scored: `summary`'s, with the repeat and
    novel counts."""
    report = summary(tasks, base, adapter, reason).as_dict()
    del report["memory"]
    novel = [i for i, task in enumerate(tasks) if not task.repeat]
    report["repeat_tasks"] = len(tasks) - len(novel)
    report["novel"] = {
        "tasks": len(novel),
        "base": round(sum(base[i] for i in novel) / len(novel), 4) if novel else None,
        "adapter": round(sum(adapter[i] for i in novel) / len(novel), 4) if novel else None,
    }
    return report


def neutral_prompt(tokenizer: Tokenizer, prompt: Prompt) -> list[int]:
    """The prompt with no context and no message: what a reply is measured against."""
    return [tokenizer.bos_id, *encode_texts(tokenizer, [prompt.neutral()])[0]]


@torch.no_grad()
def task_hits(
    model: TwinGPT,
    tasks: list[SelectionTask],
    neutral: list[int],
    device: torch.device | str,
    meter: Meter | None = None,
) -> list[bool]:
    """For each task, whether the conversation raises its real reply most."""
    meter = meter or NoMeter()  # told the work done; the caller announced it all
    was_training = model.training
    model.eval()
    distinct = sorted({tuple(c) for task in tasks for c in task.candidates})
    alone = {}
    for start in range(0, len(distinct), CANDIDATES):
        group = [list(c) for c in distinct[start : start + CANDIDATES]]
        scores = reply_logprobs(model, neutral, group, device)
        alone.update(zip(map(tuple, group), scores, strict=True))
    correct = []
    for task in tasks:
        given = reply_logprobs(model, task.prompt, task.candidates, device)
        lift = [g - alone[tuple(c)] for g, c in zip(given, task.candidates, strict=True)]
        correct.append(lift[0] > max(lift[1:]))
        meter(task_cost(task) // 2)
    if distinct:
        model.clear_kv_cache()
    model.train(was_training)
    return correct


def reply_logprobs(
    model: TwinGPT, prefix: list[int], replies: list[list[int]], device: torch.device | str
) -> list[float]:
    """twin.model.scoring's, with training's fused loss (no full row of logits)."""
    return scoring.reply_logprobs(model, prefix, replies, device, token_losses)
