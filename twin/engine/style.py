"""The owner's /style knobs on the configured [generate] settings: the one place they
are merged, for the bot's chat, its drafts, /style, `twin style`, `twin chat` and
`twin reply` alike, so that no reply is sampled with knobs another path would not use.
"""

from __future__ import annotations

from storage import Database
from storage import settings as stored_settings
from twin.engine.settings import GenerationSettings, with_knobs


async def owner_generation(db: Database, configured: GenerationSettings) -> GenerationSettings:
    """The settings a reply is sampled with now: `configured` with the knobs the owner
    set (/style, `twin style`) on top, validated."""
    return with_knobs(configured, await stored_settings.get(db, stored_settings.STYLE, {}))
