"""LoRA training speed and memory: twin's loop against stock `litgpt finetune_lora`.

    python benchmarks/train_bench.py [--steps 3] [--batch-size 32] [--data-dir DIR]
    python benchmarks/train_bench.py --against naive-head

`--against naive-head` compares twin's loop with the same loop computing the output
layer the plain way (all response positions of a micro-batch at once, then
cross-entropy): what the chunked, fused loss in trainer/loss.py replaced.

Both train the embedded model (Gemma 3 270M) in the precision twin picks for this CPU
(bf16-true where it computes bf16 natively, else fp32) on the same samples (the
shipped persona, as `twin dataset` builds them, each prompt rendered by twin's
template and given to litgpt as its instruction with the "default" prompt style, the
prompt masked from the loss on both sides), with the same max_seq_length, rank, alpha,
learning rate and number of optimizer steps, each in its own process so that each
peak RSS is its own. Tokens/s counts real tokens (prompt and reply, no padding) over
the training time. The last line is one JSON object; `ratio` is twin's tokens/s over
stock's (target >= 2.5 with no more memory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peak_memory import peak_rss_mib  # noqa: E402


def _prepare(data_dir: Path, work: Path, max_seq_length: int) -> tuple[Path, Path]:
    """The converted model, and a folder with train.json/val.json for litgpt."""
    from exporter.desktop_import import import_desktop_export
    from storage import open_database
    from twin.commands.demo import sample_export
    from twin.dataset.build import build_dataset, read_samples
    from twin.dataset.settings import DatasetSettings
    from twin.model.checkpoints import prepare
    from twin.model.settings import ModelSettings
    from twin.prompt.samples import SampleMaker
    from twin.prompt.settings import PromptSettings
    from twin.prompt.text import Prompt

    checkpoint = prepare(ModelSettings(), data_dir / "models")

    async def load() -> None:
        async with open_database(work / "twin.db") as db:
            await import_desktop_export(db, sample_export())

    asyncio.run(load())
    samples = work / "samples.jsonl"
    build_dataset(
        work / "twin.db", samples, DatasetSettings(), SampleMaker(PromptSettings()), checkpoint
    )
    prompt = Prompt()
    stock = work / "stock"
    stock.mkdir()
    for split in ("train", "val"):
        rows = [
            {
                "instruction": prompt.render(s["input"], s["instruction"]),
                "input": "",
                "output": s["output"],
            }
            for s in read_samples(samples, split)
        ]
        (stock / f"{split}.json").write_text(json.dumps(rows, ensure_ascii=False))
    return checkpoint, samples


def naive_batch_loss(model: Any, batch: Any) -> tuple[Any, int]:
    """Logits at every response position of the micro-batch at once, then cross-entropy."""
    import torch.nn.functional as F

    logits = model(batch.idx, head_positions=batch.head_positions)
    return F.cross_entropy(logits.float(), batch.targets, reduction="sum"), batch.targets.numel()


def child_ours(
    checkpoint: str, samples: str, steps: int, batch: int, max_seq_length: int, naive: bool = False
) -> dict:
    import lightning as L
    from litgpt import Tokenizer

    from trainer.batches import encode
    from trainer.finetune import train
    from trainer.settings import TrainSettings
    from twin.dataset.build import read_samples
    from twin.model.device import choose_precision
    from twin.model.lora import build_model
    from twin.model.settings import LoRASettings
    from twin.prompt.text import Prompt

    if naive:
        import trainer.finetune

        trainer.finetune.batch_loss = naive_batch_loss
    fabric = L.Fabric(accelerator="cpu", devices=1, precision=choose_precision("cpu"))
    settings = TrainSettings(
        batch_size=batch,
        epochs=1,
        max_steps=steps,
        max_seq_length=max_seq_length,
        eval_interval=10**6,
        patience=0,
        learning_rate=3e-4,
        warmup_steps=1,
    )
    model = build_model(
        fabric, Path(checkpoint), LoRASettings(dropout=0.05), max_seq_length, narrow_embedding=True
    )
    tokenizer = Tokenizer(Path(checkpoint))
    train_samples = encode(
        read_samples(Path(samples), "train"), tokenizer, Prompt(), max_seq_length
    )
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(fabric, model, train_samples, [], settings, Path(run_dir))
    return {
        "tokens": result.tokens,
        "seconds": result.seconds,
        "final_loss": result.train_losses[-1][1],
    }


def child_stock(
    checkpoint: str,
    data_dir: str,
    out_dir: str,
    steps: int,
    batch: int,
    max_seq_length: int,
    micro_batch: int,
) -> dict:
    """litgpt's finetune_lora, through the function its CLI calls (`setup`), in this
    process so that its peak RSS can be read afterwards. The CLI cannot be given litgpt's
    plain `Default` prompt style (it has no name in 0.5.13), which the same samples need."""
    import contextlib
    import io

    from litgpt.args import EvalArgs, TrainArgs
    from litgpt.data import JSON
    from litgpt.finetune.lora import setup
    from litgpt.prompts import Default

    from twin.model.device import choose_precision

    # setup() ends by re-parsing sys.argv to save its hyperparameters: give it its own.
    sys.argv = ["litgpt", checkpoint]
    captured = io.StringIO()
    # After training, setup() merges the adapter using hyperparameters it re-reads from
    # sys.argv; with these arguments that step fails, after the report is printed.
    with contextlib.redirect_stdout(captured), contextlib.suppress(RuntimeError):
        setup(
            Path(checkpoint),
            out_dir=Path(out_dir),
            precision=choose_precision("cpu"),
            devices=1,
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            lora_query=True,
            lora_key=True,
            lora_value=True,
            lora_projection=True,
            lora_mlp=True,
            lora_head=False,
            data=JSON(Path(data_dir), mask_prompt=True, prompt_style=Default()),
            train=TrainArgs(
                save_interval=10**6,
                log_interval=1,
                global_batch_size=batch,
                micro_batch_size=micro_batch,
                lr_warmup_steps=1,
                epochs=100,
                max_steps=steps,
                max_seq_length=max_seq_length,
            ),
            eval=EvalArgs(
                interval=10**6, max_new_tokens=10, initial_validation=False, final_validation=False
            ),
            optimizer={"class_path": "torch.optim.AdamW", "init_args": {"lr": 3e-4}},
        )
    output = captured.getvalue()
    tokens = int(re.search(r"Tokens w/ Prompt\s*:\s*(\d+)", output).group(1))
    seconds = float(re.search(r"Training Time\s*:\s*([\d.]+) s", output).group(1))
    losses = re.findall(r"loss train: ([\d.]+)", output)
    return {
        "tokens": tokens,
        "seconds": seconds,
        "final_loss": float(losses[-1]) if losses else None,
    }


def measure(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--stock-micro-batch", type=int, default=4)
    parser.add_argument("--max-seq-length", type=int, default=1024)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data", help="where models live")
    parser.add_argument("--against", choices=["stock", "naive-head"], default="stock")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.against == "stock" and args.steps < 2:
        # litgpt's cosine schedule runs over max_steps minus the warmup step: zero at 1.
        parser.error("--steps must be at least 2 against stock litgpt")
    if args.child:
        job, *rest = args.child
        if job in ("ours", "naive-head"):
            numbers = map(int, rest[2:5])
            result = child_ours(rest[0], rest[1], *numbers, naive=job == "naive-head")
        else:
            result = child_stock(rest[0], rest[1], rest[2], *map(int, rest[3:]))
        result["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkpoint, samples = _prepare(args.data_dir, work, args.max_seq_length)
        common = (str(args.steps), str(args.batch_size), str(args.max_seq_length))
        started = time.perf_counter()
        ours = measure("ours", str(checkpoint), str(samples), *common)
        if args.against == "stock":
            stock = measure(
                "stock",
                str(checkpoint),
                str(work / "stock"),
                str(work / "out"),
                *common,
                str(args.stock_micro_batch),
            )
        else:
            stock = measure("naive-head", str(checkpoint), str(samples), *common)
        elapsed = time.perf_counter() - started
    for name, result in (("twin", ours), (args.against, stock)):
        rate = result["tokens"] / result["seconds"]
        print(
            f"{name:<13} {result['tokens']:>7,} tokens in {result['seconds']:6.1f} s = "
            f"{rate:6.1f} tokens/s, peak RSS {result['peak_rss_mib']:,.0f} MiB, "
            f"last loss {result['final_loss']}"
        )
    ours_rate = ours["tokens"] / ours["seconds"]
    stock_rate = stock["tokens"] / stock["seconds"]
    print(
        json.dumps(
            {
                "against": args.against,
                "steps": args.steps,
                "batch_size": args.batch_size,
                "twin_tokens_per_s": round(ours_rate, 1),
                "baseline_tokens_per_s": round(stock_rate, 1),
                "twin_peak_rss_mib": round(ours["peak_rss_mib"]),
                "baseline_peak_rss_mib": round(stock["peak_rss_mib"]),
                "ratio": round(ours_rate / stock_rate, 2),
                "rss_ratio": round(ours["peak_rss_mib"] / stock["peak_rss_mib"], 2),
                "wall_seconds": round(elapsed),
            }
        )
    )


if __name__ == "__main__":
    main()
