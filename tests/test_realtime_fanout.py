"""The hub's fan-out: a caught-up WebSocket gets the events of one turn of the event loop written
directly as one frame (built once for every socket with the same events), a socket that falls
behind gets the rest through its stream — in order, none lost, none twice — and the frames are what
any WebSocket client parses.

Over real sockets against the live uvicorn server, which serves with ``realtime.server_protocol``.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from swarmdesk.accounts.models import Role
from swarmdesk.events.base import Audience, BaseEvent
from swarmdesk.realtime.wire import events_payload, text_frame
from tests.support import Harness

TIMEOUT = 10.0


class Filler(BaseEvent):
    """An event of any size, for the fan-out alone (published straight to the bus)."""

    type: str = "test.filler"
    text: str


async def register(live, headers: dict[str, str]) -> dict[str, Any]:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=live.url, timeout=TIMEOUT) as api:
        r = await api.post("/api/v1/realtime/register", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def publish(h: Harness, account_id: int, user_ids: list[int], texts: list[str]) -> None:
    audience = Audience(user_ids=tuple(user_ids))
    await h.runtime.bus.publish([Filler(account_id=account_id, audience=audience, text=t) for t in texts])


async def receive(ws, count: int, frames: list[int] | None = None) -> list[dict[str, Any]]:  # noqa: ANN001
    """Exactly ``count`` events; ``frames`` gets how many frames carried them."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert frame["op"] == "events", frame
        got.extend(frame["events"])
        if frames is not None:
            frames.append(len(frame["events"]))
    assert len(got) == count
    return got


async def test_caught_up_sockets_get_a_turns_events_in_one_direct_write(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account()
    agents = [await h.make_user(ctx, f"agent{i}", Role.agent) for i in range(3)]
    other = await h.make_user(ctx, "other", Role.agent)
    regs = [await register(live, a.headers) for a in [*agents, other]]
    hub = h.runtime.hub
    async with (ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id={regs[0]['queue_id']}") as a,
                ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id={regs[1]['queue_id']}") as b,
                ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id={regs[2]['queue_id']}") as c,
                ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id={regs[3]['queue_id']}") as d):
        users = [x.user_id for x in agents]
        # A fence: once it has arrived everywhere, every stream has replayed and is idle.
        await publish(h, ctx.account_id, [*users, other.user_id], ["fence"])
        fence = [(await receive(ws, 1))[0]["id"] for ws in (a, b, c, d)]
        assert len(set(fence)) == 1
        before = hub.direct_writes
        # One publish (one commit's events): one frame per socket, all 50 in order.
        await publish(h, ctx.account_id, users, [f"event {i}" for i in range(50)])
        for ws in (a, b, c):
            frames: list[int] = []
            events = await receive(ws, 50, frames)
            assert frames == [50]
            assert [e["text"] for e in events] == [f"event {i}" for i in range(50)]
            assert [e["id"] for e in events] == list(range(fence[0] + 1, fence[0] + 51))
        assert hub.direct_writes - before == 3
        # Publishes in separate turns: a frame each; d was in none of the audiences above.
        for i in range(3):
            await publish(h, ctx.account_id, [users[0], other.user_id], [f"later {i}"])
            await asyncio.sleep(0)
        frames = []
        assert [e["text"] for e in await receive(a, 3, frames)] == ["later 0", "later 1", "later 2"]
        assert frames == [1, 1, 1]
        only = await receive(d, 3)
        assert [e["id"] for e in only] == list(range(fence[0] + 51, fence[0] + 54))
        # Every delivery went straight to the socket; none through a stream task.
        assert hub.direct_writes - before == 3 + 6


def _send_buffer_max() -> int:
    """The most a socket's kernel send buffer grows to here (Linux's tcp_wmem maximum)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


async def test_a_socket_that_stops_reading_gets_every_event_in_order_once_it_reads_again(h: Harness,  # noqa: ANN001
                                                                                       live) -> None:
    ctx = await h.make_account()
    slow, fast = await h.make_user(ctx, "slow", Role.agent), await h.make_user(ctx, "fast", Role.agent)
    reg_slow, reg_fast = await register(live, slow.headers), await register(live, fast.headers)
    # The slow client's socket takes little into its kernel buffer, and its library stops reading
    # after one queued message: the server's socket buffer (up to tcp_wmem's maximum) fills, then
    # its transport's buffer, and the transport pauses writing.
    sock = socket.create_connection(("127.0.0.1", live.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65_536)
    hub = h.runtime.hub
    async with (ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id={reg_slow['queue_id']}", sock=sock,
                           max_queue=1, max_size=None, ping_interval=None) as slow_ws,
                ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id={reg_fast['queue_id']}",
                           max_size=None) as fast_ws):
        await publish(h, ctx.account_id, [slow.user_id, fast.user_id], ["fence"])
        await receive(slow_ws, 1)
        await receive(fast_ws, 1)
        before = hub.direct_writes
        # Twice what the kernel buffers can hold, in publishes of 20 events of 16 kB.
        count = (2 * _send_buffer_max() + 2 * 1024 * 1024) // 16_000 // 20 * 20 + 20
        texts = [f"{i:05d} " + "x" * 16_000 for i in range(count)]
        fast_got: list[dict[str, Any]] = []
        for start in range(0, count, 20):
            await publish(h, ctx.account_id, [slow.user_id, fast.user_id], texts[start:start + 20])
            fast_got += await receive(fast_ws, 20)  # the fast one keeps up meanwhile
        # Some of the slow socket's frames could not be written: their events waited in its queue.
        assert hub.direct_writes - before < 2 * (count // 20)
        got = await receive(slow_ws, count)
        assert [e["text"][:5] for e in got] == [f"{i:05d}" for i in range(count)]
        ids = [e["id"] for e in got]
        assert ids == list(range(ids[0], ids[0] + count))
        assert [e["id"] for e in fast_got] == ids
        # Caught up again: the next event goes straight to both sockets.
        before = hub.direct_writes
        await publish(h, ctx.account_id, [slow.user_id, fast.user_id], ["after"])
        assert (await receive(slow_ws, 1))[0]["id"] == ids[-1] + 1
        assert (await receive(fast_ws, 1))[0]["id"] == ids[-1] + 1
        assert hub.direct_writes - before == 2


async def test_nothing_after_an_access_change_is_sent_and_the_socket_reloads(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent", Role.agent)
    reg = await register(live, agent.headers)
    async with ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id={reg['queue_id']}") as ws:
        await publish(h, ctx.account_id, [agent.user_id], ["fence"])
        await receive(ws, 1)
        audience = Audience(user_ids=(agent.user_id,))
        await h.runtime.bus.publish([Filler(account_id=ctx.account_id, audience=audience, text="before"),
                                     Filler(type="access.changed", account_id=ctx.account_id, audience=audience,
                                            text="changed"),
                                     Filler(account_id=ctx.account_id, audience=audience, text="after")])
        events = await receive(ws, 2)
        assert [e["text"] for e in events] == ["before", "changed"]
        assert orjson.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) == {"op": "reload"}
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)


async def test_a_socket_fed_directly_gets_no_heartbeat_until_it_is_quiet(h: Harness, live,  # noqa: ANN001
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from swarmdesk.realtime import router as realtime_router

    monkeypatch.setattr(realtime_router, "HEARTBEAT_SECONDS", 0.4)
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent", Role.agent)
    reg = await register(live, agent.headers)
    async with ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id={reg['queue_id']}") as ws:
        for i in range(12):  # 1.2 s of events, 0.1 s apart: never quiet for 0.4 s
            await publish(h, ctx.account_id, [agent.user_id], [f"e{i}"])
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert frame["op"] == "events" and frame["events"][0]["text"] == f"e{i}", frame
            await asyncio.sleep(0.1)
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 2.0)) == {"op": "heartbeat"}


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
def test_a_frame_of_each_length_encoding_is_parsed_by_a_websocket_client(length: int) -> None:
    payload = b"a" * length
    reader = StreamReader()
    reader.feed_data(text_frame(payload))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        while True:
            next(parser)
    frame = done.value.value
    assert (frame.opcode, frame.fin, frame.rsv1, bytes(frame.data)) == (Opcode.TEXT, True, False, payload)


async def test_an_event_over_64_kib_arrives_whole(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent", Role.agent)
    reg = await register(live, agent.headers)
    async with ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id={reg['queue_id']}", max_size=None) as ws:
        await publish(h, ctx.account_id, [agent.user_id], ["fence"])
        await receive(ws, 1)
        before = h.runtime.hub.direct_writes
        text = "é" * 40_000  # 80,000 bytes of UTF-8
        await publish(h, ctx.account_id, [agent.user_id], [text])
        (event,) = await receive(ws, 1)
        assert event["text"] == text
        assert h.runtime.hub.direct_writes - before == 1


def test_the_events_payload_is_the_frames_joined() -> None:
    from swarmdesk.events.base import RoutedEvent

    events = [RoutedEvent(i, "t", 1, Audience(), orjson.dumps({"id": i})) for i in (1, 2)]
    assert orjson.loads(events_payload(events)) == {"op": "events", "events": [{"id": 1}, {"id": 2}]}


async def test_an_event_is_never_written_ahead_of_one_queued_before_it() -> None:
    """The hub's ordering rule on its own: a direct write only to an idle stream with nothing
    queued. (Over sockets both guards hold at once, so each is checked here alone.)"""
    from swarmdesk.events.base import RoutedEvent
    from swarmdesk.realtime.hub import Client, Hub
    from swarmdesk.realtime.queues import QueueInfo

    hub = Hub()
    client = Client(QueueInfo(queue_id="q", account_id=1, principal_kind="user", principal_id=7, role="agent",
                              team_ids=(), last_acked=0))
    hub.attach(client)
    written: list[bytes] = []
    accept = [False]

    def write(frame: bytes) -> bool:
        if accept[0]:
            written.append(frame)
        return accept[0]

    def event(i: int) -> RoutedEvent:
        return RoutedEvent(i, "t", 1, Audience(user_ids=(7,)), orjson.dumps({"id": i}))

    client.write_frame, client.busy = write, False
    hub.dispatch(event(1))
    await asyncio.sleep(0)  # the turn ends: the socket's buffer is full, so 1 is queued for the stream
    assert written == [] and client.pending.qsize() == 1
    accept[0] = True
    hub.dispatch(event(2))  # writable again, but 1 is still queued: 2 queues behind it
    await asyncio.sleep(0)
    assert written == [] and client.pending.qsize() == 2
    client.pending.get_nowait(), client.pending.get_nowait()
    client.busy = True  # the stream is sending them
    hub.dispatch(event(3))
    await asyncio.sleep(0)
    assert written == [] and client.pending.qsize() == 1
    client.pending.get_nowait()
    client.last_sent, client.busy = 3, False  # sent; idle with nothing queued
    hub.dispatch(event(3))  # a repeat (replay overlapping the live stream) is dropped
    hub.dispatch(event(4))
    hub.dispatch(event(5))
    await asyncio.sleep(0)
    assert written == [text_frame(events_payload([event(4), event(5)]))]  # one turn, one frame
    assert (client.last_sent, client.pending.qsize(), hub.direct_writes) == (5, 0, 1)
    # A staged event goes to the queue, ahead of one that must go through the stream.
    hub.dispatch(event(6))
    hub.dispatch(RoutedEvent(7, "access.changed", 1, Audience(user_ids=(7,)), b'{"id":7}'))
    await asyncio.sleep(0)
    assert [client.pending.get_nowait().id for _ in range(2)] == [6, 7]
    assert len(written) == 1


async def test_a_socket_write_that_raises_does_not_stop_the_fan_out(caplog: pytest.LogCaptureFixture) -> None:
    from swarmdesk.events.base import RoutedEvent
    from swarmdesk.realtime.hub import Client, Hub
    from swarmdesk.realtime.queues import QueueInfo

    hub = Hub()
    clients = [Client(QueueInfo(queue_id=f"q{i}", account_id=1, principal_kind="user", principal_id=i,
                                role="agent", last_acked=0)) for i in (1, 2)]
    written: list[bytes] = []

    def broken(frame: bytes) -> bool:
        raise OSError("socket gone")

    def fine(frame: bytes) -> bool:
        written.append(frame)
        return True

    for client, writer in zip(clients, (broken, fine), strict=True):
        hub.attach(client)
        client.write_frame, client.busy = writer, False
    hub.dispatch(RoutedEvent(1, "t", 1, Audience(user_ids=(1, 2)), b'{"id":1}'))
    await asyncio.sleep(0)
    assert len(written) == 1  # the other socket still got it
    assert clients[0].write_frame is None and clients[0].pending.get_nowait().id == 1  # its stream sends it
    assert "direct socket write failed" in caplog.text
