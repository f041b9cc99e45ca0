"""Inline keyboards and the callback data behind them (at most 64 bytes each)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

MODES = ("draft", "auto", "off")


class DraftAction(CallbackData, prefix="d"):
    id: int
    action: str  # send, edit, again, discard
    rev: int = 0  # the draft's revision the card shows: Send never sends a newer one


class EditChoice(CallbackData, prefix="e"):
    """The owner's corrected text, shown back: send it as it is, or not."""

    id: int
    rev: int
    send: bool


class ModePick(CallbackData, prefix="m"):
    chat: int
    mode: str = ""  # empty: show the modes for this chat


def draft_card(draft_id: int, revision: int) -> InlineKeyboardMarkup:
    def button(text: str, action: str) -> InlineKeyboardButton:
        data = DraftAction(id=draft_id, action=action, rev=revision)
        return InlineKeyboardButton(text=text, callback_data=data.pack())

    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button("✅ Send", "send"), button("✏️ Edit", "edit")],
            [button("🔄 Regenerate", "again"), button("🗑 Discard", "discard")],
        ]
    )


def edit_choice(draft_id: int, revision: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text="✅ Send this",
                    callback_data=EditChoice(id=draft_id, rev=revision, send=True).pack(),
                ),
                InlineKeyboardButton(
                    text="✖️ Cancel",
                    callback_data=EditChoice(id=draft_id, rev=revision, send=False).pack(),
                ),
            ]
        ]
    )


def chat_picker(chats: list[tuple[int, str, str]]) -> InlineKeyboardMarkup:
    """One button per chat: (id, title, current mode)."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=f"{title} · {mode}", callback_data=ModePick(chat=chat_id).pack()
                )
            ]
            for chat_id, title, mode in chats
        ]
    )


def mode_picker(chat_id: int, current: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=("• " if mode == current else "") + mode,
                    callback_data=ModePick(chat=chat_id, mode=mode).pack(),
                )
                for mode in MODES
            ]
        ]
    )
