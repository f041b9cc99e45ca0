"""A draft being sent as the owner, in a process of its own, for the SIGKILL tests.

    python -m tests.fault_send send|reconcile DB STATE DRAFT_ID

`send` sends draft DRAFT_ID's text (three parts) through the real workflow and the
real LiveUserbot; `reconcile` is what `twin run` does at start-up. Telegram is a
scripted client whose server side lives in STATE (a JSON file written, and synced,
before each send is answered), so that what the server has survives the kill.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from telethon import errors, functions
from telethon.tl import types

from bot.drafts import DraftWorkflow
from bot.settings import UserbotSettings
from exporter.live import LiveUserbot
from storage import open_database
from tests.fake_telethon import OWNER, ScriptedTelegram, user
from twin.prompt.text import Prompt

PEER = 201
TEXT = "первое\nвторое\nтретье"


class ServerOnDisk(ScriptedTelegram):
    """The scripted Telegram, its chat with PEER and its used random ids kept in a file."""

    def __init__(self, state: Path) -> None:
        super().__init__(user(OWNER, "Owner", is_self=True), [user(PEER, "Anna")])
        self.state = state
        saved = json.loads(state.read_text()) if state.exists() else {"messages": [], "ids": []}
        self.random_ids = set(saved["ids"])
        for item in saved["messages"]:
            self.history[PEER].append(
                types.Message(
                    id=item["id"],
                    peer_id=types.PeerUser(PEER),
                    date=datetime.fromtimestamp(item["date"], UTC),
                    message=item["text"],
                    out=item["out"],
                    from_id=types.PeerUser(OWNER if item["out"] else PEER),
                )
            )
        self._ids = iter(range(10_000 + len(saved["messages"]), 10**9))

    def _save(self) -> None:
        state = {
            "messages": [
                {"id": m.id, "date": m.date.timestamp(), "text": m.message, "out": m.out}
                for m in self.history[PEER]
            ],
            "ids": sorted(self.random_ids),
        }
        partial = self.state.with_suffix(".partial")
        with partial.open("w") as file:
            json.dump(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, self.state)

    async def __call__(
        self, request: Any, ordered: bool = False, flood_sleep_threshold: Any = None
    ) -> Any:
        if isinstance(request, functions.messages.SendMessageRequest):
            await asyncio.sleep(0.05)  # the network, before the server has it
            if request.random_id in self.random_ids:
                raise errors.RandomIdDuplicateError(request=request)
            self.random_ids.add(request.random_id)
            sent = self.message(PEER, request.message, out=True)
            self._save()  # the server has it now, whatever happens to the client
            await asyncio.sleep(0.05)  # the answer, on its way back
            return types.UpdateShortSentMessage(
                id=sent.id, pts=1, pts_count=1, date=sent.date, out=True
            )
        return await super().__call__(request, ordered, flood_sleep_threshold)


class CardsOnly:
    """The bot's side: a draft that goes back to pending shows its card again."""

    async def send_message(self, chat_id: int, text: str, **_: object) -> SimpleNamespace:
        return SimpleNamespace(message_id=1)


async def main(mode: str, db_path: Path, state: Path, draft_id: int) -> None:
    telegram = ServerOnDisk(state)

    async def nothing(*_: object) -> None:
        return None

    async with open_database(db_path) as db:
        workflow = DraftWorkflow(
            bot=CardsOnly(),  # type: ignore[arg-type]
            db=db,
            replies=SimpleNamespace(prompt=Prompt()),  # type: ignore[arg-type]
            owner_id=OWNER,
            settings=UserbotSettings(),
            generation=nothing,  # type: ignore[arg-type]
        )
        workflow.userbot = LiveUserbot(telegram, db, OWNER, nothing, nothing)
        if mode == "send":
            print("sending", flush=True)
            await workflow.send(draft_id, final_text=TEXT, via="edit")
        else:
            await workflow.reconcile()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])))
