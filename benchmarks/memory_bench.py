"""The memory's index: how fast it is built, how big it is, how fast it recalls.

    python benchmarks/memory_bench.py [--messages 1000000] [--queries 200]
    python benchmarks/memory_bench.py --tokenizers SAMPLES.jsonl [...] [--dense CHECKPOINT]

Writes a synthetic full-account export (tests/synthetic_export.py) and imports it into
a new database, then indexes it (memory.index.refresh) and recalls exchanges for
messages drawn from the history (memory.recall.Recall, k = 3). Baselines in the same
run: the import of the same history (indexing follows an import, so its cost is told
as a share of the import's), and a naive recall that scores every exchange by the
words it shares with the query (what the index saves). The last line is one JSON object: index
messages/s (target >= 100,000), recall ms per reply at p50 and p95 (target < 20 ms at
1M messages), index MiB, and the ratios.

`--tokenizers` compares FTS5 tokenizers and indexed columns on datasets that `twin
dataset` wrote: the training exchanges are indexed, each validation sample's message
recalls 3, and the score is the best chrF of their replies to the real reply, against
3 exchanges drawn at random (a proxy for what memory can give a reply: replies that
resemble the one the owner wrote). With `--dense CHECKPOINT` it adds a dense retriever
made of the base model alone: the mean of its last hidden states over a message's
tokens, the 3 training messages nearest by cosine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exporter.desktop_import import import_desktop_export  # noqa: E402
from storage import open_database  # noqa: E402
from storage.memory import ExchangeSearch  # noqa: E402
from tests.synthetic_export import write_export  # noqa: E402
from twin.dataset.settings import DatasetSettings  # noqa: E402
from twin.memory.index import refresh  # noqa: E402
from twin.memory.recall import Recall, words  # noqa: E402
from twin.prompt.settings import PromptSettings  # noqa: E402

if TYPE_CHECKING:
    import torch


def _file_mib(path: Path) -> float:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, size = (
            conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size")
        )
    return pages * size / 2**20


async def _import_and_index(export: Path, db_path: Path) -> tuple[float, float, int, int, float]:
    async with open_database(db_path) as db:
        started = time.perf_counter()
        await import_desktop_export(db, export)
        imported = time.perf_counter() - started
        before = _file_mib(db_path)
        report = await refresh(db, DatasetSettings(), PromptSettings().burst_separator)
    return imported, report.seconds, report.messages, report.exchanges, before


def _naive(exchanges: list[tuple[int, str, str]], query: str, k: int) -> list[int]:
    wanted = set(words(query))
    scored = [(len(wanted & set(words(message))), rowid) for rowid, message, _ in exchanges]
    return [rowid for _, rowid in sorted(scored, reverse=True)[:k]]


TOKENIZERS = ("unicode61 remove_diacritics 2", "porter unicode61 remove_diacritics 2", "trigram")


def _embedder(checkpoint: Path) -> Callable[[list[str]], torch.Tensor]:
    """Messages -> unit vectors: the base model's final-norm hidden states, mean-pooled
    over each message's tokens (no extra model to download)."""
    import lightning as L
    import torch
    from litgpt import Tokenizer

    from twin.model.lora import build_model
    from twin.model.settings import LoRASettings

    tokenizer = Tokenizer(checkpoint)
    fabric = L.Fabric(accelerator="cpu", devices=1, precision="32-true")
    model = build_model(fabric, checkpoint, LoRASettings(), max_seq_length=256)
    model.eval()

    @torch.inference_mode()
    def embed(texts: list[str]) -> torch.Tensor:
        vectors = []
        for text in texts:
            ids = tokenizer.encode(text, max_length=256).unsqueeze(0)
            vectors.append(model(ids, return_hidden=True)[0].float().mean(dim=0))
        return torch.nn.functional.normalize(torch.stack(vectors), dim=-1)

    return embed


def compare_tokenizers(
    path: Path, k: int = 3, embed: Callable[[list[str]], torch.Tensor] | None = None
) -> None:
    from sacrebleu.metrics import CHRF

    from storage.memory import match_expression
    from twin.dataset.build import read_samples

    chrf = CHRF()
    train = [s for s in read_samples(path, "train") if s["instruction"]]
    val = [s for s in read_samples(path, "val") if s["instruction"]]

    def best(replies: list[str], real: str) -> float:
        return max((chrf.sentence_score(reply, [real]).score for reply in replies), default=0.0)

    rng = random.Random(0)
    chance = sum(best([s["output"] for s in rng.sample(train, k)], v["output"]) for v in val)
    print(
        f"{path}: {len(train)} exchanges, {len(val)} messages; {k} at random: "
        f"{chance / len(val):.2f}"
    )
    for tokenizer in TOKENIZERS:
        for columns in ("message", "message, reply"):
            conn = sqlite3.connect(":memory:")
            indexed = columns if "," in columns else "message, reply UNINDEXED"
            conn.execute(f"CREATE VIRTUAL TABLE x USING fts5({indexed}, tokenize='{tokenizer}')")
            conn.executemany(
                "INSERT INTO x (rowid, message, reply) VALUES (?, ?, ?)",
                [(i, s["instruction"], s["output"]) for i, s in enumerate(train)],
            )
            total = 0.0
            for sample in val:
                terms = [
                    w for w in words(sample["instruction"]) if tokenizer != "trigram" or len(w) > 2
                ]
                found = (
                    conn.execute(
                        "SELECT reply FROM x WHERE x MATCH ? ORDER BY rank LIMIT ?",
                        (match_expression(terms), k),
                    ).fetchall()
                    if terms
                    else []
                )
                total += best([reply for (reply,) in found], sample["output"])
            print(f"  {tokenizer:<38} indexed: {columns:<15} {total / len(val):6.2f}")
    if embed is not None:
        keys = embed([s["instruction"] for s in train])
        queries = embed([s["instruction"] for s in val])
        nearest = (queries @ keys.T).topk(k, dim=-1).indices.tolist()
        total = sum(
            best([train[i]["output"] for i in found], sample["output"])
            for found, sample in zip(nearest, val, strict=True)
        )
        print(
            f"  {'dense: base model, mean-pooled':<38} indexed: {'message':<15} "
            f"{total / len(val):6.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--naive-queries", type=int, default=3)
    parser.add_argument(
        "--vocabulary",
        type=int,
        default=50_000,
        help="distinct words, drawn by Zipf's law as in real chats (0: 36 everyday words)",
    )
    parser.add_argument("--tokenizers", type=Path, nargs="+", metavar="SAMPLES")
    parser.add_argument("--dense", type=Path, metavar="CHECKPOINT", help="with --tokenizers")
    args = parser.parse_args()
    if args.tokenizers:
        embed = _embedder(args.dense) if args.dense else None
        for path in args.tokenizers:
            compare_tokenizers(path, embed=embed)
        return
    with tempfile.TemporaryDirectory() as tmp:
        export, db_path = Path(tmp) / "export.json", Path(tmp) / "twin.db"
        write_export(export, args.messages, vocabulary=args.vocabulary)
        imported, indexing, messages, exchanges, before = asyncio.run(
            _import_and_index(export, db_path)
        )
        index_mib = _file_mib(db_path) - before
        with sqlite3.connect(db_path) as conn:
            rows = conn.execute("SELECT rowid, message, chat_id FROM exchanges").fetchall()
        rng = random.Random(7)
        queries = [rng.choice(rows) for _ in range(args.queries)]
        search = ExchangeSearch(db_path)
        recall = Recall(search)
        times = []
        for _, message, chat_id in queries:
            started = time.perf_counter()
            recall([message], 3, chat_id=chat_id)
            times.append((time.perf_counter() - started) * 1000)
        search.close()
        naive = []
        for _, message, _ in queries[: args.naive_queries]:
            started = time.perf_counter()
            _naive(rows, message, 3)
            naive.append((time.perf_counter() - started) * 1000)
    p50 = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[-1]
    rate = messages / indexing
    print(f"import      {args.messages:,} messages in {imported:.1f} s")
    print(
        f"index       {messages:,} messages -> {exchanges:,} exchanges in {indexing:.1f} s "
        f"= {rate:,.0f} messages/s ({indexing / imported:.0%} of the import), {index_mib:.0f} MiB"
    )
    print(f"recall      p50 {p50:.2f} ms, p95 {p95:.2f} ms per reply ({len(times)} replies, k=3)")
    print(f"naive scan  {statistics.median(naive):.0f} ms per reply ({len(naive)} replies)")
    print(
        json.dumps(
            {
                "messages": messages,
                "exchanges": exchanges,
                "index_messages_per_s": round(rate),
                "index_share_of_import": round(indexing / imported, 3),
                "index_mib": round(index_mib, 1),
                "recall_ms_p50": round(p50, 2),
                "recall_ms_p95": round(p95, 2),
                "naive_ms": round(statistics.median(naive), 1),
                "speedup_over_naive": round(statistics.median(naive) / p50, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
