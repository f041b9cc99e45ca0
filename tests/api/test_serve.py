"""`twin serve` with the official `openai` client, on the tiny model: completions whole
and streamed, the prompt they are built from, the token, OpenAI's errors for bad
input, 429 when the queue is full, and (in a real process) a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import psutil
import pytest
from aiohttp import web

from storage import Database, open_database
from tests.bot_harness import Recording
from tests.conftest import ROOT
from tests.exports import chat, dialogue, full_export, import_into
from twin.api.server import CONFIG, make_app
from twin.api.settings import ServeSettings
from twin.dataset.settings import DatasetSettings
from twin.engine.generate import ReplyEngine
from twin.engine.settings import GenerationSettings, new_tokens
from twin.memory.index import refresh
from twin.memory.settings import MemorySettings
from twin.prompt.reply import ReplyPrompts
from twin.prompt.settings import PromptSettings
from twin.prompt.text import Prompt
from twin.wiring import serve_token

TOKEN = "test-serve-token"
PEER = 2000
DAY = 86400
TALK = [
    {"role": "system", "content": "Живу в Казани"},
    {"role": "user", "content": "привет"},
    {"role": "assistant", "content": "ну привет"},
    {"role": "user", "content": "как дела?"},
]


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path) -> ReplyEngine:
    return ReplyEngine(tiny_checkpoint, Prompt(), "32-true", "cpu", max_seq_length=512)


class Server:
    def __init__(self, replies: Recording, url: str, app: web.Application) -> None:
        self.replies, self.url, self.app = replies, url, app
        self.clients: list[openai.AsyncOpenAI] = []

    def client(self, token: str = TOKEN) -> openai.AsyncOpenAI:
        """A client of this server, closed with it: one left open is closed when garbage
        collected, on whatever event loop runs then (a later test's), and fails there."""
        self.clients.append(
            openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=token, max_retries=0)
        )
        return self.clients[-1]


async def serving(
    engine: ReplyEngine, db: Database, tmp_path: Path, **settings: object
) -> AsyncIterator[Server]:
    replies = Recording(
        lambda: engine, ReplyPrompts(Prompt(), DAY, 128, MemorySettings(), tmp_path / "twin.db")
    )
    await replies.start(db)
    app = make_app(
        replies,
        db,
        ServeSettings.model_validate(settings),
        TOKEN,
        GenerationSettings(max_new_tokens=12, seed=3),
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server = Server(replies, f"http://127.0.0.1:{port}", app)
    try:
        yield server
    finally:
        for client in server.clients:
            await client.close()
        await runner.cleanup()
        await replies.close()


@pytest.fixture
async def server(engine: ReplyEngine, tmp_path: Path) -> AsyncIterator[Server]:
    async with open_database(tmp_path / "twin.db") as db:
        async for running in serving(engine, db, tmp_path):
            yield running


async def test_a_completion_answers_the_conversation_as_twin_prompts_it(server: Server) -> None:
    client = server.client()
    done = await client.chat.completions.create(model="twin", messages=TALK, seed=5)  # type: ignore[arg-type]
    choice = done.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert done.usage is not None and done.usage.completion_tokens > 0
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    prompt = Prompt()
    context = prompt.context([prompt.tagged("привет", False), prompt.tagged("ну привет", True)])
    # The system message is the owner's facts; nothing of his chats is recalled.
    expected = prompt.render(context, "как дела?", prompt.memory("Живу в Казани", []))
    assert server.replies.asked == [expected]
    models = await client.models.list()
    assert [m.id for m in models.data] == ["twin"]


async def test_a_streamed_completion_is_the_same_reply_piece_by_piece(server: Server) -> None:
    client = server.client()
    whole = await client.chat.completions.create(model="twin", messages=TALK, seed=5)  # type: ignore[arg-type]
    stream = await client.chat.completions.create(
        model="twin",
        messages=TALK,  # type: ignore[arg-type]
        seed=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason and set(finishes[:-1]) == {None}
    assert chunks[-1].usage is not None and chunks[-1].usage == whole.usage


async def test_sampling_settings_reach_the_engine(server: Server) -> None:
    client = server.client()
    await client.chat.completions.create(
        model="twin",
        messages=[{"role": "user", "content": "hi"}],
        temperature=0.3,
        top_p=0.5,
        max_tokens=9,
        stop=["END"],
        seed=42,
    )
    asked = server.replies.requests[-1][1]
    assert (asked.temperature, asked.top_p, asked.max_new_tokens, asked.stop, asked.seed) == (
        0.3,
        0.5,
        9,
        ["END"],
        42,
    )


async def test_max_tokens_below_eight_is_honoured(server: Server) -> None:
    done = await server.client().chat.completions.create(
        model="twin",
        messages=TALK,  # type: ignore[arg-type]
        max_tokens=3,
        stop=["\u2603"],  # never generated: the reply runs to its length
        seed=5,
    )
    assert done.usage is not None and done.usage.completion_tokens == 3
    assert done.choices[0].finish_reason == "length"


def test_a_style_length_never_shortens_a_reply_below_eight_tokens() -> None:
    assert new_tokens(GenerationSettings(max_new_tokens=100, length="short")) == 40
    assert new_tokens(GenerationSettings(max_new_tokens=10, length="short")) == 8
    assert new_tokens(GenerationSettings(max_new_tokens=3, length="short")) == 3
    assert new_tokens(GenerationSettings(max_new_tokens=3, length="long")) == 7


async def test_no_token_no_twin(server: Server) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        await server.client("wrong").chat.completions.create(model="twin", messages=TALK)  # type: ignore[arg-type]
    assert raised.value.status_code == 401
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/v1/models") as got:
        assert got.status == 401 and (await got.json())["error"]["code"] == "invalid_api_key"
    assert server.replies.requests == []


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "not valid JSON"),
        ({"model": "twin", "messages": []}, 400, "non-empty list"),
        ({"model": "twin", "messages": [{"role": "tool", "content": "x"}]}, 400, "role 'tool'"),
        ({"model": "twin", "messages": [{"role": "assistant", "content": "x"}]}, 400, "last"),
        (
            {"model": "twin", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            400,
            "only text",
        ),
        ({"model": "twin", "messages": TALK, "temperature": 7}, 400, "temperature"),
        ({"model": "twin", "messages": TALK, "stop": ["a"] * 5}, 400, "stop"),
        ({"model": "gpt-4o", "messages": TALK}, 404, "does not exist"),
        (
            {"model": "twin", "messages": [{"role": "user", "content": "слово " * 3000}]},
            400,
            "tokens",
        ),
        ([1, 2], 400, "JSON object"),
        (b"[" * 200_000 + b"]" * 200_000, 400, "nested too deeply"),
        ({"model": "twin", "messages": TALK, "seed": 10**30}, 400, "seed"),
        ({"model": "twin", "messages": TALK, "seed": -1}, 400, "seed"),
    ],
)
async def test_bad_requests_get_openai_errors_never_a_500(
    server: Server, body: object, status: int, says: str
) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.url}/v1/chat/completions", data=data, headers=headers) as got,
    ):
        assert got.status == status
        error = (await got.json())["error"]
    assert says in error["message"] and error["type"]
    assert server.replies.requests == []


async def test_a_client_that_leaves_a_stream_is_one_info_line(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing a tab mid-reply is a normal event: no ERROR, no traceback, no 500."""
    caplog.set_level(logging.INFO)
    body = {"model": "twin", "messages": TALK, "stream": True, "max_tokens": 300, "stop": ["☃"]}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        got = await session.post(f"{server.url}/v1/chat/completions", json=body)
        assert got.status == 200
        await got.content.readline()  # the first event, then the client goes
        got.close()
    serving = server.app[CONFIG]
    for _ in range(600):
        if serving.admitted == 0:
            break
        await asyncio.sleep(0.05)
    assert serving.admitted == 0
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    left = [r.getMessage() for r in caplog.records if r.name == "twin.api.server"]
    assert len(left) == 1 and "the client left" in left[0]


async def test_unknown_paths_and_methods_answer_in_json(server: Server) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(f"{server.url}/v1/nothing") as got:
            assert got.status == 404 and "error" in await got.json()
        async with session.get(f"{server.url}/v1/chat/completions") as got:
            assert got.status == 405 and "error" in await got.json()


async def test_a_flood_beyond_the_queue_gets_429(engine: ReplyEngine, tmp_path: Path) -> None:
    async with open_database(tmp_path / "twin.db") as db:
        async for server in serving(engine, db, tmp_path, queue=2):
            client = server.client()
            asked = [
                client.chat.completions.create(model="twin", messages=TALK, max_tokens=40)  # type: ignore[arg-type]
                for _ in range(6)
            ]
            results = await asyncio.gather(*asked, return_exceptions=True)
    limited = [r for r in results if isinstance(r, openai.RateLimitError)]
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert limited and answered and len(limited) + len(answered) == 6
    assert len(answered) >= 2  # the queue's worth always gets through


async def test_api_replies_recall_nothing_of_the_chats_unless_serve_recall(
    engine: ReplyEngine, tmp_path: Path
) -> None:
    """A bridge may pass anyone's messages to the API: by default they get the owner's
    facts and nothing of his chats, even where memory would find an answer."""
    pizza = [(0, "them: pizza tonight?"), (30, "me: sure, the usual place at 8")]
    db_path = tmp_path / "twin.db"
    await import_into(db_path, full_export([chat(PEER, dialogue(PEER, pizza))]))
    asked = [{"role": "user", "content": "pizza tonight?"}]
    prompts = {}
    async with open_database(db_path) as db:
        await refresh(db, DatasetSettings(), PromptSettings().burst_separator)
        for recall in (None, True):
            settings = {} if recall is None else {"recall": recall}
            async for server in serving(engine, db, tmp_path, **settings):
                await server.client().chat.completions.create(model="twin", messages=asked)  # type: ignore[arg-type]
                prompts[recall] = server.replies.asked[-1]
    assert "usual place" in prompts[True]  # memory would find it: the check can fail
    assert "usual place" not in prompts[None]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_config(tmp_path: Path, tiny_checkpoint: Path, more: str = "") -> tuple[Path, int]:
    """A config for `twin serve` on the tiny model and a free port, and that port."""
    port = _free_port()
    toml = tmp_path / "config.toml"
    toml.write_text(
        f'data_dir = "{tmp_path}"\n[model]\ncheckpoint = "{tiny_checkpoint}"\n'
        f"{more}[serve]\nport = {port}\n",
        encoding="utf-8",
    )
    return toml, port


@pytest.mark.slow
async def test_sigterm_lets_the_reply_in_flight_finish(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    toml, port = serve_config(tmp_path, tiny_checkpoint, "[generate]\nmax_new_tokens = 300\n")
    env = {**os.environ, "TWIN_SERVE__TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twin",
        "serve",
        "--config",
        str(toml),
        env=env,
        stderr=subprocess.PIPE,
    )
    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=TOKEN, max_retries=0
    )
    try:
        for _ in range(300):  # the model loads: up to a minute
            try:
                await client.models.list()
                break
            except openai.APIConnectionError:
                await asyncio.sleep(0.2)
        stream = await client.chat.completions.create(
            model="twin",
            messages=[{"role": "user", "content": "расскажи что-нибудь"}],
            stop=["\u2603"],  # never generated: the reply runs to its length
            stream=True,
        )
        pieces, finish = [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                if not pieces:
                    process.send_signal(signal.SIGTERM)  # mid-reply
                pieces.append(chunk.choices[0].delta.content)
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        assert len(pieces) > 1 and finish in ("stop", "length")  # it went on to its end
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await client.close()
        if process.returncode is None:
            process.kill()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert TOKEN not in stderr.decode()  # the secret never reaches the log


@pytest.mark.parametrize("token", [None, "", "   "])
def test_serving_needs_a_token_or_localhost(tmp_path: Path, token: str | None) -> None:
    """No token, an empty one and a blank one are refused alike (an empty one would let
    in every client that sends `Authorization: Bearer `), before any model loads: a
    broken check would start serving, so each run has a timeout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TWIN_SERVE__TOKEN", None)
    if token is not None:
        env["TWIN_SERVE__TOKEN"] = token
    base = [sys.executable, "-m", "twin", "serve", "--db", str(tmp_path / "x.db")]
    refused = subprocess.run(base, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "needs a token" in refused.stderr
    assert "Traceback" not in refused.stderr
    open_wide = subprocess.run(
        [*base, "--host", "0.0.0.0"],
        env={**env, "TWIN_SERVE__NO_TOKEN": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert open_wide.returncode == 1 and "serves only 127.0.0.1" in open_wide.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_blank_token_file_is_no_token(tmp_path: Path) -> None:
    blank = tmp_path / "token"
    blank.write_text("  \n", encoding="utf-8")
    blank.chmod(0o600)
    assert serve_token(ServeSettings(token_file=blank)) is None
    assert serve_token(ServeSettings(token=" s3cret ")) == "s3cret"  # type: ignore[arg-type]


def test_twin_serve_listens_on_localhost_only_by_default(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    toml, _ = serve_config(tmp_path, tiny_checkpoint)
    env = {**os.environ, "TWIN_SERVE__TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "twin", "serve", "--config", str(toml)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        listening: list[str] = []
        deadline = time.monotonic() + 120  # the model loads first
        while not listening and process.poll() is None and time.monotonic() < deadline:
            connections = psutil.Process(process.pid).net_connections(kind="inet")
            listening = [c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN]
            time.sleep(0.2)
        assert listening == ["127.0.0.1"]
    finally:
        process.terminate()
        process.wait(timeout=60)
