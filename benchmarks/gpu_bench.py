"""LoRA training and batch-1 decoding at real model shapes, against what the card allows.

    python benchmarks/gpu_bench.py                  # a GPU: Llama-3.2-1B and Llama-3.1-8B
    python benchmarks/gpu_bench.py --tiny           # anywhere (CI, a CPU): small shapes
    python benchmarks/gpu_bench.py --models Llama-3.1-8B --peak-tflops 989 --bandwidth 3350

Random-init weights at the shapes of litgpt's configs (nothing is downloaded): training
speed does not depend on what the weights know. For each model:
- training, LoRA and QLoRA (NF4; model.qlora), in bf16 (float32 on a CPU): twin's
  training step (the output layer only at reply tokens, trainer.loss) on micro-batches
  of random tokens, half of each sample reply; tokens/s, model FLOPs utilisation (MFU)
  and peak memory beside model.footprint's estimate. MFU counts the FLOPs the step
  needs: the frozen weights' forward and input gradient (4 per weight and token; no
  weight gradient), the LoRA weights' 6, causal attention, and the output layer at
  reply tokens only; over the card's dense bf16 peak. Target on an H100/H200-class
  card: >= 40 % at 7-8B.
- decoding, batch 1, bf16, KV cache (the merged model, as twin serves one): tokens/s
  against the memory-bandwidth bound (every weight read once per token, and the cache).
  Target: >= 70 % of the bound. `--compile` runs the step with torch.compile
  ("reduce-overhead": CUDA graphs), which a batch-1 decode needs to leave the launch
  overhead behind on a fast card.
The baselines are the card's own limits (its bf16 peak and its bandwidth, known for
common cards by name, or given); on a CPU no peak is known and only the speeds print.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from litgpt.config import Config  # noqa: E402
from litgpt.model import GPT  # noqa: E402

from benchmarks.memory_table import random_model, small_config  # noqa: E402
from trainer.batches import Encoded, collate  # noqa: E402
from trainer.loss import batch_loss  # noqa: E402
from twin.model.footprint import GiB, block_linears, training_footprint  # noqa: E402
from twin.model.qlora import quantize_frozen  # noqa: E402
from twin.model.settings import LoRASettings  # noqa: E402

# Dense bf16 TFLOP/s and memory bandwidth in GB/s, from the makers' data sheets; the
# first name found in torch.cuda.get_device_name() is taken.
CARDS = {
    "H200": (989.0, 4800.0),
    "H100 NVL": (835.0, 3900.0),
    "H100 PCIe": (756.0, 2000.0),
    "H100": (989.0, 3350.0),  # SXM
    "A100-SXM4-80GB": (312.0, 2039.0),
    "A100": (312.0, 1555.0),
    "L40S": (362.0, 864.0),
    "L4": (121.0, 300.0),
    "A10": (125.0, 600.0),
    "RTX 4090": (165.0, 1008.0),
    "RTX 3090": (71.0, 936.0),
}
MODELS = ["Llama-3.2-1B", "Llama-3.1-8B"]
METHODS = {"LoRA": None, "QLoRA (NF4)": "bnb.nf4"}  # in bf16 on a GPU, float32 on a CPU


def card_limits(device: str, peak_tflops: float | None, bandwidth: float | None) -> dict:
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    known = next((limits for key, limits in CARDS.items() if key in name), (None, None))
    return {
        "name": name,
        "peak_flops": (peak_tflops or known[0] or 0) * 1e12 or None,
        "bandwidth": (bandwidth or known[1] or 0) * 1e9 or None,
    }


def tiny_config() -> Config:
    return small_config(256, 4)


def step_flops(config: Config, lora: LoRASettings, lengths: list[int]) -> float:
    """The FLOPs one training step on samples of `lengths` needs (see the docstring)."""
    tokens = sum(lengths)
    linears = block_linears(config)
    frozen = config.n_layer * sum(i * o for _, i, o in linears)
    adapted = config.n_layer * sum(lora.r * (i + o) for t, i, o in linears if t in lora.targets)
    attention = sum(6 * s * s * config.n_head * config.head_size for s in lengths)
    head = 4 * config.n_embd * config.padded_vocab_size * tokens / 2  # reply tokens only
    return 4 * frozen * tokens + 6 * adapted * tokens + config.n_layer * attention + head


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def train_speed(
    config: Config, quantize: str | None, batch: int, length: int, steps: int, device: str
) -> dict[str, Any]:
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    lora = LoRASettings()
    model = random_model(config, lora, device, dtype, length)
    if quantize:
        quantize_frozen(model, quantize)
        model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.padded_vocab_size, (batch, length), generator=generator)
    samples = [Encoded(row.tolist(), length // 2) for row in ids]
    micro = collate(samples).to(device)

    def step() -> None:
        loss, _ = batch_loss(model, micro)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: kernels chosen, optimizer state made
    synchronize(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = (time.perf_counter() - started) / steps
    estimate = training_footprint(
        config, lora, batch * length, quantize, element_bytes=dtype.itemsize
    )
    result = {
        "tokens_per_s": batch * length / seconds,
        "flops_per_s": step_flops(config, lora, [length] * batch) / seconds,
        "estimated_gib": estimate.total / GiB,
    }
    if device == "cuda":
        result["peak_gib"] = torch.cuda.max_memory_allocated() / GiB
    return result


def decode_speed(config: Config, prompt: int, new: int, device: str, compile: bool) -> dict:
    """Batch-1 tokens/s of the plain model with a KV cache, and the bytes each token reads."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device("meta"):
        model = GPT(config)
    model.to_empty(device=device)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.02)
    model.to(dtype).eval()
    model.max_seq_length = prompt + new
    model.set_kv_cache(batch_size=1, device=torch.device(device), dtype=dtype)
    forward = torch.compile(model, mode="reduce-overhead") if compile else model
    ids = torch.randint(0, config.padded_vocab_size, (1, prompt), device=device)
    with torch.inference_mode():
        logits = model(ids, torch.arange(prompt, device=device))
        token = logits[:, -1:].argmax(-1)
        times = []
        for position in range(prompt, prompt + new):
            synchronize(device)
            started = time.perf_counter()
            logits = forward(token, torch.tensor([position], device=device))
            token = logits[:, -1:].argmax(-1)
            synchronize(device)
            times.append(time.perf_counter() - started)
    timed = times[new // 4 :]  # after compilation and warm-up
    per_token = sum(timed) / len(timed)
    # every weight but the embedding, of which a token reads one row (a tied output
    # layer is named first, so it counts)
    weights = sum(
        p.numel() for n, p in model.named_parameters() if not n.startswith("transformer.wte")
    )
    cache = 2 * config.n_layer * (prompt + new) * config.n_query_groups * config.head_size
    return {"tokens_per_s": 1 / per_token, "bytes_per_token": (weights + cache) * dtype.itemsize}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="small shapes (CI, a CPU)")
    parser.add_argument("--models", nargs="+", default=MODELS, help="litgpt config names")
    parser.add_argument("--batch", type=int, default=4, help="samples per micro-batch")
    parser.add_argument("--length", type=int, default=2048, help="tokens per sample")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--new", type=int, default=128, help="decoded tokens")
    parser.add_argument("--compile", action="store_true", help="decode with torch.compile")
    parser.add_argument("--peak-tflops", type=float, help="the card's dense bf16 TFLOP/s")
    parser.add_argument("--bandwidth", type=float, help="the card's memory bandwidth, GB/s")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.tiny:
        configs = {"tiny": tiny_config()}
        args.batch, args.length, args.steps, args.new = 2, 256, 2, 16
    else:
        configs = {name: Config.from_name(name) for name in args.models}
    limits = card_limits(device, args.peak_tflops, args.bandwidth)
    if limits["peak_flops"] and limits["bandwidth"]:
        flops, bandwidth = limits["peak_flops"] / 1e12, limits["bandwidth"] / 1e9
        peaks = f"{flops:.0f} TFLOP/s bf16, {bandwidth:.0f} GB/s"
    else:
        peaks = "no known peaks (--peak-tflops, --bandwidth)"
    print(f"{limits['name']}: {peaks}")
    report: dict[str, Any] = {"device": limits["name"], "models": {}}
    for name, config in configs.items():
        entry: dict[str, Any] = {}
        for method, quantize in METHODS.items():
            if quantize and device == "cpu" and not args.tiny:
                continue
            result = train_speed(config, quantize, args.batch, args.length, args.steps, device)
            if device == "cuda":
                torch.cuda.empty_cache()  # the last model's memory, for the next
            if limits["peak_flops"]:
                result["mfu"] = result["flops_per_s"] / limits["peak_flops"]
            entry[method] = result
            peak = f", peak {result['peak_gib']:.1f} GiB" if "peak_gib" in result else ""
            mfu = f", MFU {result['mfu']:.1%}" if "mfu" in result else ""
            print(
                f"{name:14} train {method:12} {result['tokens_per_s']:10,.0f} tokens/s{mfu}"
                f"{peak} (estimated {result['estimated_gib']:.1f} GiB)"
            )
        decode = decode_speed(config, 128, args.new, device, args.compile)
        if limits["bandwidth"]:
            bound = limits["bandwidth"] / decode["bytes_per_token"]
            decode["bound_tokens_per_s"] = bound
            decode["of_bound"] = decode["tokens_per_s"] / bound
        entry["decode"] = decode
        share = ""
        if "of_bound" in decode:
            share = f" = {decode['of_bound']:.0%} of the bound {decode['bound_tokens_per_s']:,.0f}"
        print(f"{name:14} decode batch 1 {decode['tokens_per_s']:10,.1f} tokens/s{share}")
        report["models"][name] = entry
    print(json.dumps(report))


if __name__ == "__main__":
    main()
