"""Collision presence: who has a conversation open (viewing heartbeats) and who is typing. Both reach
the conversation's staff, colleagues included; a note being written never reaches the customer;
nothing is stored."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
from sqlalchemy import func, inspect, select, table

from swarmdesk.accounts.models import Role
from swarmdesk.core.clock import clock
from swarmdesk.events.base import Audience, BaseEvent
from swarmdesk.realtime.hub import Client
from swarmdesk.realtime.queues import QueueInfo
from tests.support import AccountCtx, Harness

PROBLEM = "application/problem+json"


def types(events: list[BaseEvent]) -> list[str]:
    return [e.type for e in events]


def team_staff(team: int, users: tuple[int, ...] = ()) -> Audience:
    return Audience(roles=("admin", "supervisor"), team_ids=(team,), user_ids=users)


async def setup(h: Harness) -> tuple[AccountCtx, int, int, dict[str, str], int]:
    """A conversation a visitor started, moved to team Billing: ids of the conversation, team,
    the visitor's headers and contact id."""
    clock.freeze(datetime.now(UTC).replace(microsecond=0))
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    team = await h.make_team(ctx, "Billing")
    visitor = await h.customer_session(inbox, "Ana")
    r = await h.client.post("/api/v1/customer/conversations", headers=visitor, json={"content": "hello"})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=ctx.admin.headers, json={"team_id": team})
    assert r.status_code == 200, r.text
    r = await h.client.get(f"/api/v1/conversations/{cid}", headers=ctx.admin.headers)
    return ctx, cid, team, visitor, r.json()["contact"]["id"]


async def stored(h: Harness) -> dict[str, int]:
    """Rows in every table of the database."""
    async with h.runtime.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        return {name: (await conn.execute(select(func.count()).select_from(table(name)))).scalar_one()
                for name in names}


def assert_problem(r, status: int) -> dict:  # noqa: ANN001
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0] == PROBLEM
    return r.json()


def listen(h: Harness, info: QueueInfo) -> Client:
    """A live client of this process's hub, as a registered socket would be."""
    client = Client(info)
    h.runtime.hub.attach(client)
    return client


async def frames(client: Client, n: int) -> list[dict]:
    got = []
    for _ in range(n):
        routed = await asyncio.wait_for(client.pending.get(), 5)
        assert routed is not None
        got.append(orjson.loads(routed.frame))
    return got


# --- viewing ---------------------------------------------------------------------------------------

async def test_viewing_heartbeats_and_leaving_reach_the_conversations_staff_only(h: Harness) -> None:
    ctx, cid, team, visitor, _ = await setup(h)
    agent = await h.make_user(ctx, "agent", teams=(team,))
    before = await stored(h)
    url = f"/api/v1/conversations/{cid}/viewing"
    with h.capture_events() as events:
        assert (await h.client.post(url, headers=agent.headers)).status_code == 204
        assert (await h.client.post(url, headers=agent.headers, json={"composing": "note"})).status_code == 204
        assert (await h.client.post(url, headers=agent.headers, json={"composing": "reply"})).status_code == 204
        assert (await h.client.post(url, headers=ctx.admin.headers, json={"composing": None})).status_code == 204
        assert (await h.client.delete(url, headers=agent.headers)).status_code == 204
    assert types(events) == ["conversation.viewing"] * 5
    assert {e.audience for e in events} == {team_staff(team)}
    assert [{k: v for k, v in e.body().items() if k not in ("uid", "occurred_at")} for e in events] == [
        {"type": "conversation.viewing", "account_id": ctx.account_id, "conversation_id": cid,
         "user_id": who.user_id, "name": name, "state": state, "composing": composing}
        for who, name, state, composing in ((agent, "Agent", "viewing", None), (agent, "Agent", "viewing", "note"),
                                            (agent, "Agent", "viewing", "reply"),
                                            (ctx.admin, "Acme Admin", "viewing", None),
                                            (agent, "Agent", "left", None))]
    assert await stored(h) == before  # presence is never stored


async def test_viewing_refuses_bad_bodies_customers_and_those_who_cannot_see_it(h: Harness) -> None:
    ctx, cid, team, visitor, _ = await setup(h)
    expert = await h.make_user(ctx, "expert", role=Role.expert)
    before = await stored(h)
    url = f"/api/v1/conversations/{cid}/viewing"
    with h.capture_events() as events:
        for body in ({"composing": "email"}, {"composing": "note", "tab": 2}, [], "note"):
            assert_problem(await h.client.post(url, headers=ctx.admin.headers, json=body), 422)
        r = await h.client.post(url, headers={**ctx.admin.headers, "content-type": "application/json"}, content=b"null")
        assert "JSON object" in assert_problem(r, 422)["detail"]
        for method in ("POST", "DELETE"):
            assert "customer credential" in assert_problem(await h.client.request(method, url, headers=visitor),
                                                           403)["detail"]
            assert_problem(await h.client.request(method, url, headers=expert.headers), 404)
            assert_problem(await h.client.request(method, "/api/v1/conversations/999999/viewing",
                                                  headers=ctx.admin.headers), 404)
    assert events == []
    assert await stored(h) == before


# --- typing -----------------------------------------------------------------------------------------

async def test_colleagues_see_an_agent_typing_and_the_customer_never_sees_a_note(h: Harness) -> None:
    ctx, cid, team, visitor, contact_id = await setup(h)
    typist = await h.make_user(ctx, "typist", teams=(team,))
    colleague = await h.make_user(ctx, "colleague", teams=(team,))
    outsider = await h.make_user(ctx, "outsider", teams=(await h.make_team(ctx, "Returns"),))
    colleague_socket = listen(h, QueueInfo("q-colleague", ctx.account_id, "user", colleague.user_id, "agent", (team,)))
    outsider_socket = listen(h, QueueInfo("q-outsider", ctx.account_id, "user", outsider.user_id, "agent",
                                          (outsider.team_ids[0],)))
    customer_socket = listen(h, QueueInfo("q-visitor", ctx.account_id, "contact", contact_id))
    url = f"/api/v1/conversations/{cid}/typing"
    before = await stored(h)
    with h.capture_events() as events:
        # A note: by the body (new), by the query (kept), and the stop of both.
        assert (await h.client.post(url, headers=typist.headers, json={"private": True})).status_code == 204
        assert (await h.client.request("DELETE", url, headers=typist.headers, json={"private": True})).status_code \
            == 204
        assert (await h.client.post(url, headers=typist.headers, params={"private": "true"})).status_code == 204
        # A reply, with and without a body: the customer sees "agent is typing".
        assert (await h.client.post(url, headers=typist.headers, json={"private": False})).status_code == 204
        assert (await h.client.delete(url, headers=typist.headers)).status_code == 204
    assert types(events) == ["conversation.typing"] * 3 + ["conversation.typing", "customer.typing"] * 2
    staff_events = [e for e in events if e.type == "conversation.typing"]
    assert {e.audience for e in staff_events} == {team_staff(team)}
    assert [(e.conversation_id, e.sender_type, e.sender_id, e.sender_name, e.typing, e.private)
            for e in staff_events] == [(cid, "user", typist.user_id, "Typist", typing, private) for typing, private in
                                       ((True, True), (False, True), (True, True), (True, False), (False, False))]
    customer_events = [e for e in events if e.type == "customer.typing"]
    assert {e.audience for e in customer_events} == {Audience(contact_ids=(contact_id,))}
    assert [(e.conversation_id, e.sender_name, e.typing) for e in customer_events] == [
        (cid, "Typist", True), (cid, "Typist", False)]

    # Through the hub: the colleague gets all five (collision detection), the visitor only the
    # reply's two (notes come first, so anything of theirs would have arrived before), the agent
    # of another team nothing.
    got = await frames(colleague_socket, 5)
    assert [(f["type"], f["sender_id"], f["typing"], f["private"]) for f in got] == [
        ("conversation.typing", typist.user_id, typing, private) for typing, private in
        ((True, True), (False, True), (True, True), (True, False), (False, False))]
    got = await frames(customer_socket, 2)
    assert [(f["type"], f["typing"], f["sender_name"]) for f in got] == [("customer.typing", True, "Typist"),
                                                                           ("customer.typing", False, "Typist")]
    assert "sender_id" not in got[0] and "private" not in got[0]
    assert customer_socket.pending.empty() and outsider_socket.pending.empty()
    assert await stored(h) == before


async def test_typing_refuses_bad_bodies_and_customers(h: Harness) -> None:
    ctx, cid, team, visitor, _ = await setup(h)
    url = f"/api/v1/conversations/{cid}/typing"
    with h.capture_events() as events:
        for body in ({"private": "maybe"}, {"private": True, "channel": "email"}, ["private"]):
            assert_problem(await h.client.post(url, headers=ctx.admin.headers, json=body), 422)
            assert_problem(await h.client.request("DELETE", url, headers=ctx.admin.headers, json=body), 422)
        r = await h.client.post(url, headers={**ctx.admin.headers, "content-type": "application/json"}, content=b"null")
        assert_problem(r, 422)
        assert "customer credential" in assert_problem(
            await h.client.post(url, headers=visitor, json={"private": True}), 403)["detail"]
    assert events == []
