"""The training recipe on a development persona: import, train, and the held-out numbers.

    python benchmarks/persona_eval.py iago [--set train.learning_rate=1e-3 ...]
        [--models DIR] [--work DIR] [--eval [--generate N]]
    python benchmarks/persona_eval.py --all [--set ...]      (or several names)
        [--save DIR]
    python benchmarks/persona_eval.py --pool DIR/*.json      (the table of saved runs)

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

`--all` runs every persona (the sample and the development ones; several names: those)
with `--eval` and prints a table of memory-off selection per persona and pooled over
them (their conversations resampled together: the interval of the pooled difference is
what a change of recipe must move), memory on beside it. `--save DIR` keeps each
persona's numbers in DIR/NAME.json (benchmarks/results/ holds the recorded ones) and
`--pool` prints the table of such records, so personas run in separate invocations
pool as if run together.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
    args, names = parse_arguments(sys.argv[1:])
    if args.pool:
        rows = {data["persona"]: data["selection"] for data in map(read_record, args.pool)}
        print(selection_table(rows))
        print(json.dumps({"personas": rows, "pooled": pooled(rows)}))
        return
    if len(args.persona) == 1 and args.save is None:
        summary, evaluation = run_persona(args.persona[0], args, args.work)
        if evaluation is not None:
            print(json.dumps(evaluation, ensure_ascii=False))
        print(json.dumps(summary))
        return
    started = time.perf_counter()
    rows = {}
    for name in names:
        work = args.work / name if args.work else None
        summary, evaluation = run_persona(name, with_changes(args, eval=True), work)
        rows[name] = evaluation["selection"]
        record = {"persona": name, "summary": summary, "selection": rows[name]}
        if args.save is not None:
            write_record(args.save, record)
        print(json.dumps(record))
    print(selection_table(rows))
    minutes = (time.perf_counter() - started) / 60
    print(json.dumps({"personas": rows, "pooled": pooled(rows), "minutes": round(minutes, 1)}))


def parse_arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The arguments and the personas they name (every one with --all). Names are checked
    here, not by argparse: its `choices` rejects the empty list that --all leaves."""
    known = known_personas()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("persona", nargs="*", metavar="PERSONA", help=", ".join(known))
    parser.add_argument("--all", action="store_true", help="every persona, then the pooled table")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--models", type=Path, default=ROOT / "data" / "models")
    parser.add_argument("--work", type=Path, help="keep the data folder here")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "twin-dev")
    parser.add_argument("--eval", action="store_true", help="print `twin eval --json` too")
    parser.add_argument("--generate", type=int, default=0, metavar="N", help="with --eval")
    parser.add_argument(
        "--save", type=Path, metavar="DIR", help="write each persona's record to DIR/NAME.json"
    )
    parser.add_argument(
        "--pool",
        type=Path,
        nargs="+",
        metavar="RECORD",
        help="no runs: the table of records --save wrote (runs of several invocations)",
    )
    args = parser.parse_args(argv)
    if args.pool:
        if args.persona or args.all:
            parser.error("--pool reads records: name no persona and no --all")
        return args, []
    if args.all == bool(args.persona):
        parser.error("name a persona (or several), --all, or --pool RECORD...")
    unknown = [name for name in args.persona if name not in known]
    if unknown:
        parser.error(f"no persona {', '.join(unknown)}; known: {', '.join(known)}")
    return args, known if args.all else args.persona


def known_personas() -> list[str]:
    """The sample, the play characters for development, the Chit-Chat participants."""
    from tests import dev_chitchat as chitchat
    from tests.dev_personas import PERSONAS

    return [SAMPLE, *sorted(PERSONAS), *chitchat.DEVELOPMENT]


def write_record(folder: Path, record: dict) -> Path:
    """One persona's run as a file of numbers (no text of any chat): the summary, the
    selection report with its per-conversation counts (what pooling resamples), the
    commit and the machine, so that runs of separate invocations pool into one table."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    record = {
        **record,
        "recorded": time.strftime("%Y-%m-%d"),
        "commit": commit or None,
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['persona']}.json"
    path.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def read_record(path: Path) -> dict:
    """A record write_record wrote; one clear error for anything else."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record["selection"]["by_conversation"]
        return record
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"{path}: not a persona record ({err})") from None


def with_changes(args: argparse.Namespace, **changes: object) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), **changes})


def run_persona(
    persona: str, args: argparse.Namespace, work: Path | None
) -> tuple[dict, dict | None]:
    """Import, train and (with args.eval) evaluate one persona in a data folder of its own:
    the summary of `twin train --json`, and `twin eval --json` or None."""
    work = work or Path(tempfile.mkdtemp(prefix=f"twin-{persona}-"))
    data_folder(work, args.models)
    export = persona_export(persona, work, args.cache)
    env = twin_environment(work, args.set)
    twin(["import", str(export)], env)
    started = time.perf_counter()
    run = json.loads(twin(["train", "--json"], env))
    minutes = (time.perf_counter() - started) / 60
    peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest
    selection = run["selection"]
    summary = {
        "persona": persona,
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
    evaluation = None
    if args.eval:
        command = ["eval", "--json", "--adapter", str(run["adapter_id"])]
        evaluation = json.loads(twin([*command, "--generate", str(args.generate)], env))
    return summary, evaluation


def data_folder(work: Path, models: Path) -> Path:
    """A data folder at `work` whose models/ is `models` (the converted model, once)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "models").unlink(missing_ok=True)
    models.mkdir(parents=True, exist_ok=True)
    (work / "models").symlink_to(models.resolve())
    return work


def persona_export(persona: str, work: Path, cache: Path) -> Path:
    """The persona's Telegram export (written into `work` unless it ships with twin)."""
    from tests import dev_chitchat as chitchat
    from tests.dev_personas import PERSONAS, build
    from tests.exports import write_json
    from twin.commands.demo import sample_export

    if persona == SAMPLE:
        return sample_export()
    if persona in chitchat.DEVELOPMENT:
        return write_json(work / "result.json", chitchat.build(persona, cache))
    return write_json(work / "result.json", build(PERSONAS[persona], cache))


def twin_environment(work: Path, changes: list[str]) -> dict[str, str]:
    """This process's environment with the data folder `work` and each SECTION.KEY=VALUE
    of `changes` as the TWIN_* variable a user would set."""
    env = {**os.environ, "TWIN_DATA_DIR": str(work), "PYTHONPATH": str(ROOT)}
    for item in changes:
        key, _, value = item.partition("=")
        env["TWIN_" + key.upper().replace(".", "__")] = value
    return env


def pooled(selections: dict[str, dict]) -> dict:
    """Memory-off selection of every persona as one set of conversations: the share
    each model got right over all tasks, and the intervals of resampling them all."""
    from trainer.sense import from_conversations

    conversations = [c for s in selections.values() for c in s.get("by_conversation", [])]
    report = from_conversations(conversations).as_dict()
    return {key: report[key] for key in POOLED_KEYS}


# What the pooled row reports (its per-conversation counts are the personas' own).
POOLED_KEYS = (
    "tasks",
    "conversations",
    "base",
    "adapter",
    "base_ci95",
    "adapter_ci95",
    "difference_ci95",
)


def selection_table(selections: dict[str, dict]) -> str:
    """One row per persona and the pooled row: memory-off selection, base and twin, the
    difference's interval, and memory on beside it (all, novel)."""

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    def interval(bounds: list[float] | None) -> str:
        return "-" if bounds is None else f"{100 * bounds[0]:+.0f} to {100 * bounds[1]:+.0f}"

    lines = [
        "| persona | tasks | conversations | base | twin | twin - base, 95 % | "
        "memory on: base / twin | novel: tasks, base / twin |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in [*selections.items(), ("pooled", pooled(selections))]:
        memory = s.get("memory") or {}
        novel = memory.get("novel") or {}
        lines.append(
            f"| {name} | {s['tasks']} | {s['conversations']} | {share(s['base'])} | "
            f"{share(s['adapter'])} | {interval(s.get('difference_ci95'))} | "
            f"{share(memory.get('base'))} / {share(memory.get('adapter'))} | "
            f"{novel.get('tasks', '-')}, {share(novel.get('base'))} / "
            f"{share(novel.get('adapter'))} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
