"""The `[generate]` section: how the twin samples its replies, and the /style knobs
the owner may change at run time.

A plain pydantic model, apart from the engine, so that reading the configuration (every
`twin` command, the bot's /style) never loads torch. Each field's description is its
comment in config.toml.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

LENGTHS = {"short": 0.4, "normal": 1.0, "long": 2.5}  # /style length: x max_new_tokens


class GenerationSettings(BaseModel):
    """How the twin samples its replies. The owner can change these from the bot: /style."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.8, ge=0, le=2)
    top_k: int = Field(40, ge=1)
    top_p: float = Field(0.9, gt=0, le=1)
    repetition_penalty: float = Field(
        1.15, ge=1, le=2, description="Tokens already in the reply become less likely (1.0: off)."
    )
    max_new_tokens: int = Field(120, ge=1, le=2000)
    length: Literal["short", "normal", "long"] = Field(
        "normal", description='"short", "normal" or "long": scales max_new_tokens (0.4x, 1x, 2.5x).'
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=2**31 - 1,
        description="A fixed seed gives the same reply every time; leave unset for variety.",
        examples=[7],
    )
    attempts: int = Field(
        3,
        ge=1,
        description="Degenerate output (empty, looping) is retried this many times, then not sent.",
    )
    candidates: int = Field(
        1,
        ge=1,
        le=8,
        description=(
            "Replies sampled per answer; the one the conversation raises most (how much\n"
            "likelier it is after this conversation than after none) is given, and Regenerate\n"
            "on a draft shows the next at once. 1: one reply, as sampled. A streamed reply and\n"
            "the llama.cpp backend take one."
        ),
    )
    max_seq_length: int = Field(
        2048, ge=32, description="The longest prompt plus reply the reply engine holds."
    )
    backend: Literal["twin", "llama.cpp"] = Field(
        "twin",
        description=(
            '"twin": twin\'s own engine (torch). "llama.cpp": the embedded model on llama.cpp\n'
            "with the adapter as a GGUF LoRA, in a third to half the memory: as fast as twin\n"
            "on a CPU with bf16; on one without, 9x as fast (measured with Q4_K_M weights).\n"
            "Needs the optional llama-cpp-python (README: A faster CPU backend)."
        ),
    )
    llama_weights: Literal["F16", "Q8_0", "Q4_K_M"] = Field(
        "F16",
        description=(
            'What the llama.cpp backend computes with. "F16": twin\'s own weights, written\n'
            "once beside the shipped file (543 MB): its greedy token is the exact model's at\n"
            "least as often as twin's own engine's. \"Q4_K_M\": the file as it ships, 1.4x as\n"
            'fast, rounder. "Q8_0": in between.'
        ),
    )
    stop: list[str] = Field(
        [],
        description="More strings a reply ends at, besides the template's next section or speaker.",
    )


SHORTEST = 8  # tokens: the fewest a /style length may scale a reply down to


def new_tokens(settings: GenerationSettings) -> int:
    """The most tokens a reply may have: max_new_tokens scaled by the /style length.
    A length never scales a reply below SHORTEST tokens, but a max_new_tokens below
    that (an API client's max_tokens) is honoured as it is."""
    scaled = int(settings.max_new_tokens * LENGTHS[settings.length])
    return max(scaled, min(SHORTEST, settings.max_new_tokens))


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


# A retry of a degenerate reply samples hotter and penalizes repeats harder, by these
# steps per attempt.
RETRY_TEMPERATURE = 0.15
RETRY_PENALTY = 0.1


@dataclass(frozen=True)
class Sampling:
    """What one decoding samples with: the knobs of [generate] and /style made concrete
    for one attempt (the length scaled to tokens, the seed drawn). Every backend takes
    this one object, so a knob added here reaches them all."""

    max_new: int
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    seed: int

    @classmethod
    def of(cls, settings: GenerationSettings, seed: int) -> Sampling:
        return cls(
            max_new=new_tokens(settings),
            temperature=settings.temperature,
            top_k=settings.top_k,
            top_p=settings.top_p,
            repetition_penalty=settings.repetition_penalty,
            seed=seed,
        )

    @classmethod
    def greedy(cls, max_new: int) -> Sampling:
        """The most likely token every step, no penalty (benchmarks, agreement checks)."""
        return cls(max_new, temperature=0.0, top_k=1, top_p=1.0, repetition_penalty=1.0, seed=0)

    def attempt(self, number: int) -> Sampling:
        """The sampling of retry `number` (0: the first try, as set)."""
        return replace(
            self,
            temperature=self.temperature + RETRY_TEMPERATURE * number,
            repetition_penalty=self.repetition_penalty + RETRY_PENALTY * number,
            seed=self.seed + number,
        )
