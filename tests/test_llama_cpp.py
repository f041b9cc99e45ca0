"""The llama.cpp backend: refused with one clear line where llama-cpp-python is not
installed, and (slow, where it is) the shipped Q4_K_M GGUF with the exported GGUF LoRA
agreeing with twin's own engine on the greedy next token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import BackendError
from tests.conftest import ROOT

# The norm of each LoRA factor after 40 steps of training the embedded model, measured
# on four personas (2.66 and 0.23-0.25 on all of them): a random adapter of this size
# moves the model about as far as a trained one. Its agreement with twin's engine is
# not exact: the GGUF base is Q4_K_M, so near-tied tokens can swap (README: A faster
# CPU backend). Trained adapters on their own held-out prompts: 85 to 100 %.
TRAINED_NORMS = {"lora_A": 2.66, "lora_B": 0.24}


def test_without_llama_cpp_the_backend_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import llama_cpp

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp fails
    with pytest.raises(BackendError, match="needs llama-cpp-python"):
        llama_cpp.load_llama_cpp()


def test_the_backend_runs_only_the_embedded_model(tiny_checkpoint: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "twin", "reply", "hi", "--db", str(tmp_path / "x.db")],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "TWIN_DATA_DIR": str(tmp_path),
            "TWIN_MODEL__CHECKPOINT": str(tiny_checkpoint),
            "TWIN_GENERATE__BACKEND": "llama.cpp",
        },
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "runs the embedded model" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_llama_cpp_agrees_with_twins_engine_on_the_greedy_token(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (an optional extra) is not installed")
    import torch

    from benchmarks.generate_bench import persona_texts
    from engine.settings import GenerationSettings
    from model import registry
    from model.checkpoints import read_config
    from model.lora import adapter_state
    from twin.settings import Settings
    from twin.wiring import make_engine

    settings = Settings(data_dir=ROOT / "data")
    ours = make_engine(settings)
    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, value in adapter_state(ours.model).items():
        noise = torch.randn(value.shape, generator=generator)
        state[name] = noise / noise.norm() * TRAINED_NORMS[name.rsplit(".", 1)[1]]
    meta = {
        "base_model": read_config(ours.checkpoint_dir).name,
        "dataset_fingerprint": "test",
        "lora": ours.lora.model_dump(),
    }
    adapter = registry.save(tmp_path / "adapters", state, meta)
    ours.use_adapter(adapter)
    settings.generate.backend = "llama.cpp"
    theirs = make_engine(settings)
    theirs.use_adapter(adapter)
    assert (adapter / "twin-lora.gguf").is_file()
    greedy = GenerationSettings(temperature=0.0, repetition_penalty=1.0)
    texts = persona_texts(50)
    same = sum(
        ours.decode(ours.encode(t), 1, 0.0, greedy, 1.0, 0)[0]
        == theirs.decode(theirs.encode(t), 1, 0.0, greedy, 1.0, 0)[0]
        for t in texts
    )
    assert same >= 0.95 * len(texts), f"{same} of {len(texts)}"
