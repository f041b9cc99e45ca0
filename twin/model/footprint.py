"""How much memory LoRA training takes, from a model's config: to choose a model and a
GPU before downloading either (README: the memory table, benchmarks/memory_table.py).

Counted, in the order they fill a card:
- the base weights: bf16, or with QLoRA (model.qlora) the linear layers of the blocks in
  4-bit NF4 with a float32 scale per 64 weights (nf4-dq: the scales in 8 bits) or in
  8 bits; the embedding and the output layer stay bf16;
- the adapter: LoRA weights, their gradients and AdamW's two moments, all in the
  precision the model computes in;
- the activations one micro-batch keeps for the backward pass: per token and block, the
  residual stream and normalised inputs, q, k and v (as the linear layer gave them and
  rotated), the attention output, and the MLP's hidden layers. Attention itself keeps
  nothing of the score matrix (PyTorch's SDPA recomputes it). With recomputation
  (train.gradient_checkpointing) a block keeps only its input;
- the largest working set on top of them: the output layer's, computed only at reply
  tokens a vocabulary slice of 16k rows at a time, in float32 (trainer.loss), or with
  recomputation the one block whose activations are rebuilt in the backward pass,
  whichever is larger (the first is over when the second begins).
Not counted: the CUDA context and the allocator's slack (about 0.5-1 GiB on a GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

from litgpt.config import Config

from twin.model.embedding import VOCAB_ROWS
from twin.model.settings import LoRASettings

GiB = 2**30
# Bytes per weight of a quantized linear layer (bitsandbytes' layouts): NF4 packs two
# weights a byte with a float32 absmax per block of 64; double quantization stores
# those scales in 8 bits with a float32 per 256 of them; int8 keeps a float32 per row.
WEIGHT_BYTES = {None: 2.0, "bnb.nf4": 0.5 + 4 / 64, "bnb.nf4-dq": 0.5 + 1 / 64 + 4 / (64 * 256)}


@dataclass(frozen=True)
class Footprint:
    weights: float  # bytes
    adapter: float
    activations: float  # kept from the forward pass to the backward pass
    working: float  # the largest transient on top of them

    @property
    def total(self) -> float:
        return self.weights + self.adapter + self.activations + self.working


def block_linears(config: Config) -> list[tuple[str, int, int]]:
    """(LoRA target, in, out) of each linear layer of one block."""
    d, f = config.n_embd, config.intermediate_size
    q = config.n_head * config.head_size
    kv = config.n_query_groups * config.head_size
    hidden = [("mlp", d, f)] * (2 if config.mlp_class_name in ("LLaMAMLP", "GemmaMLP") else 1)
    return [
        ("query", d, q),
        ("key", d, kv),
        ("value", d, kv),
        ("projection", q, d),
        *hidden,
        ("mlp", f, d),
    ]


def activation_elements(config: Config) -> int:
    """Elements one token keeps in one block for the backward pass."""
    d, f = config.n_embd, config.intermediate_size
    q = config.n_head * config.head_size
    kv = config.n_query_groups * config.head_size
    post_norms = int(config.post_attention_norm) + int(config.post_mlp_norm)
    gated = config.mlp_class_name in ("LLaMAMLP", "GemmaMLP")
    residual_and_norms = (4 + 2 * post_norms) * d
    attention = 2 * (q + 2 * kv) + q  # q, k, v out of the layer and rotated; the output
    mlp = (3 if gated else 2) * f
    return residual_and_norms + attention + mlp


def training_footprint(
    config: Config,
    lora: LoRASettings,
    tokens: int,
    quantize: str | None = None,
    element_bytes: int = 2,
    recompute: bool = False,
    tied: bool = False,
    reply_share: float = 0.5,
) -> Footprint:
    """The memory of LoRA training on `config` with micro-batches of `tokens` tokens
    (reply_share of them reply tokens), computing in `element_bytes` per element.
    `tied`: the output layer is the embedding (the checkpoint stores them equal)."""
    linears = block_linears(config)
    block_weights = config.n_layer * sum(i * o for _, i, o in linears)
    per_weight = WEIGHT_BYTES[quantize] if quantize != "bnb.int8" else 1.0
    if quantize is None:
        per_weight = element_bytes
    vocabulary = config.padded_vocab_size * config.n_embd
    weights = block_weights * per_weight + (1 if tied else 2) * vocabulary * element_bytes
    adapted = [(i, o) for target, i, o in linears if target in lora.targets]
    lora_params = config.n_layer * sum(lora.r * (i + o) for i, o in adapted)
    adapter = lora_params * element_bytes * 4  # weight, gradient, two moments
    per_block = activation_elements(config) * tokens * element_bytes
    replies = tokens * reply_share
    slice_rows = min(VOCAB_ROWS, config.padded_vocab_size)
    # float32 logits of a slice and their exponentials, and the accumulated gradient
    head = replies * (2 * slice_rows * 4 + config.n_embd * 4)
    if recompute:
        inputs = config.n_layer * config.n_embd * tokens * element_bytes
        return Footprint(weights, adapter, inputs, max(head, per_block))
    return Footprint(weights, adapter, config.n_layer * per_block, head)
