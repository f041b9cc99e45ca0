"""Exports of an adapter, on a small Gemma-3 GGUF converted as the embedded model is:
PEFT against transformers + peft, the GGUF LoRA and the merged GGUF read back with
gguf-py, the Modelfile's template rendered by Go's text/template as Ollama renders it,
and `twin export` itself."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import lightning as L
import pytest
import torch
from gguf import GGUFReader
from jinja2.sandbox import ImmutableSandboxedEnvironment
from peft import PeftModel

from storage import open_database
from tests.hf_gemma import hf_model
from twin.cli import main
from twin.model import registry
from twin.model.checkpoints import read_config
from twin.model.errors import ExportError
from twin.model.export_gguf import write_lora, write_merged, write_weights
from twin.model.export_peft import write_peft
from twin.model.gguf_convert import (
    _BLOCK_NAMES,
    GGUFError,
    gemma3_config,
    gemma3_gguf_tensor,
    gemma3_state_dict,
)
from twin.model.lora import TwinGPT, adapter_state, build_model
from twin.model.lora_parts import LoRAPair, lora_pairs, merged_delta
from twin.model.settings import LoRASettings
from twin.prompt.settings import PromptSettings
from twin.prompt.templates import go_template, jinja_template, modelfile
from twin.prompt.text import Prompt

GO_RENDER = Path(__file__).parents[1] / "go" / "ollama_render.go"


def trained(checkpoint: Path, settings: LoRASettings, seed: int = 1) -> TwinGPT:
    """The tiny model with an adapter that changes it: B random, not zero."""
    fabric = L.Fabric(accelerator="cpu", devices=1, precision="32-true")
    model = build_model(fabric, checkpoint, settings, 256).eval()
    generator = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        if name.endswith("lora_B"):
            param.data.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    return model


def pairs_of(checkpoint: Path, settings: LoRASettings) -> list[LoRAPair]:
    """A changing adapter on `checkpoint`, as the exports take it: one pair a matrix."""
    model = trained(checkpoint, settings)
    return list(lora_pairs(adapter_state(model), read_config(checkpoint), settings))


@pytest.mark.parametrize(
    "targets",
    [["query", "key", "value", "projection", "mlp"], ["query", "value"], ["key", "mlp", "head"]],
)
def test_peft_export_gives_twins_logits_in_transformers(
    small_base: tuple[Path, Path], tmp_path: Path, targets: list[str]
) -> None:
    checkpoint = small_base[1]
    settings = LoRASettings(targets=targets)  # type: ignore[arg-type]
    config = read_config(checkpoint)
    model = trained(checkpoint, settings)
    files = write_peft(adapter_state(model), config, settings, tmp_path)
    assert [f.name for f in files] == ["adapter_model.safetensors", "adapter_config.json"]
    peft_config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert (peft_config["r"], peft_config["lora_alpha"]) == (16, 32)
    assert peft_config["base_model_name_or_path"] == "google/gemma-3-270m"
    hf = PeftModel.from_pretrained(hf_model(checkpoint, config), tmp_path).eval()
    tokens = torch.randint(0, config.padded_vocab_size, (2, 90), generator=torch.Generator())
    with torch.no_grad():
        ours, theirs = model(tokens), hf(tokens).logits
        with hf.disable_adapter():
            base = hf(tokens).logits
    assert (ours - base).abs().max() > 0.1  # the adapter changes the model...
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)  # ...the same way


def test_gguf_lora_round_trips_and_fits_the_base_as_llama_cpp_checks(
    small_base: tuple[Path, Path], tmp_path: Path
) -> None:
    gguf_path, checkpoint = small_base
    settings = LoRASettings()
    config = read_config(checkpoint)
    pairs = pairs_of(checkpoint, settings)
    base = GGUFReader(gguf_path)
    path = write_lora(pairs, settings, base, tmp_path / "lora.gguf", "twin adapter 1")
    lora = GGUFReader(path)
    fields = {k: lora.fields[k].contents() for k in lora.fields if not k.startswith("GGUF.")}
    assert fields == {
        "general.architecture": "gemma3",
        "general.type": "adapter",
        "general.name": "twin adapter 1",
        "adapter.type": "lora",
        "adapter.lora.alpha": 32.0,
    }
    tensors = {t.name: t for t in lora.tensors}
    assert len(tensors) == 2 * len(pairs) == 2 * 7 * config.n_layer
    shapes = {t.name: [int(d) for d in t.shape] for t in base.tensors}
    for pair in pairs:
        name = f"blk.{pair.block}.{pair.matrix}.weight"
        a, b = tensors[f"{name}.lora_a"], tensors[f"{name}.lora_b"]
        # llama.cpp: A's ne0 is the base's ne0 (columns), B's ne1 its ne1, A's ne1 = B's ne0
        assert [int(a.shape[0]), int(b.shape[1])] == shapes[name][:2]
        assert int(a.shape[1]) == int(b.shape[0]) == settings.r
        assert torch.equal(torch.from_numpy(a.data.copy()), pair.a.float())
        assert torch.equal(torch.from_numpy(b.data.copy()), pair.b.float())


@pytest.mark.parametrize(("kind", "tolerance"), [("F16", 2e-4), ("Q8_0", 2e-3)])
def test_merged_gguf_is_base_plus_adapter(
    small_base: tuple[Path, Path], tmp_path: Path, kind: str, tolerance: float
) -> None:
    gguf_path, checkpoint = small_base
    settings = LoRASettings()
    config = read_config(checkpoint)
    pairs = pairs_of(checkpoint, settings)
    base = GGUFReader(gguf_path)
    path = write_merged(pairs, settings, base, tmp_path / "twin.gguf", "twin", kind)
    merged = GGUFReader(path)
    assert {t.tensor_type.name for t in merged.tensors} == {"F32", kind}  # norms stay F32
    assert merged.fields["tokenizer.ggml.tokens"].contents() == (
        base.fields["tokenizer.ggml.tokens"].contents()
    )
    before = gemma3_state_dict(base, gemma3_config(base), torch.float32)
    expected = {name: value.clone() for name, value in before.items()}
    rows = {"attn_q": 0, "attn_k": config.n_head * config.head_size}
    rows["attn_v"] = rows["attn_k"] + config.n_query_groups * config.head_size
    for pair in pairs:
        block = f"transformer.h.{pair.block}."
        delta = merged_delta(pair, settings)
        if pair.matrix in rows:
            start = rows[pair.matrix]
            expected[block + "attn.qkv.weight"][start : start + delta.shape[0]] += delta
        else:
            expected[block + _BLOCK_NAMES[pair.matrix] + ".weight"] += delta
    got = gemma3_state_dict(merged, gemma3_config(merged), torch.float32)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, atol=tolerance, rtol=0)
    merge = (
        expected["transformer.h.0.attn.proj.weight"] - before["transformer.h.0.attn.proj.weight"]
    )
    assert merge.abs().max() > 10 * tolerance  # the merge is there to see


def test_a_checkpoints_own_weights_go_back_into_the_gguf_layout(
    small_base: tuple[Path, Path], tmp_path: Path
) -> None:
    """What the llama.cpp backend's F16 file carries: twin's bf16 weights, unchanged (every
    bf16 number of a weight's size is an F16 number), in the base file's layout."""
    gguf_path, _ = small_base
    base = GGUFReader(gguf_path)
    config = gemma3_config(base)
    state = gemma3_state_dict(base, config, torch.bfloat16)
    path = write_weights(state, config, base, tmp_path / "own.gguf", "F16")
    own = GGUFReader(path)
    assert [t.name for t in own.tensors] == [t.name for t in base.tensors]
    assert own.fields["tokenizer.ggml.tokens"].contents() == (
        base.fields["tokenizer.ggml.tokens"].contents()
    )
    got = gemma3_state_dict(own, gemma3_config(own), torch.float32)
    assert got.keys() == state.keys()
    for name, value in state.items():
        torch.testing.assert_close(got[name], value.float(), atol=1e-7, rtol=0)
    with pytest.raises(GGUFError, match="not one this converter knows"):
        gemma3_gguf_tensor(state, config, "blk.0.attn_qkv.weight")


def test_gguf_refuses_what_llama_cpp_would(small_base: tuple[Path, Path], tmp_path: Path) -> None:
    gguf_path, checkpoint = small_base
    base = GGUFReader(gguf_path)
    head = LoRASettings(targets=["query", "head"])
    pairs = pairs_of(checkpoint, head)
    with pytest.raises(ExportError, match="shares with its embedding"):
        write_lora(pairs, head, base, tmp_path / "x.gguf", "x")
    wide = [p for p in pairs if p.block is not None]
    wide[0] = type(wide[0])(0, "attn_q", torch.zeros(16, 256), wide[0].b)
    with pytest.raises(ExportError, match="another model's adapter"):
        write_merged(wide, head, base, tmp_path / "y.gguf", "y")
    assert not (tmp_path / "y.gguf").exists() and not (tmp_path / "x.gguf").exists()


def render_with_go(template: str, messages: list[dict[str, str]], tmp_path: Path) -> str:
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed: the Ollama template is rendered with Go's text/template")
    (tmp_path / "template.txt").write_text(template, encoding="utf-8")
    request = json.dumps(
        {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages]}
    )
    done = subprocess.run(
        [go, "run", str(GO_RENDER), str(tmp_path / "template.txt")],
        input=request,
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "GOCACHE": str(tmp_path / "gocache"), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return done.stdout


CUSTOM_PROMPT = PromptSettings(
    template="Chat {{x}} {{% raw %}}.\n{memory}Before:\n{context}\nNow: {instruction}\nMe:",
    template_no_context="{memory}Now: {instruction}\nMe:",
    owner_tag="Me",
    other_tag="Them",
)


@pytest.mark.parametrize("settings", [PromptSettings(), CUSTOM_PROMPT])
def test_ollama_renders_the_prompt_twin_trained_with(
    settings: PromptSettings, tmp_path: Path
) -> None:
    prompt = Prompt(settings)
    template = go_template(prompt)
    talk = [
        {"role": "system", "content": "Живу в Казани"},
        {"role": "user", "content": "привет"},
        {"role": "assistant", "content": "ну привет\nкак ты"},
        {"role": "user", "content": "как дела?"},
    ]
    context = [prompt.tagged("привет", False), prompt.tagged("ну привет\nкак ты", True)]
    expected = prompt.render(
        prompt.context(context),
        "как дела?",
        prompt.memory("Живу в Казани", []),
    )
    assert render_with_go(template, talk, tmp_path) == expected
    opener = [{"role": "user", "content": "hi {{ there }}"}]
    assert render_with_go(template, opener, tmp_path) == prompt.render("", "hi {{ there }}")


@pytest.mark.parametrize("hf_whitespace", [False, True])
@pytest.mark.parametrize("settings", [PromptSettings(), CUSTOM_PROMPT])
def test_the_chat_template_renders_the_prompt_twin_trained_with(
    settings: PromptSettings, hf_whitespace: bool
) -> None:
    """As transformers and vLLM render it: in a sandbox, trim_blocks and lstrip_blocks on."""
    environment = ImmutableSandboxedEnvironment(
        trim_blocks=hf_whitespace, lstrip_blocks=hf_whitespace
    )
    template = environment.from_string(jinja_template(Prompt(settings)))
    prompt = Prompt(settings)
    talk = [
        {"role": "system", "content": "Живу в Казани"},
        {"role": "user", "content": "привет {{ x }}"},
        {"role": "user", "content": "ты тут?"},  # one burst: joined as twin joins it
        {"role": "assistant", "content": "ну привет"},
        {"role": "developer", "content": "Зовут Тёма"},
        {"role": "user", "content": "как дела?"},
    ]
    context = [prompt.tagged("привет {{ x }}\nты тут?", False), prompt.tagged("ну привет", True)]
    facts = prompt.memory("Живу в Казани\nЗовут Тёма", [])
    expected = prompt.render(prompt.context(context), "как дела?", facts)
    assert template.render(messages=talk, add_generation_prompt=True) == expected
    opener = [{"role": "user", "content": "hi"}]
    assert template.render(messages=opener, add_generation_prompt=True) == prompt.render("", "hi")


def test_a_modelfile_names_base_adapter_template_and_stops() -> None:
    text = modelfile(Prompt(), "./base.gguf", "./twin-lora.gguf")
    assert text.startswith('FROM ./base.gguf\nADAPTER ./twin-lora.gguf\nTEMPLATE """')
    stops = re.findall(r'PARAMETER stop """(.*?)"""', text, re.S)
    assert stops == ["\n###", "\nR:", "\nI:"]
    with pytest.raises(ValueError, match='"""'):
        modelfile(Prompt(PromptSettings(template='"""{instruction}{context}{memory}')), "b", None)


def test_twin_export_writes_a_complete_folder_or_nothing(
    small_base: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    gguf_path, checkpoint = small_base
    settings = LoRASettings()
    config = read_config(checkpoint)
    state = adapter_state(trained(checkpoint, settings))
    meta = {
        "base_model": config.name,
        "dataset_fingerprint": "x",
        "lora": settings.model_dump(),
        "prompt": PromptSettings().model_dump(),
        "dataset": str(tmp_path / "samples.jsonl"),
    }
    db_path = tmp_path / "twin.db"

    async def register() -> None:
        async with open_database(db_path) as db:
            path = registry.save(tmp_path / "adapters", state, meta)
            await registry.activate(db, await registry.register(db, path, meta, None, 1.0))

    asyncio.run(register())
    toml = tmp_path / "config.toml"
    toml.write_text(
        f'data_dir = "{tmp_path}"\n[model]\ncheckpoint = "{checkpoint}"\n', encoding="utf-8"
    )
    out = tmp_path / "exported"
    common = ["export", "--config", str(toml), "--db", str(db_path)]
    assert main([*common, "--format", "peft", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["adapter"] == 1 and sorted(report["files"]) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "chat_template.jinja",
    ]
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o600}
    # A folder that holds something is never written over.
    assert main([*common, "--format", "peft", "--out", str(out)]) == 1
    assert "exists and is not empty" in capsys.readouterr().err
    # GGUF needs the base model's GGUF: twin ships only the embedded model's.
    assert main([*common, "--format", "gguf", "--out", str(tmp_path / "g")]) == 1
    assert "--base-gguf" in capsys.readouterr().err
    gguf = ["--format", "gguf", "--out", str(tmp_path / "g"), "--base-gguf", str(gguf_path)]
    assert main([*common, *gguf]) == 0
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["Modelfile", "twin-lora.gguf"]
    assert (
        f"FROM {gguf_path}\nADAPTER ./twin-lora.gguf" in (tmp_path / "g" / "Modelfile").read_text()
    )
    assert main([*common, "--adapter", "7", "--format", "peft", "--out", str(tmp_path / "n")]) == 1
    assert "no adapter 7" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers
