"""The real-time protocol end to end, over real sockets against a live uvicorn server.

Register -> numbered events on a WebSocket (or SSE) -> ack -> resume after a reconnect -> reload when
the queue, the events it needs, or the principal's access are gone. Audiences decide who receives
what, both live (the hub's indexes) and on replay (``audience_includes``); the last test holds the
two to the same answer over an enumerated space.

"Never receives X" is proved with a fence: after the actions whose events must not arrive, an event
the client *must* receive is published, and it has to be the very next thing on the socket.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from swarmdesk.accounts.models import Role
from swarmdesk.config import Settings
from swarmdesk.conversations import actions as conversations_actions
from swarmdesk.conversations.models import Conversation
from swarmdesk.events.base import Audience, RoutedEvent
from swarmdesk.realtime.hub import Client, Hub, audience_includes, includes
from swarmdesk.realtime.queues import QueueInfo
from tests.support import ApiInbox, Harness, Staff, inbound_payload

TIMEOUT = 5.0

# Keys of a published event's body as a client sees it: the routing envelope (audience) never leaks.
ENVELOPE = {"id", "type", "uid", "account_id", "occurred_at"}


# --- helpers ---------------------------------------------------------------------------------------

class Sock:
    """A client's WebSocket: every frame is awaited with a timeout; event ids are checked to be
    strictly increasing across everything this socket received."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids: list[int] = []

    async def frame(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        return orjson.loads(raw)

    async def events(self, count: int, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Exactly ``count`` events (one or more frames; a frame carrying more is a failure)."""
        got: list[dict[str, Any]] = []
        while len(got) < count:
            frame = await self.frame(timeout)
            assert frame["op"] == "events", frame
            assert frame["events"], frame
            got.extend(frame["events"])
        assert len(got) == count, [(e["id"], e["type"]) for e in got]
        ids = [e["id"] for e in got]
        assert ids == sorted(set(ids)), ids
        if self.ids:
            assert ids[0] > self.ids[-1], (self.ids, ids)
        self.ids.extend(ids)
        for event in got:
            assert ENVELOPE <= event.keys() and "audience" not in event, event
        return got

    async def ack(self, last_event_id: int) -> None:
        """Ack, then ping: the server reads frames in order, so the pong proves the ack was stored."""
        await self.ws.send(orjson.dumps({"op": "ack", "last_event_id": last_event_id}).decode())
        await self.ws.send('{"op":"ping"}')
        assert await self.frame() == {"op": "pong"}

    async def expect_reload(self, close_code: int) -> None:
        assert await self.frame() == {"op": "reload"}
        await asyncio.wait_for(self.ws.wait_closed(), TIMEOUT)
        assert self.ws.close_code == close_code


def types_ids(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["type"], e["id"]) for e in events]


@asynccontextmanager
async def open_ws(live, queue_id: str, last_event_id: int | None = None) -> AsyncIterator[Sock]:  # noqa: ANN001
    url = f"{live.ws_url}/api/v1/realtime/ws?queue_id={queue_id}"
    if last_event_id is not None:
        url += f"&last_event_id={last_event_id}"
    async with ws_connect(url, open_timeout=TIMEOUT, close_timeout=2) as ws:
        yield Sock(ws)


@pytest.fixture
async def api(live) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    """An HTTP client talking to the live server over TCP."""
    async with httpx.AsyncClient(base_url=live.url, timeout=TIMEOUT) as c:
        yield c


async def register(api: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    r = await api.post("/api/v1/realtime/register", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"queue_id", "last_event_id", "state"}
    return body


async def customer(h: Harness, inbox: ApiInbox, name: str) -> tuple[dict[str, str], int]:
    r = await h.client.post(f"/api/v1/inboxes/{inbox.public_key}/customer-sessions", json={"name": name})
    assert r.status_code == 201, r.text
    return {"authorization": f"Bearer {r.json()['token']}"}, r.json()["contact_id"]


async def customer_conversation(h: Harness, headers: dict[str, str], subject: str, content: str) -> int:
    r = await h.client.post("/api/v1/customer/conversations", headers=headers,
                            json={"subject": subject, "content": content})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def deliver(h: Harness, inbox: ApiInbox, source_id: str, content: str) -> dict[str, Any]:
    r = await h.deliver(inbox, inbound_payload(source_id=source_id, content=content))
    assert r.status_code == 200, r.text
    assert r.json()["duplicate"] is False
    return r.json()


async def patch_conversation(h: Harness, who: Staff, conversation_id: int, **fields: Any) -> dict[str, Any]:
    r = await h.client.patch(f"/api/v1/conversations/{conversation_id}", headers=who.headers, json=fields)
    assert r.status_code == 200, r.text
    return r.json()


async def post_message(h: Harness, who: Staff, conversation_id: int, content: str, *,
                       private: bool) -> dict[str, Any]:
    r = await h.client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=who.headers,
                            json={"content": content, "private": private})
    assert r.status_code == 201, r.text
    return r.json()


async def head(h: Harness) -> int:
    return await h.runtime.bus.head_id()


# --- 1. register --------------------------------------------------------------------------------

async def test_register_returns_queue_and_initial_state(h: Harness, live, api: httpx.AsyncClient) -> None:
    ctx = await h.make_account()
    alpha = await h.make_team(ctx, "Alpha")
    beta = await h.make_team(ctx, "Beta")
    agent = await h.make_user(ctx, "agent", Role.agent, teams=(alpha,))
    inbox = await h.make_api_inbox(ctx)
    first = await deliver(h, inbox, "cust-1", "one")  # 4 events: contact, conversation, message, customer msg
    second = await deliver(h, inbox, "cust-2", "two")  # 4 more
    await patch_conversation(h, ctx.admin, second["conversation_id"], team_id=beta)  # +1: assigned
    await patch_conversation(h, ctx.admin, second["conversation_id"], status="resolved")  # +2: status, customer
    assert await head(h) == 11

    reg = await register(api, agent.headers)
    assert isinstance(reg["queue_id"], str) and len(reg["queue_id"]) == 22  # 128 random bits, urlsafe
    assert reg["last_event_id"] == 11
    r = await h.client.get(f"/api/v1/users/{agent.user_id}", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    assert reg["state"]["user"] == r.json()
    assert {k: reg["state"]["user"][k] for k in ("id", "email", "name", "role", "is_active", "team_ids")} == {
        "id": agent.user_id, "email": agent.email, "name": "Agent", "role": "agent", "is_active": True,
        "team_ids": [alpha]}
    assert reg["state"]["teams"] == [
        {"id": alpha, "name": "Alpha", "description": "", "member_ids": [agent.user_id]},
        {"id": beta, "name": "Beta", "description": "", "member_ids": []},
    ]
    # The agent sees the team-less conversation, not Beta's.
    assert reg["state"]["conversation_counts"] == {"open": 1}
    assert set(reg["state"]) == {"user", "teams", "conversation_counts"}

    admin_reg = await register(api, ctx.admin.headers)
    assert admin_reg["queue_id"] != reg["queue_id"]
    assert admin_reg["last_event_id"] == 11
    assert admin_reg["state"]["user"]["role"] == "admin"
    assert admin_reg["state"]["user"]["id"] == ctx.admin.user_id
    assert admin_reg["state"]["user"]["team_ids"] == []
    assert admin_reg["state"]["conversation_counts"] == {"open": 1, "resolved": 1}

    # A customer session registers and gets its own conversations (not the other customers').
    cust_headers = await h.customer_session(inbox, "Visitor")  # +1: contact.created
    conv_id = await customer_conversation(h, cust_headers, "Billing", "my invoice")  # +3: conv, msg, customer msg
    other_headers = await h.customer_session(inbox, "Other")  # +1
    assert await head(h) == 16
    creg = await register(api, cust_headers)
    assert creg["last_event_id"] == 16
    r = await h.client.get(f"/api/v1/conversations/{conv_id}", headers=ctx.admin.headers)
    contact_id = r.json()["contact"]["id"]
    assert contact_id not in (first["contact_id"], second["contact_id"])
    mine = (await h.client.get("/api/v1/customer/conversations", headers=cust_headers)).json()
    assert creg["state"] == {"contact_id": contact_id, "conversations": mine}
    assert [(c["id"], c["subject"], c["status"]) for c in creg["state"]["conversations"]] == [
        (conv_id, "Billing", "open")]
    assert set(creg["state"]["conversations"][0]) == {"id", "subject", "status", "created_at", "last_activity_at"}
    oreg = await register(api, other_headers)
    assert oreg["state"]["conversations"] == []
    assert oreg["state"]["contact_id"] not in (contact_id, first["contact_id"], second["contact_id"])

    # A token that may not read conversations may not stream them either.
    contacts_only = await h.make_user(ctx, "crm", Role.agent, scopes=["contacts:read"])
    r = await api.post("/api/v1/realtime/register", headers=contacts_only.headers)
    assert r.status_code == 403, r.text
    reader = await h.make_user(ctx, "reader", Role.agent, scopes=["conversations:read"])
    assert (await register(api, reader.headers))["state"]["user"]["id"] == reader.user_id

    # No credential, or an unknown staff or customer token: 401.
    assert (await api.post("/api/v1/realtime/register")).status_code == 401
    assert (await api.post("/api/v1/realtime/register",
                           headers={"authorization": "Bearer sdp_nope"})).status_code == 401
    assert (await api.post("/api/v1/realtime/register",
                           headers={"authorization": "Bearer sdc_nope"})).status_code == 401


# --- 2. numbered events on the socket ------------------------------------------------------------

async def test_inbound_message_streams_numbered_events(h: Harness, live, api: httpx.AsyncClient) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent", Role.agent)
    inbox = await h.make_api_inbox(ctx)
    reg = await register(api, agent.headers)
    assert reg["last_event_id"] == 0

    async with open_ws(live, reg["queue_id"], reg["last_event_id"]) as sock:
        first = await deliver(h, inbox, "cust-1", "Hello, my order is late")
        events = await sock.events(3)
        # customer.message_created (id 4) is for the customer only.
        assert types_ids(events) == [("contact.created", 1), ("conversation.created", 2), ("message.created", 3)]
        assert all(e["account_id"] == ctx.account_id for e in events)
        contact, conv, msg = events

        assert contact["contact"]["id"] == first["contact_id"]
        assert contact["contact"]["name"] == "Ana Lima"
        assert set(contact) == ENVELOPE | {"contact"}

        assert set(conv) == ENVELOPE | {"conversation"}
        c = conv["conversation"]
        assert (c["id"], c["inbox_id"], c["channel"], c["status"], c["team_id"], c["assignee_id"],
                c["message_count"], c["contact"]["id"], c["contact"]["name"]) == (
            first["conversation_id"], inbox.id, "api", "open", None, None, 1, first["contact_id"], "Ana Lima")

        assert set(msg) == ENVELOPE | {"message", "conversation"}
        m = msg["message"]
        assert (m["id"], m["conversation_id"], m["inbox_id"], m["direction"], m["private"], m["content"],
                m["delivery_status"], m["attachments"]) == (
            first["message_id"], first["conversation_id"], inbox.id, "incoming", False, "Hello, my order is late",
            "received", [])
        assert m["sender"] == {"type": "contact", "id": first["contact_id"], "name": "Ana Lima"}
        assert msg["conversation"]["id"] == first["conversation_id"]
        assert len({e["uid"] for e in events}) == 3

        # The same customer again: only a message, in the same conversation, numbered after the rest.
        again = await deliver(h, inbox, "cust-1", "Any news?")
        (msg2,) = await sock.events(1)
        assert types_ids([msg2]) == [("message.created", 5)]
        assert msg2["message"]["id"] == again["message_id"]
        assert msg2["message"]["content"] == "Any news?"
        assert msg2["conversation"]["id"] == first["conversation_id"]
        assert msg2["conversation"]["message_count"] == 2

        # An agent's reply reaches the agent socket too (outgoing, pending delivery).
        reply = await post_message(h, ctx.admin, first["conversation_id"], "On its way", private=False)
        (msg3,) = await sock.events(1)
        assert types_ids([msg3]) == [("message.created", 7)]
        assert (msg3["message"]["id"], msg3["message"]["direction"], msg3["message"]["sender"]) == (
            reply["id"], "outgoing", {"type": "user", "id": ctx.admin.user_id, "name": "Acme Admin"})
    assert sock.ids == [1, 2, 3, 5, 7]


# --- 3. ack and resume --------------------------------------------------------------------------

async def test_ack_disconnect_and_resume_receive_exactly_the_missed_events(h: Harness, live,
                                                                           api: httpx.AsyncClient) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent", Role.agent)
    inbox = await h.make_api_inbox(ctx)
    reg = await register(api, agent.headers)
    qid = reg["queue_id"]

    async with open_ws(live, qid, reg["last_event_id"]) as sock:
        await deliver(h, inbox, "cust-1", "one")
        assert types_ids(await sock.events(3)) == [
            ("contact.created", 1), ("conversation.created", 2), ("message.created", 3)]
        await sock.ack(3)

    # Missed while away: a message on the same conversation, and a new customer's conversation.
    await deliver(h, inbox, "cust-1", "two")  # 5 (6 is the customer's)
    await deliver(h, inbox, "cust-2", "three")  # 7, 8, 9 (10 is the customer's)

    # Resume from the acked id (no last_event_id): exactly the missed events, then live ones, none twice.
    async with open_ws(live, qid) as sock:
        missed = await sock.events(4)
        assert types_ids(missed) == [("message.created", 5), ("contact.created", 7), ("conversation.created", 8),
                                     ("message.created", 9)]
        assert [e["message"]["content"] for e in (missed[0], missed[3])] == ["two", "three"]
        await deliver(h, inbox, "cust-2", "four")  # 11
        assert types_ids(await sock.events(1)) == [("message.created", 11)]
        await sock.ack(8)  # a partial ack: the next resume starts after 8

    # An explicit last_event_id wins over the stored ack.
    async with open_ws(live, qid, last_event_id=5) as sock:
        assert types_ids(await sock.events(4)) == [("contact.created", 7), ("conversation.created", 8),
                                                   ("message.created", 9), ("message.created", 11)]

    async with open_ws(live, qid) as sock:
        assert types_ids(await sock.events(2)) == [("message.created", 9), ("message.created", 11)]
        await sock.ack(11)
        # Acks never move backwards.
        await sock.ack(2)

    async with open_ws(live, qid) as sock:
        # Nothing is replayed: the first frame is the live fence event.
        await deliver(h, inbox, "cust-3", "five")  # 13, 14, 15
        assert types_ids(await sock.events(3)) == [("contact.created", 13), ("conversation.created", 14),
                                                   ("message.created", 15)]

    # Two sockets on one queue at once each get every event once.
    async with open_ws(live, qid, 15) as a, open_ws(live, qid, 15) as b:
        await deliver(h, inbox, "cust-3", "six")  # 17
        assert types_ids(await a.events(1)) == [("message.created", 17)]
        assert types_ids(await b.events(1)) == [("message.created", 17)]


async def test_events_published_while_connecting_arrive_once(h: Harness, live, api: httpx.AsyncClient) -> None:
    """Events published while a socket connects are replayed or streamed, never both, never lost."""
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    reg = await register(api, ctx.admin.headers)
    for round_ in range(3):
        start = await head(h)

        async def series(round_: int = round_) -> None:
            for i in range(3):
                await deliver(h, inbox, f"race-{round_}-{i}", f"m{i}")

        task = asyncio.create_task(series())  # runs while the handshake and replay happen
        async with open_ws(live, reg["queue_id"], start) as sock:
            events = await sock.events(9)
            await task
            # Each new customer: contact, conversation, message for the admin (the 4th is the customer's).
            assert [e["id"] for e in events] == [start + k * 4 + j for k in range(3) for j in (1, 2, 3)]
            # Fence: the next event on the socket is the next one published; nothing came twice.
            await deliver(h, inbox, f"race-{round_}-2", "again")
            assert types_ids(await sock.events(1)) == [("message.created", start + 13)]


async def test_connecting_without_last_event_id_starts_at_registration(h: Harness, live,
                                                                        api: httpx.AsyncClient) -> None:
    """A fresh queue's position is the last_event_id it was registered at: history before it is
    already in the initial state and is not replayed."""
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    await deliver(h, inbox, "cust-1", "before")  # 1..4
    reg = await register(api, ctx.admin.headers)
    assert reg["last_event_id"] == 4
    async with open_ws(live, reg["queue_id"]) as sock:
        await deliver(h, inbox, "cust-1", "after")  # 5
        (event,) = await sock.events(1)
        assert (event["type"], event["id"], event["message"]["content"]) == ("message.created", 5, "after")


# --- 4. reload -----------------------------------------------------------------------------------

async def test_unknown_queue_gets_reload(h: Harness, live, api: httpx.AsyncClient) -> None:
    async with open_ws(live, "no-such-queue") as sock:
        await sock.expect_reload(4000)
    async with open_ws(live, "no-such-queue", 0) as sock:
        await sock.expect_reload(4000)
    r = await api.get("/api/v1/realtime/events", params={"queue_id": "no-such-queue"})
    assert r.status_code == 401, r.text


class TestRetention:
    """A runtime whose event log keeps only the last 4 events."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"event_log_size": 4})

    async def test_last_event_id_older_than_the_log_gets_reload(self, h: Harness, live,
                                                                  api: httpx.AsyncClient) -> None:
        ctx = await h.make_account()
        inbox = await h.make_api_inbox(ctx)
        reg = await register(api, ctx.admin.headers)
        qid = reg["queue_id"]
        async with open_ws(live, qid, 0) as sock:
            await deliver(h, inbox, "cust-1", "one")  # 1..4 (admins see all but the customer's)
            assert types_ids(await sock.events(3)) == [
                ("contact.created", 1), ("conversation.created", 2), ("message.created", 3)]
            await sock.ack(3)
        await deliver(h, inbox, "cust-2", "two")  # 5..8
        await deliver(h, inbox, "cust-3", "three")  # 9..12; the log now holds 9..12
        assert await head(h) == 12

        # The boundary: after 8, everything needed (9..12) is retained.
        async with open_ws(live, qid, 8) as sock:
            assert types_ids(await sock.events(3)) == [
                ("contact.created", 9), ("conversation.created", 10), ("message.created", 11)]
        # One older, and event 8 is gone: reload.
        async with open_ws(live, qid, 7) as sock:
            await sock.expect_reload(1012)
        # The queue is useless after a reload; registering again gives a fresh start.
        async with open_ws(live, qid) as sock:
            await sock.expect_reload(4000)

        reg2 = await register(api, ctx.admin.headers)
        assert reg2["last_event_id"] == 12
        async with open_ws(live, reg2["queue_id"]) as sock:
            await deliver(h, inbox, "cust-1", "four")  # 13
            assert types_ids(await sock.events(1)) == [("message.created", 13)]

    async def test_acked_position_older_than_the_log_gets_reload(self, h: Harness, live,
                                                                  api: httpx.AsyncClient) -> None:
        ctx = await h.make_account()
        inbox = await h.make_api_inbox(ctx)
        reg = await register(api, ctx.admin.headers)
        await deliver(h, inbox, "cust-1", "one")
        await deliver(h, inbox, "cust-2", "two")  # 1..8, log holds 5..8; the queue's ack is 0
        async with open_ws(live, reg["queue_id"]) as sock:
            await sock.expect_reload(1012)

        # SSE says the same with an event of its own.
        reg = await register(api, ctx.admin.headers)
        await deliver(h, inbox, "cust-3", "three")
        await deliver(h, inbox, "cust-4", "four")
        async with api.stream("GET", "/api/v1/realtime/events", params={"queue_id": reg["queue_id"]}) as r:
            assert r.status_code == 200
            lines = r.aiter_lines()
            assert [await asyncio.wait_for(anext(lines), TIMEOUT) for _ in range(2)] == [
                "event: reload", "data: {}"]


# --- 5. SSE fallback -----------------------------------------------------------------------------

class Sse:
    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def event(self) -> tuple[int, dict[str, Any]]:
        block: list[str] = []
        while True:
            line = await asyncio.wait_for(anext(self.lines), TIMEOUT)
            if line == "":
                if block:
                    break
                continue
            block.append(line)
        assert len(block) == 2 and block[0].startswith("id: ") and block[1].startswith("data: "), block
        event_id = int(block[0][4:])
        data = orjson.loads(block[1][6:])
        assert data["id"] == event_id
        return event_id, data

    async def events(self, count: int) -> list[tuple[str, int]]:
        return [(data["type"], event_id) for event_id, data in [await self.event() for _ in range(count)]]


async def test_sse_fallback_resumes_from_last_event_id(h: Harness, live, api: httpx.AsyncClient) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent", Role.agent)
    inbox = await h.make_api_inbox(ctx)
    reg = await register(api, agent.headers)
    first = await deliver(h, inbox, "cust-1", "one")  # 1, 2, 3 for the agent

    url = "/api/v1/realtime/events"
    # Last-Event-ID (the browser's resume header) wins over the query parameter.
    async with api.stream("GET", url, params={"queue_id": reg["queue_id"], "last_event_id": 0},
                          headers={"last-event-id": "2"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-store"
        sse = Sse(r)
        event_id, data = await sse.event()
        assert (event_id, data["type"], data["message"]["id"]) == (3, "message.created", first["message_id"])
        await deliver(h, inbox, "cust-1", "two")  # 5 live
        event_id, data = await sse.event()
        assert (event_id, data["type"], data["message"]["content"]) == (5, "message.created", "two")

    await deliver(h, inbox, "cust-2", "three")  # 7, 8, 9 while away

    # Resume with the header: exactly the missed ones.
    async with api.stream("GET", url, params={"queue_id": reg["queue_id"]}, headers={"last-event-id": "5"}) as r:
        sse = Sse(r)
        assert await sse.events(3) == [("contact.created", 7), ("conversation.created", 8), ("message.created", 9)]

    # No header, no parameter: SSE acked what it sent, so nothing is replayed; the next is live.
    async with api.stream("GET", url, params={"queue_id": reg["queue_id"]}) as r:
        sse = Sse(r)
        await deliver(h, inbox, "cust-2", "four")  # 11
        assert await sse.events(1) == [("message.created", 11)]

    # The query parameter alone also resumes.
    async with api.stream("GET", url, params={"queue_id": reg["queue_id"], "last_event_id": 8}) as r:
        sse = Sse(r)
        assert await sse.events(2) == [("message.created", 9), ("message.created", 11)]


# --- 6. audiences --------------------------------------------------------------------------------

async def test_customer_socket_gets_public_replies_only(h: Harness, live, api: httpx.AsyncClient) -> None:
    ctx = await h.make_account()
    team = await h.make_team(ctx, "Alpha")
    inbox = await h.make_api_inbox(ctx)
    ana_headers, ana_id = await customer(h, inbox, "Ana")
    bob_headers, bob_id = await customer(h, inbox, "Bob")
    ana_conv = await customer_conversation(h, ana_headers, "Order", "where is it?")
    bob_conv = await customer_conversation(h, bob_headers, "Refund", "I want my money")
    reg = await register(api, ana_headers)
    assert reg["state"]["contact_id"] == ana_id

    async with open_ws(live, reg["queue_id"], reg["last_event_id"]) as sock:
        # None of this is Ana's to see:
        await post_message(h, ctx.admin, ana_conv, "internal: VIP, refund fast", private=True)
        await post_message(h, ctx.admin, bob_conv, "Refund issued", private=False)  # Bob's conversation
        r = await h.client.post(f"/api/v1/customer/conversations/{bob_conv}/messages", headers=bob_headers,
                                json={"content": "thanks"})
        assert r.status_code == 201, r.text
        await patch_conversation(h, ctx.admin, ana_conv, priority="high")  # conversation.updated
        await patch_conversation(h, ctx.admin, ana_conv, team_id=team)  # conversation.assigned
        await customer(h, inbox, "Cy")  # contact.created
        await deliver(h, inbox, "cust-9", "someone else")

        # The fence: Ana's public reply is the next and only thing on her socket.
        reply = await post_message(h, ctx.admin, ana_conv, "It ships today", private=False)
        (event,) = await sock.events(1)
        assert event["id"] == await head(h)
        assert event["type"] == "customer.message_created"
        assert set(event) == ENVELOPE | {"message"}
        assert event["message"] == {
            "id": reply["id"], "conversation_id": ana_conv, "direction": "outgoing",
            # A customer sees the agent's name, not their user id.
            "sender": {"type": "user", "id": None, "name": "Acme Admin"},
            "content": "It ships today", "content_html": None, "created_at": event["message"]["created_at"],
            "attachments": []}
        reply_id = event["id"]

        # Status changes reach her in the customer-safe shape.
        await patch_conversation(h, ctx.admin, ana_conv, status="resolved")
        (event,) = await sock.events(1)
        assert event["type"] == "customer.conversation_updated"
        assert event["id"] == await head(h)
        assert set(event["conversation"]) == {"id", "subject", "status", "created_at", "last_activity_at"}
        assert (event["conversation"]["id"], event["conversation"]["subject"], event["conversation"]["status"]) == (
            ana_conv, "Order", "resolved")
        resolved_id = event["id"]

    # Replay applies the same audience: from the very beginning, Ana gets only her own events.
    async with open_ws(live, reg["queue_id"], 0) as sock:
        events = await sock.events(3)
        assert [e["type"] for e in events] == ["customer.message_created", "customer.message_created",
                                               "customer.conversation_updated"]
        assert [e["id"] for e in events[1:]] == [reply_id, resolved_id]
        assert (events[0]["message"]["content"], events[0]["message"]["conversation_id"],
                events[0]["message"]["sender"]) == (
            "where is it?", ana_conv, {"type": "contact", "id": ana_id, "name": "Ana"})
        assert all("private" not in e["message"] for e in events[:2])


async def test_team_agents_get_only_their_teams_conversations(h: Harness, live, api: httpx.AsyncClient) -> None:
    ctx = await h.make_account()
    alpha = await h.make_team(ctx, "Alpha")
    beta = await h.make_team(ctx, "Beta")
    agent_a = await h.make_user(ctx, "anna", Role.agent, teams=(alpha,))
    agent_b = await h.make_user(ctx, "ben", Role.agent, teams=(beta,))
    supervisor = await h.make_user(ctx, "sue", Role.supervisor)
    inbox = await h.make_api_inbox(ctx)
    regs = {who: await register(api, s.headers) for who, s in
            (("a", agent_a), ("b", agent_b), ("admin", ctx.admin), ("sup", supervisor))}

    async with (open_ws(live, regs["a"]["queue_id"], 0) as a, open_ws(live, regs["b"]["queue_id"], 0) as b,
                open_ws(live, regs["admin"]["queue_id"], 0) as adm, open_ws(live, regs["sup"]["queue_id"], 0) as sup):
        x = await deliver(h, inbox, "cust-x", "x1")  # team-less: every agent sees it
        new = [("contact.created", 1), ("conversation.created", 2), ("message.created", 3)]
        for sock in (a, b, adm, sup):
            assert types_ids(await sock.events(3)) == new

        await patch_conversation(h, ctx.admin, x["conversation_id"], team_id=beta)  # 5
        # Whoever could see it before hears that it moved (Anna included), then it is Beta's.
        for sock in (a, b, adm, sup):
            (event,) = await sock.events(1)
            assert (event["type"], event["id"]) == ("conversation.assigned", 5)
            assert (event["conversation"]["team_id"], event["previous_team_id"]) == (beta, None)

        await deliver(h, inbox, "cust-x", "x2")  # 6 (7: customer)
        await patch_conversation(h, ctx.admin, x["conversation_id"], priority="urgent")  # 8
        await post_message(h, ctx.admin, x["conversation_id"], "note for Beta", private=True)  # 9
        expected = [("message.created", 6), ("conversation.updated", 8), ("message.created", 9)]
        for sock in (b, adm, sup):
            events = await sock.events(3)
            assert types_ids(events) == expected
            assert events[2]["message"]["private"] is True
            assert events[2]["message"]["content"] == "note for Beta"

        # Anna: nothing of Beta's. The fence is a new team-less conversation (10..12, 13 customer's).
        await deliver(h, inbox, "cust-y", "y1")
        fence = [("contact.created", 10), ("conversation.created", 11), ("message.created", 12)]
        assert types_ids(await a.events(3)) == fence
        for sock in (b, adm, sup):
            assert types_ids(await sock.events(3)) == fence

    # The REST view agrees with the stream.
    r = await h.client.get(f"/api/v1/conversations/{x['conversation_id']}", headers=agent_a.headers)
    assert r.status_code == 404
    r = await h.client.get(f"/api/v1/conversations/{x['conversation_id']}", headers=agent_b.headers)
    assert r.status_code == 200

    # Replay filters the same way.
    async with open_ws(live, regs["a"]["queue_id"], 0) as a:
        assert [e["id"] for e in await a.events(7)] == [1, 2, 3, 5, 10, 11, 12]
    async with open_ws(live, regs["b"]["queue_id"], 0) as b:
        assert [e["id"] for e in await b.events(10)] == [1, 2, 3, 5, 6, 8, 9, 10, 11, 12]


async def test_expert_gets_only_conversations_they_take_part_in(h: Harness, live, api: httpx.AsyncClient) -> None:
    ctx = await h.make_account()
    alpha = await h.make_team(ctx, "Alpha")
    # A team membership gives an expert nothing: experts see only what they take part in.
    expert = await h.make_user(ctx, "eve", Role.expert, teams=(alpha,))
    inbox = await h.make_api_inbox(ctx)
    reg = await register(api, expert.headers)
    assert reg["state"]["conversation_counts"] == {}

    async with open_ws(live, reg["queue_id"], 0) as sock:
        x = await deliver(h, inbox, "cust-x", "x1")  # team-less
        await patch_conversation(h, ctx.admin, x["conversation_id"], team_id=alpha)  # Alpha's now
        await deliver(h, inbox, "cust-x", "x2")
        await post_message(h, ctx.admin, x["conversation_id"], "note", private=True)
        await patch_conversation(h, ctx.admin, x["conversation_id"], priority="high")
        y = await deliver(h, inbox, "cust-y", "y1")
        async with h.runtime.uow() as uow:  # no API brings a participant in yet: the action does
            conversation = await uow.session.get(Conversation, y["conversation_id"])
            assert conversation is not None
            assert await conversations_actions.add_participant(uow, conversation, expert.user_id) is True
            await uow.commit()
        # Now a participant of Y: its next message is the expert's first event.
        y2 = await deliver(h, inbox, "cust-y", "y2")
        (event,) = await sock.events(1)
        assert (event["type"], event["id"]) == ("message.created", await head(h) - 1)
        assert (event["message"]["id"], event["conversation"]["id"]) == (y2["message_id"], y["conversation_id"])
        note = await post_message(h, expert, y["conversation_id"], "expert advice", private=True)
        (event,) = await sock.events(1)
        assert (event["type"], event["id"], event["message"]["id"]) == ("message.created", await head(h), note["id"])

    assert (await h.client.get(f"/api/v1/conversations/{x['conversation_id']}",
                               headers=expert.headers)).status_code == 404
    assert (await register(api, expert.headers))["state"]["conversation_counts"] == {"open": 1}
    async with open_ws(live, reg["queue_id"], 0) as sock:
        assert [e["message"]["content"] for e in await sock.events(2)] == ["y2", "expert advice"]


async def test_replay_never_crosses_accounts(h: Harness, live, api: httpx.AsyncClient) -> None:
    acme = await h.make_account("Acme")
    globex = await h.make_account("Globex")
    acme_inbox = await h.make_api_inbox(acme)
    globex_inbox = await h.make_api_inbox(globex)
    reg = await register(api, globex.admin.headers)
    acme_customer, _ = await customer(h, acme_inbox, "Ana")
    await customer_conversation(h, acme_customer, "Acme only", "secret")
    await deliver(h, acme_inbox, "cust-1", "acme business")
    acme_head = await head(h)
    # Globex's admin resumes from the very first event: Acme's events are not Globex's.
    async with open_ws(live, reg["queue_id"], 0) as sock:
        await deliver(h, globex_inbox, "cust-1", "globex business")
        events = await sock.events(3)
        assert types_ids(events) == [("contact.created", acme_head + 1), ("conversation.created", acme_head + 2),
                                     ("message.created", acme_head + 3)]
        assert {e["account_id"] for e in events} == {globex.account_id}


# --- 7. access change ----------------------------------------------------------------------------

async def test_deactivated_user_gets_access_changed_then_reload(h: Harness, live, api: httpx.AsyncClient) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent", Role.agent)
    inbox = await h.make_api_inbox(ctx)
    reg = await register(api, agent.headers)
    async with open_ws(live, reg["queue_id"], reg["last_event_id"]) as sock:
        await deliver(h, inbox, "cust-1", "one")
        assert [e["id"] for e in await sock.events(3)] == [1, 2, 3]
        r = await h.client.patch(f"/api/v1/users/{agent.user_id}", headers=ctx.admin.headers,
                                 json={"is_active": False})
        assert r.status_code == 200, r.text
        assert r.json()["is_active"] is False
        (event,) = await sock.events(1)
        assert event == {"id": 5, "type": "access.changed", "uid": event["uid"], "account_id": ctx.account_id,
                         "occurred_at": event["occurred_at"], "user_id": agent.user_id}
        await sock.expect_reload(1012)

    r = await api.post("/api/v1/realtime/register", headers=agent.headers)
    assert r.status_code == 401, r.text
    # The old queue is no good either, with or without a position, on either transport.
    async with open_ws(live, reg["queue_id"]) as sock:
        await sock.expect_reload(4000)
    async with open_ws(live, reg["queue_id"], 5) as sock:
        await sock.expect_reload(4000)
    r = await api.get("/api/v1/realtime/events", params={"queue_id": reg["queue_id"]})
    assert r.status_code == 401


async def test_team_change_forces_reregistration(h: Harness, live, api: httpx.AsyncClient) -> None:
    """A queue is bound to the access its principal had at registration; after access.changed it is
    gone, even for a client that acked the event and reconnects instead of registering again."""
    ctx = await h.make_account()
    alpha = await h.make_team(ctx, "Alpha")
    agent = await h.make_user(ctx, "agent", Role.agent, teams=(alpha,))
    inbox = await h.make_api_inbox(ctx)
    x = await deliver(h, inbox, "cust-x", "x1")
    await patch_conversation(h, ctx.admin, x["conversation_id"], team_id=alpha)  # 5
    reg = await register(api, agent.headers)
    assert reg["last_event_id"] == 5
    async with open_ws(live, reg["queue_id"]) as sock:
        r = await h.client.delete(f"/api/v1/teams/{alpha}/members/{agent.user_id}", headers=ctx.admin.headers)
        assert r.status_code == 200, r.text
        (event,) = await sock.events(1)
        assert (event["type"], event["id"], event["user_id"]) == ("access.changed", 6, agent.user_id)
        await sock.expect_reload(1012)
    async with open_ws(live, reg["queue_id"], 6) as sock:
        await sock.expect_reload(4000)

    reg = await register(api, agent.headers)
    assert reg["state"]["user"]["team_ids"] == []
    assert reg["state"]["conversation_counts"] == {}
    async with open_ws(live, reg["queue_id"]) as sock:
        await deliver(h, inbox, "cust-x", "x2")  # Alpha's, no longer the agent's: 7, 8
        await deliver(h, inbox, "cust-y", "y1")  # fence: 9, 10, 11
        assert types_ids(await sock.events(3)) == [("contact.created", 9), ("conversation.created", 10),
                                                   ("message.created", 11)]


# --- 8. the hub's indexes and the replay rule agree ----------------------------------------------

def _enumerated_clients() -> list[Client]:
    clients: list[Client] = []
    user_ids = itertools.count(1)
    for account_id in (1, 2):
        for role in ("admin", "supervisor", "agent", "expert"):
            for team_ids in ((), (10,), (11,), (10, 11)):
                clients.append(Client(QueueInfo(queue_id=f"q{len(clients)}", account_id=account_id,
                                                principal_kind="user", principal_id=next(user_ids), role=role,
                                                team_ids=team_ids, credential=f"token:{len(clients)}")))
        # The same contact id in both accounts: accounts must still not mix.
        for contact_id in (100, 101):
            clients.append(Client(QueueInfo(queue_id=f"q{len(clients)}", account_id=account_id,
                                            principal_kind="contact", principal_id=contact_id,
                                            credential=f"customer_session:{len(clients)}")))
    # Two sockets of one user, signed in twice.
    twin = clients[0].info
    clients.append(Client(QueueInfo(queue_id="twin", account_id=twin.account_id, principal_kind="user",
                                    principal_id=twin.principal_id, role=twin.role, team_ids=twin.team_ids,
                                    credential="session:1")))
    return clients


def _enumerated_audiences() -> list[Audience]:
    roles_options = [(), ("admin",), ("supervisor",), ("admin", "supervisor"), ("agent",), ("expert",)]
    team_options = [(), (10,), (11,), (10, 11), (12,)]
    user_options = [(), (1,), (3, 7), (15,), (20,), (99,)]  # 1..16 are account 1's users, 17..32 account 2's
    contact_options = [(), (100,), (101,), (100, 101), (102,)]
    # A sign-in's own sockets: the first user's twin, two staff tokens, a customer's session.
    credential_options = [(), ("session:1", "token:5", "token:20", "customer_session:16")]
    return [Audience(roles=r, all_agents=a, team_ids=t, user_ids=u, contact_ids=c, credentials=k)
            for r, a, t, u, c, k in itertools.product(roles_options, (False, True), team_options, user_options,
                                                      contact_options, credential_options)]


def test_hub_indexes_and_audience_rule_agree() -> None:
    clients = _enumerated_clients()
    audiences = _enumerated_audiences()
    assert len(audiences) == 3600
    hub = Hub()
    for c in clients:
        hub.attach(c)
    assert hub.client_count == len(clients)

    def check(attached: list[Client]) -> int:
        nonempty = 0
        for audience in audiences:
            for account_id in (1, 2, 3):
                event = RoutedEvent(1, "t", account_id, audience, b"{}")
                expected = {c for c in attached if includes(event, c.info)}
                assert hub.recipients(event) == expected, (audience, account_id)
                # The replay rule is the audience rule plus the account.
                assert expected == {c for c in attached
                                    if c.info.account_id == account_id and audience_includes(audience, c.info)}
                nonempty += bool(expected)
        return nonempty

    assert check(clients) > 1000

    # Spot checks of the rule itself (so the two cannot agree on something wrong).
    by = {(c.info.account_id, c.info.role, c.info.team_ids, c.info.principal_kind): c for c in clients}
    agent10 = by[(1, "agent", (10,), "user")].info
    expert10 = by[(1, "expert", (10,), "user")].info
    sup = by[(1, "supervisor", (), "user")].info
    team10 = Audience(roles=("admin", "supervisor"), team_ids=(10,))
    assert audience_includes(team10, agent10) is True
    assert audience_includes(team10, expert10) is False  # a team gives an expert nothing
    assert audience_includes(team10, sup) is True
    assert audience_includes(Audience(all_agents=True), agent10) is True
    assert audience_includes(Audience(all_agents=True), expert10) is False
    assert audience_includes(Audience(all_agents=True), sup) is False
    assert audience_includes(Audience(user_ids=(expert10.principal_id,)), expert10) is True
    contact = QueueInfo(queue_id="c", account_id=1, principal_kind="contact", principal_id=1)
    # A contact id equal to a user id, roles, teams and all_agents never reach a contact.
    assert audience_includes(Audience(roles=("admin", "agent"), all_agents=True, team_ids=(10,), user_ids=(1,)),
                             contact) is False
    assert audience_includes(Audience(contact_ids=(1,)), contact) is True
    user1 = by[(1, "admin", (), "user")].info
    assert user1.principal_id == 1
    assert audience_includes(Audience(contact_ids=(1,)), user1) is False

    # dispatch pushes to exactly the recipients.
    event = RoutedEvent(7, "t", 1, Audience(all_agents=True, contact_ids=(100,)), b"{}")
    hub.dispatch(event)
    got = {c for c in clients if not c.pending.empty()}
    assert got == hub.recipients(event)
    assert {(c.info.principal_kind, c.info.role) for c in got} == {("user", "agent"), ("contact", None)}
    assert len(got) == 5
    for c in got:
        assert c.pending.get_nowait() is event

    # Detaching keeps the indexes exact, and leaves nothing behind.
    detached = clients[::3]
    for c in detached:
        hub.detach(c)
    remaining = [c for c in clients if c not in detached]
    assert hub.client_count == len(remaining)
    check(remaining)
    for c in remaining:
        hub.detach(c)
    assert hub.client_count == 0
    for audience in audiences[::50]:
        assert hub.recipients(RoutedEvent(1, "t", 1, audience, b"{}")) == set()
    assert not (hub._by_account or hub._by_role or hub._by_team or hub._by_user or hub._by_contact)
