"""A small Gemma-3 GGUF written with gguf-py's own writer, laid out as llama.cpp lays out
the embedded model's (random weights, a vocabulary closed under merges): what the GGUF
conversion and the GGUF exports are tested on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter
from gguf.constants import GGMLQuantizationType
from gguf.quants import dequantize, quantize

from twin.model.gguf_convert import BYTE, CONTROL, NORMAL, USER_DEFINED

EMBD, FF, HEADS, HEAD, LAYERS = 64, 128, 2, 32, 2
# Closed under merges, as a real BPE vocabulary is: every token splits into two others.
NORMAL_TOKENS = "▁ h e l o w r d he ll hell hello ▁w or ld ▁wor ▁world".split()


def _vocab() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<end_of_turn>", "\n"]
    types = [CONTROL, CONTROL, CONTROL, CONTROL, CONTROL, USER_DEFINED]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [BYTE] * 256
    tokens += NORMAL_TOKENS
    types += [NORMAL] * len(NORMAL_TOKENS)
    while len(tokens) % 32:  # rows of the Q8_0 embedding are whole blocks anyway; keep it tidy
        tokens.append(f"<unused{len(tokens)}>")
        types.append(CONTROL)
    # Longer merged tokens score higher, so "hello" beats "hell"+"o".
    scores = [float(len(t)) if k == NORMAL else -1000.0 for t, k in zip(tokens, types, strict=True)]
    return tokens, scores, types


def write_small_gguf(path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tokens, scores, types = _vocab()
    writer = GGUFWriter(str(path), "gemma3")
    writer.add_uint32("gemma3.block_count", LAYERS)
    writer.add_uint32("gemma3.embedding_length", EMBD)
    writer.add_uint32("gemma3.feed_forward_length", FF)
    writer.add_uint32("gemma3.attention.head_count", HEADS)
    writer.add_uint32("gemma3.attention.head_count_kv", 1)
    writer.add_uint32("gemma3.attention.key_length", HEAD)
    writer.add_uint32("gemma3.attention.value_length", HEAD)
    writer.add_uint32("gemma3.context_length", 256)
    writer.add_uint32("gemma3.attention.sliding_window", 16)
    writer.add_float32("gemma3.rope.freq_base", 10000.0)
    writer.add_float32("gemma3.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(1)
    writer.add_unk_token_id(3)
    writer.add_add_bos_token(True)

    written: dict[str, np.ndarray] = {}

    def tensor(name: str, shape: tuple[int, ...], quantized: bool = False) -> None:
        value = rng.normal(size=shape).astype(np.float32) * 0.1
        if name.endswith("norm.weight"):
            value = value + 1.0  # llama.cpp stores 1 + w
        if quantized:
            data = quantize(value, GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, data, raw_dtype=GGMLQuantizationType.Q8_0)
            value = dequantize(data, GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, value)
        written[name] = value

    tensor("token_embd.weight", (len(tokens), EMBD), quantized=True)
    tensor("output_norm.weight", (EMBD,))
    for b in range(LAYERS):
        tensor(f"blk.{b}.attn_q.weight", (HEADS * HEAD, EMBD), quantized=True)
        tensor(f"blk.{b}.attn_k.weight", (HEAD, EMBD))
        tensor(f"blk.{b}.attn_v.weight", (HEAD, EMBD))
        tensor(f"blk.{b}.attn_output.weight", (EMBD, HEADS * HEAD))
        for norm in ("attn_q_norm", "attn_k_norm"):
            tensor(f"blk.{b}.{norm}.weight", (HEAD,))
        for norm in ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"):
            tensor(f"blk.{b}.{norm}.weight", (EMBD,))
        tensor(f"blk.{b}.ffn_gate.weight", (FF, EMBD))
        tensor(f"blk.{b}.ffn_up.weight", (FF, EMBD))
        tensor(f"blk.{b}.ffn_down.weight", (EMBD, FF))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return written
