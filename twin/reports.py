"""What the commands print for people: one formatter per report, beside each other so
that `twin demo` shows the same text as the command it repeats."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataset.build import DatasetStats
    from exporter.desktop_import import ImportReport
    from memory.index import RefreshReport
    from model.checkpoints import ModelInfo
    from trainer.loss import LossReport
    from trainer.run import RunReport


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
            f"({report.improvement:+.1%} better)",
            format_selection(report.selection, width=14),
            f"  adapter       {report.adapter_path}",
        ]
    )


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
        ]
    )


def format_selection(selection: dict[str, Any], width: int = 16) -> str:
    """hits@1 of base model and adapter: the real reply picked among the owner's others."""
    chance = 1 / selection["candidates"]
    return (
        f"  {'selection':<{width}}base {selection['base']:.0%}   adapter {selection['adapter']:.0%}"
        f"   (real reply picked of {selection['candidates']} of yours, {selection['tasks']} "
        f"times; chance {chance:.0%})"
    )


def format_style(style: dict) -> str:
    sides = [s for s in ("real", "base", "adapter") if s in style]
    rows = [
        ("median length", "median_chars", "{:.0f}"),
        ("length distance", "length_distance", "{:.2f}"),
        ("messages/reply", "messages_per_reply", "{:.2f}"),
        ("emoji rate", "emoji_rate", "{:.0%}"),
        ("filler words", "filler_word_rate", "{:.0%}"),
        ("authorship", "authorship", "{:.2f}"),
    ]
    lines = [
        f"Style of {style['samples']} generated replies (your filler words: "
        f"{', '.join(style['owner_filler_words']) or '-'})",
        "  " + " " * 16 + "".join(f"{side:>10}" for side in sides),
    ]
    for label, key, fmt in rows:
        lines.append(f"  {label:<16}" + "".join(f"{fmt.format(style[s][key]):>10}" for s in sides))
    similarity = style["similarity"]
    lines.append(
        f"  {'chrF to real':<16}{'':>10}"
        + "".join(f"{similarity[s]:>10.2f}" for s in sides if s in similarity)
    )
    return "\n".join(lines)


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
            f"  corrections    {stats.preferences:,} (draft, final) pairs",
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
