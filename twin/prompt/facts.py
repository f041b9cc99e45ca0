"""The owner's facts, as every prompt gets them: what /facts stored wins over the
configured memory.facts, and an empty stored text (after /facts clear) means none.

One function, so that the facts a training sample saw and the facts a reply gets are
merged by the same rule.
"""

from __future__ import annotations

from storage import Database
from storage import settings as stored_settings
from twin.memory.settings import MemorySettings


async def owner_facts(db: Database, settings: MemorySettings) -> str:
    """The facts in force now: the owner's /facts if he set (or cleared) them, else the
    configuration's."""
    stored = await stored_settings.get(db, stored_settings.FACTS)
    return settings.facts if stored is None else stored
