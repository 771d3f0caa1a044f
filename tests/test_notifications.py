"""Notifications: who gets one for an assignment and a customer's reply (mentions: test_mentions.py),
the collapse of unread replies on the intake path (one statement, only for an assigned
conversation), the API (list, unread filter, cursor, count, mark read) and its events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, func, select

from swarmdesk.conversations.models import Conversation, Message
from swarmdesk.core.clock import clock
from swarmdesk.events.base import Audience, BaseEvent
from swarmdesk.notifications.models import Notification
from tests.support import AccountCtx, ApiInbox, Harness, Staff, inbound_payload

BASE = "/api/v1/notifications"
PROBLEM = "application/problem+json"


def types(events: list[BaseEvent]) -> list[str]:
    return [e.type for e in events]


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def setup(h: Harness) -> tuple[AccountCtx, ApiInbox]:
    clock.freeze(datetime.now(UTC).replace(microsecond=0))  # near the real time: webhook signatures
    ctx = await h.make_account()
    return ctx, await h.make_api_inbox(ctx)


async def inbound(h: Harness, inbox: ApiInbox, **kw: Any) -> dict:
    r = await h.deliver(inbox, inbound_payload(**kw))
    assert r.status_code == 200, r.text
    return r.json()


async def assign(h: Harness, who: Staff, cid: int, assignee_id: int | None) -> None:
    r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=who.headers, json={"assignee_id": assignee_id})
    assert r.status_code == 200, r.text


async def rows(h: Harness) -> list[Notification]:
    async with h.runtime.uow() as uow:
        return list((await uow.session.scalars(select(Notification).order_by(Notification.id))).all())


async def listing(h: Harness, who: Staff, **params: Any) -> dict:
    r = await h.client.get(BASE, headers=who.headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def unread(h: Harness, who: Staff) -> int:
    r = await h.client.get(f"{BASE}/unread-count", headers=who.headers)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"count"}
    return r.json()["count"]


def assert_problem(r: Any, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0] == PROBLEM
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


@contextlib.contextmanager
def statements(h: Harness) -> Iterator[list[str]]:
    """Every SQL statement the runtime's engine runs while the block does."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        seen.append(statement)

    engine = h.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


# --- assigned -----------------------------------------------------------------------------------

async def test_assignment_notifies_the_new_assignee_unless_they_assigned_themselves(h: Harness) -> None:
    ctx, inbox = await setup(h)
    agent = await h.make_user(ctx, "agent")
    other = await h.make_user(ctx, "other")
    cid = (await inbound(h, inbox, subject="Parcel lost", content="Where is it?"))["conversation_id"]

    with h.capture_events() as events:
        await assign(h, ctx.admin, cid, agent.user_id)
    assert types(events) == ["conversation.assigned", "notification.created"]
    note = events[1]
    assert note.audience == Audience(user_ids=(agent.user_id,))
    assert note.account_id == ctx.account_id
    (row,) = await rows(h)
    assert note.notification.model_dump() == {
        "id": row.id, "kind": "assigned", "conversation_id": cid, "message_id": None, "actor_name": "Acme Admin",
        "snippet": "Parcel lost", "read_at": None, "created_at": clock.now()}
    assert (row.user_id, row.account_id) == (agent.user_id, ctx.account_id)
    assert (await listing(h, agent))["items"] == [{
        "id": row.id, "kind": "assigned", "conversation_id": cid, "message_id": None, "actor_name": "Acme Admin",
        "snippet": "Parcel lost", "read_at": None, "created_at": iso(clock.now())}]
    assert (await listing(h, other))["items"] == []

    # Taking a conversation yourself, handing it back to nobody, or a no-op: nobody is notified.
    with h.capture_events() as events:
        await assign(h, other, cid, other.user_id)
        await assign(h, other, cid, other.user_id)
        await assign(h, ctx.admin, cid, None)
    assert types(events) == ["conversation.assigned", "conversation.assigned"]
    assert len(await rows(h)) == 1


async def test_starting_a_conversation_for_a_colleague_notifies_them(h: Harness) -> None:
    ctx, inbox = await setup(h)
    agent = await h.make_user(ctx, "agent")
    contact_id = (await inbound(h, inbox))["contact_id"]
    with h.capture_events() as events:
        r = await h.client.post("/api/v1/conversations", headers=ctx.admin.headers, json={
            "inbox_id": inbox.id, "contact_id": contact_id, "subject": "Your refund", "assignee_id": agent.user_id})
    assert r.status_code == 201, r.text
    assert types(events) == ["conversation.created", "notification.created"]
    (row,) = await rows(h)
    assert events[1].audience == Audience(user_ids=(agent.user_id,))
    assert events[1].notification.model_dump() == {
        "id": row.id, "kind": "assigned", "conversation_id": r.json()["id"], "message_id": None,
        "actor_name": "Acme Admin", "snippet": "Your refund", "read_at": None, "created_at": clock.now()}


# --- customer_replied ---------------------------------------------------------------------------

async def test_customer_reply_notifies_the_assignee_and_unread_ones_collapse(h: Harness) -> None:
    ctx, inbox = await setup(h)
    agent = await h.make_user(ctx, "agent")
    first = await inbound(h, inbox, message_id="m-1")
    cid = first["conversation_id"]
    await assign(h, ctx.admin, cid, agent.user_id)
    assert await unread(h, agent) == 1  # the assignment

    with h.capture_events() as events:
        m2 = await inbound(h, inbox, message_id="m-2", content="Any news?")
    assert types(events) == ["message.created", "customer.message_created", "notification.created"]
    note = events[2]
    assert note.audience == Audience(user_ids=(agent.user_id,))
    reply_id = note.notification.id
    assert note.notification.model_dump() == {
        "id": reply_id, "kind": "customer_replied", "conversation_id": cid, "message_id": m2["message_id"],
        "actor_name": "Ana Lima", "snippet": "Any news?", "read_at": None, "created_at": clock.now()}
    assert await unread(h, agent) == 2

    # A further reply while it is unread refreshes it: same row, newer snippet and time.
    clock.advance(timedelta(minutes=3))
    long = "Hello?\n\n  Is anyone\tthere? " + "x" * 300
    with h.capture_events() as events:
        m3 = await inbound(h, inbox, message_id="m-3", content=long)
    assert types(events) == ["message.created", "customer.message_created", "notification.created"]
    snippet = "Hello? Is anyone there? " + "x" * 175 + "…"
    assert len(snippet) == 200
    assert events[2].notification.model_dump() == {
        "id": reply_id, "kind": "customer_replied", "conversation_id": cid, "message_id": m3["message_id"],
        "actor_name": "Ana Lima", "snippet": snippet, "read_at": None, "created_at": clock.now()}
    replies = [n for n in await rows(h) if n.kind == "customer_replied"]
    assert [(n.id, n.user_id, n.message_id, n.snippet, n.created_at) for n in replies] == [
        (reply_id, agent.user_id, m3["message_id"], snippet, clock.now())]
    assert await unread(h, agent) == 2

    # Once read, the next reply is a new notification.
    r = await h.client.post(f"{BASE}/read", headers=agent.headers, json={"ids": [reply_id]})
    assert r.status_code == 200, r.text
    with h.capture_events() as events:
        m4 = await inbound(h, inbox, message_id="m-4", content="Hello again")
    assert types(events)[-1] == "notification.created"
    assert events[-1].notification.id != reply_id
    assert [(n.kind, n.message_id, n.read_at is None) for n in await rows(h)] == [
        ("assigned", None, True), ("customer_replied", m3["message_id"], False),
        ("customer_replied", m4["message_id"], True)]


async def test_unassigned_conversations_notify_nobody_and_the_hook_costs_one_statement(h: Harness) -> None:
    ctx, inbox = await setup(h)
    agent = await h.make_user(ctx, "agent")
    cid = (await inbound(h, inbox, message_id="m-1"))["conversation_id"]
    with statements(h) as unassigned, h.capture_events() as events:
        await inbound(h, inbox, message_id="m-2")
    assert types(events) == ["message.created", "customer.message_created"]
    assert await rows(h) == []

    await assign(h, ctx.admin, cid, agent.user_id)
    with statements(h) as first_reply:
        await inbound(h, inbox, message_id="m-3")
    with statements(h) as collapsed:
        await inbound(h, inbox, message_id="m-4")
    assert len(first_reply) == len(unassigned) + 1
    assert len(collapsed) == len(unassigned) + 1
    extra = [s for s in first_reply if "notifications" in s]
    assert len(extra) == 1 and extra[0].lstrip().upper().startswith("INSERT") and "ON CONFLICT" in extra[0]
    assert len([n for n in await rows(h) if n.kind == "customer_replied"]) == 1


async def test_a_burst_of_replies_stored_in_one_batch_leaves_one_notification(h: Harness) -> None:
    ctx, inbox = await setup(h)
    agent = await h.make_user(ctx, "agent")
    cid = (await inbound(h, inbox, message_id="m-0"))["conversation_id"]
    await assign(h, ctx.admin, cid, agent.user_id)
    with h.capture_events() as events:
        answers = await asyncio.gather(*(h.deliver(inbox, inbound_payload(message_id=f"b-{i}", content=f"part {i}"))
                                         for i in range(8)))
    assert [r.status_code for r in answers] == [200] * 8
    assert {r.json()["conversation_id"] for r in answers} == {cid}
    created = [e for e in events if e.type == "notification.created"]
    assert len(created) == 8 and len({e.notification.id for e in created}) == 1
    assert {e.audience for e in created} == {Audience(user_ids=(agent.user_id,))}
    replies = [n for n in await rows(h) if n.kind == "customer_replied"]
    assert len(replies) == 1
    async with h.runtime.uow() as uow:
        last = await uow.session.scalar(select(func.max(Message.id)).where(Message.conversation_id == cid))
    assert replies[0].message_id == last


# --- the API ------------------------------------------------------------------------------------

async def _three_assignments(h: Harness, ctx: AccountCtx, inbox: ApiInbox, agent: Staff) -> list[int]:
    ids = []
    for n in range(3):
        cid = (await inbound(h, inbox, source_id=f"{agent.email}-{n}", subject=f"Case {n}"))["conversation_id"]
        with h.capture_events() as events:
            await assign(h, ctx.admin, cid, agent.user_id)
        ids.append(events[-1].notification.id)
    return ids


async def test_list_newest_first_with_cursor_and_unread_filter(h: Harness) -> None:
    ctx, inbox = await setup(h)
    agent = await h.make_user(ctx, "agent")
    other = await h.make_user(ctx, "other")
    n1, n2, n3 = await _three_assignments(h, ctx, inbox, agent)
    await _three_assignments(h, ctx, inbox, other)  # someone else's: never listed for agent

    page = await listing(h, agent, limit=2)
    assert [n["id"] for n in page["items"]] == [n3, n2]
    assert [n["snippet"] for n in page["items"]] == ["Case 2", "Case 1"]
    rest = await listing(h, agent, limit=2, cursor=page["next_cursor"])
    assert ([n["id"] for n in rest["items"]], rest["next_cursor"]) == ([n1], None)

    r = await h.client.post(f"{BASE}/read", headers=agent.headers, json={"ids": [n2]})
    assert r.json() == {"ids": [n2], "all": False, "unread_count": 2}
    assert [n["id"] for n in (await listing(h, agent, unread="true"))["items"]] == [n3, n1]
    assert [n["id"] for n in (await listing(h, agent))["items"]] == [n3, n2, n1]
    read = (await listing(h, agent))["items"][1]
    assert read["read_at"] == iso(clock.now())
    assert (await unread(h, agent), await unread(h, other)) == (2, 3)

    for cursor in ("garbage!", "AAAA", page["next_cursor"] + "x"):
        assert_problem(await h.client.get(BASE, headers=agent.headers, params={"cursor": cursor}), 400)
    assert_problem(await h.client.get(BASE, headers=agent.headers, params={"limit": 0}), 422)


async def test_mark_read_by_ids_and_all_ignores_other_users_ids(h: Harness) -> None:
    ctx, inbox = await setup(h)
    agent = await h.make_user(ctx, "agent")
    other = await h.make_user(ctx, "other")
    n1, n2, n3 = await _three_assignments(h, ctx, inbox, agent)
    (o1, *_) = await _three_assignments(h, ctx, inbox, other)

    with h.capture_events() as events:
        r = await h.client.post(f"{BASE}/read", headers=agent.headers, json={"ids": [n1, o1, n1]})
    assert r.status_code == 200, r.text
    assert r.json() == {"ids": [n1], "all": False, "unread_count": 2}
    assert types(events) == ["notification.read"]
    assert events[0].audience == Audience(user_ids=(agent.user_id,))
    assert (events[0].ids, events[0].all, events[0].unread_count) == ([n1], False, 2)
    assert events[0].body()["ids"] == [n1]

    # Only someone else's ids, or ones already read: nothing changes, nothing is published.
    before = [(n.id, n.read_at) for n in await rows(h)]
    with h.capture_events() as events:
        r1 = await h.client.post(f"{BASE}/read", headers=agent.headers, json={"ids": [o1]})
        r2 = await h.client.post(f"{BASE}/read", headers=agent.headers, json={"ids": [n1]})
    assert r1.json() == r2.json() == {"ids": [], "all": False, "unread_count": 2}
    assert events == []
    assert [(n.id, n.read_at) for n in await rows(h)] == before
    assert await unread(h, other) == 3

    clock.advance(timedelta(seconds=5))
    with h.capture_events() as events:
        r = await h.client.post(f"{BASE}/read", headers=agent.headers, json={"all": True})
    assert r.json() == {"ids": None, "all": True, "unread_count": 0}
    assert types(events) == ["notification.read"]
    assert events[0].audience == Audience(user_ids=(agent.user_id,))
    assert (events[0].ids, events[0].all, events[0].unread_count) == (None, True, 0)
    by_id = {n.id: n for n in await rows(h)}
    assert [by_id[n].read_at for n in (n1, n2, n3)] == [clock.now() - timedelta(seconds=5), clock.now(),
                                                         clock.now()]
    assert all(n.read_at is None for n in by_id.values() if n.user_id == other.user_id)
    assert (await unread(h, agent), await unread(h, other)) == (0, 3)

    with h.capture_events() as events:  # nothing left to mark
        r = await h.client.post(f"{BASE}/read", headers=agent.headers, json={"all": True})
    assert r.json() == {"ids": None, "all": True, "unread_count": 0}
    assert events == []


async def test_bad_read_bodies_are_refused_and_change_nothing(h: Harness) -> None:
    ctx, inbox = await setup(h)
    agent = await h.make_user(ctx, "agent")
    (n1, *_) = await _three_assignments(h, ctx, inbox, agent)
    before = [(n.id, n.read_at) for n in await rows(h)]
    with h.capture_events() as events:
        for body in ({"ids": [n1], "all": True}, {}, {"all": False}, {"ids": []}, {"ids": None, "all": None},
                     {"ids": [n1], "everything": True}, {"ids": "all"}, {"ids": [0]}, {"ids": [2**64]},
                     {"ids": list(range(1, 502))}):
            problem = assert_problem(await h.client.post(f"{BASE}/read", headers=agent.headers, json=body), 422)
            if body in ({"ids": [n1], "all": True}, {}):
                assert "exactly one of ids" in problem["detail"], problem
        malformed = await h.client.post(f"{BASE}/read", headers={**agent.headers, "content-type": "application/json"},
                                        content=b'{"ids": [')
        assert_problem(malformed, 400)
    assert events == []
    assert [(n.id, n.read_at) for n in await rows(h)] == before
    assert await unread(h, agent) == 3


async def test_staff_only_and_scoped_to_the_caller(h: Harness) -> None:
    ctx, inbox = await setup(h)
    agent = await h.make_user(ctx, "agent")
    await _three_assignments(h, ctx, inbox, agent)
    customer = await h.customer_session(inbox)
    before = [(n.id, n.read_at) for n in await rows(h)]
    for method, url, body in (("GET", BASE, None), ("GET", f"{BASE}/unread-count", None),
                              ("POST", f"{BASE}/read", {"all": True})):
        r = await h.client.request(method, url, headers=customer, **({"json": body} if body else {}))
        problem = assert_problem(r, 403)
        assert "customer credential" in problem["detail"]
        assert_problem(await h.client.request(method, url, **({"json": body} if body else {})), 401)
    assert [(n.id, n.read_at) for n in await rows(h)] == before

    # Another account's admin sees none of them and cannot mark them.
    elsewhere = await h.make_account("Globex")
    assert (await listing(h, elsewhere.admin))["items"] == []
    r = await h.client.post(f"{BASE}/read", headers=elsewhere.admin.headers, json={"ids": [n for n, _ in before]})
    assert r.json() == {"ids": [], "all": False, "unread_count": 0}
    assert [(n.id, n.read_at) for n in await rows(h)] == before


async def test_deleting_a_conversation_removes_its_notifications(h: Harness) -> None:
    ctx, inbox = await setup(h)
    agent = await h.make_user(ctx, "agent")
    await _three_assignments(h, ctx, inbox, agent)
    async with h.runtime.uow() as uow:
        first = await uow.session.scalar(select(Conversation).order_by(Conversation.id).limit(1))
        await uow.session.delete(first)
        await uow.session.commit()
    assert [n.snippet for n in await rows(h)] == ["Case 1", "Case 2"]
