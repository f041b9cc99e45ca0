"""A tiny random-init Gemma-shaped litgpt checkpoint, built inside the test session.

It runs the very code paths of the real model (Gemma 3 blocks, sliding windows, tied
embeddings, a BPE tokenizer with <bos>/<eos>) at a size that trains and generates in
seconds on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
import yaml
from litgpt import GPT, Config
from litgpt.config import name_to_config
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>"]


def train_tokenizer(texts: list[str], vocab_size: int = 640) -> Tokenizer:
    """A byte-level BPE: every string encodes and decodes back exactly."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def tiny_config(vocab_size: int) -> Config:
    n_layer = 6
    every_third = [0 if (i + 1) % 3 == 0 else 1 for i in range(n_layer)]
    return Config(
        **{
            **name_to_config["Gemma-3-1b-it"],
            "name": "Gemma-3-tiny",  # "Gemma": RMSNorm with the unit offset, as the real one
            "hf_config": {"org": "twin", "name": "tiny"},
            "n_embd": 128,
            "n_layer": n_layer,
            "n_head": 4,
            "n_query_groups": 1,
            "head_size": 32,
            "attention_scores_scalar": 32,
            "intermediate_size": 256,
            "vocab_size": vocab_size,
            "padded_vocab_size": vocab_size,
            "block_size": 2048,
            "sliding_window_size": 64,
            "sliding_window_indices": every_third,
            "rope_indices": every_third,
        }
    )


def write_tiny_checkpoint(path: Path, texts: list[str], seed: int = 0) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts)
    tokenizer.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "add_bos_token": True,
                "bos_token": "<bos>",
                "eos_token": "<eos>",
            }
        )
    )
    config = tiny_config(tokenizer.get_vocab_size())
    with (path / "model_config.yaml").open("w") as file:
        yaml.dump(asdict(config), file)
    torch.manual_seed(seed)
    model = GPT(config)
    model.apply(model._init_weights)
    state = model.state_dict()
    state["lm_head.weight"] = state["transformer.wte.weight"]  # tied, as Gemma's
    torch.save(state, path / "lit_model.pth")
    return path
