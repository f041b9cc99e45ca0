"""`twin import` against plain `json.load` of the same file: time and peak memory.

    python benchmarks/import_bench.py [--messages 1000000]

Writes a synthetic full-account export (tests/synthetic_export.py), then in separate
child processes (so each peak RSS is its own, and each time includes its start-up)
runs `json.load` of the file and the whole `twin import` command into a new database:
once as a user runs it (the memory index built as well) and once with
`memory.enabled = false`, so what indexing costs is the difference. The import's peak
memory is that of its whole process tree (the command hands rows to a writer process
and indexing to worker processes), sampled. Meanwhile another
writer (as the bot or a training heartbeat would) writes every 20 ms on its own
connection: how long did it ever have to wait? The last line is one JSON object with
the ratios: time_ratio = import / json.load (target <= 2), rss_ratio = import /
json.load (target <= 0.2).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peak_memory import TreePeak, peak_rss_mib  # noqa: E402


def child_json_load(path: str) -> dict:
    started = time.perf_counter()
    with open(path, encoding="utf-8") as file:
        json.load(file)
    return {"seconds": time.perf_counter() - started}


def child_import(path: str, db_path: str, memory: str) -> dict:
    """`twin import PATH` as the command line runs it, with another writer beside it."""
    import os
    import sqlite3
    import threading

    from twin.cli import main

    asyncio.run(_create(Path(db_path)))  # the other writer needs the file to exist
    waits: list[float] = []
    stop = threading.Event()

    def other_writer() -> None:
        conn = sqlite3.connect(db_path, timeout=30)
        conn.execute("CREATE TABLE IF NOT EXISTS bench_writes (at REAL)")
        while not stop.is_set():
            started = time.perf_counter()
            with conn:
                conn.execute("INSERT INTO bench_writes VALUES (?)", (time.time(),))
            waits.append(time.perf_counter() - started)
            time.sleep(0.02)
        conn.close()

    os.environ["TWIN_MEMORY__ENABLED"] = memory
    writer = threading.Thread(target=other_writer)
    writer.start()
    out = Path(db_path).with_suffix(".json")
    try:
        with (
            out.open("w", encoding="utf-8") as file,
            contextlib.redirect_stdout(file),
            TreePeak() as tree,
        ):
            code = main(["import", path, "--db", db_path, "--json"])
    finally:
        stop.set()
        writer.join()
    assert code == 0, f"twin import exited with {code}"
    report = json.loads(out.read_text(encoding="utf-8"))
    return {
        "new": report["new"],
        "import_seconds": report["seconds"],
        "memory_seconds": report["memory"]["seconds"] if report["memory"] else 0.0,
        "other_writer_max_wait": max(waits, default=0.0),
        "other_writes": len(waits),
        "tree_peak_rss_mib": tree.peak_mib,  # its writer and indexing processes included
    }


async def _create(db_path: Path) -> None:
    from storage import open_database

    async with open_database(db_path):
        pass


def measure(*args: str) -> dict:
    """Run this file as a child doing one job; its result, its peak RSS (MiB) and the
    seconds the whole process took, start-up included."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job, *rest = args.child
        result = child_json_load(*rest) if job == "json" else child_import(*rest)
        result["peak_rss_mib"] = result.pop("tree_peak_rss_mib", None) or peak_rss_mib()
        print(json.dumps(result))
        return

    from tests.synthetic_export import write_export

    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "result.json"
        started = time.perf_counter()
        write_export(export, args.messages)
        size_mib = export.stat().st_size / 2**20
        print(
            f"export: {args.messages:,} messages, {size_mib:,.0f} MiB "
            f"(written in {time.perf_counter() - started:.0f} s)"
        )
        baseline = measure("json", str(export))
        rss = baseline["peak_rss_mib"]
        print(f"json.load                  {baseline['seconds']:7.2f} s   peak RSS {rss:6.0f} MiB")
        runs = {}
        for memory in ("true", "false"):
            ours = measure("import", str(export), str(Path(tmp) / f"{memory}.db"), memory)
            runs[memory] = ours
            label = "twin import" if memory == "true" else "twin import, memory off"
            print(
                f"{label:26} {ours['seconds']:7.2f} s   peak RSS {ours['peak_rss_mib']:6.0f} MiB"
                f"   ({ours['import_seconds']:.2f} s import, {ours['memory_seconds']:.2f} s "
                f"memory index, the rest start-up)"
            )
        ours, off = runs["true"], runs["false"]
        wait = ours["other_writer_max_wait"]
        print(
            f"another writer meanwhile: {ours['other_writes']:,} writes, the longest waited "
            f"{wait:.2f} s ({wait / ours['seconds']:.1%} of the import)"
        )
    print(
        json.dumps(
            {
                "messages": args.messages,
                "json_load_seconds": round(baseline["seconds"], 2),
                "json_load_peak_rss_mib": round(baseline["peak_rss_mib"]),
                "twin_import_seconds": round(ours["seconds"], 2),
                "twin_import_peak_rss_mib": round(ours["peak_rss_mib"]),
                "import_seconds": round(ours["import_seconds"], 2),
                "memory_index_seconds": round(ours["memory_seconds"], 2),
                "memory_off_seconds": round(off["seconds"], 2),
                "memory_off_peak_rss_mib": round(off["peak_rss_mib"]),
                "import_messages_per_s": round(ours["new"] / ours["seconds"]),
                "time_ratio": round(ours["seconds"] / baseline["seconds"], 3),
                "rss_ratio": round(ours["peak_rss_mib"] / baseline["peak_rss_mib"], 3),
                "memory_off_time_ratio": round(off["seconds"] / baseline["seconds"], 3),
                "other_writer_max_wait_s": round(ours["other_writer_max_wait"], 3),
                "other_writer_wait_ratio": round(
                    ours["other_writer_max_wait"] / ours["seconds"], 4
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
