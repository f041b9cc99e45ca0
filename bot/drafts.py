"""The draft workflow: a person writes to the owner, a reply in the owner's voice waits
for one tap.

Per chat mode: `draft` (the default) sends the owner a card with the message, the draft
and Send / Edit / Regenerate / Discard; `auto` sends the draft after a delay unless the
owner answered; `off` does nothing. A new message before the decision redrafts the same
card. The owner answering first expires the draft and takes its buttons away. Sending
is idempotent: the intent is recorded before the userbot sends, and a send interrupted
by a crash is reconciled against the chat's history at start-up, never repeated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from rapidfuzz.distance import Levenshtein

from bot.keyboards import draft_card
from bot.settings import UserbotSettings
from bot.telegram_text import fit
from dataset.conversations import message_text
from engine.generate import DegenerateReply
from engine.service import ReplyService
from engine.settings import GenerationSettings
from exporter.live import Incoming, LiveUserbot, Outgoing
from storage import Database
from storage import chats as chats_table
from storage import drafts as drafts_table
from storage import messages as messages_table
from storage.drafts import Draft

log = logging.getLogger(__name__)
OUTCOMES = {
    "sent": "✅ Sent.",
    "edited_sent": "✅ Sent, as you edited it.",
    "discarded": "🗑 Discarded.",
    "expired": "⏭ You answered yourself.",
}


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
        self._auto: dict[int, asyncio.Task[None]] = {}
        self._locks: dict[int, asyncio.Lock] = {}

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
            drafted = await self._draft_text(incoming.chat_id)
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

    async def send(self, draft_id: int, final_text: str | None = None, via: str = "button") -> str:
        """Send a pending draft as the owner (their edit, if given).

        Returns "sent"; "settled" if it was no longer pending (already sent, discarded,
        expired), because nothing may go out twice; or "failed" when Telegram refused,
        so the owner hears that the draft waits again instead of a silent success."""
        draft = await drafts_table.get(self.db, draft_id)
        if draft is None or self.userbot is None:
            return "settled"
        async with self._lock(draft.chat_id):
            text = final_text if final_text is not None else draft.draft_text
            if not await drafts_table.claim_for_sending(self.db, draft_id, text, via):
                return "settled"
            try:
                sent_id = await self.userbot.send(
                    draft.chat_id, fit(self.replies.prompt.split_burst(text))
                )
            except Exception:
                log.exception("sending draft %s failed", draft_id)
                # What went out, if anything, decides: the chat is the truth.
                went_out = await self._settle(await drafts_table.get(self.db, draft_id))
                return "sent" if went_out else "failed"
            await drafts_table.mark_sent(self.db, draft_id, sent_id)
            draft = await drafts_table.get(self.db, draft_id)
        await self._close_card(draft, draft.status)
        return "sent"

    async def regenerate(self, draft_id: int) -> bool:
        draft = await drafts_table.get(self.db, draft_id)
        if draft is None or draft.status != "pending":
            return False
        async with self._lock(draft.chat_id):
            drafted = await self._draft_text(draft.chat_id)
            if drafted is None:
                return False
            prompt, text = drafted
            if not await drafts_table.redraft(
                self.db, draft_id, draft.incoming_message_id, draft.incoming_text, prompt, text
            ):
                return False
            await self.show_card(
                await drafts_table.get(self.db, draft_id),
                await self.chat_name(draft.chat_id),
                edit=True,
            )
        return True

    async def discard(self, draft_id: int) -> bool:
        draft = await drafts_table.get(self.db, draft_id)
        if draft is None or not await drafts_table.discard(self.db, draft_id):
            return False
        await self._close_card(draft, "discarded")
        return True

    # -- start-up ----------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Drafts caught mid-send by a crash: sent if the chat shows them, else pending
        again with their buttons back. Pending drafts stay actionable as they are."""
        if self.userbot is None:
            return
        for draft in await drafts_table.with_status(self.db, "sending"):
            await self._settle(draft)

    async def _settle(self, draft: Draft | None) -> bool:
        """A draft whose send may or may not have happened: sent if any of its messages
        is in the chat (never risk sending twice), else pending again, buttons back.
        True if it turned out sent."""
        if draft is None or self.userbot is None:
            return False
        parts = set(self.replies.prompt.split_burst(draft.final_text or draft.draft_text))
        sent = await self.userbot.sent_since(draft.chat_id, draft.updated - 60)
        match = [o for o in sent if o.text.strip() in parts]
        if match:
            await drafts_table.mark_sent(self.db, draft.id, match[0].message_id)
            log.info("draft %s had been sent", draft.id)
            settled = await drafts_table.get(self.db, draft.id)
            await self._close_card(settled, settled.status)
            return True
        await drafts_table.unclaim(self.db, draft.id)
        log.info("draft %s was not sent: pending again", draft.id)
        name = await self.chat_name(draft.chat_id)
        await self.show_card(await drafts_table.get(self.db, draft.id), name, edit=True)
        return False

    # -- helpers -----------------------------------------------------------------------

    async def _draft_text(self, chat_id: int) -> tuple[str, str] | None:
        rows = await messages_table.recent(self.db, chat_id, self.settings.history_limit)
        try:
            reply = await self.replies.reply(rows, await self.generation())
        except DegenerateReply as err:
            log.warning("no draft for chat %s: %s", chat_id, err)
            return None
        return reply.prompt, self.replies.prompt.settings.burst_separator.join(reply.messages)

    async def chat_name(self, chat_id: int) -> str:
        chat = await chats_table.get(self.db, chat_id)
        return chat.title if chat is not None and chat.title else str(chat_id)

    async def show_card(self, draft: Draft | None, name: str, edit: bool = False) -> None:
        if draft is None:
            return
        text = f"✉️ {name} wrote:\n{draft.incoming_text}\n\n✍️ Draft:\n{draft.draft_text}"
        markup = draft_card(draft.id)
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

    async def _close_card(self, draft: Draft | None, outcome: str) -> None:
        if draft is None or not draft.card_message_id:
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
        if draft is not None and draft.status == "pending":
            outcome = await self.send(draft.id, via="auto")
            log.info("auto-send of draft %s: %s", draft.id, outcome)

    async def stop(self) -> None:
        for task in self._auto.values():
            task.cancel()


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
