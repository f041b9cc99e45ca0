"""The training memory estimate (model.footprint, the README's table) against the peak
of a measured training step: small random models on the CPU, in float32."""

from __future__ import annotations

import pytest

from benchmarks.memory_table import measured_peak, small_config
from twin.model.footprint import training_footprint
from twin.model.settings import LoRASettings

FLOAT32 = 4


@pytest.mark.parametrize(
    ("width", "layers", "tokens", "quantize", "recompute"),
    [
        (256, 4, 256, None, False),
        (256, 4, 1024, None, False),  # four times the tokens: the activations' share grows
        (512, 2, 512, None, False),
        (256, 4, 512, "bnb.nf4", False),
        (256, 4, 1024, None, True),
    ],
)
def test_the_estimate_is_within_a_tenth_of_the_measured_peak(
    width: int, layers: int, tokens: int, quantize: str | None, recompute: bool
) -> None:
    if quantize:
        pytest.importorskip("bitsandbytes", reason="bitsandbytes (the qlora extra) is missing")
    config = small_config(width, layers)
    estimate = training_footprint(config, LoRASettings(), tokens, quantize, FLOAT32, recompute)
    measured = measured_peak(config, tokens, quantize, recompute, "cpu")
    assert estimate.total == pytest.approx(measured, rel=0.1)
