"""Replies in the owner's voice: the reply engine the bot, the drafts and `twin chat` share.

The base model is loaded once; an adapter is only its LoRA weights, so switching to a
newly activated one copies a few megabytes and nothing else. Decoding keeps a KV cache
and runs the 262k-token output layer only at the last position (the prompt's other
positions never need it). The reply ends at <eos>, at <end_of_turn>, or where the
template would start a new section or speaker; it is split into messages on the burst
separator, and media placeholders it cannot send are taken out (callers fit the
messages to their medium). Empty or degenerate output (only
whitespace, one token looping) is retried with different sampling, then reported:
never sent as is.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from litgpt import Tokenizer
from litgpt.lora import LoRALinear

from twin.dataset.conversations import sendable_text
from twin.engine.errors import DegenerateReply
from twin.engine.settings import GenerationSettings, Sampling
from twin.engine.stream import TextStream, cut
from twin.model import registry
from twin.model.checkpoints import counter_of
from twin.model.lora import TwinGPT, build_model, load_adapter
from twin.model.quantize import DecodeLinear, use_int8_for_decoding
from twin.model.scoring import reply_logprobs
from twin.model.settings import LoRASettings
from twin.prompt.text import Prompt


@dataclass
class Reply:
    messages: list[str]
    text: str
    tokens: int
    seconds: float
    first_token_seconds: float
    prompt_tokens: int
    attempts: int
    seed: int
    adapter: str | None = None
    prompt: str = ""  # the rendered prompt the reply answers
    discarded: list[str] = field(default_factory=list)  # degenerate attempts, for logs
    # The other candidates' messages, best first (generate.candidates > 1): what
    # Regenerate shows next.
    alternatives: list[list[str]] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        decode = self.seconds - self.first_token_seconds
        return (self.tokens - 1) / decode if self.tokens > 1 and decode > 0 else 0.0


class Engine:
    """What every backend of the reply engine shares: the attempts, the stop markers,
    the stream, the messages a reply is split into. A backend encodes the prompt,
    decodes tokens into text, samples, and swaps adapters (ReplyEngine: twin's own, on
    torch; engine.llama_cpp: llama.cpp's)."""

    checkpoint_dir: Path  # the base model's litgpt folder: its name, its tokenizer
    tokenizer: Tokenizer  # twin's, for every backend: the ids the adapter learned
    prompt: Prompt
    max_seq_length: int
    adapter: str | None  # the adapter served (its folder), None: the base model
    count_tokens: Callable[[str], int]

    def encode(self, text: str) -> list[int]:
        """`text` as token ids, <bos> first."""
        return self.tokenizer.encode(text, bos=True).tolist()

    def detokenize(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(torch.tensor(tokens))

    def use_adapter(self, path: Path | None) -> None:
        raise NotImplementedError

    can_score = False  # whether reply_logprobs works: candidates are ranked with it

    def reply_logprobs(self, prefix: list[int], replies: list[list[int]]) -> list[float]:
        """Mean log-probability per token of each reply right after `prefix`."""
        raise NotImplementedError

    def decode(
        self,
        prompt_ids: Sequence[int],
        sampling: Sampling,
        stop: bool = True,
        markers: Sequence[str] | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[list[int], float]:
        """Generated token ids, and the seconds to the first one. Decoding ends at a stop
        token or once the text holds one of `markers` (the template's, by default);
        `stop=False` decodes exactly `sampling.max_new` tokens (benchmarks). `on_text`
        sees the text so far after every token."""
        raise NotImplementedError

    def generate(
        self,
        prompt_text: str,
        settings: GenerationSettings,
        on_text: Callable[[str], None] | None = None,
    ) -> Reply:
        """A reply to a rendered prompt (twin.prompt.reply makes one).

        `on_text` is given each piece of the reply as soon as it can no longer change
        (engine.stream); the pieces add up to `Reply.text`. What is streamed cannot be
        taken back, so a streamed reply has one attempt."""
        if settings.candidates > 1 and on_text is None and self.can_score:
            return self._best_of(prompt_text, settings)
        seed = settings.seed if settings.seed is not None else random.randrange(2**31)
        sampling = Sampling.of(settings, seed)
        markers = [*self.prompt.stop_markers, *settings.stop]
        attempts = 1 if on_text is not None else settings.attempts
        ids = self._prompt_ids(prompt_text, sampling.max_new)
        stream = TextStream(markers, on_text) if on_text is not None else None
        discarded: list[str] = []
        for attempt in range(attempts):
            this_try = sampling.attempt(attempt)
            started = time.perf_counter()
            tokens, first = self.decode(
                ids,
                this_try,
                markers=markers,
                on_text=None if stream is None else stream.update,
            )
            text = self._finish(tokens, markers)
            if stream is not None:
                stream.finish(text)
            messages = [m for m in map(sendable_text, self.prompt.split_burst(text)) if m]
            if messages and not _degenerate(tokens):
                return Reply(
                    messages=messages,
                    text=text,
                    tokens=len(tokens),
                    seconds=time.perf_counter() - started,
                    first_token_seconds=first,
                    prompt_tokens=len(ids),
                    attempts=attempt + 1,
                    seed=this_try.seed,
                    adapter=self.adapter,
                    prompt=prompt_text,
                    discarded=discarded,
                )
            discarded.append(text)
        # What the model wrote stays out of the message: it goes to logs and API errors,
        # and the model can repeat the owner's private chats.
        raise DegenerateReply(
            f"no usable reply after {attempts} attempt{'s' if attempts > 1 else ''} "
            f"(the last {'looped on one token' if _degenerate(tokens) else 'was empty'})"
        )

    def _prompt_ids(self, prompt_text: str, max_new: int) -> list[int]:
        """The prompt's ids, leaving room for the reply: <bos> and its newest part."""
        ids = self.encode(prompt_text)
        room = self.max_seq_length - max_new
        return ids if len(ids) <= room else [*ids[:1], *ids[-(room - 1) :]]

    def _best_of(self, prompt_text: str, settings: GenerationSettings) -> Reply:
        """`settings.candidates` replies, each sampled with a seed of its own; the one the
        conversation raises most (selection's measure: its log-probability after the
        prompt less after the neutral prompt, per token) is given, the others follow it
        as alternatives, best first."""
        started = time.perf_counter()
        seed = settings.seed if settings.seed is not None else random.randrange(2**31)
        replies = []
        for offset in range(settings.candidates):
            one = settings.model_copy(update={"candidates": 1, "seed": (seed + offset) % 2**31})
            with contextlib.suppress(DegenerateReply):
                replies.append(self.generate(prompt_text, one))
        if not replies:
            raise DegenerateReply(f"no usable reply among {settings.candidates} candidates")
        prompt = self._prompt_ids(prompt_text, Sampling.of(settings, seed).max_new)
        neutral = self.encode(self.prompt.neutral())
        tokens = [self.tokenizer.encode(r.text, bos=False, eos=False).tolist() for r in replies]
        given = self.reply_logprobs(prompt, tokens)
        alone = self.reply_logprobs(neutral, tokens)
        lifts = [g - a for g, a in zip(given, alone, strict=True)]
        order = sorted(range(len(replies)), key=lambda i: -lifts[i])
        best = replies[order[0]]
        best.alternatives = [replies[i].messages for i in order[1:]]
        best.seconds = time.perf_counter() - started
        return best

    def _finish(self, tokens: list[int], markers: Sequence[str]) -> str:
        text = self.detokenize(tokens) if tokens else ""
        return cut(text, markers)[0].strip()


class ReplyEngine(Engine):
    """twin's own backend: the litgpt model on torch, one reply at a time (callers
    serialize: engine.service does)."""

    def __init__(
        self,
        checkpoint_dir: Path,
        prompt: Prompt,
        precision: str,
        device: str,
        max_seq_length: int,  # generate.max_seq_length
        lora: LoRASettings | None = None,
        int8_decoding: bool | None = None,
    ) -> None:
        self.checkpoint_dir = checkpoint_dir
        # int8 weight copies for one-token steps: by default wherever the model runs on
        # the CPU (see model.quantize).
        self.int8_decoding = device == "cpu" if int8_decoding is None else int8_decoding
        self.prompt = prompt
        self.fabric = L.Fabric(accelerator=device, devices=1, precision=precision)  # type: ignore[arg-type]
        self.tokenizer = Tokenizer(checkpoint_dir)
        self.count_tokens = counter_of(self.tokenizer)
        self.lora = lora or LoRASettings()
        self.max_seq_length = max_seq_length
        self.model = self._build()
        self.adapter: str | None = None  # path of the adapter in use; None: the base model
        self.stop_ids = stop_ids(self.tokenizer)

    def _build(self) -> TwinGPT:
        """The model for serving: adapters are merged into the weights (no LoRA branch
        to compute per token), so the base weights they touch are kept aside to merge
        the next adapter into."""
        model = build_model(self.fabric, self.checkpoint_dir, self.lora, self.max_seq_length)
        load_adapter(model, None)
        model.eval()
        model.requires_grad_(False)
        with self.fabric.init_tensor():
            model.set_kv_cache(batch_size=1)
        self._lora_layers = [m for m in model.modules() if isinstance(m, LoRALinear) and m.r > 0]
        self._base_weights = [m.linear.weight.detach().clone() for m in self._lora_layers]
        for layer in self._lora_layers:
            layer.merged = True  # B = 0: the base model; nothing to add
        if self.int8_decoding:
            use_int8_for_decoding(model)
        return model

    def use_adapter(self, path: Path | None) -> None:
        """Serve an adapter (None: the base model) without reloading the base: the
        weights its LoRA layers touch are reset from the copy kept aside and the new
        adapter is merged into them (a LoRA of another shape rebuilds those layers)."""
        state = None
        if path is not None:
            lora = LoRASettings(**registry.read_meta(path)["lora"])
            if (lora.r, lora.alpha, sorted(lora.targets)) != (
                self.lora.r,
                self.lora.alpha,
                sorted(self.lora.targets),
            ):
                self.lora = lora
                self.model = self._build()
            state = registry.load(path)
        with torch.no_grad():
            for layer, base in zip(self._lora_layers, self._base_weights, strict=True):
                layer.linear.weight.copy_(base)
                layer.merged = False
            load_adapter(self.model, state)
            for layer in self._lora_layers:
                layer.merge()  # W + B A, once; for the base model B is zero
                if isinstance(layer.linear, DecodeLinear):
                    layer.linear.refresh()
        self.adapter = None if path is None else str(path)

    @torch.inference_mode()
    def decode(
        self,
        prompt_ids: Sequence[int] | torch.Tensor,
        sampling: Sampling,
        stop: bool = True,
        markers: Sequence[str] | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[list[int], float]:
        markers = self.prompt.stop_markers if markers is None else markers
        device = self.fabric.device
        generator = torch.Generator(device="cpu").manual_seed(sampling.seed)
        started = time.perf_counter()
        prompt = torch.as_tensor(prompt_ids)
        size = prompt.size(0)
        last = (slice(None), slice(-1, None))  # the output layer only at the last position
        logits = self.prefill(prompt.to(device).view(1, -1))
        tokens: list[int] = []
        first = 0.0
        for step in range(sampling.max_new):
            token = sample(logits.reshape(-1), tokens, sampling, generator)
            if step == 0:
                first = time.perf_counter() - started
            if stop and token in self.stop_ids:
                break
            tokens.append(token)
            if stop or on_text is not None:
                text = self.detokenize(tokens)
                if on_text is not None:
                    on_text(text)
                if stop and cut(text, markers)[1]:
                    break
            position = size + step
            logits = self.model(
                torch.tensor([[token]], device=device),
                torch.tensor([position], device=device),
                position + 1,
                head_positions=last,
            )
        return tokens, first

    can_score = True

    def reply_logprobs(self, prefix: list[int], replies: list[list[int]]) -> list[float]:
        """Selection's measure (twin.model.scoring), in one batch; then the decoding
        cache is set back."""
        try:
            return reply_logprobs(self.model, prefix, replies, self.fabric.device)
        finally:
            with self.fabric.init_tensor():
                self.model.set_kv_cache(batch_size=1)

    def prefill(self, idx: torch.Tensor) -> torch.Tensor:
        """Fill the KV cache with the whole prompt in one pass; the logits of its last
        position (the only place the output layer runs)."""
        size = idx.size(1)
        positions = torch.arange(size, device=idx.device)
        return self.model(idx, positions, size, head_positions=(slice(None), slice(-1, None)))


def stop_ids(tokenizer: Tokenizer) -> set[int]:
    """The tokens a reply ends at: <eos>, and Gemma's <end_of_turn> where it has one."""
    ids = {tokenizer.eos_id} if tokenizer.eos_id is not None else set()
    for special in ("<end_of_turn>", "<eos>"):
        with contextlib.suppress(ValueError):
            ids.add(tokenizer.token_to_id(special))
    return ids


def sample(
    logits: torch.Tensor, previous: list[int], sampling: Sampling, generator: torch.Generator
) -> int:
    """One token: repetition penalty, then top-k, temperature and top-p on the k
    candidates only (sorting 262k logits per token would cost more than the rest)."""
    logits = logits.float()
    penalty, temperature = sampling.repetition_penalty, sampling.temperature
    if penalty != 1.0 and previous:
        seen = torch.tensor(sorted(set(previous[-64:])), dtype=torch.long)
        values = logits[seen]
        logits[seen] = torch.where(values > 0, values / penalty, values * penalty)
    if temperature <= 0:
        return int(torch.argmax(logits))
    values, indexes = torch.topk(logits, min(max(sampling.top_k, 1), logits.numel()))
    probs = torch.softmax(values / temperature, dim=-1)
    if sampling.top_p < 1.0:
        cumulative = torch.cumsum(probs, dim=-1)
        # The smallest prefix reaching top_p, at least one.
        keep = cumulative - probs < sampling.top_p
        probs = torch.where(keep, probs, torch.zeros_like(probs))
        probs = probs / probs.sum()
    choice = torch.multinomial(probs, 1, generator=generator)
    return int(indexes[choice])


def _degenerate(tokens: list[int]) -> bool:
    """One token (or a two-token pair) looping through most of the reply."""
    if len(tokens) < 12:
        return False
    tail = tokens[-12:]
    return len(set(tail)) <= 2
