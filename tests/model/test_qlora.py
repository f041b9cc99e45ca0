"""QLoRA (model.qlora): the frozen base of the tiny model in 4 or 8 bits through
bitsandbytes' CPU backend, the LoRA weights training beside it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from tests.conftest import ROOT
from tests.trainer.test_finetune import (  # noqa: F401 (fixtures)
    FAST,
    config_for,
    encoded,
    fabric32,
    persona_db,
)
from trainer.finetune import train
from trainer.run import run_training
from twin.model.lora import build_model, frozen_linear
from twin.model.settings import LoRASettings, ModelSettings

bnb = pytest.importorskip("bitsandbytes", reason="bitsandbytes (the qlora extra) is not installed")


def frozen_linears(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [
        child
        for block in model.transformer.h
        for child in block.modules()
        if isinstance(child, torch.nn.Linear) and not child.weight.requires_grad
    ]


@pytest.mark.parametrize(
    ("mode", "layer", "stored", "error"),
    [  # error: a layer's output against the exact one's, relative (NF4: about 4 bits)
        ("bnb.nf4", "Linear4bit", torch.uint8, 0.12),
        ("bnb.nf4-dq", "Linear4bit", torch.uint8, 0.12),
        ("bnb.int8", "Linear8bitLt", torch.int8, 0.01),
    ],
)
def test_the_frozen_base_is_quantized_and_computes_about_what_it_did(
    tiny_checkpoint: Path, mode: str, layer: str, stored: torch.dtype, error: float
) -> None:
    full = build_model(fabric32(), tiny_checkpoint, LoRASettings(), 64)
    small = build_model(fabric32(), tiny_checkpoint, LoRASettings(), 64, quantize=mode)
    exact, quantized = frozen_linears(full), frozen_linears(small)
    assert len(quantized) == len(exact) > 0
    assert all(type(q).__name__ == layer and q.weight.dtype == stored for q in quantized)
    assert type(frozen_linear(small.lm_head)) is torch.nn.Linear  # the output layer: as it was
    # The adapter is the same set of weights, in the model's precision, and trains alone.
    lora = {n: p for n, p in small.named_parameters() if p.requires_grad}
    assert lora.keys() == {n for n, p in full.named_parameters() if p.requires_grad}
    assert all("lora_" in n and p.dtype == torch.float32 for n, p in lora.items())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for ours, theirs in zip(exact, quantized, strict=True):
            x = torch.randn(8, ours.in_features, generator=generator)
            want = ours(x)
            assert 0 < (theirs(x) - want).norm() / want.norm() < error


def test_lora_trains_on_a_4_bit_base(
    tiny_checkpoint: Path,
    encoded,  # noqa: F811
    tmp_path: Path,
) -> None:
    train_samples, val_samples = encoded
    fabric = fabric32()
    model = build_model(fabric, tiny_checkpoint, LoRASettings(), 512, quantize="bnb.nf4")
    # The 4-bit layers are compared by what they compute: on a CPU with AVX-512 BF16,
    # bitsandbytes repacks a 4-bit weight in place for its kernel at the first forward
    # without gradients (validation), so its stored bytes change and its numbers do not.
    quantized = {n: m for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert quantized
    generator = torch.Generator().manual_seed(0)
    probes = {n: torch.randn(2, m.in_features, generator=generator) for n, m in quantized.items()}

    def outputs() -> dict[str, torch.Tensor]:
        model.eval()
        with torch.no_grad():
            return {n: m(probes[n]) for n, m in quantized.items()}

    computed = outputs()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train(fabric, model, train_samples, val_samples, FAST, tmp_path / "run")
    losses = [loss for _, loss in result.val_losses]
    assert losses[-1] < losses[0]
    for name, param in model.named_parameters():
        if name.rsplit(".", 1)[0] in quantized:
            continue
        changed = not torch.equal(param.detach(), before[name])
        assert changed == ("lora_B" in name or "lora_A" in name), name
    for name, value in outputs().items():
        assert torch.equal(value, computed[name]), name


def test_twin_train_runs_qlora_end_to_end(
    tiny_checkpoint: Path,
    persona_db: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = config_for(tmp_path, persona_db, tiny_checkpoint)
    model = config.model.model_copy(update={"quantize": "bnb.nf4-dq"})
    report = run_training(replace(config, model=model))
    assert report.promoted and report.adapter_loss < report.base_loss


def test_without_bitsandbytes_model_quantize_is_refused_in_one_line(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    hidden = tmp_path / "hide"
    (hidden / "bitsandbytes").mkdir(parents=True)
    (hidden / "bitsandbytes" / "__init__.py").write_text("raise ImportError('not here')\n")
    done = subprocess.run(
        [sys.executable, "-m", "twin", "train", "--db", str(tmp_path / "x.db")],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{hidden}:{ROOT}",
            "TWIN_DATA_DIR": str(tmp_path),
            "TWIN_MODEL__CHECKPOINT": str(tiny_checkpoint),
            "TWIN_MODEL__QUANTIZE": "bnb.nf4",
        },
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stderr
    assert "model.quantize needs bitsandbytes" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_quantize_wants_a_true_precision() -> None:
    with pytest.raises(ValidationError, match='needs a "-true" precision'):
        ModelSettings(quantize="bnb.nf4", precision="bf16-mixed")
    assert ModelSettings(quantize="bnb.nf4", precision="bf16-true").quantize == "bnb.nf4"
