"""The owner's side of drafts: the card's buttons, editing a draft, /drafts and /mode."""

from __future__ import annotations

import time

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.access import IsOwner
from bot.config import BotConfig
from bot.drafts import DraftWorkflow
from bot.keyboards import (
    MODES,
    DraftAction,
    EditChoice,
    ModePick,
    chat_picker,
    edit_choice,
    mode_picker,
)
from storage import Database
from storage import chats as chats_table
from storage import drafts as drafts_table

ANSWERS = {
    "sent": "Sent.",
    "settled": "Already settled.",
    "changed": "This draft changed since; look at its card again. Nothing was sent.",
    "failed": "Telegram did not take it; the draft is waiting again.",
    "retrying": "Part of it went out; the rest will follow as soon as Telegram takes it.",
}
STALE_CARD = "This draft changed since this card; look at its newest card. Nothing was done."
EDIT_ANSWERS = {
    **ANSWERS,
    "sent": "Sent as you wrote it.",
    "settled": "That draft was settled meanwhile; nothing was sent.",
}


class Editing(StatesGroup):
    draft = State()  # the owner's next message is the corrected reply
    confirm = State()  # the corrected reply is shown back, waiting for Send or Cancel


def router() -> Router:
    """Commands come first and never become an edit's text: an owner halfway through
    an edit who types /drafts gets the drafts, and nothing goes to the contact."""
    routes = Router(name="drafts")
    routes.message.filter(IsOwner())
    routes.callback_query.filter(IsOwner())
    routes.callback_query.register(on_draft_button, DraftAction.filter())
    routes.callback_query.register(on_edit_choice, EditChoice.filter())
    routes.callback_query.register(on_mode_pick, ModePick.filter())
    routes.message.register(list_drafts, Command("drafts"))
    routes.message.register(set_mode, Command("mode"))
    routes.message.register(cancel_edit, StateFilter(Editing), Command("cancel", ignore_case=True))
    routes.message.register(
        take_edit,
        StateFilter(Editing.draft),
        F.text,
        ~F.text.startswith("/"),
    )
    return routes


async def on_draft_button(
    query: CallbackQuery,
    callback_data: DraftAction,
    drafts: DraftWorkflow,
    db: Database,
    state: FSMContext,
) -> None:
    """A button acts on the draft as its card shows it: a card older than the draft
    (it was redrafted since) neither sends, edits, regenerates nor discards it."""
    draft = await drafts_table.get(db, callback_data.id)
    if draft is None or draft.status != "pending":
        await query.answer("This draft is already settled.", show_alert=False)
        return
    if callback_data.rev != draft.revision:
        await query.answer(STALE_CARD)
        return
    if callback_data.action == "send":
        await query.answer(ANSWERS[await drafts.send(draft.id, revision=callback_data.rev)])
    elif callback_data.action == "edit":
        await state.set_state(Editing.draft)
        await state.set_data(
            {"draft_id": draft.id, "revision": callback_data.rev, "started": time.time()}
        )
        await query.answer()
        await query.message.answer(
            "Send me the reply as it should go out. I show it back before it goes; /cancel to stop."
        )
    elif callback_data.action == "again":
        await query.answer("Drafting again…")
        if not await drafts.regenerate(draft.id):
            await query.message.answer("I could not draft anything better.")
    elif callback_data.action == "discard":
        discarded = await drafts.discard(draft.id, revision=callback_data.rev)
        await query.answer("Discarded." if discarded else STALE_CARD)
    else:
        await query.answer()


async def take_edit(
    message: Message, state: FSMContext, db: Database, config: BotConfig, drafts: DraftWorkflow
) -> None:
    """The corrected reply: shown back with Send / Cancel, never sent on its own."""
    data = await state.get_data()
    draft = await drafts_table.get(db, data.get("draft_id", -1))
    if time.time() - data.get("started", 0) > config.drafts.edit_minutes * 60:
        await state.clear()
        await message.answer(
            "That edit had expired; nothing was sent. Tap ✏️ Edit on the card to start again."
        )
        return
    if draft is None or draft.status != "pending" or draft.revision != data.get("revision"):
        await state.clear()
        await message.answer(EDIT_ANSWERS["settled"])
        return
    await state.set_state(Editing.confirm)
    await state.update_data(text=message.text)
    await message.answer(
        f"This goes to {await drafts.chat_name(draft.chat_id)} as you:\n\n{message.text}",
        reply_markup=edit_choice(draft.id, draft.revision),
    )


async def on_edit_choice(
    query: CallbackQuery, callback_data: EditChoice, state: FSMContext, drafts: DraftWorkflow
) -> None:
    data = await state.get_data()
    current = await state.get_state()
    await state.clear()
    if current != Editing.confirm.state or data.get("draft_id") != callback_data.id:
        await query.answer("That edit is over; nothing was sent.")
        return
    if not callback_data.send:
        await query.answer("Cancelled; the draft is still waiting.")
        return
    outcome = await drafts.send(
        callback_data.id, final_text=data["text"], via="edit", revision=callback_data.rev
    )
    await query.answer(EDIT_ANSWERS[outcome])
    await query.message.answer(EDIT_ANSWERS[outcome])


async def cancel_edit(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer("Editing cancelled; the draft is still waiting.")


async def forget_edit(state: FSMContext, draft_id: int) -> None:
    """A draft settled (sent, discarded, answered by the owner): an edit of it ends."""
    if (await state.get_data()).get("draft_id") == draft_id:
        await state.clear()


async def list_drafts(message: Message, db: Database, drafts: DraftWorkflow) -> None:
    pending = await drafts_table.with_status(db, "pending")
    if not pending:
        await message.answer("No drafts waiting.")
        return
    for draft in pending:  # fresh cards at the bottom of the chat, easy to reach
        await drafts.show_card(draft, await drafts.chat_name(draft.chat_id))


async def set_mode(
    message: Message, command: CommandObject, db: Database, drafts: DraftWorkflow
) -> None:
    """/mode: a picker of recent chats; /mode CHAT MODE sets it directly (id or title)."""
    words = (command.args or "").rsplit(maxsplit=1)
    if len(words) == 2 and words[1] in MODES:
        chosen = await _find_chat(db, words[0])
        if chosen is None:
            await message.answer(f"No personal chat {words[0]!r}.")
            return
        await chats_table.set_mode(db, chosen, words[1])
        await message.answer(f"{await drafts.chat_name(chosen)}: {words[1]}.")
        return
    recent = await chats_table.recent_personal(db)
    if not recent:
        await message.answer("No personal chats yet.")
        return
    await message.answer(
        "Draft mode per chat: draft (ask me), auto (send after a delay), off. Pick a chat:",
        reply_markup=chat_picker(
            [
                (c.id, c.title or str(c.id), mode or drafts.settings.default_mode)
                for c, mode in recent
            ]
        ),
    )


async def on_mode_pick(
    query: CallbackQuery, callback_data: ModePick, db: Database, drafts: DraftWorkflow
) -> None:
    chat = await chats_table.get(db, callback_data.chat)
    if chat is None:
        await query.answer("Unknown chat.")
        return
    if not callback_data.mode:
        await query.answer()
        current = await drafts.mode(chat.id)
        await query.message.answer(
            f"{chat.title}: now {current}.", reply_markup=mode_picker(chat.id, current)
        )
        return
    if callback_data.mode not in MODES:
        await query.answer("Unknown mode.")
        return
    await chats_table.set_mode(db, chat.id, callback_data.mode)
    await query.answer(f"{chat.title}: {callback_data.mode}")
    await query.message.edit_reply_markup(reply_markup=mode_picker(chat.id, callback_data.mode))


async def _find_chat(db: Database, name: str) -> int | None:
    for chat, _ in await chats_table.recent_personal(db, limit=1000):
        if str(chat.id) == name or (chat.title or "").lower() == name.lower():
            return chat.id
    return None
