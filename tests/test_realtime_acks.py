"""Acks are stored together about once a second (``queues.AckBuffer``), at once before a pong and
when the socket closes — against the in-process store and against Redis."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect as ws_connect

from swarmdesk.accounts.models import Role
from swarmdesk.events.bus import connect_redis
from swarmdesk.realtime.queues import AckBuffer, LocalQueueStore, QueueInfo, RedisQueueStore
from tests.conftest import REDIS_URL
from tests.support import Harness

TIMEOUT = 5.0


def info(queue_id: str) -> QueueInfo:
    return QueueInfo(queue_id=queue_id, account_id=1, principal_kind="user", principal_id=1, role="agent")


@pytest.fixture(params=["local", "redis"])
async def store(request: pytest.FixtureRequest):  # noqa: ANN201
    if request.param == "local":
        yield LocalQueueStore(ttl_seconds=60)
        return
    client = connect_redis(REDIS_URL)
    yield RedisQueueStore(client, ttl_seconds=60, prefix=f"acktest{uuid.uuid4().hex[:6]}:")
    await client.aclose()


async def test_acks_are_stored_on_flush_the_highest_one_per_queue(store) -> None:  # noqa: ANN001
    for qid in ("a", "b", "gone"):
        await store.put(info(qid))
    await store.delete("gone")
    acks = AckBuffer(store)
    acks.note("a", 5)
    acks.note("a", 9)
    acks.note("a", 7)  # an older one arriving late does not move it back
    acks.note("b", 3)
    acks.note("gone", 4)  # a queue deleted meanwhile: nothing to store, nothing fails
    assert (await store.get("a")).last_acked == 0  # noted, not stored yet
    await acks.flush("b")
    assert ((await store.get("a")).last_acked, (await store.get("b")).last_acked) == (0, 3)
    await acks.flush()
    assert ((await store.get("a")).last_acked, (await store.get("b")).last_acked) == (9, 3)
    assert await store.get("gone") is None
    acks.note("a", 8)  # below what is stored: the store keeps the highest
    await acks.flush()
    assert (await store.get("a")).last_acked == 9


async def test_acks_survive_a_failed_flush(caplog: pytest.LogCaptureFixture) -> None:
    good = connect_redis(REDIS_URL)
    prefix = f"acktest{uuid.uuid4().hex[:6]}:"
    await RedisQueueStore(good, ttl_seconds=60, prefix=prefix).put(info("a"))
    down = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)  # nothing listens there
    acks = AckBuffer(RedisQueueStore(down, ttl_seconds=60, prefix=prefix))
    acks.note("a", 5)
    await acks.flush()
    assert "storing acks failed" in caplog.text
    acks._store = RedisQueueStore(good, ttl_seconds=60, prefix=prefix)  # Redis is back
    acks.note("a", 4)
    await acks.flush()
    assert (await acks._store.get("a")).last_acked == 5
    await down.aclose()
    await good.aclose()


async def test_a_sockets_ack_is_stored_within_a_second_and_at_once_when_it_closes(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent", Role.agent)
    async with httpx.AsyncClient(base_url=live.url, timeout=TIMEOUT) as api:
        reg = (await api.post("/api/v1/realtime/register", headers=agent.headers)).json()
    qid = reg["queue_id"]
    queues = h.runtime.queues
    async with ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id={qid}") as ws:
        await ws.send(orjson.dumps({"op": "ack", "last_event_id": reg["last_event_id"] + 7}).decode())
        for _ in range(40):  # the periodic flush (once a second) stores it; no ping asked for it
            if (await queues.get(qid)).last_acked == reg["last_event_id"] + 7:
                break
            await asyncio.sleep(0.1)
        assert (await queues.get(qid)).last_acked == reg["last_event_id"] + 7
        await ws.send(orjson.dumps({"op": "ack", "last_event_id": reg["last_event_id"] + 8}).decode())
        await asyncio.sleep(0.05)  # read by the server, not yet flushed
    # The socket closed: its last ack is stored with the close, before any periodic flush.
    for _ in range(20):
        if (await queues.get(qid)).last_acked == reg["last_event_id"] + 8:
            break
        await asyncio.sleep(0.02)
    assert (await queues.get(qid)).last_acked == reg["last_event_id"] + 8


async def test_a_pong_means_the_acks_before_it_are_stored(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent", Role.agent)
    async with httpx.AsyncClient(base_url=live.url, timeout=TIMEOUT) as api:
        reg = (await api.post("/api/v1/realtime/register", headers=agent.headers)).json()
    async with ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id={reg['queue_id']}") as ws:
        await ws.send(orjson.dumps({"op": "ack", "last_event_id": reg["last_event_id"] + 3}).decode())
        await ws.send('{"op":"ping"}')
        assert orjson.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) == {"op": "pong"}
        assert (await h.runtime.queues.get(reg["queue_id"])).last_acked == reg["last_event_id"] + 3
