"""What a run's preference phase learns from: the owner's decisions on drafts
(twin.dataset.feedback wrote them beside the samples) and demonstrated pairs.

A demonstrated pair is made at the start of the phase: the supervised adapter answers a
training reply's context itself, and the owner's real reply is preferred over its
guess. Learning from one's own samples against the person's demonstrations is what
DITTO ("Show, Don't Tell", Shaikh et al. 2024) found to beat supervised fine-tuning
alone with a handful of demonstrations. A guess nearly the same as the real reply
(chrF >= SAME_CHRF) is no pair: there is nothing to prefer.

A hard negative (optional, `preference.hard_negatives`) needs no generation: the owner's
reply preferred, for its context, over one of his replies from another conversation.
Both are in his voice, so what the pair teaches is the conversation itself, which is
what selection measures.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from litgpt import Tokenizer
from sacrebleu.metrics import CHRF

from trainer.batches import encode_rendered
from trainer.preference import Pair, Signal
from twin.engine.errors import DegenerateReply
from twin.engine.generate import Engine
from twin.engine.settings import GenerationSettings
from twin.prompt.text import Prompt

SAME_CHRF = 90.0  # chrF (0-100) from which a guess is the owner's reply in other words
GUESS_TOKENS = 96  # a guess longer than this is cut: owners' replies are shorter


@dataclass
class PairSet:
    pairs: list[Pair] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    sources: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)

    def add(self, other: PairSet) -> None:
        self.pairs += other.pairs
        self.signals += other.signals
        self.sources.update(other.sources)
        self.dropped.update(other.dropped)


def feedback_pairs(rows: list[dict[str, Any]], tokenizer: Tokenizer, length: int) -> PairSet:
    """The owner's feedback (twin.dataset.feedback's rows) as encoded pairs and signals."""
    found = PairSet()
    paired = [r for r in rows if "chosen" in r]
    single = [r for r in rows if "reply" in r]
    chosen = encode_rendered(
        [r["prompt"] for r in paired], [r["chosen"] for r in paired], tokenizer, length
    )
    rejected = encode_rendered(
        [r["prompt"] for r in paired], [r["rejected"] for r in paired], tokenizer, length
    )
    found.pairs = [Pair(c, r) for c, r in zip(chosen, rejected, strict=True)]
    replies = encode_rendered(
        [r["prompt"] for r in single], [r["reply"] for r in single], tokenizer, length
    )
    found.signals = [Signal(e, r["desirable"]) for e, r in zip(replies, single, strict=True)]
    found.sources.update(r["source"] for r in rows)
    return found


def demonstrated_pairs(
    engine: Engine,
    samples: list[dict[str, Any]],
    prompt: Prompt,
    count: int,
    length: int,
    deadline: float | None = None,
    done: Callable[[int], None] | None = None,
) -> PairSet:
    """Up to `count` pairs of an owner's training reply over the engine's own reply to
    its context, the samples taken in a fixed random order (spanning conversations), and
    no generation begun after `deadline` (perf_counter seconds). `done` is told each
    reply generated."""
    found = PairSet()
    order = list(range(len(samples)))
    random.Random("demonstrated").shuffle(order)
    chrf = CHRF()
    settings = GenerationSettings(max_new_tokens=GUESS_TOKENS, attempts=1)
    prompts, chosen, rejected = [], [], []
    for index in order[:count]:
        if deadline is not None and time.perf_counter() >= deadline:
            found.dropped["time_budget"] += 1
            continue
        sample = samples[index]
        rendered = prompt.render_sample(sample)
        try:
            guess = engine.generate(rendered, settings.model_copy(update={"seed": index})).text
        except DegenerateReply:
            found.dropped["degenerate"] += 1
            continue
        finally:
            if done is not None:
                done(1)
        if chrf.sentence_score(guess, [sample["output"]]).score >= SAME_CHRF:
            found.dropped["same_as_yours"] += 1
            continue
        prompts.append(rendered)
        chosen.append(sample["output"])
        rejected.append(guess)
    found.pairs = [
        Pair(c, r)
        for c, r in zip(
            encode_rendered(prompts, chosen, engine.tokenizer, length),
            encode_rendered(prompts, rejected, engine.tokenizer, length),
            strict=True,
        )
    ]
    found.sources["demonstrated"] = len(found.pairs)
    return found


def hard_negative_pairs(
    samples: list[dict[str, Any]], tokenizer: Tokenizer, prompt: Prompt, count: int, length: int
) -> PairSet:
    """Up to `count` pairs of an owner's training reply over his reply from another
    conversation (hard_negatives' choice), encoded."""
    found = PairSet()
    chosen = hard_negatives(samples, count)
    prompts = [prompt.render_sample(samples[c]) for c, _ in chosen]
    found.pairs = [
        Pair(c, r)
        for c, r in zip(
            encode_rendered(prompts, [samples[c]["output"] for c, _ in chosen], tokenizer, length),
            encode_rendered(prompts, [samples[r]["output"] for _, r in chosen], tokenizer, length),
            strict=True,
        )
    ]
    found.sources["hard_negative"] = len(found.pairs)
    return found


def hard_negatives(samples: list[dict[str, Any]], count: int) -> list[tuple[int, int]]:
    """(reply, rejected reply) indexes of `samples`: up to `count` replies that answer a
    message, in a fixed random order, each against a reply of another conversation
    that is not nearly the same words (chrF < SAME_CHRF)."""
    order = random.Random("hard negatives")
    answering = [i for i, s in enumerate(samples) if s["instruction"]]
    order.shuffle(answering)
    chrf, found = CHRF(), []
    for index in answering[:count]:
        conversation = (samples[index]["chat_id"], samples[index]["conversation"])
        others = [
            i
            for i in range(len(samples))
            if (samples[i]["chat_id"], samples[i]["conversation"]) != conversation
        ]
        order.shuffle(others)
        for other in others[:8]:  # a few tries: most replies differ at once
            score = chrf.sentence_score(samples[other]["output"], [samples[index]["output"]]).score
            if score < SAME_CHRF:
                found.append((index, other))
                break
    return found
