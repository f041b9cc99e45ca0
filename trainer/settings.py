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

    batch_size: int | None = Field(
        None,
        ge=1,
        description=(
            "Samples per optimizer step, by gradient accumulation. Empty: chosen from the\n"
            "number of samples (8 for a few hundred, up to 128 for tens of thousands)."
        ),
        examples=[128],
    )
    micro_batch_tokens: int = Field(
        512,
        ge=1,
        description=(
            "Tokens per forward pass: samples of similar length, padded to the longest.\n"
            "Training memory grows with it (about 2 MB a token for the embedded model in\n"
            "float32); on a CPU 512 runs as fast as 1024."
        ),
    )
    max_seq_length: int = Field(
        1024, description="Longer samples lose the oldest part of their prompt, never their reply."
    )
    learning_rate: float = Field(
        3e-4,
        description=(
            "The peak learning rate. 1e-3 learns faster but overfits within two epochs of a\n"
            "few hundred replies: 3e-4 ends lower on held-out dialogue."
        ),
    )
    min_lr_ratio: float = Field(
        0.1,
        description=(
            "The cosine decay ends at learning_rate * min_lr_ratio, after the warmup; it\n"
            "spans the steps that fit in max_minutes at the speed of the first steps."
        ),
    )
    warmup_steps: int | None = Field(
        None, ge=1, description="Empty: 5 % of the steps, at most 10.", examples=[5]
    )
    weight_decay: float = 0.0
    epochs: int | None = Field(
        None,
        ge=1,
        description=(
            "Passes over the samples, at most. Empty: more for small datasets (up to 8),\n"
            "fewer for large ones (at least 2); the time budget and early stopping end\n"
            "most runs sooner."
        ),
        examples=[3],
    )
    max_steps: int | None = Field(
        None, description="Stop after this many optimizer steps.", examples=[100]
    )
    max_minutes: float | None = Field(
        None,
        gt=0,
        description=(
            "The time budget: the run plans its steps to end within it, keeping what was\n"
            "learned. Empty: 15 minutes on a CPU, no limit on a GPU."
        ),
        examples=[60],
    )
    eval_interval: int | None = Field(
        None,
        ge=1,
        description=(
            "Validation loss and a resumable checkpoint every so many optimizer steps.\n"
            "Empty: 8 times per run. The adapter kept is the one with the best validation loss."
        ),
        examples=[25],
    )
    patience: int = Field(
        3,
        ge=0,
        description=("Stop early after this many validations without a better loss (0: never)."),
    )
    seed: int = 42
    devices: int = Field(
        1, description='More GPUs: devices per node and a Fabric strategy ("auto", "ddp", "fsdp").'
    )
    strategy: str = "auto"
