"""The simulated owner: what the owner's decisions on drafts teach the twin, night by night.

    python benchmarks/owner_sim.py PERSONA [--nights 3] [--drafts 10] [--minutes 15]
        [--arms supervised,preference,reranking,nightly] [--candidates 4]
        [--set SECTION.KEY=VALUE] [--test-replies 48] [--test-tasks 40] [--models DIR]
        [--work DIR [--reuse]] [--plot FILE]

A development persona's history (benchmarks/persona_eval.py's personas) is cut by time
in three:
- the past, which the twin starts from: imported and trained on, the first adapter;
- the replay, the owner's next (nights + 1) x drafts answers to someone, replayed in
  time order as live messages;
- the test, the newest conversations (the held-out tenth of the whole history, as
  `twin dataset` splits it), never shown to any arm: every night's adapter is measured
  on it, memory-off selection and the loss per reply token, beside the base model.

The replay runs through the code `twin run` runs. Telethon's own client, answering from
a script (tests/fake_telethon.py), delivers each message to the userbot
(exporter/live.py), which stores it and hands it to the draft workflow (bot/drafts.py),
which drafts with the reply service (the memory of what came before, the drafts
table); the memory keeper indexes each chat the owner writes in. The simulated owner
knows what he really wrote and decides as the issue of this benchmark asks:
- the draft's chrF to his reply >= 0.9: Send, unedited;
- >= 0.3: Edit, into his reply, then Send;
- below: he answers himself from his phone (his messages arrive, the draft expires).
Every `drafts` decisions is a day; after each day but the last the night's retraining
starts as the schedule starts it (bot/training.py's launcher: `twin train --json` in a
process of its own, with the `drafts` table as feedback), and the service serves the
adapter the run promoted. The clock the drafts table and the script stamp messages
with is the replayed history's, so that a decision comes as long after its draft as the
real reply came after the message.

Arms, each a copy of the same first data folder (the same first adapter, the same
seed for every draft):
- supervised: the defaults (today's twin);
- preference: + the preference phase each night (preference.enabled);
- reranking: + generate.candidates = N for every draft (the preference arm's training);
- nightly: each night learns the day's feedback on top of the active adapter, in the
  whole budget, with no supervised phase (preference.start = "active").

It prints, per day and arm, chrF(draft, final) (the final: what was sent, or what the
owner wrote instead), the share sent unedited and edited, and after each night the new
adapter's memory-off selection and loss on the test conversations; then a JSON object
of it all, and (`--plot`) a PNG of chrF per day per arm.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.drafts import DraftWorkflow
    from bot.training import TrainingLauncher
    from storage import Database
    from tests.fake_telethon import ScriptedTelegram
    from twin.engine.service import ReplyService
    from twin.memory.keeper import MemoryKeeper
    from twin.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.persona_eval import (  # noqa: E402
    data_folder,
    known_personas,
    persona_export,
    twin,
    twin_environment,
)

ARMS = ("supervised", "preference", "reranking", "nightly")
ARM_SETTINGS = {
    "supervised": [],
    "preference": ["preference.enabled=true"],
    "reranking": ["preference.enabled=true"],  # and generate.candidates (--candidates)
    "nightly": ["preference.enabled=true", "preference.start=active"],
}
SEND_FROM = 0.9  # chrF (0..1) from which the owner sends the draft as it is
EDIT_FROM = 0.3  # from which he edits it into his reply; below, he answers himself
SEED = 0  # every draft of every arm is sampled with it: day 1 differs by nothing else


# -- the history, cut by time ---------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    chat_id: int
    sender: int
    text: str
    date: int


@dataclass(frozen=True)
class Turn:
    """Consecutive messages of one sender in one chat."""

    chat_id: int
    owner: bool
    messages: tuple[Message, ...]

    @property
    def date(self) -> int:
        return self.messages[0].date


def read_export(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def owner_of(export: dict[str, Any]) -> int:
    return int(export["personal_information"]["user_id"])


def turns(export: dict[str, Any]) -> list[Turn]:
    """Every personal chat's turns with text, in the order they began."""
    owner = owner_of(export)
    found = []
    for chat in export["chats"]["list"]:
        if chat.get("type") != "personal_chat":
            continue
        current: list[Message] = []
        for item in chat["messages"]:
            text = _text(item.get("text", ""))
            if item.get("type") != "message" or not text.strip():
                continue
            sender = int(str(item.get("from_id", "user0")).removeprefix("user") or 0)
            message = Message(int(chat["id"]), sender, text, int(item["date_unixtime"]))
            if current and current[-1].sender != sender:
                found.append(Turn(message.chat_id, current[0].sender == owner, tuple(current)))
                current = []
            current.append(message)
        if current:
            found.append(Turn(current[0].chat_id, current[0].sender == owner, tuple(current)))
    return sorted(found, key=lambda t: (t.date, t.chat_id))


def _text(text: Any) -> str:
    if isinstance(text, str):
        return text
    return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in text)


def replay_start(history: list[Turn], test_from: int, answers: int) -> int:
    """When the replay begins: at the message before the earliest of the last `answers`
    owner turns that answer someone (the turn before them in their chat is not his),
    among the turns before `test_from`."""
    before = [t for t in history if t.date < test_from]
    last: dict[int, Turn] = {}
    answering: list[tuple[Turn, Turn]] = []
    for current in before:
        previous = last.get(current.chat_id)
        if current.owner and previous is not None and not previous.owner:
            answering.append((previous, current))
        last[current.chat_id] = current
    if len(answering) < answers:
        raise SystemExit(
            f"the history before its held-out conversations has {len(answering)} answers "
            f"of the owner; the replay needs {answers} (fewer --nights or --drafts)"
        )
    return answering[-answers][0].date


def export_before(export: dict[str, Any], until: int) -> dict[str, Any]:
    """The export as it was before `until`: the past the twin starts from."""
    chats = []
    for chat in export["chats"]["list"]:
        kept = [m for m in chat["messages"] if int(m["date_unixtime"]) < until]
        if kept:
            chats.append({**chat, "messages": kept})
    return {**export, "chats": {**export["chats"], "list": chats}}


# -- the fixed test: the newest conversations, never replayed ---------------------------------


class TestSet:
    """The held-out conversations of the whole history, measured for every adapter with
    one model in memory: loss per reply token on `replies` of them, memory-off
    selection on `tasks` (in evaluation order), the base model measured once."""

    def __init__(self, folder: Path, replies: int, tasks: int) -> None:
        import lightning as L
        from litgpt import Tokenizer

        from trainer.batches import encode
        from trainer.budget import fixed_order
        from trainer.evaluate import selection_order
        from trainer.sense import neutral_prompt, task_hits
        from twin.dataset.build import read_samples
        from twin.model.checkpoints import prepare
        from twin.model.device import choose_device, choose_precision
        from twin.model.lora import build_model, load_adapter
        from twin.prompt.text import Prompt
        from twin.settings import load_settings

        settings = load_settings(None)
        rows = read_samples(settings.dataset_path)
        val = [r for r in rows if r["split"] == "val"]
        if not val:
            raise SystemExit(f"{folder}: the history has no held-out conversations")
        self.starts = min(r["conversation"] for r in val)  # the test's first moment
        checkpoint = prepare(settings.model, settings.models_dir)
        device = choose_device(settings.model.device)
        fabric = L.Fabric(
            accelerator=device,
            devices=1,
            precision=choose_precision(device, settings.model.precision),
        )
        self.length = settings.train.max_seq_length
        self.budget = settings.train.micro_batch_tokens
        self.model = build_model(
            fabric, checkpoint, settings.lora, self.length, narrow_embedding=True
        )
        self.device = fabric.device
        tokenizer, prompt = Tokenizer(checkpoint), Prompt(settings.prompt)
        chosen = fixed_order(val)[:replies] if replies else val
        self.encoded = encode(chosen, tokenizer, prompt, self.length)
        every = selection_order(val, tokenizer, prompt, self.length, rows)
        self.tasks = every[:tasks] if tasks else every
        self.neutral = neutral_prompt(tokenizer, prompt)
        self._hits, self._load = task_hits, load_adapter
        self._load(self.model, None)
        self.base_loss, self.base_hits = self._loss(), self._selection()

    def _loss(self) -> float:
        from trainer.loss import mean_loss

        return mean_loss(self.model, self.encoded, self.budget, self.device)

    def _selection(self) -> list[bool]:
        return self._hits(self.model, self.tasks, self.neutral, self.device)

    def measure(self, adapter: Path) -> dict[str, Any]:
        """The adapter's loss and selection, with the base model's beside them."""
        from trainer.sense import summary
        from twin.model import registry

        self._load(self.model, registry.load(adapter))
        loss, hits = self._loss(), self._selection()
        selection = summary(self.tasks, self.base_hits, hits)
        return {
            "loss": round(loss, 4),
            "base_loss": round(self.base_loss, 4),
            "selection": selection.adapter,
            "selection_base": selection.base,
            "selection_ci95": selection.adapter_ci95,
            "tasks": selection.tasks,
            "conversations": selection.conversations,
        }


def active_adapter(folder: Path) -> Path:
    """The active adapter of the data folder `folder`."""
    from storage import adapters as adapters_table
    from storage import with_database

    active = with_database(folder / "twin.db", adapters_table.active)
    if active is None:
        raise SystemExit(f"{folder}: no active adapter to reuse")
    return Path(active.path)


# -- one arm, live ------------------------------------------------------------------------------


class Clock:
    """The replayed history's time: what the drafts table and the script stamp with."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


class OwnerChat:
    """The bot's side of the owner's chat: the workflow's cards go here (the simulated
    owner reads the drafts from the table, as the cards show them)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    async def send_message(self, chat_id: int, text: str, **_: Any) -> SimpleNamespace:
        return SimpleNamespace(message_id=next(self._ids))

    async def edit_message_text(self, text: str, **_: Any) -> None:
        return None


@dataclass
class Decision:
    day: int
    action: str  # sent, edited, answered (he wrote himself: the draft expired)
    chrf: float  # the draft's against what he really wrote


@dataclass
class Night:
    night: int
    run: dict[str, Any]  # what the run reported: promoted, preference phase
    test: dict[str, Any]  # the active adapter on the test conversations


@dataclass
class ArmResult:
    arm: str
    decisions: list[Decision] = field(default_factory=list)
    nights: list[Night] = field(default_factory=list)
    undrafted: int = 0  # answers with no draft to decide on (the engine gave none)
    minutes: float = 0.0

    def days(self) -> list[dict[str, Any]]:
        rows = []
        for day in sorted({d.day for d in self.decisions}):
            decided = [d for d in self.decisions if d.day == day]
            share = {a: sum(d.action == a for d in decided) / len(decided) for a in ACTIONS}
            rows.append(
                {
                    "day": day,
                    "drafts": len(decided),
                    "chrf": round(sum(d.chrf for d in decided) / len(decided), 4),
                    **{a: round(v, 4) for a, v in share.items()},
                }
            )
        return rows


ACTIONS = ("sent", "edited", "answered")


@contextmanager
def environment(changes: dict[str, str]):
    """os.environ with `changes`, as the arm's settings and its training process see them."""
    saved = dict(os.environ)
    os.environ.update(changes)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class Live:
    """The arm's twin as `twin run` runs it: the reply service, the memory keeper, the
    draft workflow behind the userbot, Telethon's client answering from a script, and
    the launcher of the night's retraining; `clock` is the replayed history's time."""

    db: Database
    service: ReplyService
    keeper: MemoryKeeper
    workflow: DraftWorkflow
    telegram: ScriptedTelegram
    launcher: TrainingLauncher
    clock: Clock
    separator: str

    async def arrive(self, message: Message, out: bool) -> None:
        """`message` reaches the userbot as Telegram would deliver it, at its own time."""
        self.clock.now = message.date
        await self.telegram.arrive(
            self.telegram.message(message.chat_id, message.text, out, message.date)
        )

    async def stop(self) -> None:
        await self.keeper.stop()
        await self.workflow.stop()
        await self.service.close()


async def start_live(
    settings: Settings, db: Database, owner: int, peers: list[int], clock: Clock
) -> Live:
    """The arm's twin on `db`, as `settings` (the arm's) make it."""
    from bot.drafts import DraftWorkflow
    from bot.training import TrainingLauncher
    from exporter.live import LiveUserbot
    from tests.fake_telethon import ScriptedTelegram, user
    from twin.engine.style import owner_generation
    from twin.memory.keeper import MemoryKeeper
    from twin.wiring import make_service

    separator = settings.prompt.burst_separator
    service = make_service(settings, settings.db_path)
    await service.start(db)
    keeper = MemoryKeeper(db, settings.memory, settings.dataset, separator)
    workflow = DraftWorkflow(
        OwnerChat(),  # type: ignore[arg-type]
        db,
        service,
        owner,
        settings.userbot,
        lambda: owner_generation(db, settings.generate),
    )
    telegram = ScriptedTelegram(user(owner, "Me"), [user(p, f"Peer {p}") for p in peers])
    telegram._ids = itertools.count(10**9)  # above every imported message's id
    plain_message = telegram.message

    def stamped(peer: int, text: str, out: bool = False, at: float | None = None, **extra):
        return plain_message(peer, text, out, at if at is not None else clock.now, **extra)

    telegram.message = stamped  # type: ignore[method-assign]
    live = LiveUserbot(
        telegram, db, owner, workflow.on_incoming, workflow.on_outgoing, keeper.chat_changed
    )
    live.attach()
    workflow.userbot = live
    train = [sys.executable, "-m", "twin", "train", "--json", "--db", str(settings.db_path)]
    launcher = TrainingLauncher(db, train)
    return Live(db, service, keeper, workflow, telegram, launcher, clock, separator)


async def live_arm(
    arm: str,
    folder: Path,
    replay: list[Turn],
    owner: int,
    per_day: int,
    days: int,
    test: TestSet,
) -> ArmResult:
    """Replay `replay` into the arm's data folder through the userbot and the draft
    workflow, the simulated owner deciding, a night's retraining after each day."""
    from unittest import mock

    import storage.drafts
    from storage import open_database
    from twin.settings import load_settings

    settings, result, clock = load_settings(None), ArmResult(arm), Clock()
    started = time.perf_counter()
    async with open_database(settings.db_path) as db:
        live = await start_live(settings, db, owner, sorted({t.chat_id for t in replay}), clock)
        with mock.patch.object(storage.drafts, "time", clock):
            await replay_days(live, replay, per_day, days, test, result)
        await live.stop()
    result.minutes = round((time.perf_counter() - started) / 60, 1)
    return result


async def replay_days(
    live: Live, replay: list[Turn], per_day: int, days: int, test: TestSet, result: ArmResult
) -> None:
    """The turns in time order: someone's messages arrive; at the owner's turn he decides
    on the draft waiting in that chat (or, with none, writes as he did); after every
    `per_day` decisions but the last day's, the night."""
    from storage import drafts as drafts_table

    day, decided = 1, 0
    answered: set[int] = set()  # chats whose last turn is the owner's
    for current in replay:
        if day > days:
            break
        if not current.owner:
            answered.discard(current.chat_id)
            for message in current.messages:
                await live.arrive(message, out=False)
            continue
        draft = await drafts_table.open_for_chat(live.db, current.chat_id)
        if draft is None or draft.status != "pending":
            result.undrafted += current.chat_id not in answered  # someone was waiting
            answered.add(current.chat_id)
            for message in current.messages:
                await live.arrive(message, out=True)
            continue
        answered.add(current.chat_id)
        result.decisions.append(await decide(live, draft, current, day))
        decided += 1
        if decided == per_day:
            if day < days:
                await live.keeper.stop()
                result.nights.append(await night(day, live, test))
            day, decided = day + 1, 0


async def decide(live: Live, draft: Any, current: Turn, day: int) -> Decision:
    """The simulated owner on `draft`, knowing he really wrote `current`: Send unedited,
    edit into his reply, or answer himself (the draft then expires)."""
    from sacrebleu.metrics import CHRF

    real = live.separator.join(m.text for m in current.messages)
    score = CHRF().sentence_score(draft.draft_text, [real]).score / 100
    live.clock.now = current.date
    if score >= SEND_FROM:
        action = "sent"
        await live.workflow.send(draft.id, revision=draft.revision)
    elif score >= EDIT_FROM:
        action = "edited"
        await live.workflow.send(draft.id, real, via="edit", revision=draft.revision)
    else:
        action = "answered"
        for message in current.messages:
            await live.arrive(message, out=True)
    return Decision(day, action, round(score, 4))


async def night(number: int, live: Live, test: TestSet) -> Night:
    """The night's retraining, started as the schedule starts it; then the adapter the
    service serves, measured on the test conversations."""
    from bot.training import Outcome
    from storage import adapters as adapters_table

    async def nothing(_: Any) -> None:
        return None

    print(f"  night {number}: retraining", file=sys.stderr, flush=True)
    started, _ = await live.launcher.start("schedule", nothing, nothing)
    if not started:
        raise SystemExit("a training run is already under way in the arm's folder")
    outcome: Outcome | None = await live.launcher.wait()
    if outcome is None or outcome.report is None:
        raise SystemExit(f"night {number}: training failed: {outcome.error if outcome else '-'}")
    await live.service.refresh(live.db)
    active = await adapters_table.active(live.db)
    report = outcome.report
    phase = report.get("preference") or {}
    run = {
        "promoted": report.get("promoted"),
        "steps": report["training"]["steps"],
        "preference_steps": phase.get("steps"),
        "preference_pairs": phase.get("pairs"),
        "preference_sources": phase.get("sources"),
        "preference_kept": phase.get("kept"),
        "preference_skipped": phase.get("skipped"),
    }
    return Night(number, run, test.measure(Path(active.path)))


# -- the whole invocation -------------------------------------------------------------------------


def main() -> None:
    args = parse_arguments(sys.argv[1:])
    work = args.work or Path(tempfile.mkdtemp(prefix=f"twin-owner-sim-{args.persona}-"))
    shared = [f"train.max_minutes={args.minutes}", f"generate.seed={SEED}", *args.set]
    began = time.perf_counter()

    reuse = args.reuse and (work / "past" / "twin.db").is_file()
    say("the test: the whole history, split as twin dataset splits it")
    whole = data_folder(work / "test", args.models)
    export_path = persona_export(args.persona, whole, args.cache)
    export = read_export(export_path)
    with environment(twin_environment(whole, shared)):
        if not reuse:
            twin(["import", str(export_path)], dict(os.environ))
            twin(["dataset"], dict(os.environ))
        test = TestSet(whole, args.test_replies, args.test_tasks)

    history = turns(export)
    answers = (args.nights + 1) * args.drafts
    replay_from = replay_start(history, test.starts, answers)
    replay = [t for t in history if replay_from <= t.date < test.starts]
    past = data_folder(work / "past", args.models)
    if reuse:
        say("the past: the first adapter an earlier invocation trained (--reuse)")
        first_test = test.measure(active_adapter(past))
    else:
        say(f"the past (before the replay): the first adapter, {args.minutes} min")
        past_export = past / "past.json"
        past_export.write_text(json.dumps(export_before(export, replay_from)), encoding="utf-8")
        with environment(twin_environment(past, shared)):
            twin(["import", str(past_export)], dict(os.environ))
            first = json.loads(twin(["train", "--json"], dict(os.environ)))
        first_test = test.measure(Path(first["adapter_path"]))

    results = []
    for arm in args.arms:
        folder = work / arm
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(past, folder, symlinks=True)
        changes = [*shared, *ARM_SETTINGS[arm]]
        if arm == "reranking":
            changes.append(f"generate.candidates={args.candidates}")
        say(f"arm {arm}: {args.nights + 1} days of {args.drafts} drafts, a night after each")
        with environment(twin_environment(folder, changes)):
            result = asyncio.run(
                live_arm(arm, folder, replay, owner_of(export), args.drafts, args.nights + 1, test)
            )
        results.append(result)
        print(json.dumps(arm_record(result)), flush=True)

    print(table(results, first_test))
    summary = {
        "persona": args.persona,
        "nights": args.nights,
        "drafts_per_day": args.drafts,
        "minutes_per_night": args.minutes,
        "candidates": args.candidates,
        "settings": args.set,
        "replayed_turns": len(replay),
        "first_adapter": first_test,
        "arms": [arm_record(r) for r in results],
        "minutes": round((time.perf_counter() - began) / 60, 1),
    }
    if args.plot is not None:
        plot(results, args.plot, args.persona)
        summary["plot"] = str(args.plot)
    print(json.dumps(summary))


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    known = known_personas()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("persona", metavar="PERSONA", help=", ".join(known))
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument("--drafts", type=int, default=10, help="decisions a day")
    parser.add_argument("--minutes", type=float, default=15.0, help="each run's time budget")
    parser.add_argument("--arms", default=",".join(ARMS), help="of " + ", ".join(ARMS))
    parser.add_argument("--candidates", type=int, default=4, help="the reranking arm's")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument(
        "--test-replies", type=int, default=48, help="held-out replies the loss is on (0: all)"
    )
    parser.add_argument(
        "--test-tasks", type=int, default=40, help="held-out selection tasks (0: all)"
    )
    parser.add_argument("--models", type=Path, default=ROOT / "data" / "models")
    parser.add_argument("--work", type=Path, help="keep the data folders here")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --work: the test and the first adapter of an earlier invocation there",
    )
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "twin-dev")
    parser.add_argument("--plot", type=Path, metavar="FILE", help="chrF per day per arm (PNG)")
    args = parser.parse_args(argv)
    if args.persona not in known:
        parser.error(f"no persona {args.persona}; known: {', '.join(known)}")
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown or not args.arms:
        parser.error(f"arms are {', '.join(ARMS)}; got {args.arms}")
    if args.nights < 1 or args.drafts < 1 or args.minutes <= 0:
        parser.error("--nights, --drafts and --minutes must be positive")
    return args


def say(text: str) -> None:
    print(f"owner_sim: {text}", file=sys.stderr, flush=True)


def arm_record(result: ArmResult) -> dict[str, Any]:
    return {
        "arm": result.arm,
        "days": result.days(),
        "nights": [asdict(n) for n in result.nights],
        "undrafted": result.undrafted,
        "minutes": result.minutes,
    }


def table(results: list[ArmResult], first: dict[str, Any]) -> str:
    """Per arm and day: the drafts' chrF to the final reply and what the owner did; per
    night: the adapter then served, on the test conversations."""

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    lines = [
        f"first adapter on the test: selection {share(first['selection'])} "
        f"(base {share(first['selection_base'])}, {first['tasks']} tasks), "
        f"loss {first['loss']:.4f} (base {first['base_loss']:.4f})",
        "| arm | day | drafts | chrF(draft, final) | sent unedited | edited | answered himself "
        "| after the night: selection | loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        nights = {n.night: n.test for n in result.nights}
        for day in result.days():
            after = nights.get(day["day"])
            measured = (
                "- | -" if after is None else (f"{share(after['selection'])} | {after['loss']:.4f}")
            )
            lines.append(
                f"| {result.arm} | {day['day']} | {day['drafts']} | {day['chrf']:.3f} | "
                f"{share(day['sent'])} | {share(day['edited'])} | {share(day['answered'])} | "
                f"{measured} |"
            )
    return "\n".join(lines)


def plot(results: list[ArmResult], path: Path, persona: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=120)
    for result in results:
        days = result.days()
        axes.plot([d["day"] for d in days], [d["chrf"] for d in days], "o-", label=result.arm)
    axes.set_xlabel("day (a night's retraining after each)")
    axes.set_ylabel("chrF(draft, final)")
    axes.set_title(f"The simulated owner: {persona}")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    plt.close(figure)


if __name__ == "__main__":
    main()
