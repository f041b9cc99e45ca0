"""The training memory table of the README, and a check of it against measured peaks.

    python benchmarks/memory_table.py            # the table (markdown), from the configs
    python benchmarks/memory_table.py --check    # estimate against a measured training step

The table: model.footprint's estimate for each base model (the embedded Gemma 3 270M,
and litgpt's configs of larger ones) by method (bf16 LoRA, QLoRA NF4) and context length
(one sample of that many tokens per micro-batch, half of them reply), rank 16 on every
target, as twin trains by default.

`--check` trains one step of random-init models and compares the peak with the
estimate: on a GPU the real shapes of Llama-3.2-1B in bf16 and NF4 (torch's peak of
allocated memory); on a CPU small shapes in float32, where the peak is read off PyTorch's
profiler (every tensor's allocation and free during the step: the process's RSS would
mostly measure the runtime). The baseline is the measurement, and `ratio` is estimate
over measured. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from litgpt import lora  # noqa: E402
from litgpt.config import Config, name_to_config  # noqa: E402

from trainer.batches import Encoded, collate  # noqa: E402
from trainer.loss import batch_loss  # noqa: E402
from twin.model.footprint import GiB, training_footprint  # noqa: E402
from twin.model.lora import TwinGPT, lora_config  # noqa: E402
from twin.model.qlora import quantize_frozen  # noqa: E402
from twin.model.settings import LoRASettings  # noqa: E402

# litgpt's configs, and whether the checkpoint's output layer is its embedding (Hugging
# Face's tie_word_embeddings: twin then holds one matrix for both)
TABLE_MODELS = {"Llama-3.2-1B": True, "Llama-3.2-3B": True, "Llama-3.1-8B": False,
                "Qwen2.5-14B": False}  # fmt: skip
CONTEXTS = [1024, 4096, 8192]
METHODS = {  # model.quantize, train.gradient_checkpointing
    "bf16 LoRA": (None, False),
    "QLoRA (NF4)": ("bnb.nf4", False),
    "QLoRA, recomputed": ("bnb.nf4", True),
}


def embedded_config() -> Config:
    """Gemma 3 270M's config, read from the GGUF that ships with twin."""
    from gguf import GGUFReader

    from twin.model.checkpoints import embedded_gguf
    from twin.model.gguf_convert import gemma3_config

    with tempfile.TemporaryDirectory() as work:
        return gemma3_config(GGUFReader(embedded_gguf(Path(work) / "model.gguf")))


def table() -> str:
    lora = LoRASettings()
    models = [("Gemma 3 270M (embedded)", embedded_config(), True)] + [
        (name, Config.from_name(name), tied) for name, tied in TABLE_MODELS.items()
    ]
    header = "| model | method | " + " | ".join(f"{c:,} tokens" for c in CONTEXTS) + " |"
    rows = [header, "|" + "---|" * (len(CONTEXTS) + 2)]
    for name, config, tied in models:
        for method, (quantize, recompute) in METHODS.items():
            cells = [
                f"{footprint(config, lora, c, quantize, recompute=recompute, tied=tied):.1f} GiB"
                for c in CONTEXTS
            ]
            rows.append(f"| {name} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def footprint(*args: Any, **kwargs: Any) -> float:
    """training_footprint's total, in GiB."""
    return training_footprint(*args, **kwargs).total / GiB


def small_config(n_embd: int, n_layer: int) -> Config:
    return Config(
        **{
            **name_to_config["Llama-3.2-1B"],
            "n_embd": n_embd,
            "n_layer": n_layer,
            "n_head": n_embd // 64,
            "n_query_groups": max(1, n_embd // 256),
            "head_size": 64,
            "intermediate_size": 4 * n_embd,
            "vocab_size": 8192,
            "padded_vocab_size": 8192,
        }
    )


def random_model(
    config: Config, settings: LoRASettings, device: str, dtype: torch.dtype, length: int
) -> Any:
    """Random weights at `config`'s shapes (LoRA's B at zero), for samples up to `length`."""
    with torch.device("meta"):
        model = TwinGPT(lora_config(config, settings))
    model.to_empty(device=device)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0, 0.02) if "lora_B" not in name else param.zero_()
    model.to(dtype)
    model.max_seq_length = length  # as training sets it: the rotary tables fit it
    lora.mark_only_lora_as_trainable(model)
    return model


def one_step(model: Any, tokens: int, device: str, recompute: bool) -> None:
    """Forward, backward and AdamW on one sample of `tokens` tokens, half of them reply."""
    ids = torch.randint(0, model.config.padded_vocab_size, (tokens,)).tolist()
    batch = collate([Encoded(ids, tokens // 2)]).to(device)
    loss, _ = batch_loss(model, batch, recompute=recompute)
    loss.backward()
    model.optimizer.step()
    model.optimizer.zero_grad(set_to_none=True)


def measured_peak(
    config: Config, tokens: int, quantize: str | None, recompute: bool, device: str
) -> float:
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    settings = LoRASettings()
    model = random_model(config, settings, "cpu" if quantize else device, dtype, tokens)
    if quantize:
        quantize_frozen(model, quantize)
        model.to(device)
    model.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    one_step(model, tokens, device, recompute)  # the optimizer's moments exist from here on
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        one_step(model, tokens, device, recompute)
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated())
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as profiler:  # fmt: skip
        one_step(model, tokens, device, recompute)
    with tempfile.TemporaryDirectory() as work:
        timeline = Path(work) / "memory.json"
        profiler.export_memory_timeline(str(timeline), device="cpu")
        _, sizes = json.loads(timeline.read_text())
    return float(max(sum(at) for at in sizes))


def check(device: str) -> list[dict[str, Any]]:
    """(config, tokens, quantize, recompute) cases: estimate against measurement."""
    if device == "cuda":
        real = Config.from_name("Llama-3.2-1B")
        cases = [(real, t, q, r) for t in (1024, 4096) for q, r in METHODS.values()]
    else:
        small = small_config(256, 4)
        cases = [(small, 256, None, False), (small, 1024, None, False)]
        cases += [(small_config(512, 2), 512, None, False), (small, 512, "bnb.nf4", False)]
        cases += [(small, 1024, None, True)]
    element = 2 if device == "cuda" else 4
    results = []
    for config, tokens, quantize, recompute in cases:
        estimate = training_footprint(
            config, LoRASettings(), tokens, quantize, element, recompute
        ).total
        measured = measured_peak(config, tokens, quantize, recompute, device)
        results.append(
            {
                "model": f"{config.n_layer}x{config.n_embd}",
                "tokens": tokens,
                "quantize": quantize,
                "recompute": recompute,
                "estimate_mib": round(estimate / 2**20, 1),
                "measured_mib": round(measured / 2**20, 1),
                "ratio": round(estimate / measured, 3),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="estimate against a measured step")
    args = parser.parse_args()
    if not args.check:
        print(table())
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = check(device)
    ratios = [r["ratio"] for r in results]
    print(json.dumps({"device": device, "cases": len(results), "ratio_min": min(ratios),
                      "ratio_max": max(ratios)}))  # fmt: skip


if __name__ == "__main__":
    main()
