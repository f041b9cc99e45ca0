"""The `[train]` section: how a training run fine-tunes the adapter.

A plain pydantic model, apart from the code that uses it, so that reading the
configuration never loads torch or litgpt. Each field's description is its comment in
config.toml. When training runs by itself is the bot's policy (`[retrain]`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainSettings(BaseModel):
    """How the adapter is fine-tuned (`twin train`, /retrain, the nightly run)."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(
        128,
        ge=1,
        description="Samples per optimizer step, by gradient accumulation (the seed's 128).",
    )
    micro_batch_tokens: int = Field(
        1024,
        ge=1,
        description="Tokens per forward pass: samples of similar length, padded to the longest.",
    )
    max_seq_length: int = Field(
        1024, description="Longer samples lose the oldest part of their prompt, never their reply."
    )
    learning_rate: float = 3e-4
    min_lr_ratio: float = Field(
        0.1,
        description=(
            "The cosine decay ends at learning_rate * min_lr_ratio, after warmup_steps of warmup."
        ),
    )
    warmup_steps: int = 5
    weight_decay: float = 0.0
    epochs: int = 3
    max_steps: int | None = Field(
        None, description="Stop after this many optimizer steps.", examples=[100]
    )
    max_minutes: float | None = Field(
        None,
        description="Stop (keeping what was learned) after this many minutes.",
        examples=[60],
    )
    eval_interval: int = Field(
        25, description="Validation loss and a resumable checkpoint every so many optimizer steps."
    )
    save_interval: int = 25
    seed: int = 42
    devices: int = Field(
        1, description='More GPUs: devices per node and a Fabric strategy ("auto", "ddp", "fsdp").'
    )
    strategy: str = "auto"
