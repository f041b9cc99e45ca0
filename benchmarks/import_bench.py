"""Import speed and memory against plain `json.load` of the same file.

    python benchmarks/import_bench.py [--messages 1000000]

Writes a synthetic full-account export (tests/synthetic_export.py), then in separate
child processes (so each peak RSS is its own) times `json.load` of the file and
`twin import` of it into a new database. The last line is one JSON object with the
ratios: time_ratio = import / json.load (target <= 2), rss_ratio = import / json.load
(target <= 0.2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peak_memory import peak_rss_mib  # noqa: E402


def child_json_load(path: str) -> dict:
    started = time.perf_counter()
    with open(path, encoding="utf-8") as file:
        json.load(file)
    return {"seconds": time.perf_counter() - started}


def child_import(path: str, db_path: str) -> dict:
    """The import, while another writer (as the bot or a training heartbeat would)
    writes every 20 ms on its own connection: how long did it ever have to wait?"""
    import sqlite3
    import threading

    from exporter.desktop_import import import_desktop_export
    from storage import open_database

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

    async def run() -> dict:
        async with open_database(Path(db_path)) as db:
            writer = threading.Thread(target=other_writer)
            writer.start()
            started = time.perf_counter()
            try:
                report = await import_desktop_export(db, Path(path))
            finally:
                stop.set()
                writer.join()
            return {
                "seconds": time.perf_counter() - started,
                "new": report.new,
                "other_writer_max_wait": max(waits, default=0.0),
                "other_writes": len(waits),
            }

    return asyncio.run(run())


def measure(*args: str) -> dict:
    """Run this file as a child doing one job; return its timing and peak RSS (MiB)."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job, *rest = args.child
        result = child_json_load(*rest) if job == "json" else child_import(*rest)
        result["peak_rss_mib"] = peak_rss_mib()
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
        print(f"json.load    {baseline['seconds']:7.2f} s   peak RSS {rss:7.0f} MiB")
        ours = measure("import", str(export), str(Path(tmp) / "twin.db"))
        rate = ours["new"] / ours["seconds"]
        print(
            f"twin import  {ours['seconds']:7.2f} s   peak RSS {ours['peak_rss_mib']:7.0f} MiB"
            f"   {rate:,.0f} messages/s ({ours['new']:,} stored)"
        )
        wait = ours["other_writer_max_wait"]
        print(
            f"another writer meanwhile: {ours['other_writes']:,} writes, the longest waited "
            f"{wait:.2f} s ({wait / ours['seconds']:.1%} of the import)"
        )
    print(
        json.dumps(
            {
                "messages": args.messages,
                "import_seconds": round(ours["seconds"], 2),
                "json_load_seconds": round(baseline["seconds"], 2),
                "import_messages_per_s": round(rate),
                "import_peak_rss_mib": round(ours["peak_rss_mib"]),
                "json_load_peak_rss_mib": round(baseline["peak_rss_mib"]),
                "time_ratio": round(ours["seconds"] / baseline["seconds"], 3),
                "rss_ratio": round(ours["peak_rss_mib"] / baseline["peak_rss_mib"], 3),
                "other_writer_max_wait_s": round(ours["other_writer_max_wait"], 3),
                "other_writer_wait_ratio": round(
                    ours["other_writer_max_wait"] / ours["seconds"], 4
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
