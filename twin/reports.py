"""What the commands print for people: one formatter per report, beside each other so
that `twin demo` shows the same text as the command it repeats."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exporter.desktop_import import ImportReport
    from trainer.loss import LossReport
    from trainer.run import RunReport
    from twin.dataset.build import DatasetStats
    from twin.memory.index import RefreshReport
    from twin.model.checkpoints import ModelInfo


def format_import(report: ImportReport) -> str:
    skipped = ", ".join(f"{n:,} {reason}" for reason, n in report.skipped.items()) or "none"
    title = f"Imported {report.path}" + (" (dry run: nothing written)" if report.dry_run else "")
    return "\n".join(
        [
            title,
            f"  chats     {report.chats:,}",
            f"  messages  {report.new:,} new, {report.updated:,} updated, "
            f"{report.duplicates:,} already stored",
            f"  skipped   {skipped}",
            *(
                [f"  repaired  {report.repaired:,} (broken characters replaced by �)"]
                if report.repaired
                else []
            ),
            f"  owner     {report.owner_id}",
            f"  took      {report.seconds:.1f} s",
        ]
    )


def format_memory(report: RefreshReport | None) -> str:
    """The import's and the sync's last line: what the twin now remembers."""
    if report is None:
        return "  memory    off (memory.enabled = false)"
    return (
        f"  memory    {report.exchanges:,} exchanges of {report.chats:,} chats indexed, "
        f"{report.removed:,} removed, {report.seconds:.1f} s"
    )


def format_run(report: RunReport) -> str:
    verdict = "promoted: now active" if report.promoted else "rejected"
    training = report.training
    return "\n".join(
        [
            f"Training run {report.run_id}: adapter {report.adapter_id} {verdict}",
            f"  why           {report.reason}",
            f"  samples       {report.samples['train']:,} train, "
            f"{report.samples['val']:,} validation",
            f"  steps         {training['steps']} of {training['total_steps']} "
            f"({training['stopped']}), {training['tokens_per_s']:.0f} tokens/s, "
            f"{training['seconds'] / 60:.1f} min",
            f"  loss          base {report.base_loss:.4f} -> adapter {report.adapter_loss:.4f} "
            f"({report.improvement:+.1%} better, on {_evaluated(report)})",
            format_selection(report.selection, width=14),
            *_few_held_out(report.samples["val"], width=14),
            *_preference(report.preference),
            f"  time          {_stages(report.stages)}",
            f"  adapter       {report.adapter_path}",
        ]
    )


def _preference(phase: dict[str, Any] | None) -> list[str]:
    """The preference phase's line: what it learned from and whether it was kept."""
    if phase is None:
        return []
    if "skipped" in phase:
        return [f"  preferences   skipped: {phase['skipped']}"]
    sources = ", ".join(f"{n} {name}" for name, n in phase["sources"].items()) or "none"
    verdict = (
        "kept"
        if phase["kept"]
        else f"not kept, {phase['refused']} (the supervised adapter is)"
        if phase["steps"]
        else "nothing learned"
    )
    selection = ""
    if phase["selection_before"] is not None:
        selection = (
            f", selection {phase['selection_before']:.0%} -> {phase['selection_after']:.0%}"
            f" on {phase['selection_tasks']} tasks"
        )
    return [
        f"  preferences   {phase['pairs']} pairs, {phase['signals']} signals ({sources}); "
        f"{phase['steps']} steps, validation loss {phase['val_loss_before']:.4f} -> "
        f"{phase['val_loss_after']:.4f}{selection}: {verdict}"
    ]


def _evaluated(report: RunReport) -> str:
    held_out = report.samples["val"]
    evaluated = report.training.get("evaluated_samples", held_out)
    if evaluated >= held_out:
        return f"all {held_out:,} held-out replies"
    return f"{evaluated:,} of {held_out:,} held-out replies; twin eval scores all"


def _stages(stages: dict[str, float]) -> str:
    """How the run's time went: training, evaluating, and the rest together."""
    total = sum(stages.values())
    if not total:
        return "-"
    named = ("training", "learning your preferences", "evaluating")
    parts = [
        f"{name} {stages[name] / 60:.1f} min ({stages[name] / total:.0%})"
        for name in named
        if name in stages
    ]
    rest = total - sum(stages.get(name, 0.0) for name in named)
    return ", ".join([*parts, f"the rest {rest / 60:.1f} min"])


def format_losses(adapter_id: int, report: LossReport, selection: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Adapter {adapter_id} on {report.samples:,} held-out replies "
            f"({report.tokens:,} tokens)",
            f"  loss per token  base {report.base_loss:.4f}   adapter {report.adapter_loss:.4f}",
            f"  perplexity      base {report.base_perplexity:.2f}   "
            f"adapter {report.adapter_perplexity:.2f}",
            f"  improvement     {report.improvement:+.1%}",
            format_selection(selection),
            *_few_held_out(report.samples),
        ]
    )


# Fewer held-out replies than this make numbers that say little: one reply is two points
# of selection, and its interval spans tens of them.
FEW_HELD_OUT = 50


def _few_held_out(replies: int, width: int = 16) -> list[str]:
    """A warning line when the held-out set is too small to say anything."""
    if replies >= FEW_HELD_OUT:
        return []
    return [
        f"  {'warning':<{width}}only {replies} held-out replies: too few to tell the twin "
        "from the base model; more history (or a larger dataset.val_fraction) says more"
    ]


def format_selection(selection: dict[str, Any], width: int = 16) -> str:
    """hits@1 of base model and twin, in words: how often each picked the real reply out
    of ten of the owner's with memory off, how sure that is, and beside it (twin eval)
    the same with memory on, where repeating an earlier reply can win."""
    label = f"  {'selection':<{width}}"
    if selection["base"] is None:
        return f"{label}not measured: {selection.get('reason') or 'no task'}"
    indent = " " * (width + 2)
    chance = 1 / selection["candidates"]
    lines = [
        f"{label}base {selection['base']:.0%}   twin {selection['adapter']:.0%}   "
        f"{_difference(selection)}",
        f"{indent}(your real reply picked out of {selection['candidates']} of yours with memory "
        f"off, on {selection['tasks']} held-out replies from {selection['conversations']} "
        f"conversations; chance {chance:.0%})",
    ]
    memory = selection.get("memory")
    if memory is not None:
        lines.append(_with_memory(memory, f"  {'with memory':<{width}}"))
    return "\n".join(lines)


def _difference(selection: dict[str, Any]) -> str:
    """The twin's gain in points, and whether its 95 % interval rules out none."""
    points = 100 * (selection["adapter"] - selection["base"])
    interval = selection.get("difference_ci95")
    if interval is None:
        return f"({points:+.0f} points; too few conversations to say how sure)"
    low, high = (100 * bound for bound in interval)
    verdict = "a real difference" if low > 0 or high < 0 else "not a clear difference"
    return f"({points:+.0f} points, 95 % interval {low:+.0f} to {high:+.0f}: {verdict})"


def _with_memory(memory: dict[str, Any], label: str) -> str:
    if memory["base"] is None:
        return f"{label}not measured: {memory.get('reason') or 'no task'}"
    novel = memory["novel"]
    line = f"{label}base {memory['base']:.0%}   twin {memory['adapter']:.0%}"
    if memory["repeat_tasks"]:
        line += (
            f"; {memory['repeat_tasks']} of {memory['tasks']} replies repeat one you wrote "
            "before (the twin can copy those)"
        )
    if novel["tasks"] and memory["repeat_tasks"]:
        line += (
            f"; on messages unlike anything you wrote before ({novel['tasks']}): "
            f"base {novel['base']:.0%}   twin {novel['adapter']:.0%}"
        )
    return line


# Each style measure of generated replies: its label, its key, its format, and which way
# is better ("yours": the closer to your real replies the better).
_STYLE_ROWS = (
    ("median length, chars", "median_chars", "{:.0f}", "yours"),
    ("messages per reply", "messages_per_reply", "{:.2f}", "yours"),
    ("with emoji", "emoji_rate", "{:.0%}", "yours"),
    ("with your fillers", "filler_word_rate", "{:.0%}", "yours"),
    ("length distance", "length_distance", "{:.2f}", "lower"),
    ("sounds like you", "authorship", "{:.2f}", "higher"),
)
_BETTER = {"yours": "closer to yours", "lower": "lower", "higher": "higher"}
_SIDES = {"real": "yours", "base": "base", "adapter": "twin"}


def format_style(style: dict) -> str:
    """Generated replies beside your real ones, each row saying which way is better:
    most should come close to your own column; a distance should be low, the
    authorship score (a classifier's probability that you wrote it) and chrF high."""
    sides = [s for s in _SIDES if s in style]
    lines = [
        f"Style of {style['samples']} generated replies (your filler words: "
        f"{', '.join(style['owner_filler_words']) or '-'})",
        "  " + " " * 22 + "".join(f"{_SIDES[s]:>9}" for s in sides) + "   better",
    ]
    for label, key, fmt, better in _STYLE_ROWS:
        cells = "".join(
            f"{'-' if s == 'real' and better == 'lower' else fmt.format(style[s][key]):>9}"
            for s in sides
        )
        lines.append(f"  {label:<22}{cells}   {_BETTER[better]}")
    similarity = style["similarity"]
    cells = "".join(f"{similarity[s]:>9.2f}" if s in similarity else f"{'-':>9}" for s in sides)
    lines.append(f"  {'chrF to yours':<22}{cells}   higher (1: the same words)")
    for label, key in (("copies an old reply", "copies"), ("echoes the message", "echoes")):
        if key in style:
            counts = "".join(f"{style[key].get(s, '-'):>9}" for s in sides)
            lines.append(f"  {label:<22}{counts}   fewer (of {style['samples']})")
    if similarity.get("recalled") is not None:
        lines.append(
            f"  pasting what memory recalled scores chrF {similarity['recalled']:.2f}: "
            "what memory alone does, with no model"
        )
    return "\n".join(lines)


def next_step(command: str, why: str) -> str:
    """The line that ends a command's report: what to do next."""
    return f"\nNext: {command}  ({why})"


def format_stats(stats: DatasetStats) -> str:
    def listed(counts: dict[str, int]) -> str:
        return ", ".join(f"{n:,} {name}" for name, n in counts.items()) or "none"

    unit = "tokens" if stats.tokens else "characters"
    other = stats.samples["other"]
    theirs = f", {other:,} of other people's turns" if other else ""
    return "\n".join(
        [
            f"Dataset: {stats.path}",
            f"  chats          {stats.chats:,}",
            f"  messages       {stats.messages:,}",
            f"  conversations  {stats.conversations:,}",
            f"  samples        {stats.samples['train']:,} train, "
            f"{stats.samples['val']:,} validation{theirs}",
            f"  size           {stats.characters:,} characters (context budget in {unit})",
            f"  dropped        {listed(stats.dropped)}",
            f"  scrubbed       {listed(stats.pii)}",
            f"  your feedback  {_feedback(stats.feedback)}",
            f"  fingerprint    {stats.fingerprint[:12]}",
        ]
    )


def format_info(model: ModelInfo) -> str:
    size = f"{model.size_bytes / 2**20:,.0f} MiB" if model.size_bytes else "-"
    parameters = f"{model.parameters / 1e6:,.0f}M" if model.parameters else "-"
    state = "ready" if model.prepared else "not prepared (run: twin model prepare)"
    return "\n".join(
        [
            f"Model: {model.name}  [{state}]",
            f"  source      {model.source}",
            f"  path        {model.path}",
            f"  parameters  {parameters}",
            f"  vocabulary  {model.vocab_size or '-'}",
            f"  runs on     {model.device}, {model.precision}",
            f"  on disk     {size}",
        ]
    )


def format_evaluation(report: dict[str, Any]) -> str:
    losses = report["losses"]
    lines = [
        f"  Held-out replies: {losses['samples']} ({losses['tokens']:,} tokens)",
        f"  loss per token    base {losses['base_loss']:.3f}   twin {losses['adapter_loss']:.3f}"
        f"   ({losses['improvement']:+.1%})",
        f"  perplexity        base {losses['base_perplexity']:.1f}   twin "
        f"{losses['adapter_perplexity']:.1f}",
        format_selection(report["selection"], width=18),
        "",
        format_style(report["style"]),
        "",
        "  Side by side: a held-out message, what Kostya wrote, the base model, the twin",
    ]
    for example in report["style"]["examples"]:
        lines += [
            "",
            f"  they wrote   {_one_line(example['message']) or '(Kostya opens the conversation)'}",
            f"  Kostya       {_one_line(example['real'])}",
            f"  base model   {_one_line(example['base']) or '(nothing usable)'}",
            f"  twin         {_one_line(example['adapter']) or '(nothing usable)'}",
        ]
    return "\n".join(lines)


def _one_line(text: str, width: int = 90) -> str:
    text = " / ".join(part.strip() for part in text.splitlines() if part.strip())
    return text if len(text) <= width else text[: width - 1] + "…"


def _feedback(feedback: dict[str, Any]) -> str:
    """What the owner's decisions on drafts gave: pairs and signals by source."""
    if not feedback.get("pairs") and not feedback.get("signals"):
        return "none yet (decide drafts in `twin run`: each Send, edit or Discard teaches)"
    sources = ", ".join(f"{n:,} {name}" for name, n in feedback["sources"].items())
    return (
        f"{feedback['pairs']:,} preference pairs and {feedback['signals']:,} single signals "
        f"({sources})"
    )
