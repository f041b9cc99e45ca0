"""The draft workflow: a person writes to the owner, a reply in the owner's voice waits
for one tap.

Per chat mode: `draft` (the default) sends the owner a card with the message, the draft
and Send / Edit / Regenerate / Discard; `auto` sends the draft after a delay unless the
owner answered; `off` does nothing. A new message before the decision redrafts the same
card. The owner answering first expires the draft and takes its buttons away. Sending
is idempotent: each part of the reply is recorded with the random id Telegram
deduplicates by before it goes out, and its message id after; a send interrupted at
any point is completed by reconciliation (at start-up and periodically), each part
exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from rapidfuzz.distance import Levenshtein

from bot import auto_send
from bot.keyboards import draft_card
from bot.settings import UserbotSettings
from bot.telegram_text import fit
from exporter.live import Incoming, LiveUserbot, Outgoing
from storage import Database
from storage import chats as chats_table
from storage import drafts as drafts_table
from storage import messages as messages_table
from storage.drafts import Draft
from twin.dataset.conversations import message_text
from twin.engine.errors import DegenerateReply
from twin.engine.settings import GenerationSettings
from twin.memory import scopes

if TYPE_CHECKING:
    from twin.engine.service import ReplyService

log = logging.getLogger(__name__)
RECONCILE_SECONDS = 60.0
OUTCOMES = {
    "sent": "✅ Sent.",
    "edited_sent": "✅ Sent, as you edited it.",
    "discarded": "🗑 Discarded.",
    "expired": "⏭ You answered yourself.",
}


def draft_scope(chat_id: int, mode: str) -> scopes.Scope:
    """What a draft in a chat of this mode may recall (memory.scopes.draft)."""
    return scopes.draft(chat_id, auto=mode == "auto")


class DraftWorkflow:
    def __init__(
        self,
        bot: Bot,
        db: Database,
        replies: ReplyService,
        owner_id: int,
        settings: UserbotSettings,
        generation: Callable[[], Awaitable[GenerationSettings]],
    ) -> None:
        self.bot = bot
        self.db = db
        self.replies = replies
        self.owner_id = owner_id
        self.settings = settings
        self.generation = generation
        self.userbot: LiveUserbot | None = None
        # Told when a draft settles by any path: an edit of it in progress must end.
        self.on_settled: Callable[[int], Awaitable[None]] | None = None
        self._auto: dict[int, asyncio.Task[None]] = {}
        # Per chat, the prompt of its last draft and the other candidates for it, best
        # first (generate.candidates > 1): Regenerate shows the next without waiting.
        self._alternatives: dict[int, tuple[str, list[str]]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._reconciler: asyncio.Task[None] | None = None

    def _lock(self, chat_id: int) -> asyncio.Lock:
        """One decision at a time per chat (a new message, a button, the owner's answer)."""
        return self._locks.setdefault(chat_id, asyncio.Lock())

    async def mode(self, chat_id: int) -> str:
        return await chats_table.mode(self.db, chat_id) or self.settings.default_mode

    # -- events from the userbot ---------------------------------------------------------

    async def on_incoming(self, incoming: Incoming) -> None:
        mode = await self.mode(incoming.chat_id)
        if mode == "off":
            return
        async with self._lock(incoming.chat_id):
            said = message_text(incoming.text, incoming.media, incoming.media_detail)
            drafted = await self._draft_text(incoming.chat_id, mode)
            if drafted is None:
                await self.bot.send_message(
                    self.owner_id, f"{incoming.name} wrote: {said}\n(I could not draft a reply.)"
                )
                return
            prompt, text = drafted
            draft = await drafts_table.open_for_chat(self.db, incoming.chat_id)
            if draft is not None and draft.status == "pending":
                await drafts_table.redraft(
                    self.db, draft.id, incoming.message_id, said, prompt, text
                )
                draft = await drafts_table.get(self.db, draft.id)
                await self.show_card(draft, incoming.name, edit=True)
            elif draft is None:
                draft_id = await drafts_table.create(
                    self.db, incoming.chat_id, incoming.message_id, said, prompt, text
                )
                await self.show_card(await drafts_table.get(self.db, draft_id), incoming.name)
            else:
                return  # a send is in progress: its chat moves on without a new draft
        if mode == "auto":
            self._schedule_auto(incoming.chat_id)

    async def on_outgoing(self, outgoing: Outgoing) -> None:
        async with self._lock(outgoing.chat_id):
            draft = await drafts_table.open_for_chat(self.db, outgoing.chat_id)
            if (
                draft is not None
                and draft.status == "pending"
                and await drafts_table.expire(self.db, draft.id)
            ):
                await self._close_card(draft, "expired")

    # -- the owner's decisions -----------------------------------------------------------

    async def send(
        self,
        draft_id: int,
        final_text: str | None = None,
        via: str = "button",
        revision: int | None = None,
    ) -> str:
        """Send a pending draft as the owner (their edit, if given).

        Returns "sent"; "settled" if it was no longer pending (already sent, discarded,
        expired), because nothing may go out twice; "changed" if it was redrafted after
        the card the owner pressed (`revision`), because the owner did not see the new
        text; "failed" when Telegram refused and nothing went out, so the draft waits
        again; "retrying" when part of a reply went out and the rest will follow."""
        draft = await drafts_table.get(self.db, draft_id)
        if draft is None or self.userbot is None:
            return "settled"
        async with self._lock(draft.chat_id):
            draft = await drafts_table.get(self.db, draft_id)
            if draft is None or draft.status != "pending":
                return "settled"
            if revision is not None and revision != draft.revision:
                return "changed"
            text = final_text if final_text is not None else draft.draft_text
            if not await drafts_table.claim_for_sending(self.db, draft_id, text, via):
                return "settled"
            texts = fit(self.replies.prompt.split_burst(text))
            parts = await drafts_table.plan_parts(self.db, draft_id, texts)
            outcome = await self._deliver(draft, parts, by_twin=via == "auto")
        if outcome == "sent":
            await self._close_settled(draft_id)
        return outcome

    async def _deliver(
        self, draft: Draft, parts: list[drafts_table.Part], by_twin: bool, resuming: bool = False
    ) -> str:
        """Send the parts not known to have gone out, in order, recording each id.

        Each part's random id was written before the first send, so whatever point a
        crash or an error stops this at, running it again sends every part exactly
        once: a part already in the chat after the previous one is recorded, not sent;
        one Telegram saw is refused by its random id."""
        assert self.userbot is not None
        after = draft.incoming_message_id or 0
        for part in parts:
            if part.message_id is not None:
                after = max(after, part.message_id)
                continue
            try:
                sent = None
                if resuming:  # it may have gone out before the crash
                    sent = await self.userbot.find_sent(draft.chat_id, part.text, after)
                if sent is None:
                    sent = await self.userbot.send_part(
                        draft.chat_id, part.text, part.random_id, by_twin
                    )
                if sent is None:  # Telegram had this part already: find where it is
                    # (not found: it is older than the chat's last 200 messages; the
                    # previous part's id keeps the recorded ids in order)
                    sent = await self.userbot.find_sent(draft.chat_id, part.text, after) or after
            except Exception:
                log.exception("draft %s: part %d did not go out", draft.id, part.part + 1)
                return await self._interrupted(draft, part, after)
            await drafts_table.part_sent(self.db, part, sent)
            after = max(after, sent)
        await drafts_table.mark_sent(self.db, draft.id, after)
        if resuming:
            log.info("draft %s: an interrupted send is complete", draft.id)
        return "sent"

    async def _interrupted(self, draft: Draft, part: drafts_table.Part, after: int) -> str:
        """A part failed. If it was the first and it is not in the chat (an answer lost on
        the way back looks like a failure too), nothing went out: the draft waits again.
        Otherwise the rest follows with the next reconciliation."""
        assert self.userbot is not None
        try:
            went_out = await self.userbot.find_sent(draft.chat_id, part.text, after)
        except Exception:  # the chat cannot be read either: assume it went out, retry
            log.exception("draft %s: cannot tell whether part %d went out", draft.id, part.part + 1)
            return "retrying"
        if went_out is not None:
            await drafts_table.part_sent(self.db, part, went_out)
            return "retrying"
        if part.part == 0:
            await drafts_table.unclaim(self.db, draft.id)
            return "failed"
        return "retrying"

    async def regenerate(self, draft_id: int) -> bool:
        draft = await drafts_table.get(self.db, draft_id)
        if draft is None or draft.status != "pending":
            return False
        async with self._lock(draft.chat_id):
            draft = await drafts_table.get(self.db, draft_id)  # as it is now, in the lock
            if draft is None or draft.status != "pending":
                return False
            drafted = self._next_candidate(draft) or await self._draft_text(
                draft.chat_id, await self.mode(draft.chat_id)
            )
            if drafted is None:
                return False
            prompt, text = drafted
            if not await drafts_table.regenerate(self.db, draft, prompt, text):
                return False
            await self.show_card(
                await drafts_table.get(self.db, draft_id),
                await self.chat_name(draft.chat_id),
                edit=True,
            )
        return True

    async def discard(self, draft_id: int, revision: int | None = None) -> bool:
        """Discard a pending draft (at `revision`, the one on the owner's card)."""
        draft = await drafts_table.get(self.db, draft_id)
        if draft is None or not await drafts_table.discard(self.db, draft_id, revision):
            return False
        await self._close_card(draft, "discarded")
        return True

    # -- start-up ----------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Drafts caught mid-send (a crash, a failed part, a failed record): the parts
        that went out are found by their ids, the rest are sent, once each. Runs at
        start-up and then every so often, so a send never stays half done. A draft
        that never got as far as planning its parts went nowhere: pending again."""
        if self.userbot is None:
            return
        for draft in await drafts_table.with_status(self.db, "sending"):
            lock = self._lock(draft.chat_id)
            if lock.locked():
                continue  # being sent right now
            async with lock:
                current = await drafts_table.get(self.db, draft.id)
                if current is None or current.status != "sending":
                    continue
                parts = await drafts_table.parts(self.db, draft.id)
                if not parts:
                    await drafts_table.unclaim(self.db, draft.id)
                    name = await self.chat_name(draft.chat_id)
                    await self.show_card(await drafts_table.get(self.db, draft.id), name)
                    continue
                outcome = await self._deliver(current, parts, current.via == "auto", True)
            if outcome == "sent":
                await self._close_settled(draft.id)

    # -- helpers -----------------------------------------------------------------------

    async def _draft_text(self, chat_id: int, mode: str) -> tuple[str, str] | None:
        rows = await messages_table.recent(self.db, chat_id, self.settings.history_limit)
        try:
            reply = await self.replies.reply(
                rows, await self.generation(), draft_scope(chat_id, mode)
            )
        except DegenerateReply as err:
            log.warning("no draft for chat %s: %s", chat_id, err)
            return None
        joined = self.replies.prompt.settings.burst_separator.join
        self._alternatives[chat_id] = (reply.prompt, [joined(m) for m in reply.alternatives])
        return reply.prompt, joined(reply.messages)

    def _next_candidate(self, draft: Draft) -> tuple[str, str] | None:
        """The next of the candidates drafted with the draft's own prompt, if any is left."""
        prompt, texts = self._alternatives.get(draft.chat_id, ("", []))
        if prompt != draft.prompt or not texts:
            return None
        return prompt, texts.pop(0)

    async def chat_name(self, chat_id: int) -> str:
        chat = await chats_table.get(self.db, chat_id)
        return chat.title if chat is not None and chat.title else str(chat_id)

    async def show_card(self, draft: Draft | None, name: str, edit: bool = False) -> None:
        if draft is None:
            return
        text = f"✉️ {name} wrote:\n{draft.incoming_text}\n\n✍️ Draft:\n{draft.draft_text}"
        markup = draft_card(draft.id, draft.revision)
        if edit and draft.card_message_id:
            try:
                await self.bot.edit_message_text(
                    text,
                    chat_id=self.owner_id,
                    message_id=draft.card_message_id,
                    reply_markup=markup,
                )
                return
            except TelegramBadRequest as err:
                if "not modified" in str(err):
                    return
                log.info("draft card %s could not be edited (%s): sending a new one", draft.id, err)
        card = await self.bot.send_message(self.owner_id, text, reply_markup=markup)
        await drafts_table.set_card(self.db, draft.id, card.message_id)

    async def _close_settled(self, draft_id: int) -> None:
        settled = await drafts_table.get(self.db, draft_id)
        if settled is not None:
            await self._close_card(settled, settled.status)

    async def _close_card(self, draft: Draft | None, outcome: str) -> None:
        if draft is None:
            return
        if self.on_settled is not None:
            await self.on_settled(draft.id)
        if not draft.card_message_id:
            return
        name = await self.chat_name(draft.chat_id)
        final = draft.final_text if draft.final_text is not None else draft.draft_text
        text = f"✉️ {name} wrote:\n{draft.incoming_text}\n\n✍️ {final}\n\n{OUTCOMES[outcome]}"
        try:
            await self.bot.edit_message_text(
                text, chat_id=self.owner_id, message_id=draft.card_message_id
            )
        except TelegramBadRequest as err:
            log.info("draft card %s not updated: %s", draft.id, err)

    def _schedule_auto(self, chat_id: int) -> None:
        previous = self._auto.pop(chat_id, None)
        if previous is not None:
            previous.cancel()
        self._auto[chat_id] = asyncio.create_task(self._auto_send(chat_id))

    async def _auto_send(self, chat_id: int) -> None:
        await asyncio.sleep(self.settings.auto_delay)
        draft = await drafts_table.open_for_chat(self.db, chat_id)
        if draft is None or draft.status != "pending":
            return
        doubt = auto_send.refusal(draft.draft_text)
        if doubt is not None:
            log.info("draft %s not sent automatically: %s", draft.id, doubt)
            await self.bot.send_message(
                self.owner_id,
                f"Not sent on its own ({doubt}): the draft for "
                f"{await self.chat_name(chat_id)} waits for you.",
            )
            return
        outcome = await self.send(draft.id, via="auto", revision=draft.revision)
        log.info("auto-send of draft %s: %s", draft.id, outcome)

    def keep_reconciling(self, every: float = RECONCILE_SECONDS) -> None:
        """Reconcile now and then: a send whose record failed, or whose later parts
        Telegram refused, is completed without waiting for a restart."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(every)
                try:
                    await self.reconcile()
                except Exception:
                    log.exception("reconciling drafts failed; trying again later")

        self._reconciler = asyncio.create_task(loop())

    async def stop(self) -> None:
        for task in self._auto.values():
            task.cancel()
        if self._reconciler is not None:
            self._reconciler.cancel()


async def feedback(db: Database, days: int = 30) -> dict[str, float | int]:
    """The live measure of the twin: of the drafts decided in the last `days`, how many
    were sent as they were, sent after an edit, discarded; and how much was edited."""
    decided = await drafts_table.decided_since(db, int(time.time()) - days * 86400)
    total = len(decided)
    sent = [d for d in decided if d.status == "sent"]
    edited = [d for d in decided if d.status == "edited_sent"]
    distances = [Levenshtein.distance(d.draft_text, d.final_text or "") for d in edited]
    return {
        "decided": total,
        "approval_rate": len(sent) / total if total else 0.0,
        "edit_rate": len(edited) / total if total else 0.0,
        "discard_rate": (total - len(sent) - len(edited)) / total if total else 0.0,
        "mean_edit_distance": sum(distances) / len(distances) if distances else 0.0,
    }
