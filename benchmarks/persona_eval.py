"""The training recipe on a development persona: import, train, and the held-out numbers.

    python benchmarks/persona_eval.py iago [--set train.learning_rate=1e-3 ...]
        [--models DIR] [--work DIR] [--eval [--generate N]]

A development persona is one character of a public-domain play as a Telegram export
(tests/dev_personas.py), or one participant of the Chit-Chat Challenge corpus, real typed
chat, by id prefix (tests/dev_chitchat.py); `sample` is the demo's Kostya (twin/sample),
written for twin.
Each run gets a fresh data folder, the given settings as TWIN_* environment variables
(the same path a user's config takes), and prints the adapter's numbers beside the base
model's as `twin train --json` reports them: loss per reply token (`improvement`: the
relative drop) and selection (hits@1 of 10, in points over the base model). `--eval`
prints `twin eval --json` as well (the same numbers, computed again, with token counts
and perplexities); `--generate N` adds the chrF of N generated replies to the real ones.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def twin(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "twin", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"twin {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


SAMPLE = "sample"


def main() -> None:
    from tests import dev_chitchat as chitchat
    from tests.dev_personas import PERSONAS, build
    from tests.exports import write_json
    from twin.commands.demo import sample_export

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("persona", choices=[SAMPLE, *sorted(PERSONAS), *chitchat.DEVELOPMENT])
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--models", type=Path, default=ROOT / "data" / "models")
    parser.add_argument("--work", type=Path, help="keep the data folder here")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "twin-dev")
    parser.add_argument("--eval", action="store_true", help="print `twin eval --json` too")
    parser.add_argument("--generate", type=int, default=0, metavar="N", help="with --eval")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix=f"twin-{args.persona}-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "models").unlink(missing_ok=True)
    args.models.mkdir(parents=True, exist_ok=True)
    (work / "models").symlink_to(args.models.resolve())  # the converted model, once
    if args.persona == SAMPLE:
        export = sample_export()
    elif args.persona in chitchat.DEVELOPMENT:
        export = write_json(work / "result.json", chitchat.build(args.persona, args.cache))
    else:
        export = write_json(work / "result.json", build(PERSONAS[args.persona], args.cache))
    env = {**os.environ, "TWIN_DATA_DIR": str(work), "PYTHONPATH": str(ROOT)}
    for item in args.set:
        key, _, value = item.partition("=")
        env["TWIN_" + key.upper().replace(".", "__")] = value
    twin(["import", str(export)], env)
    started = time.perf_counter()
    run = json.loads(twin(["train", "--json"], env))
    minutes = (time.perf_counter() - started) / 60
    peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest
    selection = run["selection"]
    summary = {
        "persona": args.persona,
        "settings": args.set,
        "train_minutes": round(minutes, 1),
        "train_peak_rss_mib": round(peak_rss),
        "steps": run["training"]["steps"],
        "best_step": run["training"]["best_step"],
        "stopped": run["training"]["stopped"],
        "tokens_per_s": run["training"]["tokens_per_s"],
        "samples": run["samples"],
        "base_loss": round(run["base_loss"], 4),
        "adapter_loss": round(run["adapter_loss"], 4),
        "improvement": round(run["improvement"], 4),
        "selection_tasks": selection["tasks"],
        "selection_base": selection["base"],
        "selection_adapter": selection["adapter"],
        "selection_points": None
        if selection["base"] is None
        else round(100 * (selection["adapter"] - selection["base"]), 1),
        "batch_size": run["training"]["batch_size"],
        "stages": run["stages"],
    }
    if args.eval:
        command = ["eval", "--json", "--adapter", str(run["adapter_id"])]
        print(twin([*command, "--generate", str(args.generate)], env).strip())
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
