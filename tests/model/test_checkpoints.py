"""Base models: GGUF conversion (on a small GGUF written here), checkpoint lookup,
precision, the tiny test model, and (slow) the real embedded model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGUFReader
from litgpt import GPT, Tokenizer

from tests.conftest import ROOT
from tests.small_gguf import LAYERS, write_small_gguf
from twin.model import checkpoints
from twin.model.checkpoints import CheckpointError, hub_repo_id, load_weights, locate
from twin.model.device import choose_precision, cpu_runs_bf16
from twin.model.gguf_convert import (
    gemma3_config,
    gemma3_state_dict,
    gemma3_tokenizer,
    write_checkpoint,
)
from twin.model.settings import ModelSettings


@pytest.fixture(scope="module")
def small_gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("gguf") / "small.gguf"
    return path, write_small_gguf(path)


def test_mapping_offsets_norms_fuses_qkv_and_ties_embeddings(small_gguf) -> None:
    path, written = small_gguf
    reader = GGUFReader(path)
    config = gemma3_config(reader)
    assert (config.n_layer, config.n_embd, config.head_size, config.n_query_groups) == (
        2,
        64,
        32,
        1,
    )
    assert "Gemma" in config.name and config.name.startswith("Gemma-3")
    state = gemma3_state_dict(reader, config, dtype=torch.float32)

    def same(name: str, expected: np.ndarray) -> None:
        torch.testing.assert_close(state[name], torch.from_numpy(expected), rtol=0, atol=1e-6)

    same("transformer.wte.weight", written["token_embd.weight"])
    assert state["lm_head.weight"] is state["transformer.wte.weight"]
    same("transformer.ln_f.weight", written["output_norm.weight"] - 1)
    for b in range(LAYERS):
        qkv = np.concatenate([written[f"blk.{b}.attn_{p}.weight"] for p in "qkv"])
        same(f"transformer.h.{b}.attn.qkv.weight", qkv)
        same(f"transformer.h.{b}.norm_1.weight", written[f"blk.{b}.attn_norm.weight"] - 1)
        same(f"transformer.h.{b}.attn.norm_q.weight", written[f"blk.{b}.attn_q_norm.weight"] - 1)
        same(
            f"transformer.h.{b}.post_mlp_norm.weight", written[f"blk.{b}.post_ffw_norm.weight"] - 1
        )
        same(f"transformer.h.{b}.mlp.fc_1.weight", written[f"blk.{b}.ffn_gate.weight"])
        same(f"transformer.h.{b}.mlp.proj.weight", written[f"blk.{b}.ffn_down.weight"])
    # Every litgpt parameter is there, with its shape.
    model = GPT(config)
    model.load_state_dict(state, strict=True)


def test_tokenizer_rebuilt_from_the_vocabulary(small_gguf) -> None:
    tokenizer = gemma3_tokenizer(GGUFReader(small_gguf[0]))
    ids = tokenizer.encode("hello world").ids
    assert [tokenizer.id_to_token(i) for i in ids] == ["hello", "▁world"]
    assert tokenizer.decode(ids) == "hello world"
    # Unknown characters fall back to bytes and come back whole; controls are special.
    text = "hello ✓ привет\n"
    assert tokenizer.decode(tokenizer.encode(text).ids) == text
    assert tokenizer.encode("<end_of_turn>").ids == [4]


def test_written_checkpoint_loads_in_litgpt(small_gguf, tmp_path: Path) -> None:
    write_checkpoint(small_gguf[0], tmp_path, torch.float32)
    assert checkpoints.is_complete(tmp_path)
    tokenizer = Tokenizer(tmp_path)
    assert tokenizer.encode("hello").tolist() == [2, tokenizer.processor.token_to_id("hello")]
    model = GPT(checkpoints.read_config(tmp_path))
    load_weights(model, tmp_path)
    assert model.lm_head.weight is model.transformer.wte.weight
    logits = model(tokenizer.encode("hello world").unsqueeze(0))
    assert torch.isfinite(logits).all()


# -- finding checkpoints -----------------------------------------------------------------


def test_checkpoint_kinds(tmp_path: Path, tiny_checkpoint: Path) -> None:
    assert locate("embedded", tmp_path)[:2] == ("embedded", tmp_path / "Gemma-3-270m")
    assert locate(str(tiny_checkpoint), tmp_path)[:2] == ("folder", tiny_checkpoint.resolve())
    assert hub_repo_id("falcon-7b") == "tiiuae/falcon-7b"  # the seed's model, by name
    assert locate("falcon-7b", tmp_path)[0] == "hub"
    assert locate("Qwen/Qwen2.5-7B-Instruct", tmp_path)[2] == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(CheckpointError, match="neither 'embedded'"):
        locate("no such thing", tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="not a litgpt checkpoint"):
        checkpoints.prepare(ModelSettings(checkpoint=str(empty)), tmp_path)


def test_offline_hub_id_is_one_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "twin", "model", "prepare"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TWIN_MODEL__CHECKPOINT": "falcon-7b"},
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("twin: error: cannot download tiiuae/falcon-7b: huggingface.co")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data" / "models" / "tiiuae" / "falcon-7b").exists()


def test_precision_follows_the_device() -> None:
    expected = "bf16-true" if cpu_runs_bf16() else "32-true"
    assert choose_precision("cpu") == expected
    assert choose_precision("cpu", "32-true") == "32-true"


def test_tiny_checkpoint_is_a_normal_litgpt_checkpoint(tiny_checkpoint: Path) -> None:
    assert checkpoints.is_complete(tiny_checkpoint)
    tokenizer = Tokenizer(tiny_checkpoint)
    text = "короче Гриша опять сломался 🙃\n  ok"
    assert tokenizer.decode(tokenizer.encode(text, bos=False)) == text
    model = GPT(checkpoints.read_config(tiny_checkpoint))
    load_weights(model, tiny_checkpoint)
    assert model(tokenizer.encode(text).unsqueeze(0)).shape[-1] == model.config.padded_vocab_size


# -- the real embedded model (converted once; about half a minute) -----------------------

ENGLISH = (
    "It was a bright cold day in April, and the clocks were striking thirteen. Winston Smith, "
    "his chin nuzzled into his breast in an effort to escape the vile wind, slipped quickly "
    "through the glass doors of Victory Mansions."
)
RUSSIAN = (
    "Все счастливые семьи похожи друг на друга, каждая несчастливая семья несчастлива "
    "по-своему. Всё смешалось в доме Облонских. Жена узнала, что муж был в связи с бывшею в "
    "их доме француженкою-гувернанткой, и объявила мужу, что не может жить с ним в одном доме."
)


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.prepare(ModelSettings(), tmp_path_factory.mktemp("models"))


@pytest.mark.slow
def test_embedded_tokenizer(embedded: Path) -> None:
    tokenizer = Tokenizer(embedded)
    assert tokenizer.encode("Hello world").tolist() == [2, 9259, 1902]
    assert (tokenizer.bos_id, tokenizer.eos_id) == (2, 1)
    special = tokenizer.processor.get_added_tokens_decoder()
    assert special[1].special and special[106].content == "<end_of_turn>" and special[106].special
    for text in (
        RUSSIAN,
        ENGLISH,
        "эмодзи 😂🙃🤙 ok",
        "a  b   c\n\n\n\td",
        "  leading",
        "trailing  ",
    ):
        assert tokenizer.decode(tokenizer.encode(text, bos=False)) == text


@pytest.mark.slow
def test_embedded_model_predicts_text(embedded: Path) -> None:
    """A wrong tokenizer or a wrong norm offset gives about 3 nats per character."""
    tokenizer = Tokenizer(embedded)
    model = GPT(checkpoints.read_config(embedded)).to(torch.bfloat16)
    load_weights(model, embedded)
    model.eval()
    for text in (ENGLISH, RUSSIAN):
        ids = tokenizer.encode(text).unsqueeze(0)
        with torch.no_grad():
            logits = model(ids)
        loss = torch.nn.functional.cross_entropy(
            logits[0, :-1].float(), ids[0, 1:].long(), reduction="sum"
        )
        assert loss.item() / len(text) < 1.2, (text[:20], loss.item() / len(text))


@pytest.mark.slow
def test_second_prepare_converts_nothing(embedded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def converts(*_: object) -> None:
        raise AssertionError("a prepared model is not converted again")

    monkeypatch.setattr(checkpoints, "_convert_embedded", converts)
    assert checkpoints.prepare(ModelSettings(), embedded.parent) == embedded


@pytest.mark.slow
def test_two_processes_preparing_the_embedded_model_at_once_both_get_it(tmp_path: Path) -> None:
    """`twin serve` and `twin run` started together on a first day: one converts, the
    other waits for it (and says so), and both use the one result."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TWIN_DATA_DIR": str(tmp_path / "data")}
    both = [
        subprocess.Popen(
            [sys.executable, "-m", "twin", "model", "prepare"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [process.communicate(timeout=600) for process in both]
    assert [process.returncode for process in both] == [0, 0], results
    assert sum("waiting for it" in stderr for _, stderr in results) == 1
    models = tmp_path / "data" / "models"
    assert checkpoints.is_complete(models / checkpoints.EMBEDDED_NAME)
    assert [p.name for p in models.iterdir() if p.is_dir()] == [checkpoints.EMBEDDED_NAME]


def test_a_process_that_finds_the_model_being_prepared_waits_then_uses_it(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """Another process holds the lock (as a conversion in progress does): this one says
    it waits, converts nothing when the lock is released over a finished model, and
    returns it. Without the lock both converted at once, and one removed the other's
    temporary folder under it (FileNotFoundError)."""
    import shutil
    import threading

    models = tmp_path / "models"
    models.mkdir()
    target = models / checkpoints.EMBEDDED_NAME
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from filelock import FileLock; "
            f"lock = FileLock({str(models / f'.{target.name}.lock')!r}); lock.acquire(); "
            "print('held', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "held"

    def converts(*_: object) -> None:
        raise AssertionError("the model the other process made is not converted again")

    monkeypatch.setattr(checkpoints, "_convert_embedded", converts)
    got: list[Path] = []
    waiting = threading.Thread(
        target=lambda: got.append(checkpoints.prepare(ModelSettings(), models))
    )
    with caplog.at_level("WARNING"):
        waiting.start()
        for _ in range(600):
            if "waiting for it" in caplog.text:
                break
            waiting.join(0.05)
        assert "waiting for it" in caplog.text and not got  # it waits, says so
        shutil.copytree(tiny_checkpoint, target)  # what the other process finished
        holder.stdin.write("\n")
        holder.stdin.flush()
        waiting.join(60)
    holder.wait(60)
    assert got == [target]
