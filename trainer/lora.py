"""The model twin trains and serves: litgpt's LoRA GPT, plus its adapter weights.

One addition to litgpt's forward: `head_positions`, to compute the output layer only
where it is needed. Gemma's 262k-token output layer is most of the model's work; a
training step needs its logits only at the response tokens, an evaluation likewise,
and generation only at the last position. Computing it there and nowhere else gives
the same loss at about twice the speed (shared/notes/embedded-model.md).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from litgpt import lora
from litgpt.config import Config
from litgpt.model import do_softcapping
from pydantic import BaseModel, ConfigDict

from trainer.checkpoints import load_weights, read_config

Target = Literal["query", "key", "value", "projection", "mlp", "head"]


class LoRASettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The seed project's rank and alpha; the update is scaled by alpha / r.
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # Which weights get an adapter: attention (query, key, value, projection), the MLP,
    # and the output head.
    targets: list[Target] = ["query", "key", "value", "projection", "mlp"]


def lora_config(base: Config, settings: LoRASettings) -> lora.Config:
    return lora.Config(
        **asdict(base),
        lora_r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        **{f"lora_{target}": True for target in settings.targets},
    )


class TwinGPT(lora.GPT):
    """litgpt's LoRA GPT; `head_positions` restricts the output layer to those positions."""

    def forward(  # type: ignore[override]
        self,
        idx: torch.Tensor,
        input_pos: torch.Tensor | None = None,
        input_pos_maxp1: int | None = None,
        lm_head_chunk_size: int = 0,
        head_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Without `head_positions`: litgpt's forward. With a boolean mask of idx's shape
        (no KV cache): logits of shape (positions, vocab), for those positions only."""
        if head_positions is None:
            return super().forward(idx, input_pos, input_pos_maxp1, lm_head_chunk_size)
        T = idx.size(1)
        cos, sin = self.cos[:T].unsqueeze(0), self.sin[:T].unsqueeze(0)
        x = self.transformer.wte(idx)
        if self.config.scale_embeddings:
            x = x * torch.tensor(self.config.n_embd**0.5, dtype=x.dtype)
        for index, block in enumerate(self.transformer.h):
            if self.config.rope_indices is not None:
                which = self.config.rope_indices[index]
                x = block(x, cos[..., which], sin[..., which], None, None, None)
            else:
                x = block(x, cos, sin, None, None, None)
        x = self.transformer.ln_f(x[head_positions])  # the norm is per position
        logits = self.lm_head(x)
        if self.config.final_logit_softcapping is not None:
            logits = do_softcapping(logits, self.config.final_logit_softcapping)
        return logits


def build_model(
    fabric: L.Fabric, checkpoint_dir: Path, settings: LoRASettings, max_seq_length: int
) -> TwinGPT:
    """The base checkpoint with fresh LoRA weights (A random, B zero: the base model's
    behaviour), only LoRA trainable."""
    config = lora_config(read_config(checkpoint_dir), settings)
    with fabric.init_module(empty_init=True):
        model = TwinGPT(config)
    load_weights(model, checkpoint_dir, strict=False)
    for module in model.modules():
        if isinstance(module, lora.LoRALinear):
            module.reset_parameters()  # empty_init skipped it
    lora.mark_only_lora_as_trainable(model)
    model.max_seq_length = max_seq_length
    return model


def adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA weights alone: what an adapter file holds."""
    return {
        name: param.detach().to("cpu", copy=True)
        for name, param in model.named_parameters()
        if "lora_" in name
    }


def load_adapter(model: torch.nn.Module, state: dict[str, torch.Tensor] | None) -> None:
    """Put an adapter's weights in place; None restores the base model (B = 0)."""
    params = dict(model.named_parameters())
    if state is None:
        for name, param in params.items():
            if name.endswith("lora_B"):
                param.data.zero_()
        return
    expected = {name for name in params if "lora_" in name}
    if set(state) != expected:
        missing = sorted(expected - set(state))[:3]
        extra = sorted(set(state) - expected)[:3]
        raise ValueError(f"adapter does not fit this model (missing {missing}, unexpected {extra})")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)
