"""Does the model use the conversation, or only its owner's voice?

`selection`: for each held-out reply that answers a message, the owner's real reply is
hidden among other replies of the owner from other conversations, and the model picks
the one the conversation makes most likely. Each candidate is scored by how much the
sample's prompt raises its likelihood over a prompt with no context and no message:
mean log-probability per reply token with the prompt, minus without it. Every
candidate is the owner's own words, so a model that has only learned his style scores
chance (1 in CANDIDATES); only using what was said can win.

The prompt is computed once per sample and its keys and values copied to every
candidate (a KV cache), so ten candidates cost little more than one.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

import torch
from litgpt import Tokenizer

from dataset.prompt import Prompt
from model.embedding import head_dtype
from model.lora import TwinGPT, base_and_adapter
from trainer.batches import encode_texts
from trainer.loss import Meter, NoMeter, token_losses

CANDIDATES = 10  # the real reply and nine others: chance is 0.1
REPLY_TOKENS = 64  # the first tokens of each reply: enough to tell replies apart
APART_SECONDS = 86_400  # another chat, or a day away: another conversation


@dataclass(frozen=True)
class SelectionTask:
    prompt: list[int]  # <bos> and the sample's prompt
    candidates: list[list[int]]  # reply tokens, the real reply first


@dataclass
class SelectionReport:
    tasks: int
    candidates: int
    base: float | None  # hits@1: how often the real reply scored highest; None: no tasks
    adapter: float | None
    reason: str | None = None  # why there is no number, when there is none

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def selection_tasks(
    samples: list[dict[str, Any]],
    tokenizer: Tokenizer,
    prompt: Prompt,
    max_seq_length: int,
    seed: int = 0,
) -> list[SelectionTask]:
    """One task per sample that answers a message and has enough other conversations to
    draw distractors from (fixed by `seed`)."""
    answering = [s for s in samples if s["instruction"]]
    prompts = encode_texts(tokenizer, [prompt.render_sample(s) for s in answering])
    replies = [
        [*ids[: REPLY_TOKENS - 1], tokenizer.eos_id]
        for ids in encode_texts(tokenizer, [s["output"] for s in answering])
    ]
    room = max_seq_length - REPLY_TOKENS - 1
    tasks = []
    for index, sample in enumerate(answering):
        others = [other for other, candidate in enumerate(answering) if _apart(sample, candidate)]
        random.Random(f"{seed}:{index}").shuffle(others)
        chosen = [replies[index]]
        for other in others:  # nine distinct replies, none the real one's words
            if len(chosen) == CANDIDATES:
                break
            if replies[other] not in chosen:
                chosen.append(replies[other])
        if len(chosen) < CANDIDATES:
            continue
        tasks.append(
            SelectionTask(
                [tokenizer.bos_id, *prompts[index][-room:]],
                chosen,
            )
        )
    return tasks


def task_cost(task: SelectionTask) -> int:
    """Forward tokens a task costs the comparison: its prompt and candidates, through
    the base model and the adapter."""
    return 2 * (len(task.prompt) + sum(map(len, task.candidates)))


def one_task(
    model: TwinGPT, task: SelectionTask, neutral_prompt: list[int], device: torch.device | str
) -> int:
    """Score one task with one model, as `hits` does, and say the tokens that cost in
    task_cost's count (for one model): what the time budget times selection by."""
    hits(model, [task], neutral_prompt, device)
    return task_cost(task) // 2


def spread(tasks: list[SelectionTask]) -> list[SelectionTask]:
    """The tasks in a fixed random order: a prefix of it spans the held-out
    conversations, where the tasks themselves come in the order of the samples."""
    order = list(range(len(tasks)))
    random.Random("selection").shuffle(order)
    return [tasks[i] for i in order]


def _apart(sample: dict[str, Any], other: dict[str, Any]) -> bool:
    return sample["chat_id"] != other["chat_id"] or abs(sample["date"] - other["date"]) > (
        APART_SECONDS
    )


def compare_selection(
    model: TwinGPT,
    adapter: dict[str, torch.Tensor],
    tasks: list[SelectionTask],
    neutral_prompt: list[int],
    device: torch.device | str,
    meter: Meter | None = None,
    reason: str = "no held-out reply has enough replies of other conversations to hide among",
) -> SelectionReport:
    """hits@1 of the base model (LoRA off) and of the adapter on the same tasks; with
    no tasks, no number, and `reason` says why."""
    if not tasks:
        return SelectionReport(0, CANDIDATES, None, None, reason)
    base, tuned = base_and_adapter(
        model, adapter, lambda: hits(model, tasks, neutral_prompt, device, meter)
    )
    return SelectionReport(len(tasks), CANDIDATES, base, tuned)


def neutral_prompt(tokenizer: Tokenizer, prompt: Prompt) -> list[int]:
    """The prompt with no context and no message: what a reply is measured against."""
    return [tokenizer.bos_id, *encode_texts(tokenizer, [prompt.render("", "")])[0]]


@torch.no_grad()
def hits(
    model: TwinGPT,
    tasks: list[SelectionTask],
    neutral: list[int],
    device: torch.device | str,
    meter: Meter | None = None,
) -> float:
    """The share of tasks whose real reply the conversation raises most."""
    if not tasks:
        return 0.0
    meter = meter or NoMeter()  # told the work done; the caller announced it all
    was_training = model.training
    model.eval()
    distinct = sorted({tuple(c) for task in tasks for c in task.candidates})
    alone = {}
    for start in range(0, len(distinct), CANDIDATES):
        group = [list(c) for c in distinct[start : start + CANDIDATES]]
        scores = reply_logprobs(model, neutral, group, device)
        alone.update(zip(map(tuple, group), scores, strict=True))
    correct = 0
    for task in tasks:
        given = reply_logprobs(model, task.prompt, task.candidates, device)
        lift = [g - alone[tuple(c)] for g, c in zip(given, task.candidates, strict=True)]
        correct += lift[0] > max(lift[1:])
        meter(task_cost(task) // 2)
    model.clear_kv_cache()
    model.train(was_training)
    return correct / len(tasks)


def reply_logprobs(
    model: TwinGPT, prefix: list[int], replies: list[list[int]], device: torch.device | str
) -> list[float]:
    """Mean log-probability per token of each reply right after `prefix`.

    The prefix goes through the model once; its cache rows are copied to every reply,
    which then go through together, padded at the end (causal: padding after a
    reply cannot change it)."""
    width = max(map(len, replies))
    dtype = head_dtype(model.lm_head)  # what the model computes in (its embedding may be narrower)
    model.set_kv_cache(len(replies), len(prefix) + width, device=torch.device(device), dtype=dtype)
    prefill = torch.tensor([prefix], device=device)
    last = model(
        prefill,
        torch.arange(len(prefix), device=device),
        len(prefix),
        head_positions=(slice(None), slice(-1, None)),
        return_hidden=True,
    ).reshape(1, -1)
    for block in model.transformer.h:
        cache = block.attn.kv_cache
        cache.k[1:, :, : len(prefix)] = cache.k[:1, :, : len(prefix)]
        cache.v[1:, :, : len(prefix)] = cache.v[:1, :, : len(prefix)]
    idx = torch.zeros((len(replies), width), dtype=torch.long)
    positions = torch.zeros((len(replies), width), dtype=torch.bool)
    for row, reply in enumerate(replies):
        idx[row, : len(reply)] = torch.tensor(reply)
        positions[row, : len(reply) - 1] = True  # position j predicts token j + 1
    hidden = model(
        idx.to(device),
        torch.arange(len(prefix), len(prefix) + width, device=device),
        len(prefix) + width,
        head_positions=positions.to(device),
        return_hidden=True,
    )
    first = token_losses(
        model.lm_head,
        last.expand(len(replies), -1),
        torch.tensor([reply[0] for reply in replies], device=device),
    )
    rest = token_losses(
        model.lm_head,
        hidden,
        torch.tensor([t for reply in replies for t in reply[1:]], device=device),
    )
    out, start = [], 0
    for row, reply in enumerate(replies):
        end = start + len(reply) - 1
        out.append(-(first[row] + rest[start:end].sum()).item() / len(reply))
        start = end
    return out
