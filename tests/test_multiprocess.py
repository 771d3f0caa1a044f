"""Two ``swarmdesk serve`` processes sharing one database and one Redis behave as one system.

The done-criterion: a message posted to process A reaches an agent socket connected to process B.
Around it: a queue registered on A resumes on B with exactly the events it missed (the ack it sent
to A is what B reads); agent replies posted through B are delivered to the API inbox's callback
once each although both processes run job workers; a socket stays live when Redis loses its data;
both processes stop on SIGTERM, closing sockets with 1012 and exiting with code 0.

The scenario runs on PostgreSQL (a fresh database, dropped afterwards; whatever SWARMDESK_TEST_DB
says) and on one SQLite file shared by both processes, each run with its own Redis key prefix so
that concurrent runs on the same Redis do not see each other. Apart from polling /readyz while a
process starts, nothing sleeps: every wait is for a frame, a response or an exit, with a timeout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine
from standardwebhooks.webhooks import Webhook
from websockets.asyncio.client import ClientConnection, connect

from swarmdesk.config import Settings
from swarmdesk.conversations.actions import DELIVER_JOB
from swarmdesk.core.migrate import upgrade
from swarmdesk.events.bus import connect_redis
from swarmdesk.jobs.models import Job, JobStatus
from swarmdesk.realtime.queues import QueueInfo, RedisQueueStore, new_queue_id
from swarmdesk.runtime import create_runtime
from tests.conftest import PG_ADMIN_URL, REDIS_URL, free_port
from tests.support import Harness, Receiver, inbound_payload, sign

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "multiprocess-test-secret-key-0123456789abcdef"
WAIT = 15.0  # upper bound of every single wait; a healthy run takes a fraction of it
REPLIES = 12  # agent replies racing for the two workers


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _spawn(name: str, env: dict[str, str], log_dir: Path) -> Server:
    port = free_port()
    log_path = log_dir / f"server-{name}.log"
    args = [sys.executable, "-m", "swarmdesk.cli", "serve", "--port", str(port), "--no-migrate"]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=log_file, stderr=subprocess.STDOUT,
                                cwd=ROOT)
    return Server(name, port, proc, log_path)


async def _wait_ready(server: Server, http: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"server {server.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            r = await http.get(f"{server.url}/readyz", timeout=1)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.05)  # polling a starting process; no test assertion depends on it
    raise AssertionError(f"server {server.name} did not become ready:\n{server.log_tail()}")


def _terminate(server: Server) -> int | None:
    """SIGTERM, then the exit code within 15 s (None if it had to be killed)."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        return None


# --------------------------------------------------------------------------- sockets


@dataclass
class Socket:
    """An agent's WebSocket on one process, speaking the queue protocol."""

    ws: ClientConnection
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def frame(self) -> dict[str, Any]:
        """The next frame that is not a heartbeat."""
        async with asyncio.timeout(WAIT):
            while True:
                msg = orjson.loads(await self.ws.recv())
                if msg.get("op") == "heartbeat":
                    continue
                assert msg.get("op") != "reload", "server asked the client to reload"
                if msg.get("op") == "events":
                    self.seen.extend(msg["events"])
                return msg

    async def until(self, predicate: Any) -> list[dict[str, Any]]:
        """Read event frames until ``predicate(all events so far)`` holds; return the events read."""
        start = len(self.seen)
        while not predicate(self.seen[start:]):
            msg = await self.frame()
            assert msg["op"] == "events", msg
        return self.seen[start:]

    async def sync(self) -> None:
        """Ping and wait for the pong: the server has handled every frame sent before it."""
        await self.ws.send(orjson.dumps({"op": "ping"}).decode())
        while (await self.frame()).get("op") != "pong":
            pass

    async def ack(self, last_event_id: int) -> None:
        await self.ws.send(orjson.dumps({"op": "ack", "last_event_id": last_event_id}).decode())
        await self.sync()


@asynccontextmanager
async def open_socket(server: Server, queue_id: str, last_event_id: int | None = None) -> AsyncIterator[Socket]:
    url = f"{server.ws_url}/api/v1/realtime/ws?queue_id={queue_id}"
    if last_event_id is not None:
        url += f"&last_event_id={last_event_id}"
    async with connect(url, open_timeout=WAIT, close_timeout=5) as ws:
        yield Socket(ws)


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def contents(events: list[dict[str, Any]]) -> list[str]:
    return [e["message"]["content"] for e in of_type(events, "message.created")]


# --------------------------------------------------------------------------- the deployment


@dataclass
class Deployment:
    a: Server
    b: Server
    http: httpx.AsyncClient
    settings: Settings
    admin_headers: dict[str, str]
    agent_headers: dict[str, str]
    account_id: int
    redis_prefix: str

    async def register(self, server: Server) -> tuple[str, int]:
        r = await self.http.post(f"{server.url}/api/v1/realtime/register", headers=self.agent_headers)
        assert r.status_code == 200, r.text
        return r.json()["queue_id"], r.json()["last_event_id"]

    async def inbound(self, server: Server, inbox: dict[str, Any], content: str, source_id: str) -> dict[str, Any]:
        body = orjson.dumps(inbound_payload(content=content, source_id=source_id))
        r = await self.http.post(f"{server.url}/api/v1/inboxes/{inbox['public_key']}/webhook", content=body,
                                 headers=sign(inbox["secret"], body))
        assert r.status_code == 200, r.text
        return r.json()


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def _pg_admin(sql: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def _clear_redis(prefix: str) -> None:
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["postgresql", "sqlite"])
async def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deployment]:
    backend = request.param
    prefix = f"swarmdesk-test-{uuid.uuid4().hex[:12]}"  # keys and pub/sub channel of this run only
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db_name = f"swarmdesk_mp_{uuid.uuid4().hex[:12]}"
    database_url = ""
    if backend == "postgresql":
        await _pg_admin(f'CREATE DATABASE "{db_name}"')
        database_url = _pg_url(db_name)
    env = {"SWARMDESK_ENV": "test", "SWARMDESK_DATA_DIR": str(data_dir), "SWARMDESK_DATABASE_URL": database_url,
           "SWARMDESK_REDIS_URL": REDIS_URL, "SWARMDESK_REDIS_PREFIX": prefix, "SWARMDESK_SECRET_KEY": SECRET_KEY,
           "SWARMDESK_LOG_JSON": "false", "SWARMDESK_LOG_LEVEL": "WARNING"}
    settings = Settings(env="test", data_dir=data_dir, database_url=database_url, secret_key=SECRET_KEY,
                        redis_url="", argon2_time_cost=1, argon2_memory_cost=8192)
    servers: list[Server] = []
    try:
        # Migrations and an account with an admin and an agent (API tokens), written directly.
        await asyncio.to_thread(upgrade, settings.effective_database_url)
        seeder = create_runtime(settings)
        try:
            h = Harness(seeder, None)  # type: ignore[arg-type]  # only its seeding helpers are used
            ctx = await h.make_account("Multiprocess")
            agent = await h.make_user(ctx, "agent")
        finally:
            await seeder.stop()
        servers = [_spawn("A", env, tmp_path), _spawn("B", env, tmp_path)]
        async with httpx.AsyncClient(timeout=WAIT) as http:
            await asyncio.gather(*(_wait_ready(s, http) for s in servers))
            yield Deployment(servers[0], servers[1], http, settings, ctx.admin.headers, agent.headers, ctx.account_id,
                             prefix)
    finally:
        for server in servers:
            _terminate(server)
        if backend == "postgresql":
            await _pg_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        await _clear_redis(prefix)


# --------------------------------------------------------------------------- the scenario


async def test_two_processes_behave_as_one(deployment: Deployment) -> None:
    d = deployment
    a, b = d.a, d.b
    receiver = Receiver()
    async with receiver.running():
        # An API inbox whose agent replies go to a loopback receiver, created through A; the
        # loopback allowlist is set through B. Both processes read the same configuration.
        r = await d.http.post(f"{a.url}/api/v1/inboxes", headers=d.admin_headers, json={
            "name": "App", "channel_kind": "api", "config": {"callback_url": receiver.url}})
        assert r.status_code == 201, r.text
        inbox = {"id": r.json()["id"], "public_key": r.json()["public_key"],
                 "secret": r.json()["generated_secrets"]["secret"]}
        r = await d.http.patch(f"{b.url}/api/v1/account", headers=d.admin_headers,
                               json={"settings": {"outbound_allowlist": ["127.0.0.1"]}})
        assert r.status_code == 200, r.text

        # 1. A message posted to A reaches an agent socket connected to B.
        q1, head1 = await d.register(b)
        async with open_socket(b, q1, head1) as on_b:
            await on_b.sync()  # connected and attached to B's hub
            first = await d.inbound(a, inbox, "Where is my order #1?", source_id="cust-1")
            got = await on_b.until(lambda ev: of_type(ev, "message.created"))
            created = of_type(got, "conversation.created")
            assert [c["conversation"]["id"] for c in created] == [first["conversation_id"]]
            assert contents(got) == ["Where is my order #1?"]
            assert of_type(got, "message.created")[0]["conversation"]["id"] == first["conversation_id"]
            assert all(e["id"] > head1 for e in got)
            assert [e["id"] for e in got] == sorted({e["id"] for e in got})  # numbered, in order, once

            # 2. Resume across processes: a queue registered and acked on A resumes on B.
            q2, head2 = await d.register(a)
            async with open_socket(a, q2, head2) as on_a:
                await on_a.sync()
                second = await d.inbound(b, inbox, "Hello from customer 2", source_id="cust-2")
                got_a = await on_a.until(lambda ev: of_type(ev, "message.created"))
                assert contents(got_a) == ["Hello from customer 2"]
                acked = got_a[-1]["id"]
                await on_a.ack(acked)  # the pong after it proves A stored the ack
            missed_texts = [f"Missed while away {i}" for i in range(3)]
            for content in missed_texts:  # posted to B while the queue has no socket
                await d.inbound(b, inbox, content, source_id="cust-2")
            # The reference: the socket that stayed connected to B saw every event for this agent.
            await on_b.until(lambda ev: contents(ev)[-3:] == missed_texts)
            seen_before = [e["id"] for e in on_b.seen if e["id"] > acked]
            # No last_event_id: B resumes from the ack that A wrote to Redis.
            async with open_socket(b, q2) as resumed:
                replay = await resumed.frame()
                assert replay["op"] == "events", replay
                replayed = replay["events"]
                ids = [e["id"] for e in replayed]
                assert set(seen_before) <= set(ids), (seen_before, ids)
                await on_b.until(lambda _: on_b.seen[-1]["id"] >= ids[-1])
                reference = [e["id"] for e in on_b.seen if acked < e["id"] <= ids[-1]]
                assert ids == reference, (ids, reference)  # exactly what it missed: no gap, no repeat
                assert contents(replayed) == missed_texts
                assert {e["conversation"]["id"] for e in replayed if "conversation" in e} == \
                    {second["conversation_id"]}
                # And it continues live, without repeating anything.
                await d.inbound(a, inbox, "Live after resume", source_id="cust-2")
                live = await resumed.until(lambda ev: contents(ev) == ["Live after resume"])
                assert all(e["id"] > ids[-1] for e in live)

            # 3. Agent replies posted through B are delivered once, though A and B both run workers.
            conversation_id = first["conversation_id"]
            texts = [f"Reply {i}" for i in range(REPLIES)]
            responses = await asyncio.gather(*(
                d.http.post(f"{b.url}/api/v1/conversations/{conversation_id}/messages", headers=d.agent_headers,
                            json={"content": t}) for t in texts))
            assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
            reply_ids = {r.json()["id"] for r in responses}

            def all_sent(ev: list[dict[str, Any]]) -> bool:
                sent = {e["message"]["id"] for e in of_type(ev, "message.updated")
                        if e["message"].get("delivery_status") == "sent"}
                return reply_ids <= sent

            await on_b.until(all_sent)  # each reply's delivery was recorded (the event crossed processes)
            assert len(receiver.requests) >= REPLIES

            # 4. Redis loses its data (a restart without persistence, simulated by deleting this
            # run's keys): the socket that stayed connected keeps receiving, numbered above
            # everything it has seen rather than from 1 again.
            highest = max(e["id"] for e in on_b.seen)
            await _clear_redis(d.redis_prefix)
            await d.inbound(a, inbox, "After Redis lost its data", source_id="cust-1")
            after_loss = await on_b.until(lambda ev: contents(ev) == ["After Redis lost its data"])
            assert all(e["id"] > highest for e in after_loss)

            # 5. SIGTERM with a socket still connected: both processes stop within 15 s, after
            # their workers finished whatever they held...
            codes = await asyncio.gather(asyncio.to_thread(_terminate, a), asyncio.to_thread(_terminate, b))
            # ...gracefully, not just dead: B closed the agent's socket with 1012 (service restart:
            # reconnect elsewhere) before exiting.
            async with asyncio.timeout(WAIT):
                await on_b.ws.wait_closed()
            assert on_b.ws.close_code == 1012, (on_b.ws.close_code, on_b.ws.close_reason)

    # Exactly once, now that no worker is left that could still deliver a duplicate.
    webhook_ids = [req.headers["webhook-id"] for req in receiver.requests]
    assert sorted(webhook_ids) == sorted(f"msg_{i}" for i in reply_ids), webhook_ids
    verifier = Webhook(inbox["secret"])
    delivered = sorted(verifier.verify(req.body, req.headers)["data"]["content"] for req in receiver.requests)
    assert delivered == sorted(texts)
    engine = create_async_engine(d.settings.effective_database_url)
    try:
        async with engine.connect() as conn:
            jobs = (await conn.execute(select(Job.status, Job.attempts, Job.locked_by)
                                       .where(Job.kind == DELIVER_JOB))).all()
    finally:
        await engine.dispose()
    assert len(jobs) == REPLIES
    assert all(job.status == JobStatus.done and job.attempts == 1 for job in jobs), jobs

    # A clean exit is code 0: the stop was asked for and completed.
    assert codes == [0, 0], f"exit codes {codes}\nA:\n{a.log_tail()}\nB:\n{b.log_tail()}"


async def test_queue_acks_from_two_processes_never_move_backwards() -> None:
    """The old socket on one process and the new one on another can ack the same queue at once:
    the stored ack is the highest, whatever the interleaving (one atomic max in Redis)."""
    prefix = f"swarmdesk-test-{uuid.uuid4().hex[:12]}:queue:"
    # Small pools, as the app builds them: 400 acks at once wait for a connection, none fails.
    one, two = connect_redis(REDIS_URL, max_connections=8), connect_redis(REDIS_URL, max_connections=8)
    try:
        store_a, store_b = RedisQueueStore(one, ttl_seconds=60, prefix=prefix), RedisQueueStore(two, 60, prefix)
        info = QueueInfo(queue_id=new_queue_id(), account_id=1, principal_kind="user", principal_id=7,
                         role="agent", team_ids=(3, 4), last_acked=10)
        await store_a.put(info)
        got = await store_b.get(info.queue_id)
        assert got == info
        await asyncio.gather(*(store.ack(info.queue_id, n)
                               for n in range(11, 211) for store in (store_a, store_b)[n % 2:][:1]),
                             *(store_b.ack(info.queue_id, n) for n in range(200, 0, -1)))
        got = await store_a.get(info.queue_id)
        assert got is not None and got.last_acked == 210 and got.team_ids == (3, 4)
        await store_b.ack(info.queue_id, 5)
        assert (await store_a.get(info.queue_id)).last_acked == 210  # type: ignore[union-attr]
        await store_a.ack("no-such-queue", 99)  # acking a queue that is gone creates nothing
        assert await store_b.get("no-such-queue") is None
        await store_b.delete(info.queue_id)
        assert await store_a.get(info.queue_id) is None
        assert [k async for k in one.scan_iter(match=f"{prefix}*")] == []
    finally:
        await one.aclose()
        await two.aclose()
