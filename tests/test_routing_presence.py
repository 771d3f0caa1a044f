"""Presence: set by the agent, and by their real-time connections (a grace period after the last one
closes); its event; capacity and skills settings and who may change them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from websockets.asyncio.client import connect as ws_connect

from swarmdesk.accounts.models import Role
from swarmdesk.events.base import Audience
from swarmdesk.realtime.hub import Client, connection_hooks
from swarmdesk.realtime.queues import QueueInfo
from swarmdesk.routing import actions
from swarmdesk.routing.actions import PRESENCE_GRACE_JOB
from swarmdesk.routing.listeners import keep_connections_alive
from swarmdesk.routing.models import AgentPresence, AgentSkill, PresenceConnection, RoutingQueue, Skill
from swarmdesk.routing.service import CONNECTION_STALE_SECONDS, PRESENCE_GRACE_SECONDS
from swarmdesk.runtime import Runtime, create_runtime
from tests.support import Harness, Staff
from tests.test_routing_support import (
    T0,
    Desk,
    add_agent,
    add_queue,
    add_skill,
    advance,
    assignee,
    call,
    chat,
    make_desk,
    queued_jobs,
    set_presence,
)

STAFF = Audience(roles=("admin", "supervisor"), all_agents=True)


async def presence_of(h: Harness, who: Staff) -> dict:
    return await call(h, who, "GET", "/api/v1/routing/presence")


async def test_agent_sets_presence_and_staff_hear_of_it(h: Harness) -> None:
    d = await make_desk(h)
    ana = await add_agent(h, d, "ana", online=False)
    assert await presence_of(h, ana) == {"user_id": ana.user_id, "status": "offline", "chosen": None,
                                         "connections": 0, "changed_at": None}
    with h.capture_events() as events:
        out = await set_presence(h, ana, "online")
    assert (out["status"], out["chosen"]) == ("online", "online")
    (event,) = events
    assert event.type == "routing.presence_changed" and event.audience == STAFF
    assert event.model_dump(include={"account_id", "user_id", "status", "previous_status", "reason", "changed_at"}) == {
        "account_id": d.ctx.account_id, "user_id": ana.user_id, "status": "online", "previous_status": "offline",
        "reason": "manual", "changed_at": T0}
    with h.capture_events() as events:
        await set_presence(h, ana, "online")  # no change, no event
    assert events == []
    with h.capture_events() as events:
        await set_presence(h, ana, "away")
    assert [(e.status, e.previous_status) for e in events] == [("away", "online")]
    agents = {a["user_id"]: a for a in await call(h, d.supervisor, "GET", "/api/v1/routing/agents")}
    assert agents[ana.user_id]["status"] == "away"
    r = await h.client.put("/api/v1/routing/presence", headers=ana.headers, json={"status": "busy"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")


async def _register(api: httpx.AsyncClient, who: Staff) -> str:
    r = await api.post("/api/v1/realtime/register", headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()["queue_id"]


async def _wait_for(h: Harness, who: Staff, **expected: object) -> dict:
    for _ in range(200):
        current = await presence_of(h, who)
        if all(current[k] == v for k, v in expected.items()):
            return current
        await asyncio.sleep(0.02)
    raise AssertionError((expected, current))


async def test_sockets_bring_an_agent_online_and_the_last_one_closing_takes_them_offline(h: Harness, live) -> None:  # noqa: ANN001
    d = await make_desk(h)
    await add_queue(h, d)  # socket presence applies to accounts that route
    ana = await add_agent(h, d, "ana", online=False)
    bob = await add_agent(h, d, "bob", online=False)
    async with httpx.AsyncClient(base_url=live.url, timeout=5.0) as api:
        url = f"{live.ws_url}/api/v1/realtime/ws?queue_id="
        with h.capture_events() as events:
            first = await ws_connect(url + await _register(api, ana), open_timeout=5)
            await _wait_for(h, ana, status="online", connections=1)
        assert [(e.type, e.user_id, e.status, e.previous_status, e.reason, e.audience) for e in events] == [
            ("routing.presence_changed", ana.user_id, "online", "offline", "connected", STAFF)]
        second = await ws_connect(url + await _register(api, ana), open_timeout=5)
        await _wait_for(h, ana, connections=2)
        cid = await chat(h, d, "v1")
        assert await assignee(h, d, cid) == ana.user_id

        await first.close()
        await _wait_for(h, ana, connections=1)
        assert await queued_jobs(h, PRESENCE_GRACE_JOB) == []  # one is still open
        await second.close()
        await _wait_for(h, ana, connections=0, status="online")  # within the grace period
        (grace,) = await queued_jobs(h, PRESENCE_GRACE_JOB)
        assert grace.run_at == T0 + timedelta(seconds=PRESENCE_GRACE_SECONDS)

        await set_presence(h, bob, "online")
        await advance(h, PRESENCE_GRACE_SECONDS - 1)
        assert (await presence_of(h, ana))["status"] == "online"
        with h.capture_events() as events:
            await advance(h, 1)
        assert (await presence_of(h, ana))["status"] == "offline"
        presence = next(e for e in events if e.type == "routing.presence_changed")
        assert (presence.user_id, presence.status, presence.reason, presence.audience) == (
            ana.user_id, "offline", "disconnected", STAFF)
        # Her open conversation went back through routing, to bob, saying why.
        assert await assignee(h, d, cid) == bob.user_id
        routed = next(e for e in events if e.type == "conversation.routed")
        assert routed.explanation == "1 of 5 chats; rerouted: Ana went offline" and routed.reason == "agent_offline"

        # Reconnecting within the grace period keeps her online: the grace job finds a connection.
        third = await ws_connect(url + await _register(api, ana), open_timeout=5)
        await _wait_for(h, ana, status="online", connections=1)
        await third.close()
        await _wait_for(h, ana, connections=0)
        fourth = await ws_connect(url + await _register(api, ana), open_timeout=5)
        await _wait_for(h, ana, connections=1)
        await advance(h, PRESENCE_GRACE_SECONDS)
        assert (await presence_of(h, ana))["status"] == "online"
        # A reload late in a grace period starts a new one: the first period's job does not count.
        await fourth.close()
        await _wait_for(h, ana, connections=0)
        await advance(h, PRESENCE_GRACE_SECONDS - 5)
        fifth = await ws_connect(url + await _register(api, ana), open_timeout=5)
        await _wait_for(h, ana, connections=1)
        await fifth.close()
        await _wait_for(h, ana, connections=0)
        await advance(h, 5)
        assert (await presence_of(h, ana))["status"] == "online"
        await advance(h, PRESENCE_GRACE_SECONDS - 5)
        assert (await presence_of(h, ana))["status"] == "offline"


async def test_connecting_never_overrides_a_chosen_away_or_offline(h: Harness, live) -> None:  # noqa: ANN001
    d = await make_desk(h)
    await add_queue(h, d)
    ana = await add_agent(h, d, "ana", online=False)
    bob = await add_agent(h, d, "bob", online=False)
    await set_presence(h, ana, "away")
    await set_presence(h, bob, "offline")
    async with httpx.AsyncClient(base_url=live.url, timeout=5.0) as api:
        url = f"{live.ws_url}/api/v1/realtime/ws?queue_id="
        for who in (ana, bob):
            ws = await ws_connect(url + await _register(api, who), open_timeout=5)
            await _wait_for(h, who, connections=1)
            await ws.close()
            await _wait_for(h, who, connections=0)
        assert (await presence_of(h, ana))["status"] == "away"
        assert (await presence_of(h, bob))["status"] == "offline"
        # Away and disconnected: offline after the grace period; connecting again: back to away.
        await advance(h, PRESENCE_GRACE_SECONDS)
        assert (await presence_of(h, ana))["status"] == "offline"
        ws = await ws_connect(url + await _register(api, ana), open_timeout=5)
        await _wait_for(h, ana, status="away", connections=1)
        await ws.close()
        await _wait_for(h, ana, connections=0)


async def test_accounts_without_queues_get_no_presence_events_from_sockets(h: Harness, live) -> None:  # noqa: ANN001
    d = await make_desk(h)
    ana = await add_agent(h, d, "ana", online=False)
    async with httpx.AsyncClient(base_url=live.url, timeout=5.0) as api:
        with h.capture_events() as events:
            ws = await ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id={await _register(api, ana)}",
                                  open_timeout=5)
            await _wait_for(h, ana, connections=1)
            await ws.close()
            await _wait_for(h, ana, connections=0)
    assert events == [] and (await presence_of(h, ana))["status"] == "offline"


# --- settings and who may change them ----------------------------------------------------------------

async def _rows(h: Harness) -> tuple[int, ...]:
    async with h.runtime.uow() as uow:
        return tuple([await uow.session.scalar(select(func.count()).select_from(m))
                      for m in (Skill, AgentSkill, RoutingQueue, AgentPresence)])


async def test_agents_cannot_change_skills_capacity_or_queues(h: Harness) -> None:
    d = await make_desk(h)
    skill = await add_skill(h, d, "billing")
    queue = await add_queue(h, d)
    ana = await add_agent(h, d, "ana", online=False)
    expert = await h.make_user(d.ctx, "ed", Role.expert)
    before = await _rows(h)
    cid = await chat(h, d)
    for who in (ana, expert):
        for method, url, body in (
                ("POST", "/api/v1/routing/skills", {"name": "x"}),
                ("PATCH", f"/api/v1/routing/skills/{skill}", {"name": "y"}),
                ("DELETE", f"/api/v1/routing/skills/{skill}", None),
                ("PUT", f"/api/v1/routing/agents/{ana.user_id}/skills", {"skills": []}),
                ("PUT", f"/api/v1/routing/agents/{ana.user_id}/capacity", {"capacity": {"default": 99}}),
                ("POST", "/api/v1/routing/queues", {"name": "Mine"}),
                ("PATCH", f"/api/v1/routing/queues/{queue['id']}", {"strategy": "manual"}),
                ("DELETE", f"/api/v1/routing/queues/{queue['id']}", None),
                ("POST", f"/api/v1/conversations/{cid}/route", None),
                ("PUT", f"/api/v1/conversations/{cid}/routing/skills", {"skills": []})):
            r = await h.client.request(method, url, headers=who.headers, json=body)
            # A conversation an expert does not take part in does not exist for them.
            expected = 404 if who is expert and "/conversations/" in url else 403
            assert r.status_code == expected, (who.role, method, url, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
    assert await _rows(h) == before
    # They read them, and set their own presence.
    assert [s["name"] for s in await call(h, ana, "GET", "/api/v1/routing/skills")] == ["billing"]
    assert [q["name"] for q in await call(h, ana, "GET", "/api/v1/routing/queues")] == ["Support"]
    assert (await set_presence(h, ana, "online"))["status"] == "online"
    # A read-only token cannot set presence (it changes what the agent is sent).
    reader = await h.make_user(d.ctx, "reader", Role.agent, scopes=["conversations:read"])
    r = await h.client.put("/api/v1/routing/presence", headers=reader.headers, json={"status": "online"})
    assert r.status_code == 403


async def test_skill_and_agent_settings(h: Harness) -> None:
    d = await make_desk(h)
    skill = await call(h, d.supervisor, "POST", "/api/v1/routing/skills", 201, json={
        "name": "Spanish", "min_proficiency": 3, "languages": ["es-MX", "ES", "es"], "tags": ["Español"]})
    assert skill == {"id": skill["id"], "name": "Spanish", "description": "", "min_proficiency": 3, "inbox_ids": [],
                     "tags": ["español"], "languages": ["es"]}
    r = await h.client.post("/api/v1/routing/skills", headers=d.supervisor.headers, json={"name": "Spanish"})
    assert r.status_code == 409
    for bad in ({"name": "x", "min_proficiency": 6}, {"name": "x", "min_proficiency": 0},
                {"name": "x", "languages": ["spanish!"]}, {"name": "x", "inbox_ids": [999999]}, {"name": ""}):
        r = await h.client.post("/api/v1/routing/skills", headers=d.supervisor.headers, json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    ana = await add_agent(h, d, "ana", online=False)
    out = await call(h, d.supervisor, "PUT", f"/api/v1/routing/agents/{ana.user_id}/skills",
                     json={"skills": [{"skill_id": skill["id"], "proficiency": 5}]})
    assert out["skills"] == [{"skill_id": skill["id"], "name": "Spanish", "proficiency": 5}]
    for bad in ({"skills": [{"skill_id": skill["id"], "proficiency": 6}]},
                {"skills": [{"skill_id": 999999, "proficiency": 2}]},
                {"skills": [{"skill_id": skill["id"], "proficiency": 2}, {"skill_id": skill["id"], "proficiency": 3}]}):
        r = await h.client.put(f"/api/v1/routing/agents/{ana.user_id}/skills", headers=d.supervisor.headers, json=bad)
        assert r.status_code == 422, (bad, r.text)
    out = await call(h, d.supervisor, "PUT", f"/api/v1/routing/agents/{ana.user_id}/capacity",
                     json={"capacity": {"webchat": 3, "email": 10, "default": 4}})
    assert out["capacity"] == {"webchat": 3, "email": 10, "default": 4}
    for bad in ({"capacity": {"webchat": -1}}, {"capacity": {"Web Chat": 1}}, {"capacity": {"webchat": 10_001}}):
        r = await h.client.put(f"/api/v1/routing/agents/{ana.user_id}/capacity", headers=d.supervisor.headers, json=bad)
        assert r.status_code == 422, (bad, r.text)
    r = await h.client.put("/api/v1/routing/agents/999999/capacity", headers=d.supervisor.headers,
                           json={"capacity": {"default": 1}})
    assert r.status_code == 404
    # Another account's user does not exist here.
    other = await h.make_account("Globex")
    r = await h.client.put(f"/api/v1/routing/agents/{other.admin.user_id}/skills", headers=d.supervisor.headers,
                           json={"skills": []})
    assert r.status_code == 404
    updated = await call(h, d.supervisor, "PATCH", f"/api/v1/routing/skills/{skill['id']}", json={"min_proficiency": 4})
    assert (updated["name"], updated["min_proficiency"]) == ("Spanish", 4)
    await call(h, d.supervisor, "DELETE", f"/api/v1/routing/skills/{skill['id']}", 204)
    agents = {a["user_id"]: a for a in await call(h, d.supervisor, "GET", "/api/v1/routing/agents")}
    assert agents[ana.user_id]["skills"] == []


@pytest.mark.parametrize("body", [
    {"strategy": "random"},
    {"relaxation": [{"after_seconds": 300, "min_proficiency": 2}, {"after_seconds": 60, "any_agent_on_team": True}]},
    {"relaxation": [{"after_seconds": 60, "min_proficiency": 2}, {"after_seconds": 60, "min_proficiency": 1}]},
    {"relaxation": [{"after_seconds": 60, "min_proficiency": 7}]},
    {"relaxation": [{"after_seconds": 0, "min_proficiency": 2}]},
    {"relaxation": [{"after_seconds": 60}]},
    {"lifts": {"sentiment": 10}},
    {"lifts": {"urgent": -1}},
    {"team_id": 999999},
    {"inbox_ids": [999999]},
    {"tags": ["no/slashes"]},
    {"sticky_window_seconds": -1},
])
async def test_queue_validation(h: Harness, body: dict) -> None:
    d = await make_desk(h)
    r = await h.client.post("/api/v1/routing/queues", headers=d.supervisor.headers, json={"name": "Q", **body})
    assert r.status_code == 422, (body, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await call(h, d.supervisor, "GET", "/api/v1/routing/queues") == []


async def test_queue_crud(h: Harness) -> None:
    d: Desk = await make_desk(h)
    q = await add_queue(h, d, tags=["Billing"], strategy="round_robin",
                        relaxation=[{"after_seconds": 60, "min_proficiency": 2},
                                    {"after_seconds": 300, "any_agent_on_team": True}])
    assert q == {"id": q["id"], "name": "Support", "team_id": d.team, "inbox_ids": [d.inbox_id], "tags": ["billing"],
                 "position": 0, "strategy": "round_robin",
                 "relaxation": [{"after_seconds": 60, "min_proficiency": 2, "any_agent_on_team": False},
                                {"after_seconds": 300, "min_proficiency": None, "any_agent_on_team": True}],
                 "sticky_window_seconds": 604800, "lifts": {"urgent": 100, "high": 50, "vip": 40, "sla": 80},
                 "vip_attribute": "tier", "vip_values": ["vip"], "waiting": 0}
    r = await h.client.post("/api/v1/routing/queues", headers=d.supervisor.headers, json={"name": "Support"})
    assert r.status_code == 409
    second = await call(h, d.supervisor, "POST", "/api/v1/routing/queues", 201, json={"name": "Other"})
    r = await h.client.patch(f"/api/v1/routing/queues/{second['id']}", headers=d.supervisor.headers,
                             json={"name": "Support"})
    assert r.status_code == 409
    r = await h.client.patch(f"/api/v1/routing/queues/{second['id']}", headers=d.supervisor.headers,
                             json={"strategy": None})
    assert r.status_code == 422
    out = await call(h, d.supervisor, "PATCH", f"/api/v1/routing/queues/{q['id']}",
                     json={"strategy": "sticky", "team_id": None, "lifts": {"urgent": 500}})
    assert (out["strategy"], out["team_id"], out["lifts"]) == ("sticky", None, {"urgent": 500})
    assert (await call(h, d.ctx.admin, "GET", f"/api/v1/routing/queues/{q['id']}"))["strategy"] == "sticky"
    await call(h, d.supervisor, "DELETE", f"/api/v1/routing/queues/{q['id']}", 204)
    r = await h.client.get(f"/api/v1/routing/queues/{q['id']}", headers=d.supervisor.headers)
    assert r.status_code == 404
    # Another account's queue is not found.
    other = await h.make_account("Globex")
    r = await h.client.get(f"/api/v1/routing/queues/{second['id']}", headers=other.admin.headers)
    assert r.status_code == 404


def _socket(who: Staff, account_id: int) -> QueueInfo:
    return QueueInfo(queue_id=f"q-{who.user_id}", account_id=account_id, principal_kind="user",
                     principal_id=who.user_id, role="agent")


async def _open(runtime: Any, who: Staff, account_id: int) -> Client:
    """What the stream endpoint does when a socket opens in ``runtime``'s process."""
    client = Client(_socket(who, account_id))
    if isinstance(runtime, Runtime):
        runtime.hub.attach(client)
    await connection_hooks.fire_connected(runtime, client.info)
    return client


async def _close(runtime: Runtime, client: Client) -> None:
    runtime.hub.detach(client)
    await connection_hooks.fire_disconnected(runtime, client.info)


async def _shares(h: Harness) -> list[tuple[str, int, int]]:
    async with h.runtime.uow() as uow:
        return [tuple(r) for r in (await uow.session.execute(
            select(PresenceConnection.process_id, PresenceConnection.user_id, PresenceConnection.count)
            .order_by(PresenceConnection.user_id, PresenceConnection.process_id))).all()]


async def test_killed_processes_do_not_keep_agents_online_and_a_stalled_one_gets_its_share_back(h: Harness) -> None:
    """Each process keeps its share of an agent's connections and touches it every heartbeat. A
    process killed without closing its sockets stops touching; after the stale period any process
    reaps its shares, the agent's count is the sum of what is left, and the grace period and
    re-routing follow as after a close. A process that only stalled puts its shares back at its next
    heartbeat, and its sockets closing later never count twice. A clean stop releases at once."""
    d = await make_desk(h)
    await add_queue(h, d)
    ana = await add_agent(h, d, "ana", online=False)
    bob = await add_agent(h, d, "bob", online=False)
    cy = await add_agent(h, d, "cy", online=False)
    acct = d.ctx.account_id
    # Two processes that will be killed (kill -9: nothing of theirs ever runs again): bob has two
    # tabs on the first and one on the second; and one tab each of ana's and bob's on this process.
    killed = [SimpleNamespace(uow=h.runtime.uow, process_id=f"killed-{n}") for n in (1, 2)]
    for runtime in (killed[0], killed[0], killed[1]):
        await _open(runtime, bob, acct)
    ana_tab = await _open(h.runtime, ana, acct)
    bob_tab = await _open(h.runtime, bob, acct)
    assert ((await presence_of(h, bob))["connections"], (await presence_of(h, bob))["status"]) == (4, "online")

    await advance(h, CONNECTION_STALE_SECONDS - 30)
    await keep_connections_alive(h.runtime)  # this process's heartbeat: its shares are fresh
    assert (await presence_of(h, bob))["connections"] == 4 and await queued_jobs(h, PRESENCE_GRACE_JOB) == []
    await advance(h, 31)  # the killed processes' shares are stale now, this one's are not
    second: Runtime = create_runtime(h.runtime.settings)
    await second.start(with_worker=False)
    try:
        async def reap(runtime: Runtime) -> int:
            async with runtime.uow() as uow:
                return await actions.do_reap_connections(uow)

        # Two processes reap at once: the three stale shares are taken once, not twice.
        assert sorted(await asyncio.gather(reap(h.runtime), reap(second))) == [0, 2]
    finally:
        await second.stop()
    assert ((await presence_of(h, bob))["connections"], (await presence_of(h, ana))["connections"]) == (1, 1)
    assert await _shares(h) == [(h.runtime.process_id, ana.user_id, 1), (h.runtime.process_id, bob.user_id, 1)]

    # This process stalls past the stale period (no heartbeat) and another reaps its shares: both
    # agents are at 0, grace jobs queued. Its next heartbeat puts the shares back from its live streams.
    await advance(h, CONNECTION_STALE_SECONDS + 1)
    async with h.runtime.uow() as uow:
        assert await actions.do_reap_connections(uow) == 2
    assert (await presence_of(h, ana))["connections"] == 0
    await keep_connections_alive(h.runtime)
    assert ((await presence_of(h, ana))["connections"], (await presence_of(h, bob))["connections"]) == (1, 1)
    await advance(h, PRESENCE_GRACE_SECONDS)  # the grace jobs find connections: nobody goes offline
    assert [(await presence_of(h, x))["status"] for x in (ana, bob)] == ["online", "online"]

    # A clean stop releases the stopping process's shares at once (cy's only tab was there).
    other: Runtime = create_runtime(h.runtime.settings)
    await other.start(with_worker=False)
    await _open(other, cy, acct)
    assert (await presence_of(h, cy))["connections"] == 1
    await other.stop()
    assert (await presence_of(h, cy))["connections"] == 0

    # Bob's last tab closes: counted once (never below zero), offline after the grace period, and his
    # conversation goes to ana.
    cid = await chat(h, d, "v1")
    await call(h, d.supervisor, "PATCH", f"/api/v1/conversations/{cid}", json={"assignee_id": bob.user_id})
    await _close(h.runtime, bob_tab)
    assert (await presence_of(h, bob))["connections"] == 0
    await advance(h, PRESENCE_GRACE_SECONDS)
    assert (await presence_of(h, bob))["status"] == "offline"
    assert await assignee(h, d, cid) == ana.user_id
    await _close(h.runtime, ana_tab)
    assert await _shares(h) == []
