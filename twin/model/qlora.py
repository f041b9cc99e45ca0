"""QLoRA: the frozen base model in 4-bit NF4 (or 8-bit) while the LoRA weights train.

A 7-8B model's weights take about 15 GiB in bf16 and 4 GiB in NF4: quantizing the part
that never trains is what fits such a model on the 8-24 GB GPUs people own. Every
frozen linear layer of the transformer blocks becomes bitsandbytes' own layer holding
the same weight, quantized as it moves to its device: the model is loaded on the CPU
and reaches the GPU already small. The LoRA weights and their optimizer stay in the
precision the model computes in.

The output layer stays as it is: twin computes it a vocabulary slice at a time from its
weight (trainer.loss), and Gemma's is the embedding. bitsandbytes runs on CUDA and, with
its CPU backend, on the CPU, which is where the tests run it. (litgpt quantizes through
Fabric's BitsandbytesPrecision plugin, which quantizes on CUDA only: the layers are the
same, and here they can be tested.)

Only training and evaluation load the base quantized: the reply engine merges each
adapter into the base weights, which a quantized weight cannot take.
"""

from __future__ import annotations

from types import ModuleType

import torch


class QuantizeError(Exception):
    """model.quantize cannot be used here; the message says why."""


def bitsandbytes() -> ModuleType:
    try:
        import bitsandbytes
    except ImportError:
        raise QuantizeError(
            "model.quantize needs bitsandbytes, an optional extra: "
            ".venv/bin/pip install -e '.[qlora]' (or leave model.quantize empty)"
        ) from None
    return bitsandbytes


def quantize_frozen(model: torch.nn.Module, mode: str) -> int:
    """Replace each frozen linear layer inside the transformer blocks of `model` with a
    bitsandbytes layer of `mode` ("bnb.nf4", "bnb.nf4-dq", "bnb.int8"); returns how many.
    The weights are quantized when the model is next moved to a device, and computed
    with in the dtype they had."""
    bnb = bitsandbytes()
    frozen = [
        (parent, name, child)
        for block in model.transformer.h  # type: ignore[union-attr]
        for parent in block.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear and not child.weight.requires_grad
    ]
    for parent, name, linear in frozen:
        setattr(parent, name, _quantized(bnb, linear, mode))
    return len(frozen)


def _quantized(bnb: ModuleType, linear: torch.nn.Linear, mode: str) -> torch.nn.Module:
    weight, bias = linear.weight.data, linear.bias is not None
    if mode == "bnb.int8":
        layer = bnb.nn.Linear8bitLt(
            linear.in_features, linear.out_features, bias=bias, has_fp16_weights=False
        )
        layer.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    else:
        double = mode == "bnb.nf4-dq"  # the scales quantized too: about 0.4 bits a weight less
        layer = bnb.nn.Linear4bit(
            linear.in_features,
            linear.out_features,
            bias=bias,
            compute_dtype=weight.dtype,
            quant_type="nf4",
            compress_statistics=double,
        )
        layer.weight = bnb.nn.Params4bit(
            weight, requires_grad=False, quant_type="nf4", compress_statistics=double
        )
    if bias:
        layer.bias = linear.bias
    return layer
