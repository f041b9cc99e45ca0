"""Whose exchanges a prompt may recall: every scope twin uses, built here and nowhere
else, so that who may hear what is read in one file.

A scope names the person answered (their exchanges rank first), whether recall keeps to
that one chat, and the date before which a conversation must have begun (a reply never
recalls the conversation it continues; a training sample recalls only earlier ones, as
a reply at its time would have).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose exchanges a reply may recall."""

    chat_id: int | None  # the person answered: exchanges with them rank first
    only_this_chat: bool = False  # a bot user who may not hear about anyone else;
    # with no chat, nothing at all (an API client)
    before: int | None = None  # only conversations that began before this date

    @property
    def recalls(self) -> bool:
        return self.chat_id is not None or not self.only_this_chat


EVERYONE = Scope(chat_id=None)  # the owner's own view: every chosen chat
NO_RECALL = Scope(chat_id=None, only_this_chat=True)  # the owner's facts, nothing of his chats


def chat_first(chat_id: int | None) -> Scope:
    """The owner answering in one of his chats (`twin reply --chat`): all he remembers,
    that chat's exchanges first."""
    return Scope(chat_id)


def bot_user(user_id: int, shared: bool) -> Scope:
    """Someone other than the owner talking to the bot: only the owner's own chat with
    them, unless the owner shares more (memory.share_with_bot_users)."""
    return Scope(user_id, only_this_chat=not shared)


def draft(chat_id: int, auto: bool) -> Scope:
    """A reply to a message to the owner's account: one he reads first may recall all he
    remembers (this chat first); one that goes out by itself (auto) only this chat."""
    return Scope(chat_id, only_this_chat=auto)


def group(chat_id: int) -> Scope:
    """The twin speaking in a group, where everyone in it reads the reply (the owner's
    own messages there too): only what was said in that group, nothing of his other chats."""
    return Scope(chat_id, only_this_chat=True)


def earlier_than(scope: Scope, started: int | None) -> Scope:
    """`scope` kept to conversations that began before `started` (the conversation
    answered is in the prompt's context already)."""
    return replace(scope, before=started)


def training_sample(chat_id: int, conversation_started: int) -> Scope:
    """A training sample's: what a reply in that chat at that time would have recalled."""
    return earlier_than(chat_first(chat_id), conversation_started)
