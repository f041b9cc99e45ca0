"""Inline keyboards and the callback data behind them (at most 64 bytes each)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

MODES = ("draft", "auto", "off")


class DraftAction(CallbackData, prefix="d"):
    id: int
    action: str  # send, edit, again, discard


class ModePick(CallbackData, prefix="m"):
    chat: int
    mode: str = ""  # empty: show the modes for this chat


def draft_card(draft_id: int) -> InlineKeyboardMarkup:
    def button(text: str, action: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            text=text, callback_data=DraftAction(id=draft_id, action=action).pack()
        )

    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button("✅ Send", "send"), button("✏️ Edit", "edit")],
            [button("🔄 Regenerate", "again"), button("🗑 Discard", "discard")],
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
