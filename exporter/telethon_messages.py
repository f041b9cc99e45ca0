"""Telethon's messages as storage rows, in the shape the Desktop export import makes.

A chat seen live by the userbot and the same chat imported from an export must become
the same rows (same ids, same media kinds, same owner flag), so that a re-import or a
sync adds nothing twice and the dataset cannot tell where a message came from.
"""

from __future__ import annotations

from telethon import utils
from telethon.tl import types

from storage.rows import MessageRow


def media_of(message: types.Message) -> tuple[str | None, str | None]:
    """(kind, detail) as the Desktop export's media_type/sticker_emoji would give."""
    media = message.media
    if media is None or isinstance(media, types.MessageMediaEmpty | types.MessageMediaWebPage):
        return None, None
    if isinstance(media, types.MessageMediaPhoto):
        return "photo", None
    if isinstance(media, types.MessageMediaDocument) and isinstance(media.document, types.Document):
        attributes = media.document.attributes
        for attribute in attributes:
            if isinstance(attribute, types.DocumentAttributeSticker):
                return "sticker", attribute.alt or None
            if isinstance(attribute, types.DocumentAttributeAudio):
                return ("voice_message" if attribute.voice else "audio_file"), None
            if isinstance(attribute, types.DocumentAttributeVideo):
                return ("video_message" if attribute.round_message else "video_file"), None
        if any(isinstance(a, types.DocumentAttributeAnimated) for a in attributes):
            return "animation", None
        names = [a.file_name for a in attributes if isinstance(a, types.DocumentAttributeFilename)]
        return "document", names[0] if names else None
    if isinstance(media, types.MessageMediaPoll):
        question = media.poll.question
        return "poll", getattr(question, "text", question)
    if isinstance(media, types.MessageMediaContact):
        return "contact", None
    if isinstance(media, types.MessageMediaVenue):
        return "venue", None
    if isinstance(media, types.MessageMediaGeo | types.MessageMediaGeoLive):
        return "location", None
    if isinstance(media, types.MessageMediaGame):
        return "game", None
    if isinstance(media, types.MessageMediaInvoice):
        return "invoice", None
    return type(media).__name__.removeprefix("MessageMedia").lower(), None


def message_row(message: types.Message, owner_id: int) -> MessageRow | None:
    """The storage row of a message; None for service messages and for messages with
    neither text nor media."""
    if not isinstance(message, types.Message):
        return None  # MessageService, MessageEmpty
    media, detail = media_of(message)
    text = message.message or ""
    if not text and media is None:
        return None
    chat_id = utils.get_peer_id(message.peer_id)
    if message.out:
        sender_id = owner_id
    elif message.from_id is not None:
        sender_id = utils.get_peer_id(message.from_id)
    else:
        sender_id = chat_id  # a private chat: the other person
    reply_to = None
    header = message.reply_to
    if isinstance(header, types.MessageReplyHeader) and header.reply_to_peer_id is None:
        reply_to = header.reply_to_msg_id
    forwarded = None
    if message.fwd_from is not None:
        forwarded = message.fwd_from.from_name or ""
    # A reaction shows up as an edit too; edit_hide marks those.
    edited = None
    if message.edit_date is not None and not message.edit_hide:
        edited = int(message.edit_date.timestamp())
    return MessageRow(
        chat_id=chat_id,
        message_id=message.id,
        sender_id=sender_id,
        is_owner=sender_id == owner_id,
        date=int(message.date.timestamp()),
        text=text,
        reply_to=reply_to,
        forwarded_from=forwarded,
        media=media,
        media_detail=detail,
        edited=edited,
    )
