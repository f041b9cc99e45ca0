"""The `[train]` section: how a training run fine-tunes the adapter.

A plain pydantic model, apart from the code that uses it, so that reading the
configuration never loads torch or litgpt. Each field's description is its comment in
config.toml. When training runs by itself is the bot's policy (`[retrain]`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CPU_MINUTES = 15.0  # a run's budget on a CPU when max_minutes is empty: what a person waits for


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
        1024,
        ge=32,
        description="Longer samples lose the oldest part of their prompt, never their reply.",
    )
    learning_rate: float = Field(
        3e-4,
        gt=0,
        description=(
            "The peak learning rate. 1e-3 learns faster but overfits within two epochs of a\n"
            "few hundred replies: 3e-4 ends lower on held-out dialogue."
        ),
    )
    min_lr_ratio: float = Field(
        0.1,
        ge=0,
        le=1,
        description=(
            "The cosine decay ends at learning_rate * min_lr_ratio, after the warmup; it\n"
            "spans the steps that fit in max_minutes at the speed of the first steps."
        ),
    )
    warmup_steps: int | None = Field(
        None, ge=1, description="Empty: 5 % of the steps, at most 10.", examples=[5]
    )
    weight_decay: float = Field(0.0, ge=0)
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
        None, ge=1, description="Stop after this many optimizer steps.", examples=[100]
    )
    max_minutes: float | None = Field(
        None,
        ge=0,
        description=(
            "The time budget of a run (training, its checks and the evaluation): it plans its\n"
            "steps to end within it, keeping what was learned. Empty: "
            f"{CPU_MINUTES:g} minutes on a CPU,\n"
            "no limit on a GPU; 0: no limit anywhere."
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
    gradient_checkpointing: bool = Field(
        False,
        description=(
            "Recompute each block's activations in the backward pass instead of keeping them:\n"
            "about a third more compute for a fraction of the activation memory (long\n"
            "contexts on a small GPU). Samples longer than micro_batch_tokens always are."
        ),
    )
    seed: int = Field(42, ge=0)
    devices: int = Field(
        1,
        ge=1,
        description=(
            "Training processes per machine: GPUs, or CPU processes on a CPU. More than one\n"
            "(or several machines) runs the ranks with torchrun under Fabric's strategy."
        ),
    )
    strategy: Literal["auto", "ddp"] = Field(
        "auto",
        description=(
            'How the ranks share the work: "auto" or "ddp" (each holds the model; gradients\n'
            "are averaged). No FSDP yet: it has not run with twin's loop; model.quantize\n"
            "is the way to fit a large model."
        ),
    )
    num_nodes: int = Field(
        1,
        ge=1,
        description=(
            "Machines in the run. Every machine but this one starts its ranks itself\n"
            "(README: several machines); the data folder must be on a shared filesystem."
        ),
    )
    main_node: str = Field(
        "",
        pattern=r"^$|^[^\s:]+:\d+$",
        description="With num_nodes > 1: host:port of this machine, reachable from the others.",
        examples=["10.0.0.1:29500"],
    )

    @model_validator(mode="after")
    def _main_node_for_several_machines(self) -> TrainSettings:
        if self.num_nodes > 1 and not self.main_node:
            raise ValueError("num_nodes > 1 needs main_node: host:port of this machine")
        return self


class PreferenceSettings(BaseModel):
    """The preference phase of a run: after the supervised phase, in the same budget,
    the adapter learns that the owner's replies beat its own guesses and his edits beat
    its drafts (trainer.preference)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        False,
        description=(
            "Run the phase. Off until it is measured to make replies better on held-out\n"
            "conversations; your decisions on drafts are kept for it meanwhile."
        ),
    )
    start: Literal["supervised", "active"] = Field(
        "supervised",
        description=(
            'What the phase starts from: "supervised", the adapter the run trains first, or\n'
            '"active", the active adapter with no supervised phase (the whole budget learns\n'
            "from your decisions since; supervised where there is no active adapter of the\n"
            "same LoRA shape)."
        ),
    )
    share: float = Field(
        0.2,
        gt=0,
        lt=1,
        description=(
            "Of the training time a budgeted run has, the part the phase takes (generating\n"
            "the twin's own replies, then learning from the pairs)."
        ),
    )
    demonstrated: int = Field(
        32,
        ge=0,
        description=(
            "Training replies whose context the supervised adapter answers itself: its reply\n"
            "is the rejected side against yours (none when the two are nearly the same)."
        ),
    )
    hard_negatives: int = Field(
        0,
        ge=0,
        description=(
            "Training replies each preferred over one of your replies from another\n"
            "conversation (no generation: they teach the conversation, not the voice)."
        ),
    )
    beta: float = Field(0.1, gt=0, description="How far from the supervised adapter it may move.")
    likelihood: float = Field(
        1.0,
        ge=0,
        description="Weight of your reply's own loss beside the preference: keeps it likely.",
    )
    learning_rate: float = Field(1e-4, gt=0)
    batch: int = Field(4, ge=1, description="Pairs (and single signals) per optimizer step.")
    max_loss_increase: float = Field(
        0.02,
        ge=0,
        description=(
            "The phase's adapter is kept only if its validation loss is at most this much\n"
            "(relative) above the supervised adapter's; otherwise the run keeps the latter."
        ),
    )
