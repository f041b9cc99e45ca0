"""A litgpt Gemma-3 checkpoint as a Hugging Face transformers model, for parity tests
of the exports: the independent implementation an exported adapter must agree with."""

from __future__ import annotations

from pathlib import Path

import torch
from litgpt import Config
from litgpt.scripts.convert_lit_checkpoint import copy_weights_gemma_3
from transformers import Gemma3ForCausalLM, Gemma3TextConfig


def hf_config(config: Config) -> Gemma3TextConfig:
    sliding = config.sliding_window_indices or [0] * config.n_layer
    return Gemma3TextConfig(
        vocab_size=config.padded_vocab_size,
        hidden_size=config.n_embd,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        num_key_value_heads=config.n_query_groups,
        head_dim=config.head_size,
        query_pre_attn_scalar=config.attention_scores_scalar,
        sliding_window=config.sliding_window_size,
        layer_types=["sliding_attention" if s else "full_attention" for s in sliding],
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": float(config.rope_base)},
            "sliding_attention": {
                "rope_type": "default",
                "rope_theta": float(config.rope_local_base_freq),
            },
        },
        rms_norm_eps=config.norm_eps,
        max_position_embeddings=config.block_size,
        final_logit_softcapping=config.final_logit_softcapping,
        attn_logit_softcapping=config.attention_logit_softcapping,
        tie_word_embeddings=True,
    )


def hf_model(checkpoint_dir: Path, config: Config) -> Gemma3ForCausalLM:
    model = Gemma3ForCausalLM(hf_config(config)).eval()
    lit = torch.load(checkpoint_dir / "lit_model.pth", weights_only=True)
    state: dict[str, torch.Tensor] = {}
    copy_weights_gemma_3(config, state, lit)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    return model
