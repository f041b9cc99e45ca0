"""The selection metric: the real reply among the owner's other replies, on the tiny model."""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from litgpt import Tokenizer

from tests.exports import import_into
from trainer import sense
from trainer.sense import (
    CANDIDATES,
    REPLY_TOKENS,
    SelectionTask,
    compare_memory,
    compare_selection,
    neutral_prompt,
    reply_logprobs,
    selection_tasks,
    summary,
    task_hits,
    with_memory,
)
from twin.commands.demo import sample_export
from twin.dataset.build import build_dataset, read_samples
from twin.dataset.settings import DatasetSettings
from twin.model.lora import build_model
from twin.model.settings import LoRASettings
from twin.prompt.samples import SampleMaker
from twin.prompt.settings import PromptSettings
from twin.prompt.text import Prompt


@pytest.fixture(scope="module")
def all_samples(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    import asyncio

    folder = tmp_path_factory.mktemp("sense")
    asyncio.run(import_into(folder / "twin.db", sample_export()))
    build_dataset(
        folder / "twin.db",
        folder / "samples.jsonl",
        DatasetSettings(val_fraction=0.1),
        SampleMaker(PromptSettings()),
    )
    return read_samples(folder / "samples.jsonl")


@pytest.fixture(scope="module")
def val_samples(all_samples: list[dict]) -> list[dict]:
    return [s for s in all_samples if s["split"] == "val"]


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
    tiny_checkpoint: Path, val_samples: list[dict], all_samples: list[dict]
) -> None:
    tokenizer = Tokenizer(tiny_checkpoint)
    tasks = selection_tasks(val_samples, tokenizer, Prompt(), 512, all_samples)
    answering = [s for s in val_samples if s["instruction"]]
    assert len(tasks) == len(answering)  # every held-out reply that answers a message
    conversations = {}  # reply tokens -> the conversations that hold them
    for sample in all_samples:
        ids = tokenizer.processor.encode(sample["output"], add_special_tokens=False).ids
        key = tuple([*ids[: REPLY_TOKENS - 1], tokenizer.eos_id])
        conversations.setdefault(key, set()).add((sample["chat_id"], sample["conversation"]))
    for task in tasks:
        assert len(task.candidates) == CANDIDATES
        assert len({tuple(c) for c in task.candidates}) == CANDIDATES  # never the same words
        assert task.conversation in conversations[tuple(task.candidates[0])]
        for other in task.candidates[1:]:  # the owner's replies, from other conversations
            assert conversations[tuple(other)] - {task.conversation}
        assert task.prompt[0] == tokenizer.bos_id and len(task.prompt) <= 512 - REPLY_TOKENS
    # Training conversations lend distractors too.
    trained = {(s["chat_id"], s["conversation"]) for s in all_samples if s["split"] == "train"}
    assert any(conversations[tuple(c)] & trained for task in tasks for c in task.candidates[1:])
    # The draw is fixed: the same tasks every time, other ones with another seed.
    assert selection_tasks(val_samples, tokenizer, Prompt(), 512, all_samples) == tasks
    assert selection_tasks(val_samples, tokenizer, Prompt(), 512, all_samples, seed=1) != tasks


def test_a_held_out_tenth_of_one_conversation_still_gets_tasks(
    tiny_checkpoint: Path, all_samples: list[dict]
) -> None:
    """Distractors from held-out conversations only left a single held-out
    conversation with no task at all, and the report said 0 %."""
    newest = max(all_samples, key=lambda s: s["conversation"])
    one = [s for s in all_samples if _conversation(s) == _conversation(newest)]
    assert any(s["instruction"] for s in one)
    tokenizer = Tokenizer(tiny_checkpoint)
    assert selection_tasks(one, tokenizer, Prompt(), 512) == []  # nowhere to draw from
    tasks = selection_tasks(one, tokenizer, Prompt(), 512, all_samples)
    assert len(tasks) == sum(1 for s in one if s["instruction"])
    assert {task.conversation for task in tasks} == {_conversation(newest)}


def _conversation(sample: dict) -> tuple[int, int]:
    return sample["chat_id"], sample["conversation"]


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
    assert sum(task_hits(model, tasks, neutral, "cpu")) == expected


def _sample(chat: int, start: int, message: str, reply: str, split: str, **extra) -> dict:
    return {
        "instruction": message,
        "input": "",
        "output": reply,
        "split": split,
        "chat_id": chat,
        "date": start + 60,
        "conversation": start,
        **extra,
    }


# Twelve training conversations of one chat, each a reply of the owner's own.
TRAINED = [
    _sample(1, 1000 * i, f"question {i}", reply, "train")
    for i, reply in enumerate(
        [
            "sure, at seven",
            "no idea",
            "haha yes",
            "the blue one",
            "tomorrow then",
            "ok",
            "call me later",
            "send it over",
            "not today",
            "on my way",
            "love it",
            "why not",
        ]
    )
]


def test_with_memory_a_reply_seen_before_is_a_repeat_and_the_rest_are_novel(
    tiny_checkpoint: Path,
) -> None:
    held_out = [
        # Word for word a training reply (case aside): a model could copy it.
        _sample(2, 50_000, "when?", "Tomorrow then", "val", memory="x", recalled=[]),
        # Close to what memory recalled for it (chrF >= 0.8): copyable too.
        _sample(
            2,
            60_000,
            "which one?",
            "the red one, with stripes!!",
            "val",
            memory="R: which?\nI: the red one with stripes",
            recalled=["the red one with stripes"],
        ),
        # Nothing like it before: only sense can pick it.
        _sample(2, 70_000, "dinner?", "pasta at mine, bring wine", "val", memory="x", recalled=[]),
    ]
    tokenizer = Tokenizer(tiny_checkpoint)
    pool = TRAINED + held_out
    tasks = selection_tasks(held_out, tokenizer, Prompt(), 512, pool, memory=True)
    assert [task.repeat for task in tasks] == [True, True, False]
    # Memory off: the same tasks, none marked, and the memory is not in the prompt.
    off = selection_tasks(held_out, tokenizer, Prompt(), 512, pool)
    assert [task.repeat for task in off] == [False, False, False]
    assert len(off[1].prompt) < len(tasks[1].prompt)

    report = with_memory(tasks, base=[True, False, False], adapter=[True, True, True])
    assert report["tasks"] == 3 and report["repeat_tasks"] == 2
    assert report["novel"] == {"tasks": 1, "base": 0.0, "adapter": 1.0}
    assert report["base"] == pytest.approx(1 / 3, abs=1e-4) and report["adapter"] == 1.0


def test_no_task_gives_no_number_and_says_why(model) -> None:
    report = compare_selection(model, {}, [], [1, 2], "cpu").as_dict()
    assert report["tasks"] == 0 and report["conversations"] == 0
    assert report["base"] is None and report["adapter"] is None
    assert report["difference_ci95"] is None and report["reason"]
    memory = compare_memory(model, {}, [], [1, 2], "cpu", reason="memory is off")
    assert memory["base"] is None and memory["reason"] == "memory is off"
    assert memory["novel"] == {"tasks": 0, "base": None, "adapter": None}


def test_the_interval_holds_the_share_and_widens_with_fewer_conversations() -> None:
    rng = random.Random(3)
    tasks, base, adapter = [], [], []
    for conversation in range(40):
        skill = rng.random()  # conversations differ: some easy, some hard
        for _ in range(rng.randint(2, 8)):
            tasks.append(SelectionTask([1], [[2]], (1, conversation)))
            base.append(rng.random() < skill * 0.5)
            adapter.append(rng.random() < skill)
    report = summary(tasks, base, adapter)
    assert report.conversations == 40 and report.tasks == len(tasks)
    for share, (low, high) in [
        (report.base, report.base_ci95),
        (report.adapter, report.adapter_ci95),
        (report.adapter - report.base, report.difference_ci95),
    ]:
        assert low <= share <= high and low < high
    few = [i for i, task in enumerate(tasks) if task.conversation[1] < 8]
    smaller = summary([tasks[i] for i in few], [base[i] for i in few], [adapter[i] for i in few])
    width = report.difference_ci95[1] - report.difference_ci95[0]
    assert smaller.difference_ci95[1] - smaller.difference_ci95[0] > width
    # One conversation: nothing to resample, so no interval rather than a false one.
    one = [i for i, task in enumerate(tasks) if task.conversation[1] == 0]
    alone = summary([tasks[i] for i in one], [base[i] for i in one], [adapter[i] for i in one])
    assert alone.base is not None and alone.base_ci95 is None


def test_distractors_never_come_from_the_real_replys_own_conversation(
    tiny_checkpoint: Path,
) -> None:
    """Replies of one conversation answer one another: one of them could fit the
    message as well as the real reply, so none of them is a distractor."""
    same = [
        _sample(3, 90_000, f"and then {i}?", f"then step {i} of the plan", "val") for i in range(15)
    ]
    tokenizer = Tokenizer(tiny_checkpoint)
    tasks = selection_tasks(same, tokenizer, Prompt(), 512, TRAINED + same)
    elsewhere = {
        tuple(ids) for ids in sense._reply_tokens(tokenizer, [s["output"] for s in TRAINED])
    }
    assert len(tasks) == len(same)
    for task in tasks:
        assert all(tuple(c) in elsewhere for c in task.candidates[1:])


def test_personas_pool_into_one_set_of_conversations() -> None:
    """benchmarks/persona_eval.py --all: each persona's conversations join one pool, so
    the pooled interval is that of all tasks, narrower than either persona's."""
    from benchmarks.persona_eval import pooled, selection_table

    rng = random.Random(5)

    def persona(conversations: int) -> dict:
        tasks, base, adapter = [], [], []
        for conversation in range(conversations):
            for _ in range(4):
                tasks.append(SelectionTask([1], [[2]], (1, conversation)))
                base.append(rng.random() < 0.3)
                adapter.append(rng.random() < 0.5)
        return summary(tasks, base, adapter).as_dict()

    one, two = persona(20), persona(25)
    both = pooled({"one": one, "two": two})
    assert both["tasks"] == one["tasks"] + two["tasks"] == 180
    assert both["conversations"] == 45
    assert both["adapter"] == pytest.approx(
        (one["adapter"] * 80 + two["adapter"] * 100) / 180, abs=1e-3
    )
    low, high = both["difference_ci95"]
    assert low <= both["adapter"] - both["base"] <= high
    assert high - low < min(b - a for a, b in (one["difference_ci95"], two["difference_ci95"]))
    assert "| pooled | 180 | 45 |" in selection_table({"one": one, "two": two})


def test_saved_persona_runs_pool_as_if_run_together(tmp_path: Path) -> None:
    """persona_eval --save writes each persona's numbers; --pool reads them back: the
    pooled row is the same as from the reports themselves, and a file that is no record
    is one clear error."""
    from benchmarks.persona_eval import parse_arguments, pooled, read_record, write_record

    rng = random.Random(9)
    reports = {}
    for name, conversations in (("one", 12), ("two", 30)):
        tasks = [SelectionTask([1], [[2]], (1, c)) for c in range(conversations) for _ in range(3)]
        base = [rng.random() < 0.3 for _ in tasks]
        reports[name] = summary(tasks, base, [rng.random() < 0.5 for _ in tasks]).as_dict()
    paths = [
        write_record(tmp_path, {"persona": name, "summary": {}, "selection": report})
        for name, report in reports.items()
    ]
    back = {r["persona"]: r["selection"] for r in map(read_record, paths)}
    assert pooled(back) == pooled(reports) and pooled(back)["tasks"] == 126
    args, names = parse_arguments(["--pool", *map(str, paths)])
    assert args.pool == paths and names == []
    with pytest.raises(SystemExit):
        parse_arguments(["sample", "--pool", str(paths[0])])
    (tmp_path / "other.json").write_text('{"persona": "x"}')
    with pytest.raises(SystemExit, match="not a persona record"):
        read_record(tmp_path / "other.json")


def test_a_held_out_set_too_small_to_say_anything_is_called_so() -> None:
    from trainer.loss import LossReport
    from twin.reports import FEW_HELD_OUT, format_losses

    selection = summary(
        [SelectionTask([1], [[2]], (1, i)) for i in range(4)], [True] * 4, [False] * 4
    ).as_dict()
    few = format_losses(1, LossReport(13, 200, 3.5, 3.4, 33.0, 30.0, 0.03), selection)
    assert "warning" in few and "only 13 held-out replies" in few
    enough = LossReport(FEW_HELD_OUT, 900, 3.5, 3.4, 33.0, 30.0, 0.03)
    assert "warning" not in format_losses(1, enough, selection)
    assert "-100 points" in few and "a real difference" in few  # the interval excludes 0


def test_the_bot_says_when_the_twin_is_not_clearly_better() -> None:
    from bot.reports import picks_text

    clear = {"candidates": 10, "tasks": 80, "base": 0.3, "adapter": 0.5}
    unclear = {**clear, "difference_ci95": [-0.05, 0.4]}
    assert "not a clear difference" in picks_text(unclear)
    assert "not a clear" not in picks_text({**clear, "difference_ci95": [0.05, 0.35]})
    assert "80 replies" in picks_text(unclear)


def test_persona_eval_takes_all_or_known_names() -> None:
    """`--all` names every persona (argparse's `choices` once refused the empty list it
    leaves); a misspelt name is one clear error, not a run."""
    from benchmarks.persona_eval import SAMPLE, parse_arguments

    _, every = parse_arguments(["--all"])
    assert every[0] == SAMPLE and len(every) > 3
    _, named = parse_arguments([SAMPLE])
    assert named == [SAMPLE]
    for wrong in (["no-such-persona"], [], ["--all", SAMPLE]):
        with pytest.raises(SystemExit):
            parse_arguments(wrong)
