"""An adapter as PEFT saves one: what transformers + peft load, and vLLM serves.

`adapter_model.safetensors` holds each adapted matrix's A and B under Hugging Face's
module names (`model.layers.N.self_attn.q_proj`, ...), the fused qkv cut into its
parts (model.lora_parts); `adapter_config.json` says the rank, alpha, targets and
the base model's hub id, which is what vLLM and peft look the base up by.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from litgpt import Config
from safetensors.torch import save_file

from twin.model.errors import ExportError
from twin.model.lora_parts import LoRAPair, lora_pairs
from twin.model.settings import LoRASettings

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
_HF_MODULES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def hf_module(pair: LoRAPair) -> str:
    """The module's name in a Hugging Face Llama-style model (Gemma's too)."""
    if pair.block is None:
        return "lm_head"
    return f"model.layers.{pair.block}.{_HF_MODULES[pair.matrix]}"


def hub_id(config: Config) -> str:
    """The base model's Hugging Face id, from litgpt's record of where it came from."""
    hf = config.hf_config or {}
    if not hf.get("org") or not hf.get("name"):
        raise ExportError(f"{config.name} records no Hugging Face id to name as the base")
    return f"{hf['org']}/{hf['name']}"


def write_peft(
    state: dict[str, torch.Tensor], config: Config, settings: LoRASettings, out_dir: Path
) -> list[Path]:
    """Write the PEFT adapter of `state` into `out_dir` (which exists); the files."""
    tensors: dict[str, torch.Tensor] = {}
    for pair in lora_pairs(state, config, settings):
        module = hf_module(pair)
        tensors[f"base_model.model.{module}.lora_A.weight"] = pair.a.contiguous()
        tensors[f"base_model.model.{module}.lora_B.weight"] = pair.b.contiguous()
    if not tensors:
        raise ExportError("the adapter holds no LoRA weights")
    modules = sorted({name.split(".")[-3] for name in tensors})  # q_proj, ..., lm_head
    save_file(tensors, out_dir / WEIGHTS, metadata={"format": "pt"})
    peft_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": hub_id(config),
        "r": settings.r,
        "lora_alpha": settings.alpha,
        "lora_dropout": settings.dropout,
        "target_modules": modules,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "inference_mode": True,
    }
    (out_dir / CONFIG).write_text(json.dumps(peft_config, indent=1) + "\n", encoding="utf-8")
    return [out_dir / WEIGHTS, out_dir / CONFIG]
