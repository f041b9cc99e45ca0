"""The loss curve of a training run, as a PNG for the owner."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: render to memory
import matplotlib.pyplot as plt


def loss_curve(train: list[list[float]], val: list[list[float]], title: str) -> bytes:
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=120)
    if train:
        axes.plot([s for s, _ in train], [v for _, v in train], label="training loss")
    if val:
        axes.plot([s for s, _ in val], [v for _, v in val], "o-", label="validation loss")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss per reply token")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
