"""The training recipe's empty settings, filled from the data and the machine.

A personal history has a few hundred to a few thousand replies, not the seed's 51k:
a batch of 128 over 300 samples is two optimizer steps an epoch. So the batch follows
the number of samples (about 30 steps an epoch, 8 to 128 samples a step), small
datasets get more passes, and a CPU gets a time budget (`max_minutes`; 0: none) that
the run plans into: trainer.budget may make the batch smaller still so that enough
steps fit, and trainer.finetune fixes the schedule's length from the speed of its
first steps.
"""

from __future__ import annotations

import math

from trainer.settings import CPU_MINUTES, TrainSettings

STEPS_PER_EPOCH = 30
MIN_BATCH, MAX_BATCH = 8, 128
MIN_EPOCHS, MAX_EPOCHS = 2, 8
SAMPLE_PASSES = 2000  # epochs = this / samples, within the bounds above


def resolve(settings: TrainSettings, samples: int, device: str) -> TrainSettings:
    """`settings` with batch_size, epochs and max_minutes chosen where they are empty."""
    chosen = {}
    if settings.batch_size is None:
        target = max(1, samples) / STEPS_PER_EPOCH
        power = 2 ** round(math.log2(max(target, 1)))
        chosen["batch_size"] = min(MAX_BATCH, max(MIN_BATCH, power))
    if settings.epochs is None:
        chosen["epochs"] = min(
            MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(SAMPLE_PASSES / max(1, samples)))
        )
    if settings.max_minutes is None and device == "cpu":
        chosen["max_minutes"] = CPU_MINUTES
    elif settings.max_minutes == 0:  # no limit, asked for
        chosen["max_minutes"] = None
    return settings.model_copy(update=chosen)
