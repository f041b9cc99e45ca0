"""An adapter against its base model on the validation samples it was trained with:
the loss per reply token, `selection` (trainer.sense), and optionally the style of
generated replies and how close they come to the real ones.

`twin eval` and `twin demo` report this; training itself needs only trainer.loss.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from litgpt import Tokenizer
from sacrebleu.metrics import CHRF

from trainer.batches import encode
from trainer.copies import COPY, Replies, echoes
from trainer.loss import LossReport, Meter, NoMeter, compare
from trainer.sense import (
    NO_TASK,
    SelectionReport,
    SelectionTask,
    compare_memory,
    compare_selection,
    neutral_prompt,
    selection_tasks,
    spread,
    task_cost,
)
from twin.dataset import style
from twin.dataset.build import read_samples
from twin.engine.generate import DegenerateReply, ReplyEngine
from twin.engine.settings import GenerationSettings
from twin.model import registry
from twin.model.device import release_memory
from twin.model.lora import TwinGPT, build_model
from twin.model.settings import LoRASettings
from twin.prompt.settings import PromptSettings
from twin.prompt.text import Prompt

# A meter for each stretch of an evaluation, by what it counts: (what, unit) -> Meter.
Meters = Callable[[str, str], Meter]


@dataclass
class Evaluation:
    losses: LossReport
    selection: SelectionReport
    style: dict[str, Any] | None  # with `generate` only

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.losses.as_dict(),
            "selection": self.selection.as_dict(),
            **({"style": self.style} if self.style else {}),
        }


def evaluate_adapter(
    adapter_path: Path,
    checkpoint_dir: Path,
    precision: str,
    device: str,
    max_seq_length: int,
    token_budget: int,
    generate: int = 0,
    generation: GenerationSettings | None = None,
    quantize: str | None = None,
    meters: Meters | None = None,
) -> Evaluation:
    """Base model against an adapter on the validation samples it was trained with: the
    loss, selection, and with `generate` > 0 the style of that many generated replies
    from each. `meters` shows how far each part is."""
    meters = meters or (lambda what, unit: NoMeter())
    meta = registry.read_meta(adapter_path)
    samples_path = Path(meta["dataset"])
    every = read_samples(samples_path)
    samples = [s for s in every if s.get("split") == "val"]
    prompt = Prompt(PromptSettings(**meta["prompt"]))
    fabric = L.Fabric(accelerator=device, devices=1, precision=precision)  # type: ignore[arg-type]
    lora = LoRASettings(**meta["lora"])
    model = build_model(
        fabric, checkpoint_dir, lora, max_seq_length, narrow_embedding=True, quantize=quantize
    )
    tokenizer = Tokenizer(checkpoint_dir)
    adapter = registry.load(adapter_path)
    losses, selection = held_out(
        model,
        adapter,
        samples,
        tokenizer,
        prompt,
        max_seq_length,
        token_budget,
        fabric.device,
        pool=every,
        memory=True,
        meter=meters("evaluate", "token"),
    )
    del model
    style = None
    if generate > 0:
        style = generated_style(
            adapter_path,
            checkpoint_dir,
            precision,
            device,
            samples_path,
            prompt,
            generate,
            generation,
            meters("generate", "reply"),
        )
    return Evaluation(losses, selection, style)


def held_out(
    model: TwinGPT,
    adapter: dict[str, torch.Tensor],
    samples: list[dict[str, Any]],
    tokenizer: Tokenizer,
    prompt: Prompt,
    max_seq_length: int,
    token_budget: int,
    device: torch.device,
    selection_limit: int | None = None,
    every_task: list[SelectionTask] | None = None,
    pool: list[dict[str, Any]] | None = None,
    memory: bool = False,
    meter: Meter | None = None,
) -> tuple[LossReport, SelectionReport]:
    """The two numbers every adapter is judged by, base model beside adapter: the loss per
    reply token on `samples`, and selection with memory off on `every_task`
    (selection_order's; default: the tasks of the same samples, distractors from
    `pool`), at most `selection_limit` of them (None: all); with `memory`, selection
    with memory on beside it. A training run plans both within its budget; `twin eval`
    takes every held-out sample. Training reports them for the adapter it made and
    `twin eval` for any adapter, so both take them from here."""
    release_memory()  # what training freed: evaluation has other shapes
    encoded = encode(samples, tokenizer, prompt, max_seq_length)
    every = every_task
    if every is None:
        every = selection_order(samples, tokenizer, prompt, max_seq_length, pool)
    tasks = every[:selection_limit]
    remembered, memory_reason = [], NO_TASK
    if memory and any(s.get("memory") for s in samples):
        remembered = selection_order(samples, tokenizer, prompt, max_seq_length, pool, memory=True)
    elif memory:
        memory_reason = "the samples hold no memory (memory.enabled = false when they were made)"
    if meter is not None:  # both models, each sample and each task
        meter.expect(
            2 * sum(len(s.ids) for s in encoded) + sum(map(task_cost, [*tasks, *remembered]))
        )
    losses = compare(model, adapter, encoded, token_budget, device, meter)
    release_memory()
    neutral = neutral_prompt(tokenizer, prompt)
    selection = compare_selection(model, adapter, tasks, neutral, device, meter)
    if every and not tasks:
        selection.reason = "no time left for it in the run's budget: twin eval measures it"
    if memory:
        selection.memory = compare_memory(
            model, adapter, remembered, neutral, device, meter, memory_reason
        )
    return losses, selection


def selection_order(
    samples: list[dict[str, Any]],
    tokenizer: Tokenizer,
    prompt: Prompt,
    max_seq_length: int,
    pool: list[dict[str, Any]] | None = None,
    memory: bool = False,
) -> list[SelectionTask]:
    """The selection tasks of `samples` (distractors from `pool`) in the order an
    evaluation takes them (a prefix of it spans the held-out conversations)."""
    return spread(selection_tasks(samples, tokenizer, prompt, max_seq_length, pool, memory))


def generated_style(
    adapter_path: Path,
    checkpoint_dir: Path,
    precision: str,
    device: str,
    samples_path: Path,
    prompt: Prompt,
    count: int,
    generation: GenerationSettings | None,
    meter: Meter | None = None,
) -> dict[str, Any]:
    """Replies of the base model and of the adapter to `count` held-out messages (same
    seeds), measured beside the owner's real replies."""
    meter = meter or NoMeter()
    settings = generation or GenerationSettings()
    train = read_samples(samples_path, "train")
    val = across_conversations(read_samples(samples_path, "val"), count)
    separator = prompt.settings.burst_separator
    others = [s["instruction"] for s in train if s["instruction"]]
    owner = style.profile([s["output"] for s in train], others, separator)
    authorship = style.Authorship([s["output"] for s in train], others)
    engine = ReplyEngine(checkpoint_dir, prompt, precision, device, settings.max_seq_length)
    replies: dict[str, list[str]] = {"base": [], "adapter": []}
    meter.expect(2 * len(val))
    for side, path in (("base", None), ("adapter", adapter_path)):
        engine.use_adapter(path)
        for index, sample in enumerate(val):
            text = prompt.render_sample(sample)
            try:
                reply = engine.generate(text, settings.model_copy(update={"seed": index}))
                replies[side].append(separator.join(reply.messages))
            except DegenerateReply:
                replies[side].append("")
            meter(1)
    real = [s["output"] for s in val]
    result = style.compare(real, replies, owner, authorship, separator)
    result["samples"] = len(val)
    result["similarity"] = {side: similarity(replies[side], real) for side in replies}
    # What memory alone does: paste the reply of the best exchange recalled for the message.
    pasted = [(s.get("recalled") or [""])[0] for s in val]
    result["similarity"]["recalled"] = similarity(pasted, real) if any(pasted) else None
    trained = Replies(s["output"] for s in train)
    result["copies"] = {side: sum(trained.near(r, COPY) for r in replies[side]) for side in replies}
    result["echoes"] = {
        side: sum(echoes(r, s["instruction"]) for r, s in zip(replies[side], val, strict=True))
        for side in replies
    }
    result["examples"] = [
        {"message": s["instruction"], "real": s["output"], "base": b, "adapter": a}
        for s, b, a in zip(val, replies["base"], replies["adapter"], strict=True)
    ]
    return result


def across_conversations(
    samples: list[dict[str, Any]], count: int, seed: int = 0
) -> list[dict[str, Any]]:
    """`count` samples that answer a message, drawn across the conversations (one from
    each in a fixed random order, then a second from each, ...): the first few replies
    are one conversation, which says little about the rest."""
    rng = random.Random(seed)
    by_conversation: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for sample in samples:
        if sample["instruction"]:
            by_conversation.setdefault((sample["chat_id"], sample["conversation"]), []).append(
                sample
            )
    queues = list(by_conversation.values())
    rng.shuffle(queues)
    for queue in queues:
        rng.shuffle(queue)
    drawn: list[dict[str, Any]] = []
    while len(drawn) < count and any(queues):
        for queue in queues:
            if queue and len(drawn) < count:
                drawn.append(queue.pop())
    return drawn


def similarity(generated: list[str], real: list[str]) -> float:
    """Mean chrF (0..1) of each generated reply against the real one: the offline
    counterpart of how much the owner would have to edit a draft."""
    chrf = CHRF()
    scores = [chrf.sentence_score(g, [r]).score / 100 for g, r in zip(generated, real, strict=True)]
    return sum(scores) / len(scores) if scores else 0.0
