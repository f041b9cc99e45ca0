"""Reply generation speed: twin's engine against stock litgpt generation, and twin's two
backends side by side.

    python benchmarks/generate_bench.py [--prompts 3] [--context 480] [--long 1000] [--new 64]
    python benchmarks/generate_bench.py --backends [--prompts 3] [--long 1000] [--agree 50]
    python benchmarks/generate_bench.py --candidates 4 [--prompts 3] [--new 64]

The embedded model with an adapter (random LoRA weights: speed does not depend on what
they learned), bf16 on this CPU. Stock: litgpt's `generate` as its CLI runs it: the
adapter merged into the weights, a KV cache, bf16-true (litgpt's default precision on
a CPU). Both get the same prompts (persona dialogue of about `--context` tokens) and
decode exactly `--new` tokens with the same sampling settings, in this process, one
after the other. Decode tokens/s excludes the first token; time to first token is
the prefill plus one sampling step. Gemma 3 attends within 512-token windows in most
layers, and litgpt 0.5.13's ring-buffer cache refuses a longer prompt, so the two are
compared at `--context` tokens and twin alone is also timed at `--long` tokens (stock's
attempt is reported as its error). The last line is one JSON object; `ratio` is twin's
decode tokens/s over stock's (target >= 1.5; time to first token at 1,000 tokens < 2 s).

`--backends` runs `generate.backend` "twin" (as served: bf16 where the CPU runs it,
int8 copies for one-token steps), twin's engine computing exactly (fp32, no int8: the
reference) and "llama.cpp" with each of `--weights` (the shipped Q4_K_M file, or twin's
own weights as Q8_0 or F16; the adapter as a GGUF LoRA, 2 threads), each in a process of
its own so that each one's peak memory is its own: the same prompts, the same adapter,
exactly `--new` tokens. The adapter is random with a trained adapter's factor norms, or
`--trained DIR`; quality is the greedy next token on `--agree` persona prompts (or the
validation prompts of `--samples RUN/samples.jsonl`), and how often each engine picks
what the served and the exact twin pick. `ratio` is decode tokens/s over twin's served.

`--candidates N` times whole replies as the bot asks for them (twin's engine as served,
`generate.candidates` = 1, then N, the same persona prompts and seeds, stopping where a
reply ends): `ratio` is the median latency with N candidates over the one with 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lightning as L  # noqa: E402
import torch  # noqa: E402
from litgpt import lora  # noqa: E402
from litgpt.generate.base import generate_fn  # noqa: E402

from benchmarks.peak_memory import peak_rss_mib  # noqa: E402
from twin.engine.generate import ReplyEngine  # noqa: E402
from twin.engine.settings import Sampling  # noqa: E402
from twin.model.checkpoints import prepare, read_config  # noqa: E402
from twin.model.lora import adapter_state, load_adapter, lora_config  # noqa: E402
from twin.model.settings import LoRASettings, ModelSettings  # noqa: E402
from twin.prompt.text import Prompt  # noqa: E402

EXACT = "exact"  # the child variant that computes the model in fp32 without int8 copies
SAMPLING = {"temperature": 0.8, "top_k": 40, "top_p": 0.9}


def persona_prompts(engine: ReplyEngine, count: int, context_tokens: int) -> list[torch.Tensor]:
    from tests import persona

    export = persona.build()
    prompts = []
    for chat in export["chats"]["list"][:count]:
        lines = [
            ("I: " if m["from_id"] == f"user{persona.OWNER[0]}" else "R: ") + m["text"]
            for m in chat["messages"]
            if m["text"]
        ]
        context = "\n".join(lines)
        ids = engine.tokenizer.encode(Prompt().render(context, "ну как ты?"), bos=True)
        prompts.append(torch.cat([ids[:1], ids[-(context_tokens - 1) :]]))
    return prompts


# The norm of each LoRA factor after 40 steps of training the embedded model, measured
# on four personas (2.66 and 0.23-0.25 on all of them): a random adapter of this size
# moves the model about as far as a trained one.
TRAINED_NORMS = {"lora_A": 2.66, "lora_B": 0.24}


def trained_size_adapter(shapes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Random LoRA factors, each with the norm its kind has after training."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, value in shapes.items():
        noise = torch.randn(value.shape, generator=generator)
        state[name] = noise / noise.norm() * TRAINED_NORMS[name.rsplit(".", 1)[1]]
    return state


def random_adapter(engine: ReplyEngine) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        name: torch.randn(value.shape, generator=generator) * 0.01
        for name, value in adapter_state(engine.model).items()
    }


def stock_model(
    checkpoint: Path, adapter: dict[str, torch.Tensor], max_seq_length: int
) -> torch.nn.Module:
    """As litgpt's CLI: a model built in bf16-true, LoRA weights merged, a KV cache."""
    fabric = L.Fabric(accelerator="cpu", devices=1, precision="bf16-true")
    config = lora_config(read_config(checkpoint), LoRASettings())
    with fabric.init_module(empty_init=True):
        model = lora.GPT(config)
    state = torch.load(checkpoint / "lit_model.pth", mmap=True, weights_only=True)
    model.load_state_dict(state, strict=False)  # a separate lm_head copy, as litgpt loads it
    load_adapter(model, adapter)
    lora.merge_lora_weights(model)
    model.max_seq_length = max_seq_length
    with fabric.init_tensor():
        model.set_kv_cache(batch_size=1)
    model.eval()
    return fabric.setup_module(model)


def run_stock(model: torch.nn.Module, prompt: torch.Tensor, new: int) -> tuple[float, float]:
    torch.manual_seed(0)
    started = time.perf_counter()
    first = 0.0
    count = 0
    with torch.inference_mode():
        for _ in generate_fn(
            model, prompt, prompt.size(0) + new, include_prompt=False, include_eos=True, **SAMPLING
        ):
            count += 1
            if count == 1:
                first = time.perf_counter() - started
    total = time.perf_counter() - started
    return first, (count - 1) / (total - first)


def run_ours(engine: ReplyEngine, prompt: torch.Tensor, new: int) -> tuple[float, float]:
    sampling = Sampling(new, **SAMPLING, repetition_penalty=1.0, seed=0)
    started = time.perf_counter()
    tokens, first = engine.decode(prompt, sampling, stop=False)
    total = time.perf_counter() - started
    return first, (len(tokens) - 1) / (total - first)


def persona_texts(count: int, context_lines: int = 12) -> list[str]:
    """Prompts at `count` places of the sample persona's chats where someone wrote to
    Kostya, each with the lines before it as the context."""
    from tests import persona

    prompt = Prompt()
    texts = []
    for chat in persona.build()["chats"]["list"]:
        lines: list[str] = []
        for message in chat["messages"]:
            if not message["text"]:
                continue
            mine = message["from_id"] == f"user{persona.OWNER[0]}"
            if not mine and lines and len(texts) < count:
                texts.append(prompt.render("\n".join(lines[-context_lines:]), message["text"]))
            lines.append(prompt.tagged(message["text"], mine))
    return texts[:count]


def held_out_texts(samples: Path, count: int) -> list[str]:
    """The prompts of a training run's validation samples, as its adapter saw them."""
    from twin.dataset.build import read_samples

    prompt = Prompt()
    return [prompt.render_sample(s) for s in read_samples(samples, "val")[:count]]


def backend_child(args: argparse.Namespace) -> None:
    """One backend's numbers, as a JSON line: decode tokens/s and time to first token on
    the same prompts as the other's, greedy next tokens, and this process's peak RSS."""
    from twin.settings import Settings
    from twin.wiring import make_engine

    settings = Settings(data_dir=args.data_dir)
    settings.generate.backend = args.child
    settings.generate.max_seq_length = args.long + args.new + 8
    if args.variant == EXACT:  # twin's engine in fp32 with no int8 copies: the model itself
        checkpoint = prepare(settings.model, settings.models_dir)
        length = settings.generate.max_seq_length
        engine = ReplyEngine(checkpoint, Prompt(), "32-true", "cpu", length, int8_decoding=False)
    else:
        if args.child == "twin":
            settings.model.precision = args.variant
        else:
            settings.generate.llama_weights = args.variant
        engine = make_engine(settings)
    engine.use_adapter(args.adapter)
    sampling = Sampling(args.new, **SAMPLING, repetition_penalty=1.0, seed=0)

    def timed(ids: list[int]) -> tuple[float, float]:
        started = time.perf_counter()
        tokens, first = engine.decode(ids, sampling, stop=False)
        return first, (len(tokens) - 1) / (time.perf_counter() - started - first)

    texts = held_out_texts(args.samples, args.agree) if args.samples else persona_texts(args.agree)
    short = [engine.encode(t) for t in texts[: args.prompts]]
    long = [ids[:1] + ids[-(args.long - 1) :] for ids in (engine.encode(t * 8) for t in texts)]
    runs = [timed(ids) for ids in [short[0], *short]][1:]  # the first: a warm-up
    long_runs = [timed(ids) for ids in long[: args.prompts]]
    greedy = [engine.decode(engine.encode(t), Sampling.greedy(1))[0][:1] for t in texts]
    peak = peak_rss_mib()
    print(
        json.dumps(
            {
                "decode_tokens_per_s": statistics.median(r[1] for r in runs),
                "ttft_s": statistics.median(r[0] for r in runs),
                "long_ttft_s": statistics.median(r[0] for r in long_runs),
                "long_decode_tokens_per_s": statistics.median(r[1] for r in long_runs),
                "prompt_tokens": statistics.median(len(ids) for ids in short),
                "long_prompt_tokens": len(long[0]),
                "greedy": [g[0] if g else -1 for g in greedy],
                "peak_rss_mib": round(peak),
            }
        )
    )


def compare_backends(args: argparse.Namespace) -> None:
    import shutil
    import subprocess
    import tempfile

    from twin.engine.llama_cpp import adapter_gguf, weights_gguf
    from twin.model import registry
    from twin.model.checkpoints import embedded_gguf, read_config
    from twin.model.lora import build_model

    checkpoint = prepare(ModelSettings(), args.data_dir / "models")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.trained is not None:  # a copy: the GGUF LoRA is written beside it
            adapter = Path(tmp) / args.trained.name
            shutil.copytree(args.trained, adapter)
        else:
            fabric = L.Fabric(accelerator="cpu", devices=1, precision="bf16-true")
            model = build_model(fabric, checkpoint, LoRASettings(), 64)
            state = trained_size_adapter(adapter_state(model))
            del model
            meta = {
                "base_model": read_config(checkpoint).name,
                "dataset_fingerprint": "benchmark",
                "lora": LoRASettings().model_dump(),
            }
            adapter = registry.save(Path(tmp), state, meta)
        # The files llama.cpp needs are written once, here: in no backend's peak memory.
        shipped = embedded_gguf(args.data_dir / "models" / f"{checkpoint.name}.gguf")
        for kind in args.weights:
            adapter_gguf(adapter, checkpoint, weights_gguf(checkpoint, shipped, kind))
        runs = [("twin", "twin", args.precision), ("twin exact", "twin", EXACT)]
        runs += [(f"llama.cpp {kind}", "llama.cpp", kind) for kind in args.weights]
        for name, backend, variant in runs:
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    *("--child", backend, "--variant", variant),
                    "--adapter",
                    str(adapter),
                    *("--prompts", str(args.prompts), "--long", str(args.long)),
                    *("--new", str(args.new), "--agree", str(args.agree)),
                    *("--data-dir", str(args.data_dir)),
                    *(("--samples", str(args.samples)) if args.samples else ()),
                ],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    twin, exact = results["twin"], results["twin exact"]
    summary: dict[str, object] = {"prompts": len(twin["greedy"])}
    for name, r in results.items():
        print(
            f"{name:<16} decode {r['decode_tokens_per_s']:6.1f} tokens/s  first token "
            f"{r['ttft_s']:5.2f} s ({r['prompt_tokens']:.0f}-token prompt), "
            f"{r['long_ttft_s']:5.2f} s ({r['long_prompt_tokens']} tokens)  "
            f"peak RSS {r['peak_rss_mib']:,} MiB"
        )
        served = sum(a == b for a, b in zip(twin["greedy"], r["greedy"], strict=True))
        same = sum(a == b for a, b in zip(exact["greedy"], r["greedy"], strict=True))
        print(
            f"{'':<16} greedy next token as twin's served in {served}, as the exact "
            f"model's in {same} of {len(twin['greedy'])} prompts"
        )
        summary[name.replace(" ", "_").replace(".", "_")] = {
            **{k: v for k, v in r.items() if k != "greedy"},
            "agreement_with_served": round(served / len(twin["greedy"]), 3),
            "agreement_with_exact": round(same / len(twin["greedy"]), 3),
            "ratio": round(r["decode_tokens_per_s"] / twin["decode_tokens_per_s"], 2),
            "long_ttft_ratio": round(twin["long_ttft_s"] / r["long_ttft_s"], 2),
            "rss_ratio": round(r["peak_rss_mib"] / twin["peak_rss_mib"], 2),
        }
    print(json.dumps(summary))


def compare_candidates(args: argparse.Namespace) -> None:
    from twin.engine.settings import GenerationSettings
    from twin.model.device import choose_precision

    checkpoint = prepare(ModelSettings(), args.data_dir / "models")
    engine = ReplyEngine(checkpoint, Prompt(), choose_precision("cpu", "auto"), "cpu", 2048)
    load_adapter(engine.model, random_adapter(engine))
    texts = persona_texts(args.prompts)
    settings = GenerationSettings(max_new_tokens=args.new)

    def latencies(candidates: int) -> list[float]:
        seconds = []
        for seed, text in enumerate(texts):
            started = time.perf_counter()
            engine.generate(
                text, settings.model_copy(update={"seed": seed, "candidates": candidates})
            )
            seconds.append(time.perf_counter() - started)
        return seconds

    latencies(1)  # warm-up
    one, many = statistics.median(latencies(1)), statistics.median(latencies(args.candidates))
    print(f"one reply           {one:6.2f} s (median of {len(texts)} prompts)")
    print(f"best of {args.candidates} candidates {many:6.2f} s")
    print(
        json.dumps(
            {
                "candidates": args.candidates,
                "one_s": round(one, 2),
                "best_of_s": round(many, 2),
                "ratio": round(many / one, 2),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--context", type=int, default=480)
    parser.add_argument("--long", type=int, default=1000)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--backends", action="store_true", help="twin against llama.cpp")
    parser.add_argument(
        "--candidates", type=int, default=0, metavar="N", help="latency of the best of N replies"
    )
    parser.add_argument("--agree", type=int, default=50, help="prompts for greedy agreement")
    parser.add_argument("--child", choices=("twin", "llama.cpp"), help=argparse.SUPPRESS)
    parser.add_argument("--adapter", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument(
        "--trained", type=Path, help="with --backends: a trained adapter instead of a random one"
    )
    parser.add_argument(
        "--samples",
        type=Path,
        help="with --backends: a run's samples.jsonl; its validation prompts for agreement",
    )
    parser.add_argument(
        "--weights",
        nargs="+",
        default=["Q4_K_M", "F16"],
        choices=["Q4_K_M", "Q8_0", "F16"],
        help="with --backends: the llama.cpp weights to run (generate.llama_weights)",
    )
    parser.add_argument(
        "--precision", default="auto", help="with --backends: twin's model.precision"
    )
    args = parser.parse_args()
    if args.child:
        backend_child(args)
        return
    if args.backends:
        compare_backends(args)
        return
    if args.candidates:
        compare_candidates(args)
        return
    checkpoint = prepare(ModelSettings(), args.data_dir / "models")
    max_seq_length = max(args.context, args.long) + args.new + 8
    engine = ReplyEngine(checkpoint, Prompt(), "bf16-true", "cpu", max_seq_length)
    adapter = random_adapter(engine)
    load_adapter(engine.model, adapter)
    prompts = persona_prompts(engine, args.prompts, args.context)
    long_prompts = persona_prompts(engine, args.prompts, args.long)
    ours = [run_ours(engine, p, args.new) for p in [prompts[0], *prompts]][1:]  # 1st: warm-up
    ours_long = [run_ours(engine, p, args.new) for p in long_prompts]
    del engine
    model = stock_model(checkpoint, adapter, max_seq_length)
    stock = [run_stock(model, p, args.new) for p in [prompts[0], *prompts]][1:]
    try:
        run_stock(model, long_prompts[0], args.new)
        stock_long = "ran"
    except ValueError as err:
        stock_long = f"fails: {str(err).split('.')[0]}"
    result = {}
    long_ttft = statistics.median(r[0] for r in ours_long)
    long_rate = statistics.median(r[1] for r in ours_long)
    print(
        f"twin   decode {long_rate:6.1f} tokens/s   time to first token {long_ttft:5.2f} s "
        f"({args.long}-token prompt); stock litgpt at {args.long} tokens: {stock_long}"
    )
    for name, runs in (("twin", ours), ("stock", stock)):
        ttft = statistics.median(r[0] for r in runs)
        rate = statistics.median(r[1] for r in runs)
        result[name] = (ttft, rate)
        print(
            f"{name:<6} decode {rate:6.1f} tokens/s   time to first token {ttft:5.2f} s "
            f"({args.context}-token prompt, {args.new} new tokens, median of {len(runs)})"
        )
    print(
        json.dumps(
            {
                "context_tokens": args.context,
                "new_tokens": args.new,
                "twin_tokens_per_s": round(result["twin"][1], 1),
                "stock_tokens_per_s": round(result["stock"][1], 1),
                "twin_ttft_s": round(result["twin"][0], 2),
                "stock_ttft_s": round(result["stock"][0], 2),
                "ratio": round(result["twin"][1] / result["stock"][1], 2),
                "ttft_ratio": round(result["stock"][0] / result["twin"][0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
