"""An adapter as the other tools see it: one low-rank pair (A, B) per weight matrix.

litgpt fuses the query, key and value projections into one `qkv` layer, and its LoRA
into one A (the enabled parts' rows stacked, `r` each) and one B (their output rows
stacked: all query heads, then the key and value groups). PEFT, vLLM and llama.cpp
adapt q, k and v as separate matrices, so the fused pair is cut back into three: each
part's delta is B_part @ A_part, exactly litgpt's grouped product. Every other adapted
layer is one pair already.

Names here are positions in the model ("which block, which matrix"), not any format's:
each export maps them to its own names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from litgpt import Config

from twin.model.errors import ExportError
from twin.model.settings import LoRASettings

# litgpt's layer in a block -> the matrix it adapts, for layers that are one matrix.
_SINGLE = {
    "attn.proj": "attn_output",
    "mlp.fc_1": "ffn_gate",
    "mlp.fc_2": "ffn_up",
    "mlp.proj": "ffn_down",
}
_BLOCK_LAYER = re.compile(r"^transformer\.h\.(\d+)\.(.+)\.lora_A$")
# MLPs whose fc_1/fc_2/proj are gate/up/down, as in Llama: the models the exports know.
GATED_MLPS = ("LLaMAMLP", "GemmaMLP")


@dataclass(frozen=True)
class LoRAPair:
    """The update of one weight matrix: (B @ A) * alpha / r, B (out, r), A (r, in)."""

    block: int | None  # None: the output layer
    matrix: str  # "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", ... or "output"
    a: torch.Tensor
    b: torch.Tensor


def lora_pairs(
    state: dict[str, torch.Tensor], config: Config, settings: LoRASettings
) -> Iterator[LoRAPair]:
    """The adapter `state` (litgpt's names; trained with `settings`) as one pair per
    adapted matrix, in block order; the output layer last."""
    if config.mlp_class_name not in GATED_MLPS:
        raise ExportError(
            f"{config.name} has a {config.mlp_class_name}: exports know models with a "
            "gated MLP as Llama's (Llama, Gemma, Qwen, Mistral, Phi-3...)"
        )
    rows = {
        "attn_q": config.head_size * config.n_head,
        "attn_k": config.head_size * config.n_query_groups,
        "attn_v": config.head_size * config.n_query_groups,
    }
    parts = qkv_parts(settings)
    blocks = sorted(
        (int(found[1]), found[2])
        for name in state
        if (found := _BLOCK_LAYER.match(name)) is not None
    )
    for block, layer in blocks:
        a = state[f"transformer.h.{block}.{layer}.lora_A"]
        b = state[f"transformer.h.{block}.{layer}.lora_B"]
        if layer == "attn.qkv":
            # A holds r rows per part, B each part's output rows, in litgpt's order.
            sizes = [rows[part] for part in parts]
            if b.shape[0] != sum(sizes) or a.shape[0] != settings.r * len(parts):
                raise ExportError(
                    f"block {block}: a fused LoRA of A {tuple(a.shape)}, B {tuple(b.shape)} "
                    f"does not hold {', '.join(parts) or 'no part'} at rank {settings.r}"
                )
            pieces = zip(parts, a.split(settings.r), b.split(sizes), strict=True)
            for part, a_part, b_part in pieces:
                yield LoRAPair(block, part, a_part, b_part)
        elif layer in _SINGLE:
            yield LoRAPair(block, _SINGLE[layer], a, b)
        else:
            raise ExportError(f"the adapter adapts {layer}, which no export knows")
    if "lm_head.lora_A" in state:
        yield LoRAPair(None, "output", state["lm_head.lora_A"], state["lm_head.lora_B"])


def qkv_parts(settings: LoRASettings) -> tuple[str, ...]:
    """The parts of the fused layer the LoRA settings adapt, in litgpt's order."""
    chosen = {"query": "attn_q", "key": "attn_k", "value": "attn_v"}
    return tuple(part for target, part in chosen.items() if target in settings.targets)


def merged_delta(pair: LoRAPair, settings: LoRASettings) -> torch.Tensor:
    """The pair's update of its weight matrix, in float32: what merging adds."""
    return (pair.b.float() @ pair.a.float()) * (settings.alpha / settings.r)
