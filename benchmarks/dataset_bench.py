"""Dataset building speed at two sizes: the cost must grow linearly.

    python benchmarks/dataset_bench.py [--sizes 100000 1000000]

Imports synthetic exports (tests/synthetic_export.py) of each size into fresh
databases, then times `build_dataset` (character budget, no tokenizer) on each. Prints
messages/s per size; the last line is one JSON object with the ratio
time(largest)/time(smallest), which for 10x the messages should be <= 11.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exporter.desktop_import import import_desktop_export
from storage import open_database
from tests.synthetic_export import write_export
from twin.dataset.build import build_dataset
from twin.dataset.settings import DatasetSettings
from twin.prompt.samples import SampleMaker
from twin.prompt.settings import PromptSettings


async def _import(db_path: Path, export: Path) -> None:
    async with open_database(db_path) as db:
        await import_desktop_export(db, export)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            export = write_export(Path(tmp) / f"{size}.json", size)
            db_path = Path(tmp) / f"{size}.db"
            asyncio.run(_import(db_path, export))
            export.unlink()
            started = time.perf_counter()
            stats = build_dataset(
                db_path,
                Path(tmp) / f"{size}.jsonl",
                DatasetSettings(workers=args.workers),
                SampleMaker(PromptSettings()),
            )
            seconds = time.perf_counter() - started
            rate = stats.messages / seconds
            results[size] = (seconds, rate)
            print(
                f"{stats.messages:>9,} messages  {seconds:6.2f} s  {rate:>9,.0f} messages/s  "
                f"{sum(stats.samples.values()):,} samples, pii {stats.pii}"
            )
    small, large = min(results), max(results)
    print(
        json.dumps(
            {
                "messages_per_s": {str(k): round(v[1]) for k, v in results.items()},
                "size_ratio": large / small,
                "time_ratio": round(results[large][0] / results[small][0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
