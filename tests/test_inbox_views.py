"""The inbox: views and filters, the three sorts with keyset cursors (and the index ranges they
read), unread state, counts, saved views and bulk changes."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text

from swarmdesk.accounts.models import Role
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.conversations.models import Activity, Conversation, ConversationMention, Message
from swarmdesk.core.clock import clock
from swarmdesk.core.errors import ValidationFailed
from swarmdesk.core.pagination import encode_cursor
from swarmdesk.inbox import schemas as inbox_schemas
from swarmdesk.inbox import service as inbox_service
from swarmdesk.inbox.schemas import InboxFilters
from tests.support import AccountCtx, ApiInbox, Harness, Staff, inbound_payload

BASE = "/api/v1/inbox/conversations"
BAD_CURSOR = "cursor is not valid; use the next_cursor a previous page returned"


def start_clock() -> datetime:
    at = datetime.now(UTC).replace(microsecond=0)
    clock.freeze(at)
    return at


async def inbound(h: Harness, inbox: ApiInbox, source_id: str, **kw: Any) -> int:
    r = await h.deliver(inbox, inbound_payload(source_id=source_id, **kw))
    assert r.status_code == 200, r.text
    return r.json()["conversation_id"]


async def patch(h: Harness, who: Staff, cid: int, body: dict) -> dict:
    r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=who.headers, json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def tag(h: Harness, who: Staff, cid: int, *tags: str) -> None:
    r = await h.client.post(f"/api/v1/conversations/{cid}/tags", headers=who.headers, json={"add": list(tags)})
    assert r.status_code == 200, r.text


async def send(h: Harness, who: Staff, cid: int, content: str = "On it", *, private: bool = False) -> int:
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=who.headers,
                            json={"content": content, "private": private})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def page(h: Harness, who: Staff, **params: Any) -> dict:
    r = await h.client.get(BASE, headers=who.headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def ids(h: Harness, who: Staff, **params: Any) -> list[int]:
    body = await page(h, who, **params)
    assert body["next_cursor"] is None
    return [row["conversation"]["id"] for row in body["items"]]


async def walk(h: Harness, who: Staff, limit: int, **params: Any) -> list[list[int]]:
    """Every page, following next_cursor."""
    pages, cursor = [], None
    while True:
        body = await page(h, who, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        pages.append([row["conversation"]["id"] for row in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50


async def problem(h: Harness, who: Staff, expect: int, path: str = BASE, **params: Any) -> dict:
    r = await h.client.get(path, headers=who.headers, params=params)
    assert r.status_code == expect, r.text
    assert r.headers["content-type"] == "application/problem+json"
    return r.json()


# --- views and filters ---------------------------------------------------------------------------

@pytest.fixture
async def scene(h: Harness) -> dict[str, Any]:
    """Six conversations, one second apart (newest activity last), in two teams and two channels."""
    start_clock()
    ctx = await h.make_account()
    billing = await h.make_team(ctx, "Billing")
    shipping = await h.make_team(ctx, "Shipping")
    agent = await h.make_user(ctx, "agent", teams=(billing,))
    other = await h.make_user(ctx, "other", teams=(shipping,))
    api = await h.make_api_inbox(ctx)
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                            json={"name": "Chat", "channel_kind": "webchat", "config": {}})
    assert r.status_code == 201, r.text
    chat = r.json()["id"]
    c: dict[int, int] = {}
    c[1] = await inbound(h, api, "s1")
    clock.advance(timedelta(seconds=1))
    c[2] = await inbound(h, api, "s2")
    clock.advance(timedelta(seconds=1))
    contact_id = (await h.client.get(f"/api/v1/conversations/{c[1]}", headers=ctx.admin.headers)).json()["contact"]["id"]
    r = await h.client.post("/api/v1/conversations", headers=ctx.admin.headers,
                            json={"inbox_id": chat, "contact_id": contact_id, "priority": "urgent",
                                  "team_id": shipping})
    assert r.status_code == 201, r.text
    c[3] = r.json()["id"]
    for n in (4, 5, 6):
        clock.advance(timedelta(seconds=1))
        c[n] = await inbound(h, api, f"s{n}")
    await patch(h, ctx.admin, c[2], {"assignee_id": agent.user_id, "team_id": billing, "priority": "high"})
    await patch(h, ctx.admin, c[4], {"assignee_id": ctx.admin.user_id, "priority": "low"})
    await tag(h, ctx.admin, c[4], "VIP")
    await patch(h, ctx.admin, c[5], {"team_id": billing, "status": "pending"})
    await patch(h, ctx.admin, c[6], {"status": "resolved"})
    return {"ctx": ctx, "agent": agent, "other": other, "billing": billing, "shipping": shipping, "api": api,
            "chat": chat, "c": c}


async def test_views(h: Harness, scene: dict[str, Any]) -> None:
    ctx, agent, other, c = scene["ctx"], scene["agent"], scene["other"], scene["c"]
    admin = ctx.admin
    assert await ids(h, admin) == [c[4], c[3], c[2], c[1]]  # all, open only, newest activity first
    assert await ids(h, admin, view="all") == [c[4], c[3], c[2], c[1]]
    assert await ids(h, admin, view="all", status=["open", "pending"]) == [c[5], c[4], c[3], c[2], c[1]]
    assert await ids(h, admin, status=["resolved", "closed"]) == [c[6]]
    assert await ids(h, admin, view="mine") == [c[4]]
    assert await ids(h, agent, view="mine") == [c[2]]
    assert await ids(h, admin, view="unassigned") == [c[3], c[1]]
    assert await ids(h, admin, view="unassigned", status=["pending", "open"]) == [c[5], c[3], c[1]]
    assert await ids(h, agent, view="my_teams") == [c[2]]
    assert await ids(h, agent, view="my_teams", status=["open", "pending"]) == [c[5], c[2]]
    assert await ids(h, other, view="my_teams") == [c[3]]
    assert await ids(h, admin, view="my_teams") == []  # the admin is in no team
    # Visibility: the agent never sees the other team's conversation, in any view.
    assert await ids(h, agent, view="all") == [c[4], c[2], c[1]]
    assert await ids(h, agent, view="unassigned") == [c[1]]
    assert await ids(h, agent, view="all", team_id=scene["shipping"]) == []
    assert await ids(h, other, view="all") == [c[4], c[3], c[1]]
    assert await ids(h, admin, view="mentions") == []

    body = await page(h, admin, view="mine")
    row = body["items"][0]
    assert (row["unread"], row["conversation"]["id"], row["conversation"]["assignee_id"],
            row["conversation"]["tags"], row["conversation"]["channel"]) == (True, c[4], admin.user_id, ["vip"], "api")


async def test_filters(h: Harness, scene: dict[str, Any]) -> None:
    ctx, agent, c = scene["ctx"], scene["agent"], scene["c"]
    admin = ctx.admin
    assert await ids(h, admin, channel="webchat") == [c[3]]
    assert await ids(h, admin, channel="api") == [c[4], c[2], c[1]]
    assert await ids(h, admin, channel="sms") == []
    assert await ids(h, admin, inbox_id=scene["api"].id) == [c[4], c[2], c[1]]
    assert await ids(h, admin, inbox_id=scene["chat"]) == [c[3]]
    assert await ids(h, admin, priority="high") == [c[2]]
    assert await ids(h, admin, priority=["urgent", "high"]) == [c[3], c[2]]
    assert await ids(h, admin, priority="none") == [c[1]]
    assert await ids(h, admin, tag=" VIP ") == [c[4]]
    assert await ids(h, admin, tag="missing") == []
    assert await ids(h, admin, team_id=scene["billing"], status=["open", "pending"]) == [c[5], c[2]]
    assert await ids(h, admin, assignee_id=agent.user_id) == [c[2]]
    assert await ids(h, admin, view="unassigned", channel="api", priority="none") == [c[1]]
    assert await ids(h, agent, view="mine", priority="low") == []


async def test_bad_input_is_a_problem(h: Harness, scene: dict[str, Any]) -> None:
    admin = scene["ctx"].admin
    body = await problem(h, admin, 422, view="everything")
    assert body["errors"][0]["loc"] == ["query", "view"]
    body = await problem(h, admin, 422, colour="red")
    assert (body["errors"][0]["loc"], body["errors"][0]["type"]) == (["query", "colour"], "extra_forbidden")
    for limit in (0, 201, "x"):
        body = await problem(h, admin, 422, limit=limit)
        assert body["errors"][0]["loc"] == ["query", "limit"]
    for params in ({"status": "bogus"}, {"sort": "oldest"}, {"priority": "meh"}, {"team_id": 2**64},
                   {"inbox_id": 0}, {"saved_view_id": -1}, {"tag": "no/slash"}):
        body = await problem(h, admin, 422, **params)
        assert body["errors"][0]["loc"][:2] == ["query", next(iter(params))], params
    body = await problem(h, admin, 422, view="mentions", sort="waiting")
    assert body["detail"] == "the mentions view is always newest mention first: leave sort out"
    r = await h.client.get(BASE)
    assert r.status_code == 401


# --- sorts and cursors ---------------------------------------------------------------------------

@pytest.fixture
async def timeline(h: Harness) -> dict[str, Any]:
    """Seven conversations whose activity, waiting and priority orders all differ (with ties)."""
    start_clock()
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    admin = ctx.admin
    c: dict[int, int] = {}

    def tick() -> None:
        clock.advance(timedelta(seconds=1))

    c[1] = await inbound(h, inbox, "s1")  # t0: waiting since t0
    tick()
    c[2] = await inbound(h, inbox, "s2")  # t1
    tick()
    c[3] = await inbound(h, inbox, "s3")  # t2
    tick()
    c[4] = await inbound(h, inbox, "s4")  # t3
    tick()
    await send(h, admin, c[2])  # t4: answered, not waiting
    tick()
    await inbound(h, inbox, "s1", content="Still late")  # t5: c1 still waiting since t0
    tick()
    await send(h, admin, c[4])  # t6
    tick()
    c[5] = await inbound(h, inbox, "s5")  # t7
    c[7] = await inbound(h, inbox, "s7")  # t7 as well: ties broken by id
    tick()
    c[6] = await inbound(h, inbox, "s6")  # t8, then pending
    for n, priority in ((1, "low"), (2, "high"), (3, "urgent"), (5, "urgent"), (6, "medium"), (7, "urgent")):
        await patch(h, admin, c[n], {"priority": priority})
    await patch(h, admin, c[6], {"status": "pending"})
    return {"ctx": ctx, "c": c}


EXPECTED = {  # by conversation number
    ("last_activity", ("open",)): [7, 5, 4, 1, 2, 3],
    ("waiting", ("open",)): [1, 3, 5, 7, 2, 4],
    ("priority", ("open",)): [7, 5, 3, 2, 1, 4],
    ("last_activity", ("open", "pending")): [6, 7, 5, 4, 1, 2, 3],
    ("waiting", ("open", "pending")): [1, 3, 5, 7, 6, 2, 4],
    ("priority", ("pending", "open")): [7, 5, 3, 2, 6, 1, 4],
}


async def test_sorts_walk_every_page_in_order(h: Harness, timeline: dict[str, Any]) -> None:
    admin, c = timeline["ctx"].admin, timeline["c"]
    for (sort, statuses), numbers in EXPECTED.items():
        expected = [c[n] for n in numbers]
        assert await ids(h, admin, sort=sort, status=list(statuses)) == expected, sort
        for limit in (1, 2, 3):
            pages = await walk(h, admin, limit, sort=sort, status=list(statuses))
            assert [cid for p in pages for cid in p] == expected, (sort, statuses, limit)
            assert [len(p) for p in pages] == [len(chunk) for chunk in _chunks(expected, limit)]
    assert await ids(h, admin) == [c[n] for n in EXPECTED[("last_activity", ("open",))]]


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def test_a_cursor_keeps_its_place_while_conversations_move(h: Harness, timeline: dict[str, Any]) -> None:
    admin, c = timeline["ctx"].admin, timeline["c"]
    first = await page(h, admin, sort="waiting", limit=3)
    assert [r["conversation"]["id"] for r in first["items"]] == [c[1], c[3], c[5]]
    # c3 is answered meanwhile: it moves behind the cursor, into the not-waiting part. Nothing after
    # the cursor is skipped or shifted.
    clock.advance(timedelta(seconds=5))
    await send(h, admin, c[3])
    rest = await page(h, admin, sort="waiting", limit=10, cursor=first["next_cursor"])
    assert [r["conversation"]["id"] for r in rest["items"]] == [c[7], c[2], c[3], c[4]]


async def test_bad_cursors_are_400_problems(h: Harness, timeline: dict[str, Any]) -> None:
    admin = timeline["ctx"].admin
    good = (await page(h, admin, sort="priority", limit=1))["next_cursor"]
    waiting = (await page(h, admin, sort="waiting", limit=5))["next_cursor"]  # inside the not-waiting range
    assert good and waiting
    bad = [
        "not-a-cursor", "%%%", good[:-3], good + "x",
        encode_cursor(["last_activity", 0, ["2030-01-01T00:00:00", 5]]),  # no offset: not one of ours
        encode_cursor(["last_activity", 0, ["2030-01-01T00:00:00+00:00"]]),
        encode_cursor(["last_activity", 0, [5, "2030-01-01T00:00:00+00:00"]]),
        encode_cursor(["last_activity", 0, ["2030-01-01T00:00:00+00:00", 2**63]]),
        encode_cursor(["last_activity", 0, ["2030-01-01T00:00:00+00:00", -1]]),
        encode_cursor(["last_activity", 0, ["2030-01-01T00:00:00+00:00", True]]),
        encode_cursor(["last_activity", 0, ["2030-01-01T00:00:00+00:00", 1.5]]),
        encode_cursor(["last_activity", 0, ["yesterday", 5]]),
        encode_cursor(["last_activity", 0, ["0001-01-01T00:00:00+05:00", 5]]),
        encode_cursor(["last_activity", 1, ["2030-01-01T00:00:00+00:00", 5]]),
        encode_cursor(["last_activity", True, ["2030-01-01T00:00:00+00:00", 5]]),
        encode_cursor(["last_activity", 0, "2030-01-01T00:00:00+00:00"]),
        encode_cursor(["oldest", 0, ["2030-01-01T00:00:00+00:00", 5]]),
        encode_cursor(["waiting", 2, [5]]),
        encode_cursor(["waiting", 1, ["2030-01-01T00:00:00+00:00", 5]]),
        encode_cursor({"sort": "waiting"}),
    ]
    for cursor in bad:
        body = await problem(h, admin, 400, cursor=cursor)
        assert body["detail"] == BAD_CURSOR, cursor
    # A cursor belongs to its sort.
    assert (await problem(h, admin, 400, sort="last_activity", cursor=good))["detail"] == BAD_CURSOR
    assert (await problem(h, admin, 400, sort="priority", cursor=waiting))["detail"] == BAD_CURSOR
    assert (await problem(h, admin, 400, view="mentions", cursor=good))["detail"] == BAD_CURSOR
    assert (await problem(h, admin, 422, cursor="x" * 501))["errors"][0]["loc"] == ["query", "cursor"]


@contextlib.contextmanager
def statements(h: Harness) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ANN202
        seen.append((statement, parameters))

    engine = h.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def _plan(h: Harness, statement: str, parameters: Any) -> str:
    async with h.runtime.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            return "\n".join(str(r[-1]) for r in rows)
        # The table is tiny here: forbid what a large table makes expensive, so the plan shows
        # whether an ordered index range exists at all.
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        await conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        rows = await conn.exec_driver_sql("EXPLAIN " + statement, parameters)
        return "\n".join(r[0] for r in rows)


async def test_every_page_reads_an_index_range_in_order(h: Harness, timeline: dict[str, Any]) -> None:
    """The statements the API runs for first and later pages of each sort (and of the narrowing
    views) read an index in order: no sort step, no scan of the table."""
    ctx, c = timeline["ctx"], timeline["c"]
    team = await h.make_team(ctx, "Billing")
    for n in (1, 4):
        await patch(h, ctx.admin, c[n], {"assignee_id": ctx.admin.user_id, "team_id": team})
    cases = [({"sort": sort}, index) for sort, index in (
        ("last_activity", "ix_conversations_account_status_activity"),
        ("priority", "ix_conversations_account_status_priority"),
        ("waiting", "ix_conversations_account_status_waiting"))]
    cases += [({"view": "mine"}, "ix_conversations_account_assignee_status_activity"),
              ({"view": "unassigned"}, "ix_conversations_account_assignee_status_activity"),
              ({"team_id": team}, "ix_conversations_account_team_status_activity")]
    for params, index in cases:
        with statements(h) as seen:
            await walk(h, ctx.admin, 1, **params)
        ranges = [(s, p) for s, p in seen if re.search(r"FROM conversations\s+WHERE", s) and "LIMIT" in s]
        assert len(ranges) >= 2, params
        for statement, parameters in ranges:
            plan = await _plan(h, statement, parameters)
            assert index in plan, (params, plan)
            assert "TEMP B-TREE" not in plan and "Sort" not in plan and "Seq Scan" not in plan, (params, plan)


# --- mentions ------------------------------------------------------------------------------------

async def mention(h: Harness, ctx: AccountCtx, cid: int, message_id: int, user_id: int) -> None:
    async with h.runtime.uow() as uow:
        uow.session.add(ConversationMention(account_id=ctx.account_id, conversation_id=cid, message_id=message_id,
                                            user_id=user_id, created_at=clock.now()))
        await uow.session.commit()


async def test_mentions_view_is_newest_mention_first(h: Harness, scene: dict[str, Any]) -> None:
    ctx, agent, c = scene["ctx"], scene["agent"], scene["c"]
    admin = ctx.admin
    for cid in (c[1], c[2], c[3], c[6], c[1]):
        note = await send(h, admin, cid, "@agent have a look", private=True)
        await mention(h, ctx, cid, note, agent.user_id)
    note = await send(h, admin, c[4], "@admin", private=True)
    await mention(h, ctx, c[4], note, admin.user_id)
    # c3 is the other team's (invisible to the agent); c6 is resolved; c1 was mentioned again last.
    assert await ids(h, agent, view="mentions") == [c[1], c[2]]
    assert await ids(h, agent, view="mentions", status=["open", "resolved"]) == [c[1], c[6], c[2]]
    assert await walk(h, agent, 1, view="mentions", status=["open", "resolved"]) == [[c[1]], [c[6]], [c[2]]]
    assert await ids(h, agent, view="mentions", priority="high") == [c[2]]
    assert await ids(h, admin, view="mentions") == [c[4]]
    assert await ids(h, scene["other"], view="mentions") == []


# --- unread --------------------------------------------------------------------------------------

async def unread(h: Harness, who: Staff, **params: Any) -> dict[int, bool]:
    body = await page(h, who, **params)
    return {row["conversation"]["id"]: row["unread"] for row in body["items"]}


async def test_unread_until_read_and_again_after_the_customer_writes(h: Harness, scene: dict[str, Any]) -> None:
    ctx, agent, c = scene["ctx"], scene["agent"], scene["c"]
    admin = ctx.admin
    # c3 was started by an agent: the customer never wrote, so it is not unread.
    assert await unread(h, admin) == {c[4]: True, c[3]: False, c[2]: True, c[1]: True}
    clock.advance(timedelta(minutes=1))
    note = await send(h, admin, c[2], "internal", private=True)
    r = await h.client.post(f"/api/v1/conversations/{c[2]}/read", headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"conversation_id": c[2], "last_read_message_id": note,
                        "read_at": clock.now().isoformat().replace("+00:00", "Z"), "unread": False}
    assert await unread(h, admin) == {c[4]: True, c[3]: False, c[2]: False, c[1]: True}
    assert await unread(h, agent) == {c[4]: True, c[2]: True, c[1]: True}  # read state is per user
    assert await ids(h, admin, unread="true") == [c[4], c[1]]
    assert await ids(h, admin, unread="false") == [c[2], c[3]]  # the note moved c2 up

    clock.advance(timedelta(minutes=1))
    await inbound(h, scene["api"], "s2", content="Any news?")
    assert (await unread(h, admin))[c[2]] is True
    clock.advance(timedelta(minutes=1))
    r = await h.client.post(f"/api/v1/conversations/{c[2]}/read", headers=admin.headers)
    assert (r.status_code, r.json()["unread"]) == (200, False)
    async with h.runtime.uow() as uow:
        newest = await uow.session.scalar(select(Message.id).where(Message.conversation_id == c[2])
                                          .order_by(Message.id.desc()).limit(1))
    assert r.json()["last_read_message_id"] == newest
    assert (await unread(h, admin))[c[2]] is False

    # Reading is gated like every conversation route: invisible or unknown is a 404.
    for who, cid in ((agent, c[3]), (admin, 10**9)):
        r = await h.client.post(f"/api/v1/conversations/{cid}/read", headers=who.headers)
        assert (r.status_code, r.json()["detail"]) == (404, f"conversation {cid} not found")
    other_account = await h.make_account("Other")
    r = await h.client.post(f"/api/v1/conversations/{c[1]}/read", headers=other_account.admin.headers)
    assert r.status_code == 404


async def test_counts_per_view(h: Harness, scene: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, agent, other, c = scene["ctx"], scene["agent"], scene["other"], scene["c"]
    admin = ctx.admin
    note = await send(h, admin, c[1], "@agent", private=True)
    await mention(h, ctx, c[1], note, agent.user_id)
    await h.client.post(f"/api/v1/conversations/{c[2]}/read", headers=agent.headers)

    def n(open_: int, unread_: int, capped: bool = False) -> dict:
        return {"open": open_, "unread": unread_, "capped": capped}

    r = await h.client.get("/api/v1/inbox/counts", headers=admin.headers)
    assert r.status_code == 200
    assert r.json() == {"mine": n(1, 1), "unassigned": n(2, 1), "my_teams": n(0, 0), "all": n(4, 3),
                        "mentions": n(0, 0)}
    r = await h.client.get("/api/v1/inbox/counts", headers=agent.headers)
    assert r.json() == {"mine": n(1, 0), "unassigned": n(1, 1), "my_teams": n(1, 0), "all": n(3, 2),
                        "mentions": n(1, 1)}
    r = await h.client.get("/api/v1/inbox/counts", headers=other.headers)
    assert r.json() == {"mine": n(0, 0), "unassigned": n(2, 1), "my_teams": n(1, 0), "all": n(3, 2),
                        "mentions": n(0, 0)}

    # Counting stops at the cap: the numbers then cover the most recently active conversations
    # (c1, whose note is the newest activity, then c4, c3 (read: never written by the customer), c2).
    monkeypatch.setattr(inbox_schemas, "COUNT_CAP", 3)
    r = await h.client.get("/api/v1/inbox/counts", headers=admin.headers)
    assert r.json() == {"mine": n(1, 1), "unassigned": n(2, 1), "my_teams": n(0, 0), "all": n(3, 2, True),
                        "mentions": n(0, 0)}
    monkeypatch.setattr(inbox_schemas, "COUNT_CAP", 1)
    r = await h.client.get("/api/v1/inbox/counts", headers=admin.headers)
    assert r.json() == {"mine": n(1, 1), "unassigned": n(1, 1, True), "my_teams": n(0, 0), "all": n(1, 1, True),
                        "mentions": n(0, 0)}
    r = await h.client.get("/api/v1/inbox/counts", headers=agent.headers)
    assert r.json() == {"mine": n(1, 0), "unassigned": n(1, 1), "my_teams": n(1, 0), "all": n(1, 1, True),
                        "mentions": n(1, 1)}


# --- saved views ---------------------------------------------------------------------------------

SAVED = "/api/v1/inbox/saved-views"


async def save(h: Harness, who: Staff, body: dict, status: int = 201) -> dict:
    r = await h.client.post(SAVED, headers=who.headers, json=body)
    assert r.status_code == status, r.text
    return r.json()


async def test_saved_views_private_and_shared(h: Harness, scene: dict[str, Any]) -> None:
    ctx, agent, other, c = scene["ctx"], scene["agent"], scene["other"], scene["c"]
    admin = ctx.admin
    mine = await save(h, agent, {"name": "My urgent", "filters": {"view": "mine", "priority": ["urgent", "high"]}})
    assert {k: mine[k] for k in ("user_id", "name", "filters", "sort", "shared", "editable")} == {
        "user_id": agent.user_id, "name": "My urgent", "filters": {"view": "mine", "priority": ["urgent", "high"]},
        "sort": None, "shared": False, "editable": True}
    shared = await save(h, agent, {"name": "Billing queue", "shared": True, "sort": "waiting",
                                   "filters": {"team_id": scene["billing"], "status": ["open", "pending"]}})
    admins = await save(h, admin, {"name": "Everything", "filters": {"status": ["open", "pending", "resolved"]}})

    async def listed(who: Staff) -> list[tuple[str, bool]]:
        r = await h.client.get(SAVED, headers=who.headers)
        assert r.status_code == 200
        return [(v["name"], v["editable"]) for v in r.json()]

    assert await listed(agent) == [("Billing queue", True), ("My urgent", True)]
    assert await listed(other) == [("Billing queue", False)]
    assert await listed(admin) == [("Everything", True), ("Billing queue", True)]

    # Applying a view; explicit parameters override its filters field by field.
    assert await ids(h, agent, saved_view_id=mine["id"]) == [c[2]]
    assert await ids(h, agent, saved_view_id=shared["id"]) == [c[2], c[5]]  # sort=waiting: c2 waits longer
    assert await ids(h, agent, saved_view_id=shared["id"], sort="last_activity") == [c[5], c[2]]
    assert await ids(h, agent, saved_view_id=shared["id"], status="pending") == [c[5]]
    assert await ids(h, agent, saved_view_id=mine["id"], view="all") == [c[2]]
    assert await ids(h, admin, saved_view_id=admins["id"]) == [c[6], c[5], c[4], c[3], c[2], c[1]]
    # Visibility still applies inside a shared view.
    assert await ids(h, other, saved_view_id=shared["id"]) == []
    for who, view_id in ((other, mine["id"]), (admin, mine["id"]), (agent, admins["id"]), (agent, 10**9)):
        body = await problem(h, who, 404, saved_view_id=view_id)
        assert body["detail"] == f"saved view {view_id} not found"
        r = await h.client.get(f"{SAVED}/{view_id}", headers=who.headers)
        assert r.status_code == 404

    # Editing: the owner, or an admin for a shared view; others get 403 and nothing changes.
    r = await h.client.patch(f"{SAVED}/{shared['id']}", headers=other.headers, json={"name": "Mine now"})
    assert (r.status_code, r.json()["detail"]) == (403, "only the view's owner or an admin can change a shared view")
    r = await h.client.delete(f"{SAVED}/{shared['id']}", headers=other.headers)
    assert r.status_code == 403
    assert (await h.client.get(f"{SAVED}/{shared['id']}", headers=other.headers)).json()["name"] == "Billing queue"
    r = await h.client.patch(f"{SAVED}/{shared['id']}", headers=admin.headers,
                             json={"name": "Billing (all)", "filters": {"team_id": scene["billing"]}, "sort": None})
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("user_id", "name", "filters", "sort", "shared")} == {
        "user_id": agent.user_id, "name": "Billing (all)", "filters": {"team_id": scene["billing"]}, "sort": None,
        "shared": True}
    assert await ids(h, agent, saved_view_id=shared["id"]) == [c[2]]
    r = await h.client.patch(f"{SAVED}/{mine['id']}", headers=admin.headers, json={"name": "x"})
    assert r.status_code == 404  # a private view does not exist for anyone else
    r = await h.client.patch(f"{SAVED}/{shared['id']}", headers=agent.headers, json={"shared": False})
    assert (r.status_code, r.json()["shared"]) == (200, False)
    assert await listed(other) == []
    r = await h.client.patch(f"{SAVED}/{shared['id']}", headers=admin.headers, json={"name": "x"})
    assert r.status_code == 404

    # Names are unique per user (not per account).
    body = await save(h, agent, {"name": "My urgent"}, 409)
    assert body["detail"] == "you already have a saved view named 'My urgent'"
    await save(h, other, {"name": "My urgent"})
    r = await h.client.patch(f"{SAVED}/{shared['id']}", headers=agent.headers, json={"name": "My urgent"})
    assert r.status_code == 409
    r = await h.client.delete(f"{SAVED}/{mine['id']}", headers=agent.headers)
    assert r.status_code == 204
    assert await listed(agent) == [("Billing (all)", True)]
    r = await h.client.delete(f"{SAVED}/{mine['id']}", headers=agent.headers)
    assert r.status_code == 404


async def test_saved_view_input_is_validated_by_the_filter_schema(h: Harness, scene: dict[str, Any]) -> None:
    agent = scene["agent"]
    for body, loc in (({"name": "x", "filters": {"colour": "red"}}, ["body", "filters", "colour"]),
                      ({"name": "x", "filters": {"view": "everything"}}, ["body", "filters", "view"]),
                      ({"name": "x", "filters": {"status": []}}, ["body", "filters", "status"]),
                      ({"name": "x", "sort": "oldest"}, ["body", "sort"]),
                      ({"name": ""}, ["body", "name"]),
                      ({"name": "x", "owner": 1}, ["body", "owner"])):
        problem_body = await save(h, agent, body, 422)
        assert problem_body["errors"][0]["loc"] == loc, body
    problem_body = await save(h, agent, {"name": "x", "filters": {"view": "mentions"}, "sort": "waiting"}, 422)
    assert "the mentions view is always newest mention first" in problem_body["detail"]
    view = await save(h, agent, {"name": "x", "filters": {"view": "mentions"}})
    r = await h.client.patch(f"{SAVED}/{view['id']}", headers=agent.headers, json={"sort": "waiting"})
    assert (r.status_code, r.json()["detail"]) == (422, "the mentions view is always newest mention first: "
                                                        "leave sort out")
    r = await h.client.patch(f"{SAVED}/{view['id']}", headers=agent.headers, json={"name": None})
    assert r.status_code == 422
    # One value where a list is expected is a list of one.
    view = await save(h, agent, {"name": "y", "filters": {"priority": "high", "status": "open", "tag": " VIP "}})
    assert view["filters"] == {"status": ["open"], "priority": ["high"], "tag": "vip"}
    r = await h.client.get(SAVED, headers=agent.headers)
    assert [(v["name"], v["sort"], v["filters"]) for v in r.json()] == [
        ("x", None, {"view": "mentions"}), ("y", None, {"status": ["open"], "priority": ["high"], "tag": "vip"})]


async def test_page_for_the_workspace_takes_form_values(h: Harness, scene: dict[str, Any]) -> None:
    ctx, c = scene["ctx"], scene["c"]
    principal = StaffPrincipal(user_id=ctx.admin.user_id, account_id=ctx.account_id, role=Role.admin,
                               name="Acme Admin", email=ctx.admin.email, team_ids=(), scopes=None, via="session")
    async with h.runtime.uow() as uow:
        page_ = await inbox_service.page_for(uow.session, principal, view="all", status="any", sort="last_activity",
                                            limit=25)
        assert [r.conversation.id for r in page_.rows] == [c[6], c[5], c[4], c[3], c[2], c[1]]
        assert (page_.next_cursor, page_.saved_view) == (None, None)
        page_ = await inbox_service.page_for(uow.session, principal, view="mentions", status="open",
                                            sort="last_activity")
        assert page_.rows == []
        page_ = await inbox_service.page_for(uow.session, principal, view="unassigned", priority="urgent",
                                            channel="webchat")
        assert [(r.conversation.id, r.unread) for r in page_.rows] == [(c[3], False)]
        with pytest.raises(ValidationFailed) as refused:
            await inbox_service.page_for(uow.session, principal, view="everything")
        assert refused.value.detail.startswith("view: Input should be")


def test_every_filter_has_a_condition() -> None:
    assert set(InboxFilters.model_fields) - {"view", "status"} == set(inbox_service.CONDITIONS)


# --- bulk changes --------------------------------------------------------------------------------

BULK = "/api/v1/inbox/bulk"


def _event_shape(events: list[Any], ids_to_names: dict[int, str]) -> list[tuple]:
    return [(e.type, ids_to_names[e.conversation.id], getattr(e, "changed", None),
             getattr(e, "previous_assignee_id", None), e.audience,
             (e.conversation.assignee_id, e.conversation.team_id, e.conversation.status, tuple(e.conversation.tags)))
            for e in events]


async def _state(h: Harness, cids: list[int]) -> list[tuple]:
    async with h.runtime.uow() as uow:
        rows = (await uow.session.scalars(select(Conversation).where(Conversation.id.in_(cids))
                                          .order_by(Conversation.id))).all()
        activities = (await uow.session.execute(select(Activity.conversation_id, Activity.verb, Activity.data)
                                                .where(Activity.conversation_id.in_(cids)).order_by(Activity.id))).all()
        return [(r.id, r.assignee_id, r.team_id, str(r.status), tuple(r.tag_names)) for r in rows] + \
            [tuple(a) for a in activities]


async def test_bulk_change_is_what_one_by_one_would_do(h: Harness) -> None:
    start_clock()
    ctx = await h.make_account()
    team = await h.make_team(ctx, "Billing")
    agent = await h.make_user(ctx, "agent", teams=(team,))
    inbox = await h.make_api_inbox(ctx)
    a1, a2, b1, b2 = [await inbound(h, inbox, f"s{n}") for n in range(4)]
    await tag(h, ctx.admin, a2, "old")
    await tag(h, ctx.admin, b2, "old")
    change = {"assignee_id": agent.user_id, "team_id": team, "status": "pending", "add_tags": ["VIP", "refund"],
              "remove_tags": ["old"]}

    with h.capture_events() as one_by_one:
        for cid in (a1, a2):
            await patch(h, ctx.admin, cid, {k: change[k] for k in ("assignee_id", "team_id", "status")})
            r = await h.client.post(f"/api/v1/conversations/{cid}/tags", headers=ctx.admin.headers,
                                    json={"add": change["add_tags"], "remove": change["remove_tags"]})
            assert r.status_code == 200
    with h.capture_events() as bulk:
        r = await h.client.post(BULK, headers=ctx.admin.headers, json={"conversation_ids": [b1, b2, b1], **change})
    assert r.status_code == 200, r.text
    assert [(c["id"], c["assignee_id"], c["team_id"], c["status"], c["tags"]) for c in r.json()] == [
        (b1, agent.user_id, team, "pending", ["refund", "vip"]), (b2, agent.user_id, team, "pending", ["refund", "vip"])]
    assert [e.type for e in bulk] == [e.type for e in one_by_one]
    # The same staff audiences; customer events go to each conversation's own contact.
    assert [e.audience.model_copy(update={"contact_ids": len(e.audience.contact_ids)}) for e in bulk] == \
        [e.audience.model_copy(update={"contact_ids": len(e.audience.contact_ids)}) for e in one_by_one]
    assert [e.type for e in bulk if e.type.startswith(("conversation.", "customer."))] == [
        "conversation.status_changed", "customer.conversation_updated", "conversation.assigned",
        "conversation.updated"] * 2
    assert _event_shape([e for e in bulk if e.type.startswith("conversation.")], {b1: "first", b2: "second"}) == \
        _event_shape([e for e in one_by_one if e.type.startswith("conversation.")], {a1: "first", a2: "second"})
    # The activity log reads the same too.
    state_a, state_b = await _state(h, [a1, a2]), await _state(h, [b1, b2])
    names = {a1: 1, a2: 2, b1: 1, b2: 2}

    def anonymous(state: list[tuple]) -> list[tuple]:
        return [(names[row[0]], *row[1:]) for row in state]

    assert anonymous(state_a) == anonymous(state_b)

    # Unassigning (null) and removing the team, for a conversation already in that state too.
    r = await h.client.post(BULK, headers=ctx.admin.headers,
                            json={"conversation_ids": [b1, a1], "assignee_id": None, "team_id": None})
    assert [(c["assignee_id"], c["team_id"]) for c in r.json()] == [(None, None), (None, None)]


async def test_bulk_changes_nothing_unless_it_can_change_everything(h: Harness) -> None:
    start_clock()
    ctx = await h.make_account()
    billing = await h.make_team(ctx, "Billing")
    shipping = await h.make_team(ctx, "Shipping")
    agent = await h.make_user(ctx, "agent", teams=(billing,))
    expert = await h.make_user(ctx, "expert", role=Role.expert)
    inbox = await h.make_api_inbox(ctx)
    mine, theirs, closed, advised = [await inbound(h, inbox, f"s{n}") for n in range(4)]
    await patch(h, ctx.admin, theirs, {"team_id": shipping})
    await patch(h, ctx.admin, closed, {"status": "closed"})
    await patch(h, ctx.admin, advised, {"assignee_id": expert.user_id})  # so the expert sees it
    everything = [mine, theirs, closed, advised]
    before = await _state(h, everything)

    with h.capture_events() as events:
        r = await h.client.post(BULK, headers=agent.headers,
                                json={"conversation_ids": [mine, theirs, 10**9], "add_tags": ["x"]})
        assert (r.status_code, r.json()["detail"], r.json()["conversation_ids"]) == (
            404, f"conversations not found: {theirs}, {10**9}", [theirs, 10**9])
        # Refused by the conversation action itself, after the first conversation changed: rolled back.
        r = await h.client.post(BULK, headers=ctx.admin.headers,
                                json={"conversation_ids": [mine, closed], "status": "resolved", "add_tags": ["x"]})
        assert (r.status_code, r.json()["detail"], r.json()["conversation_id"]) == (
            409, f"conversation {closed}: a closed conversation is final; start a new one", closed)
        r = await h.client.post(BULK, headers=ctx.admin.headers,
                                json={"conversation_ids": [mine, theirs], "assignee_id": 10**9})
        assert (r.status_code, r.json()["detail"]) == (
            422, f"conversation {mine}: user {10**9} is not an active user of this account")
        # Experts cannot change conversations one by one, nor in bulk.
        r = await h.client.post(BULK, headers=expert.headers,
                                json={"conversation_ids": [advised], "status": "pending"})
        assert (r.status_code, r.json()["detail"]) == (
            403, f"conversation {advised}: experts cannot change a conversation's status, owner or attributes")
        r = await h.client.post(BULK, headers=expert.headers,
                                json={"conversation_ids": [advised, mine], "status": "pending"})
        assert (r.status_code, r.json()["conversation_ids"]) == (404, [mine])
    assert events == []
    assert await _state(h, everything) == before

    for body in ({"conversation_ids": [], "status": "open"}, {"conversation_ids": list(range(1, 102)), "status": "open"},
                 {"conversation_ids": [mine]}, {"conversation_ids": [mine], "status": None},
                 {"conversation_ids": [mine], "status": "open", "priority": "high"},
                 {"conversation_ids": [0], "status": "open"}, {"conversation_ids": [mine], "add_tags": ["a/b"]}):
        r = await h.client.post(BULK, headers=ctx.admin.headers, json=body)
        assert (r.status_code, r.headers["content-type"]) == (422, "application/problem+json"), body
    r = await h.client.post(BULK, headers={**ctx.admin.headers, "content-type": "application/json"}, content=b"{")
    assert r.status_code == 400
    assert await _state(h, everything) == before


async def test_views_only_read_the_callers_account(h: Harness, scene: dict[str, Any]) -> None:
    other = await h.make_account("Other")
    inbox = await h.make_api_inbox(other)
    theirs = await inbound(h, inbox, "x")
    assert await ids(h, other.admin) == [theirs]
    assert await ids(h, other.admin, view="unassigned") == [theirs]
    assert theirs not in await ids(h, scene["ctx"].admin, view="all")
    r = await h.client.post(BULK, headers=other.admin.headers,
                            json={"conversation_ids": [scene["c"][1]], "status": "pending"})
    assert r.status_code == 404
    async with h.runtime.uow() as uow:
        count = await uow.session.scalar(text("SELECT count(*) FROM conversation_reads"))
    assert count == 0
