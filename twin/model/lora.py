"""The model twin trains and serves: litgpt's LoRA GPT, plus its adapter weights.

One addition to litgpt's forward: `head_positions`, to compute the output layer only
where it is needed. Gemma's 262k-token output layer is most of the model's work; a
training step needs its logits only at the response tokens, an evaluation likewise,
and generation only at the last position. Computing it there and nowhere else gives
the same loss at about twice the speed (docs/embedded-model.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

import lightning as L
import torch
from litgpt import lora
from litgpt.config import Config
from litgpt.model import do_softcapping
from torch.utils.checkpoint import checkpoint

from twin.model.checkpoints import load_weights, read_config
from twin.model.embedding import narrow_tied_embedding
from twin.model.qlora import quantize_frozen
from twin.model.settings import LoRASettings

T = TypeVar("T")


def lora_config(base: Config, settings: LoRASettings) -> lora.Config:
    return lora.Config(
        **asdict(base),
        lora_r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        **{f"lora_{target}": True for target in settings.targets},
    )


class _HeadAt(torch.nn.Module):
    """The output head applied only at some positions of the hidden states."""

    def __init__(self, head: torch.nn.Module, positions: torch.Tensor | tuple) -> None:
        super().__init__()
        self.head = head
        self.positions = positions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[self.positions])


class _Recomputed(torch.nn.Module):
    """A block that keeps only its input for the backward pass and runs again there."""

    def __init__(self, block: torch.nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, *args: object) -> torch.Tensor:
        return checkpoint(self.block, *args, use_reentrant=False)


class TwinGPT(lora.GPT):
    """litgpt's LoRA GPT with three additions: the output layer only where it is needed
    (`head_positions`), blocks that recompute their activations in the backward pass
    on request (`recompute`), and a KV cache that is correct for prompts of any length."""

    def forward(  # type: ignore[override]
        self,
        idx: torch.Tensor,
        input_pos: torch.Tensor | None = None,
        input_pos_maxp1: int | None = None,
        lm_head_chunk_size: int = 0,
        head_positions: torch.Tensor | tuple | None = None,
        return_hidden: bool = False,
        recompute: bool = False,
    ) -> torch.Tensor:
        """litgpt's forward; with `head_positions` (a boolean mask of idx's shape, or an
        index such as `(slice(None), slice(-1, None))`), logits at those positions only;
        with `return_hidden`, the hidden states there instead, for a loss that applies
        the head itself a few rows at a time (trainer.loss). With `recompute`, each
        block keeps only its input for the backward pass: memory for a long sample as
        for a short one, at the cost of a second forward.

        The head and blocks are wrapped for the duration of the call rather than the
        forward copied, so everything else (sliding windows, soft-capping) stays
        litgpt's."""
        if return_hidden and self.config.final_logit_softcapping is not None:
            raise ValueError("hidden states are only returned for a head without soft-capping")
        if input_pos is not None:
            return self._cached_forward(
                idx, input_pos, input_pos_maxp1, head_positions, return_hidden
            )
        if head_positions is None and not return_hidden:
            return super().forward(idx, input_pos, input_pos_maxp1, lm_head_chunk_size)
        head, blocks = self.lm_head, self.transformer.h
        positions = head_positions if head_positions is not None else (slice(None),)
        self.lm_head = _HeadAt(torch.nn.Identity() if return_hidden else head, positions)
        if recompute:
            self.transformer.h = torch.nn.ModuleList(_Recomputed(block) for block in blocks)
        try:
            return super().forward(idx)
        finally:
            self.lm_head, self.transformer.h = head, blocks

    def set_kv_cache(
        self,
        batch_size: int,
        max_seq_length: int | None = None,
        rope_cache_length: int | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Full-length caches in every layer, sliding-window ones included.

        litgpt gives sliding-window layers a ring buffer of the window's size, which is
        only right when the prompt goes in all at once and fits the window (longer
        chunks overwrite keys their own queries still need). With full caches and the
        window applied by the mask (`_cached_forward`), any prompt is one prefill."""
        max_seq_length = max_seq_length or self.max_seq_length
        for block in self.transformer.h:
            attention = block.attn
            window = attention.apply_sliding_window_attention
            attention.apply_sliding_window_attention = False  # build a full-length cache
            try:
                attention.kv_cache = attention.build_kv_cache(
                    batch_size,
                    max_seq_length,
                    rope_cache_length or self.rope_cache_length(),
                    device,
                    dtype,
                )
            finally:
                attention.apply_sliding_window_attention = window
        self.mask_cache = None  # masks are made per call

    def _cached_forward(
        self,
        idx: torch.Tensor,
        input_pos: torch.Tensor,
        input_pos_maxp1: int | None,
        head_positions: torch.Tensor | tuple | None,
        return_hidden: bool = False,
    ) -> torch.Tensor:
        """litgpt's KV-cache forward, with each layer's own mask: causal for global
        layers, causal within the window for sliding-window layers."""
        keys = input_pos_maxp1 if input_pos_maxp1 is not None else self.max_seq_length
        key_pos = torch.arange(keys, device=idx.device)
        causal = (key_pos[None, :] <= input_pos[:, None])[None, None]  # (1, 1, T, keys)
        window = self.config.sliding_window_size
        windowed = causal & (key_pos[None, :] > input_pos[:, None] - window) if window else causal
        if keys == idx.size(1):  # a whole prompt from position 0: plain causal attention,
            # which SDPA computes without materializing a mask (is_causal)
            windowed = None if not window or keys <= window else windowed
            causal = None
        cos = self.cos.index_select(0, input_pos).unsqueeze(0)
        sin = self.sin.index_select(0, input_pos).unsqueeze(0)
        x = self.transformer.wte(idx)
        if self.config.scale_embeddings:
            x = x * torch.tensor(self.config.n_embd**0.5, dtype=x.dtype)
        for index, block in enumerate(self.transformer.h):
            mask = windowed if block.attn.apply_sliding_window_attention else causal
            if self.config.rope_indices is not None:  # Gemma 3: local and global rope
                cos_i, sin_i = (
                    cos[..., self.config.rope_indices[index]],
                    sin[..., self.config.rope_indices[index]],
                )
            else:
                cos_i, sin_i = cos, sin
            x = block(x, cos_i, sin_i, mask, input_pos, input_pos_maxp1)
        x = self.transformer.ln_f(x)
        if head_positions is not None:
            x = x[head_positions]
        if return_hidden:
            return x
        logits = self.lm_head(x)
        if self.config.final_logit_softcapping is not None:
            logits = do_softcapping(logits, self.config.final_logit_softcapping)
        return logits


def frozen_linear(module: torch.nn.Module) -> torch.nn.Linear | None:
    """`module` as a plain linear layer whose weight does not train, if it is one.

    litgpt wraps every layer LoRA could adapt in a LoRALinear, the output layer
    included; with rank 0 it is the plain layer inside."""
    if isinstance(module, lora.LoRALinear) and module.r == 0:
        module = module.linear
    if isinstance(module, torch.nn.Linear) and module.bias is None:  # NarrowHead is one
        return None if module.weight.requires_grad else module
    return None


def build_model(
    fabric: L.Fabric,
    checkpoint_dir: Path,
    settings: LoRASettings,
    max_seq_length: int,
    narrow_embedding: bool = False,
    quantize: str | None = None,
) -> TwinGPT:
    """The base checkpoint with fresh LoRA weights (A random, B zero: the base model's
    behaviour), only LoRA trainable. `narrow_embedding`: keep a tied embedding in the
    dtype the checkpoint stores it in where the model computes in a wider one
    (model.embedding; for training, which never runs the whole output layer at once).
    `quantize`: the frozen base weights of the blocks quantized (model.qlora); the model
    is built on the CPU and quantized on its way to the device."""
    config = lora_config(read_config(checkpoint_dir), settings)
    on_cpu = torch.device("cpu") if quantize else contextlib.nullcontext()
    with fabric.init_module(empty_init=True), on_cpu:
        model = TwinGPT(config)
    stored = load_weights(model, checkpoint_dir, strict=False)
    for module in model.modules():
        if isinstance(module, lora.LoRALinear):
            module.reset_parameters()  # empty_init skipped it
    lora.mark_only_lora_as_trainable(model)
    if narrow_embedding and stored is not None:
        narrow_tied_embedding(model, stored)
    if quantize:
        quantize_frozen(model, quantize)
        model.to(fabric.device)
    model.max_seq_length = max_seq_length
    return model


def adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA weights alone: what an adapter file holds."""
    return {
        name: param.detach().to("cpu", copy=True)
        for name, param in model.named_parameters()
        if "lora_" in name
    }


def base_and_adapter(
    model: torch.nn.Module, adapter: dict[str, torch.Tensor], measure: Callable[[], T]
) -> tuple[T, T]:
    """`measure()` on the base model (LoRA off), then with `adapter` in place (left in
    place): every comparison of the two sees the same samples the same way."""
    load_adapter(model, None)
    base = measure()
    load_adapter(model, adapter)
    return base, measure()


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
