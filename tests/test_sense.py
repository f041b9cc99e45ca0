"""The selection metric: the real reply among the owner's other replies, on the tiny model."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from litgpt import Tokenizer

from dataset.build import build_dataset, read_samples
from dataset.prompt import Prompt
from dataset.settings import DatasetSettings, PromptSettings
from model.lora import build_model
from model.settings import LoRASettings
from tests.exports import import_into
from trainer.sense import (
    CANDIDATES,
    REPLY_TOKENS,
    hits,
    neutral_prompt,
    reply_logprobs,
    selection_tasks,
)
from twin.commands.demo import sample_export


@pytest.fixture(scope="module")
def val_samples(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    import asyncio

    folder = tmp_path_factory.mktemp("sense")
    asyncio.run(import_into(folder / "twin.db", sample_export()))
    build_dataset(
        folder / "twin.db",
        folder / "samples.jsonl",
        DatasetSettings(val_fraction=0.1),
        PromptSettings(),
    )
    return read_samples(folder / "samples.jsonl", "val")


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path):
    fabric = L.Fabric(accelerator="cpu", devices=1, precision="32-true")
    model = build_model(fabric, tiny_checkpoint, LoRASettings(dropout=0.0), 512)
    with torch.no_grad():  # an adapter that changes something
        for name, param in model.named_parameters():
            if name.endswith("lora_B"):
                param.normal_(0, 0.05)
    return model.eval()


def test_tasks_hide_the_real_reply_among_replies_from_other_conversations(
    tiny_checkpoint: Path, val_samples: list[dict]
) -> None:
    tokenizer = Tokenizer(tiny_checkpoint)
    tasks = selection_tasks(val_samples, tokenizer, Prompt(), 512)
    answering = [s for s in val_samples if s["instruction"]]
    assert 0 < len(tasks) <= len(answering)
    replies = {}
    for sample in answering:
        ids = tokenizer.processor.encode(sample["output"], add_special_tokens=False).ids
        replies.setdefault(tuple([*ids[: REPLY_TOKENS - 1], tokenizer.eos_id]), []).append(sample)
    for task in tasks:
        assert len(task.candidates) == CANDIDATES
        assert len({tuple(c) for c in task.candidates}) == CANDIDATES  # never the same words
        assert all(tuple(c) in replies for c in task.candidates)  # all the owner's replies
        assert task.prompt[0] == tokenizer.bos_id and len(task.prompt) <= 512 - REPLY_TOKENS
    # The draw is fixed: the same tasks every time, other ones with another seed.
    assert selection_tasks(val_samples, tokenizer, Prompt(), 512) == tasks
    assert selection_tasks(val_samples, tokenizer, Prompt(), 512, seed=1) != tasks


def test_cached_scores_equal_scoring_each_reply_on_its_own(model, tiny_checkpoint: Path) -> None:
    tokenizer = Tokenizer(tiny_checkpoint)
    prefix = [tokenizer.bos_id, *tokenizer.processor.encode("I: привет\nR: как дела").ids]
    replies = [
        [*tokenizer.processor.encode(text).ids, tokenizer.eos_id]
        for text in ("норм", "да вот кофе пью, а ты как", "ok", "короче завтра в 8 на базе")
    ]
    scores = reply_logprobs(model, prefix, replies, "cpu")
    model.clear_kv_cache()
    for reply, score in zip(replies, scores, strict=True):
        idx = torch.tensor([prefix + reply])
        with torch.no_grad():
            logits = model(idx)[0, len(prefix) - 1 : -1]
        expected = -F.cross_entropy(logits, torch.tensor(reply)).item()
        assert score == pytest.approx(expected, abs=1e-4)


def test_hits_is_the_share_where_the_conversation_lifts_the_real_reply_most(
    model, tiny_checkpoint: Path, val_samples: list[dict]
) -> None:
    tokenizer = Tokenizer(tiny_checkpoint)
    tasks = selection_tasks(val_samples, tokenizer, Prompt(), 512)[:6]
    neutral = neutral_prompt(tokenizer, Prompt())
    expected = 0
    for task in tasks:
        lifts = [
            given - reply_logprobs(model, neutral, [c], "cpu")[0]
            for given, c in zip(
                reply_logprobs(model, task.prompt, task.candidates, "cpu"),
                task.candidates,
                strict=True,
            )
        ]
        expected += lifts[0] > max(lifts[1:])
    assert hits(model, tasks, neutral, "cpu") == pytest.approx(expected / len(tasks))
