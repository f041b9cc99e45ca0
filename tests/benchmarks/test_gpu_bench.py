"""benchmarks/gpu_bench.py keeps working where there is no GPU: its small shapes on the
CPU give every number it reports on a card but the card's own limits."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_the_gpu_benchmark_runs_its_small_shapes_on_a_cpu() -> None:
    pytest.importorskip("bitsandbytes", reason="bitsandbytes (the qlora extra) is missing")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_bench.py"), "--tiny"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    tiny = report["models"]["tiny"]
    for method in ("LoRA", "QLoRA (NF4)"):
        assert tiny[method]["tokens_per_s"] > 0 and tiny[method]["flops_per_s"] > 0
        assert 0 < tiny[method]["estimated_gib"] < 1
    assert tiny["decode"]["tokens_per_s"] > 0 and tiny["decode"]["bytes_per_token"] > 0
