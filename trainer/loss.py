"""How well a model predicts the owner's replies: loss per response token.

The same function scores training batches, validation during training, and the
comparison of base model and adapter in `twin eval`, so the numbers agree everywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from model.lora import load_adapter
from trainer.batches import Batch, Encoded, collate, micro_batches


def batch_loss(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the batch's response tokens, and how many there are.

    The output layer runs only at those positions (TwinGPT's head_positions)."""
    logits = model(batch.idx, head_positions=batch.head_positions)
    loss = F.cross_entropy(logits.float(), batch.targets, reduction="sum")
    return loss, batch.targets.numel()


@torch.no_grad()
def mean_loss(
    model: torch.nn.Module, samples: list[Encoded], token_budget: int, device: torch.device | str
) -> float:
    """Mean loss per response token over `samples`."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for group in micro_batches(samples, token_budget):
        loss, n = batch_loss(model, collate([samples[i] for i in group]).to(device))
        total += loss.item()
        count += n
    model.train(was_training)
    return total / max(count, 1)


@dataclass
class LossReport:
    samples: int
    tokens: int
    base_loss: float
    adapter_loss: float
    base_perplexity: float
    adapter_perplexity: float
    improvement: float  # relative drop of the loss: (base - adapter) / base

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    model: torch.nn.Module,
    adapter: dict[str, torch.Tensor],
    samples: list[Encoded],
    token_budget: int,
    device: torch.device | str,
) -> LossReport:
    """The base model (LoRA off) and the adapter on the same samples."""
    load_adapter(model, None)
    base = mean_loss(model, samples, token_budget, device)
    load_adapter(model, adapter)
    tuned = mean_loss(model, samples, token_budget, device)
    return LossReport(
        samples=len(samples),
        tokens=sum(s.targets for s in samples),
        base_loss=base,
        adapter_loss=tuned,
        base_perplexity=math.exp(min(base, 50)),
        adapter_perplexity=math.exp(min(tuned, 50)),
        improvement=(base - tuned) / base if base else 0.0,
    )


def evaluate_adapter(
    adapter_path: Path,
    checkpoint_dir: Path,
    precision: str,
    device: str,
    max_seq_length: int,
    token_budget: int,
    generate: int = 0,
    generation: Any = None,
) -> tuple[LossReport, dict[str, Any] | None]:
    """Base model against an adapter on the validation samples it was trained with: the
    loss, and with `generate` > 0 the style of that many generated replies from each."""
    import lightning as L
    from litgpt import Tokenizer

    from dataset.build import read_samples
    from dataset.prompt import Prompt
    from dataset.settings import PromptSettings
    from model import registry
    from model.lora import build_model
    from model.settings import LoRASettings
    from trainer.batches import encode

    meta = registry.read_meta(adapter_path)
    samples_path = Path(meta["dataset"])
    samples = read_samples(samples_path, "val")
    prompt = Prompt(PromptSettings(**meta["prompt"]))
    fabric = L.Fabric(accelerator=device, devices=1, precision=precision)  # type: ignore[arg-type]
    model = build_model(fabric, checkpoint_dir, LoRASettings(**meta["lora"]), max_seq_length)
    encoded = encode(samples, Tokenizer(checkpoint_dir), prompt, max_seq_length)
    losses = compare(model, registry.load(adapter_path), encoded, token_budget, fabric.device)
    del model
    if generate <= 0:
        return losses, None
    return losses, generated_style(
        adapter_path, checkpoint_dir, precision, device, samples_path, prompt, generate, generation
    )


def generated_style(
    adapter_path: Path,
    checkpoint_dir: Path,
    precision: str,
    device: str,
    samples_path: Path,
    prompt: Any,
    count: int,
    generation: Any,
) -> dict[str, Any]:
    """Replies of the base model and of the adapter to `count` held-out messages (same
    seeds), measured beside the owner's real replies."""
    from dataset import style
    from dataset.build import read_samples
    from engine.generate import DegenerateReply, ReplyEngine
    from engine.settings import GenerationSettings

    settings = generation or GenerationSettings()
    train = read_samples(samples_path, "train")
    val = read_samples(samples_path, "val")[:count]
    separator = prompt.settings.burst_separator
    others = [s["instruction"] for s in train if s["instruction"]]
    owner = style.profile([s["output"] for s in train], others, separator)
    authorship = style.Authorship([s["output"] for s in train], others)
    engine = ReplyEngine(checkpoint_dir, prompt, precision, device)
    replies: dict[str, list[str]] = {"base": [], "adapter": []}
    for side, path in (("base", None), ("adapter", adapter_path)):
        engine.use_adapter(path)
        for index, sample in enumerate(val):
            text = prompt.render(sample["input"], sample["instruction"])
            try:
                reply = engine.generate(text, settings.model_copy(update={"seed": index}))
                replies[side].append(separator.join(reply.messages))
            except DegenerateReply:
                replies[side].append("")
    result = style.compare([s["output"] for s in val], replies, owner, authorship, separator)
    result["samples"] = len(val)
    result["examples"] = [
        {"message": s["instruction"], "real": s["output"], "base": b, "adapter": a}
        for s, b, a in zip(val, replies["base"], replies["adapter"], strict=True)
    ]
    return result
