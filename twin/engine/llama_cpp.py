"""The reply engine on llama.cpp (`generate.backend = "llama.cpp"`): the embedded model
with the adapter as a GGUF LoRA.

Measured by benchmarks/generate_bench.py --backends (README: A faster CPU backend): in a
third to half of twin's memory; about as fast as twin's engine on a 2-core CPU with bf16,
9 times as fast on a 2-core AVX2 CPU, where twin computes in fp32. It builds from source
(`llama-cpp-python`, an optional extra), so twin's own engine stays the default.
`generate.llama_weights` picks the model file: twin's own weights written once as F16
(the default: it agrees with the exact model as often as twin's engine does), or the
shipped Q4_K_M file (faster, rounder). Everything but the forward pass and the sampler
is the shared Engine's: the prompt is encoded with twin's own tokenizer (the ids the
adapter was trained on, which are llama.cpp's for the embedded model), the stop markers,
the attempts, the stream. An adapter is written as a GGUF LoRA next to it on first use
(model.export_gguf) and the model is reloaded with it: a swap takes about a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from gguf import GGUFReader
from litgpt import Tokenizer
from tqdm import tqdm

from twin.engine.errors import BackendError
from twin.engine.generate import Engine, stop_ids
from twin.engine.settings import Sampling
from twin.engine.stream import cut
from twin.model import registry
from twin.model.checkpoints import counter_of, read_config
from twin.model.export_gguf import write_lora, write_weights
from twin.model.lora_parts import lora_pairs
from twin.model.settings import LoRASettings
from twin.prompt.text import Prompt

ADAPTER_GGUF = "twin-lora.gguf"  # written into the adapter's folder on first use
SHIPPED = "Q4_K_M"  # generate.llama_weights: the embedded model's file as it ships


def load_llama_cpp() -> type:
    try:
        from llama_cpp import Llama
    except ImportError:
        raise BackendError(
            'generate.backend = "llama.cpp" needs llama-cpp-python, an optional extra that '
            'compiles llama.cpp (see README: A faster CPU backend); or set it to "twin"'
        ) from None
    return Llama


class LlamaCppEngine(Engine):
    def __init__(
        self,
        checkpoint_dir: Path,
        base_gguf: Path,
        prompt: Prompt,
        max_seq_length: int,
        threads: int | None = None,
    ) -> None:
        self._llama_class = load_llama_cpp()
        self.checkpoint_dir = checkpoint_dir
        self.base_gguf = base_gguf
        self.prompt = prompt
        self.max_seq_length = max_seq_length
        self.threads = threads
        self.tokenizer = Tokenizer(checkpoint_dir)
        self.count_tokens = counter_of(self.tokenizer)
        self.stop_ids = stop_ids(self.tokenizer)
        self.adapter: str | None = None
        self.llama = self._load(None)

    def _load(self, lora: Path | None) -> object:
        return self._llama_class(
            model_path=str(self.base_gguf),
            lora_path=str(lora) if lora is not None else None,
            n_ctx=self.max_seq_length,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            last_n_tokens_size=64,  # what twin's own repetition penalty looks back over
            verbose=False,
        )

    def use_adapter(self, path: Path | None) -> None:
        lora = adapter_gguf(Path(path), self.checkpoint_dir, self.base_gguf) if path else None
        self.llama.close()  # type: ignore[attr-defined]  # two models at once: 0.6 GB more
        self.llama = self._load(lora)
        self.adapter = None if path is None else str(path)

    def decode(
        self,
        prompt_ids: Sequence[int],
        sampling: Sampling,
        stop: bool = True,
        markers: Sequence[str] | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[list[int], float]:
        markers = self.prompt.stop_markers if markers is None else markers
        self.llama.set_seed(sampling.seed)  # type: ignore[attr-defined]
        started = time.perf_counter()
        first = 0.0
        tokens: list[int] = []
        sampled = self.llama.generate(  # type: ignore[attr-defined]
            list(prompt_ids),
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            min_p=0.0,  # twin samples with top-k and top-p alone
            temp=sampling.temperature,
            repeat_penalty=sampling.repetition_penalty,
            reset=True,
        )
        for step, token in enumerate(sampled):
            if step == 0:
                first = time.perf_counter() - started
            if stop and token in self.stop_ids:
                break
            tokens.append(int(token))
            if stop or on_text is not None:
                text = self.detokenize(tokens)
                if on_text is not None:
                    on_text(text)
                if stop and cut(text, markers)[1]:
                    break
            if len(tokens) >= sampling.max_new:
                break
        return tokens, first


def adapter_gguf(adapter: Path, checkpoint_dir: Path, base_gguf: Path) -> Path:
    """The adapter as a GGUF LoRA in its own folder, written once (atomically)."""
    path = adapter / ADAPTER_GGUF
    if path.is_file():
        return path
    meta = registry.read_meta(adapter)
    lora = LoRASettings(**meta["lora"])
    pairs = list(lora_pairs(registry.load(adapter), read_config(checkpoint_dir), lora))
    partial = path.with_name(path.name + ".partial")
    write_lora(pairs, lora, GGUFReader(base_gguf), partial, f"twin {adapter.name}")
    partial.replace(path)
    return path


def weights_gguf(checkpoint_dir: Path, shipped: Path, kind: str) -> Path:
    """The model file llama.cpp runs: the shipped Q4_K_M file, or twin's own weights
    (the checkpoint dequantized from it) in its layout as `kind`, written once beside it.

    With Q4_K and Q6_K matrices llama.cpp rounds each activation vector to 8 bits before
    multiplying; with F16 ones it keeps 16 bits, so near-tied tokens tip less often away
    from the exact model's choice (README: A faster CPU backend has the agreement).
    """
    if kind == SHIPPED:
        return shipped
    path = shipped.with_name(f"{shipped.stem}.{kind.lower()}.gguf")
    if path.is_file():
        return path
    state = torch.load(checkpoint_dir / "lit_model.pth", mmap=True, weights_only=True)
    reader = GGUFReader(shipped)
    partial = path.with_name(path.name + ".partial")
    tensors = len(reader.tensors)
    with tqdm(total=tensors, desc=f"llama.cpp {kind}", unit="tensor", leave=False) as bar:
        write_weights(state, read_config(checkpoint_dir), reader, partial, kind, bar.update)
    partial.replace(path)
    return path
