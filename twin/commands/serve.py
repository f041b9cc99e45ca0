"""`twin serve`: the twin as an OpenAI-compatible API (api.server), until SIGTERM/SIGINT.

It refuses to start without a bearer token (serve.token, TWIN_SERVE__TOKEN or
serve.token_file), unless serve.no_token is set and it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from storage import open_database
from twin.api.settings import LOCALHOST, ServeSettings
from twin.commands.common import config_options, db_options, db_path
from twin.settings import Settings, SettingsError
from twin.wiring import make_service, serve_token

log = logging.getLogger(__name__)
GRACE_SECONDS = 120.0  # replies in flight at SIGTERM get this long to finish


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        parents=[config_options(), db_options()],
        description="Serve the twin (the active adapter) as an OpenAI-compatible API: "
        "POST /v1/chat/completions, GET /v1/models.",
    )
    parser.add_argument("--host", help=f"default: serve.host ({LOCALHOST})")
    parser.add_argument("--port", type=int, help="default: serve.port (8000)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    given = {"host": args.host, "port": args.port}
    serve = settings.serve.model_copy(update={k: v for k, v in given.items() if v is not None})
    token = serve_token(serve)
    if token is None and not serve.no_token:
        raise SettingsError(
            "twin serve needs a token for its clients: set TWIN_SERVE__TOKEN or "
            "serve.token_file (or serve.no_token = true to serve 127.0.0.1 without one)"
        )
    if token is None and serve.host != LOCALHOST:
        raise SettingsError(
            f"serve.no_token serves only {LOCALHOST}, not {serve.host}: set a token to listen there"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_serve(settings, serve, token, db_path(args, settings)))
    return 0


async def _serve(
    settings: Settings, serve: ServeSettings, token: str | None, database: Path
) -> None:
    from aiohttp import web

    from twin.api.server import make_app

    replies = make_service(settings, database)
    async with open_database(database) as db:
        log.info("loading the model and the active adapter (a first start converts the model)")
        await replies.start(db)
        if replies.engine.adapter is None:
            log.warning("no adapter trained yet: the base model answers (twin train)")
        app = make_app(replies, db, serve, token, settings.generate)
        runner = web.AppRunner(app, shutdown_timeout=GRACE_SECONDS)
        await runner.setup()
        await web.TCPSite(runner, serve.host, serve.port).start()
        guard = "a bearer token" if token else "no token"
        log.info("serving on http://%s:%d/v1 (%s)", serve.host, serve.port, guard)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        try:
            await stopping.wait()
            log.info("stopping: the replies in flight finish first")
        finally:
            await runner.cleanup()  # no new connections; waits for the handlers running
            await replies.close()
