"""The llama.cpp backend: refused with one clear line where llama-cpp-python is not
installed; twin's own weights written once into the GGUF layout it runs; and (slow,
where it is installed) agreeing with twin's engine on the greedy next token.

The reference is twin's engine computing exactly (fp32, no int8 copies for one-token
steps): served as usual, twin's engine agrees with that in 94-96 % of the prompts, since
near-tied tokens tip either way under any rounding (README: A faster CPU backend)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gguf import GGUFReader

from tests.conftest import ROOT
from twin.engine.errors import BackendError
from twin.engine.llama_cpp import SHIPPED, weights_gguf


def test_without_llama_cpp_the_backend_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin.engine import llama_cpp

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


def test_twins_own_weights_are_written_once_beside_the_shipped_file(
    small_base: tuple[Path, Path], tmp_path: Path
) -> None:
    shipped = tmp_path / "base.gguf"
    shutil.copy(small_base[0], shipped)
    checkpoint = small_base[1]
    assert weights_gguf(checkpoint, shipped, SHIPPED) == shipped
    written = weights_gguf(checkpoint, shipped, "F16")
    assert written == shipped.with_name("base.f16.gguf")
    assert {t.tensor_type.name for t in GGUFReader(written).tensors} == {"F32", "F16"}
    stamp = written.stat().st_mtime_ns
    assert weights_gguf(checkpoint, shipped, "F16") == written
    assert written.stat().st_mtime_ns == stamp
    assert not list(shipped.parent.glob("*.partial"))


@pytest.mark.slow
def test_llama_cpp_agrees_with_twins_engine_on_the_greedy_token(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (an optional extra) is not installed")
    from benchmarks.generate_bench import persona_texts, trained_size_adapter
    from twin.engine.generate import ReplyEngine
    from twin.engine.settings import Sampling
    from twin.model import registry
    from twin.model.checkpoints import prepare, read_config
    from twin.model.lora import adapter_state
    from twin.prompt.text import Prompt
    from twin.settings import Settings
    from twin.wiring import make_engine

    settings = Settings(data_dir=ROOT / "data")
    checkpoint = prepare(settings.model, settings.models_dir)
    ours = ReplyEngine(checkpoint, Prompt(), "32-true", "cpu", 2048, int8_decoding=False)
    meta = {
        "base_model": read_config(checkpoint).name,
        "dataset_fingerprint": "test",
        "lora": ours.lora.model_dump(),
    }
    adapter = registry.save(
        tmp_path / "adapters", trained_size_adapter(adapter_state(ours.model)), meta
    )
    ours.use_adapter(adapter)
    settings.generate.backend = "llama.cpp"
    settings.generate.llama_weights = "F16"
    theirs = make_engine(settings)
    theirs.use_adapter(adapter)
    assert (adapter / "twin-lora.gguf").is_file()
    greedy = Sampling.greedy(1)
    texts = persona_texts(50)
    same = sum(
        ours.decode(ours.encode(t), greedy)[0] == theirs.decode(theirs.encode(t), greedy)[0]
        for t in texts
    )
    assert same >= 0.95 * len(texts), f"{same} of {len(texts)}"
