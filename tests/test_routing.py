"""Routing through the API with real jobs: each strategy's exact outcomes, relaxation over time (the
delayed job does it), capacity, priority lifts, re-routing, the explanation, events and activity."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.conversations.models import Activity, Conversation
from swarmdesk.core.clock import clock
from swarmdesk.core.errors import ValidationFailed
from swarmdesk.events.base import Audience
from swarmdesk.jobs.worker import Worker
from swarmdesk.routing import actions as routing_actions
from swarmdesk.routing import service as routing_service
from swarmdesk.routing.actions import ROUTE_JOB
from swarmdesk.runtime import create_runtime
from tests.support import Harness, Receiver
from tests.test_routing_support import (
    T0,
    activities,
    add_agent,
    add_queue,
    add_skill,
    advance,
    assignee,
    call,
    chat,
    make_desk,
    patch,
    queued_jobs,
    routing_of,
    set_presence,
    visitor,
)

# --- strategies ------------------------------------------------------------------------------------


async def test_balanced_takes_fewest_open_then_longest_idle(h: Harness) -> None:
    d = await make_desk(h)
    await add_queue(h, d, strategy="balanced")
    for name in ("ana", "bob", "cy"):
        await add_agent(h, d, name, capacity={"webchat": 3})
    got = []
    for i in range(5):
        clock.advance(timedelta(seconds=1))
        got.append(await assignee(h, d, await chat(h, d, f"v{i}")))
    # Everyone at 0: the lowest id among the never-assigned; then fewest open; at 1 each, the one
    # idle longest (ana, assigned first), then bob.
    assert got == [d.uid("ana"), d.uid("bob"), d.uid("cy"), d.uid("ana"), d.uid("bob")]
    # Resolving bob's first chat makes him the one with fewest open.
    first_bob = (await call(h, d.ctx.admin, "GET", "/api/v1/conversations",
                            params={"assignee_id": d.uid("bob")}))["items"][-1]["id"]
    await patch(h, d, first_bob, {"status": "resolved"})
    assert await assignee(h, d, await chat(h, d, "v5")) == d.uid("cy")  # cy: 1 open, bob: 1 open, cy idle longer
    assert await assignee(h, d, await chat(h, d, "v6")) == d.uid("bob")


async def test_a_routing_decision_reaches_webhook_subscribers_with_its_explanation(h: Harness) -> None:
    d = await make_desk(h)
    queue = await add_queue(h, d, strategy="balanced")
    await add_agent(h, d, "ana", capacity={"webchat": 3})
    await h.allowlist_loopback(d.ctx)
    async with Receiver().running() as receiver:
        await call(h, d.ctx.admin, "POST", "/api/v1/webhooks", 201,
                   json={"url": receiver.url, "event_types": ["conversation.routed"]})
        cid = await chat(h, d)
        await h.run_jobs()
        (body,) = [request.json() for request in receiver.requests]
    assert (body["type"], body["conversation_id"], body["assignee_id"], body["queue_id"], body["strategy"]) == (
        "conversation.routed", cid, d.uid("ana"), queue["id"], "balanced")
    assert body["explanation"] == "1 of 3 chats" and "audience" not in body  # no skills asked: load only


async def test_round_robin_cursor_survives_a_restart(h: Harness) -> None:
    d = await make_desk(h)
    queue = await add_queue(h, d, strategy="round_robin")
    for name in ("ana", "bob", "cy"):
        await add_agent(h, d, name, capacity={"webchat": 5})
    assert [await assignee(h, d, await chat(h, d, f"v{i}")) for i in range(2)] == [d.uid("ana"), d.uid("bob")]

    # A new runtime (a restart): the turn is in the database, not in a process.
    cid = await chat(h, d, "v2", run=False)
    other = create_runtime(h.runtime.settings)
    await other.start(with_worker=False)
    try:
        await Worker(other, other.jobs).drain(10)
    finally:
        await other.stop()
    assert await assignee(h, d, cid) == d.uid("cy")
    assert await assignee(h, d, await chat(h, d, "v3")) == d.uid("ana")
    async with h.runtime.uow() as uow:
        stored = await routing_service.get_queue(uow.session, d.ctx.account_id, queue["id"])
        assert stored is not None and stored.rr_cursor == d.uid("ana")
    # A full agent loses their turn; the cursor moves past them.
    await call(h, d.supervisor, "PUT", f"/api/v1/routing/agents/{d.uid('bob')}/capacity", json={"capacity": {"webchat": 1}})
    await h.run_jobs()
    assert await assignee(h, d, await chat(h, d, "v4")) == d.uid("cy")
    routed = await routing_of(h, d, await chat(h, d, "v5"))
    assert routed["decision"]["to"] == d.uid("ana") and routed["decision"]["strategy"] == "round_robin"
    assert routed["decision"]["explanation"] == "3 of 5 chats; next in turn"


async def test_sticky_prefers_the_customers_previous_agent_within_the_window(h: Harness) -> None:
    d = await make_desk(h)
    await add_queue(h, d, strategy="sticky", sticky_window_seconds=3600)
    await add_agent(h, d, "ana", capacity={"webchat": 5})
    await add_agent(h, d, "bob", capacity={"webchat": 5})
    first = await chat(h, d, "maria")
    assert await assignee(h, d, first) == d.uid("ana")
    await chat(h, d, "other")  # bob: 1 open, ana: 1 open
    await chat(h, d, "third")  # ana: 2 (longest idle), bob: 1
    clock.advance(timedelta(minutes=30))
    second = await chat(h, d, "maria")
    # Balanced would pick bob (fewest open); maria's previous agent is ana.
    assert await assignee(h, d, second) == d.uid("ana")
    decision = (await routing_of(h, d, second))["decision"]
    assert decision["strategy"] == "sticky"
    assert decision["explanation"] == "the customer's previous agent; 3 of 5 chats"

    # Outside the window: balanced, and the explanation says why.
    clock.advance(timedelta(hours=2))
    third = await chat(h, d, "maria")
    assert await assignee(h, d, third) == d.uid("bob")
    decision = (await routing_of(h, d, third))["decision"]
    assert (decision["strategy"], decision["explanation"]) == (
        "balanced", "2 of 5 chats; previous agent unavailable, balanced")


async def test_manual_queue_never_assigns(h: Harness) -> None:
    d = await make_desk(h)
    await add_queue(h, d, strategy="manual")
    await add_agent(h, d, "ana")
    cid = await chat(h, d)
    assert await assignee(h, d, cid) is None
    routing = await routing_of(h, d, cid)
    assert (routing["state"], routing["queue_name"]) == ("manual", "Support")
    assert await queued_jobs(h, ROUTE_JOB) == []
    # A supervisor's "route now" on a manual queue does not assign either.
    out = await call(h, d.supervisor, "POST", f"/api/v1/conversations/{cid}/route")
    assert out["state"] == "manual" and await assignee(h, d, cid) is None


async def test_conversations_no_queue_takes_are_left_alone(h: Harness) -> None:
    d = await make_desk(h)
    await add_queue(h, d, tags=["billing"])  # this inbox, and tagged billing
    await add_agent(h, d, "ana")
    cid = await chat(h, d)
    assert await assignee(h, d, cid) is None
    assert (await routing_of(h, d, cid))["state"] == "unqueued"
    # Tagging it brings it into the queue: routing runs again on the tag change.
    await call(h, d.ctx.admin, "POST", f"/api/v1/conversations/{cid}/tags", json={"add": ["billing"]})
    await h.run_jobs()
    assert await assignee(h, d, cid) == d.uid("ana")
    assert (await routing_of(h, d, cid))["decision"]["reason"] == "attributes_changed"


# --- relaxation over time --------------------------------------------------------------------------

async def test_relaxation_steps_are_taken_by_the_delayed_job(h: Harness) -> None:
    d = await make_desk(h)
    await add_skill(h, d, "billing", min_proficiency=4, inbox_ids=[d.inbox_id])
    await add_queue(h, d, relaxation=[{"after_seconds": 60, "min_proficiency": 2},
                                      {"after_seconds": 300, "any_agent_on_team": True}])
    await add_agent(h, d, "ana", skills={"billing": 2}, capacity={"webchat": 1})
    await add_agent(h, d, "bob", capacity={"webchat": 1})  # no billing at all
    await add_agent(h, d, "eve", skills={"billing": 5}, capacity={"webchat": 1}, team=False)  # not on the team

    cid = await chat(h, d, "v1")
    assert await assignee(h, d, cid) is None
    routing = await routing_of(h, d, cid)
    assert routing["state"] == "waiting" and routing["waiting_since"].startswith("2026-11-24T09:00:00")
    assert routing["requirements"] == [{"skill_id": d.skills["billing"], "name": "billing", "min_proficiency": 4,
                                        "source": "inbox"}]
    assert routing["decision"]["explanation"] == "nobody online with room has billing ≥ 4"
    # Nothing polls: one job waits for the first step's time.
    jobs = await queued_jobs(h, ROUTE_JOB)
    assert [(j.payload["conversation_id"], j.run_at) for j in jobs] == [(cid, T0 + timedelta(seconds=60))]

    await advance(h, 59)
    assert await assignee(h, d, cid) is None
    await advance(h, 1)
    assert await assignee(h, d, cid) == d.uid("ana")
    decision = (await routing_of(h, d, cid))["decision"]
    assert (decision["step"], decision["reason"]) == (1, "relaxation")
    assert decision["explanation"] == "billing 2, 1 of 1 chats (relaxed after 60 s: proficiency ≥ 2)"

    # The second chat: ana is full, bob has no billing; at 60 s still nobody, at 300 s anyone on the team.
    second = await chat(h, d, "v2")
    await advance(h, 60)
    assert await assignee(h, d, second) is None
    assert [j.run_at for j in await queued_jobs(h, ROUTE_JOB)] == [T0 + timedelta(seconds=60 + 300)]
    await advance(h, 239)
    assert await assignee(h, d, second) is None
    await advance(h, 1)
    assert await assignee(h, d, second) == d.uid("bob")
    decision = (await routing_of(h, d, second))["decision"]
    assert decision["step"] == 2
    assert decision["explanation"] == "no billing, 1 of 1 chats (relaxed after 300 s: any agent on the team)"
    assert await queued_jobs(h, ROUTE_JOB) == []


# --- capacity --------------------------------------------------------------------------------------

async def test_a_full_agent_gets_nothing_and_resolving_routes_the_longest_waiting(h: Harness) -> None:
    d = await make_desk(h)
    await add_queue(h, d)
    await add_agent(h, d, "ana", capacity={"webchat": 1, "default": 9})
    first = await chat(h, d, "v1")
    assert await assignee(h, d, first) == d.uid("ana")
    clock.advance(timedelta(seconds=5))
    second = await chat(h, d, "v2")
    clock.advance(timedelta(seconds=5))
    third = await chat(h, d, "v3")
    assert await assignee(h, d, second) is None and await assignee(h, d, third) is None
    routing = await routing_of(h, d, second)
    assert routing["decision"]["explanation"] == "everyone online is at capacity (1 online)"
    agents = {a["user_id"]: a for a in await call(h, d.ctx.admin, "GET", "/api/v1/routing/agents")}
    assert agents[d.uid("ana")]["load"] == {"webchat": 1}
    assert agents[d.uid("ana")]["capacity"] == {"default": 9, "webchat": 1}
    # Pending (waiting on the customer) does not count against capacity: the longest waiting goes next.
    await patch(h, d, first, {"status": "pending"})
    assert await assignee(h, d, second) == d.uid("ana") and await assignee(h, d, third) is None
    assert (await routing_of(h, d, second))["decision"]["reason"] == "capacity_freed"
    # Resolving frees it again.
    await patch(h, d, second, {"status": "resolved"})
    assert await assignee(h, d, third) == d.uid("ana")
    # Unassigning by hand puts it back through routing, to whoever has room (ana again: it was hers).
    await patch(h, d, third, {"assignee_id": None})
    assert await assignee(h, d, third) == d.uid("ana")
    assert [a.data["reason"] for a in await activities(h, third, "routed")] == ["capacity_freed", "unassigned"]


# --- priority lifts --------------------------------------------------------------------------------

async def test_waiting_conversations_are_served_highest_lift_then_longest_waiting(h: Harness) -> None:
    d = await make_desk(h)
    await add_queue(h, d)
    ana = await add_agent(h, d, "ana", capacity={"webchat": 1}, online=False)

    breaching: set[int] = set()

    async def sla_at_risk(session, conversation, now) -> bool:  # noqa: ANN001
        return conversation.id in breaching

    # (Stands in for the SLA domain's own provider, which is put back afterwards.)
    previous = dict(routing_service.lift_providers.items()).get("sla")
    routing_service.lift_providers.register("sla", sla_at_risk)
    try:
        plain = await chat(h, d, "plain")
        clock.advance(timedelta(seconds=1))
        vip = await chat(h, d, "vip")
        org = await call(h, d.ctx.admin, "POST", "/api/v1/organizations", 201,
                         json={"name": "Big Co", "custom_attributes": {"tier": "VIP"}})
        await call(h, d.ctx.admin, "PATCH", f"/api/v1/contacts/{d.visitors['vip']['contact_id']}",
                   json={"organization_id": org["id"]})
        clock.advance(timedelta(seconds=1))
        high = await chat(h, d, "high")
        clock.advance(timedelta(seconds=1))
        urgent = await chat(h, d, "urgent")
        clock.advance(timedelta(seconds=1))
        sla = await chat(h, d, "sla")
        breaching.add(sla)
        clock.advance(timedelta(seconds=1))
        older_plain = await chat(h, d, "plain-2")
        await patch(h, d, high, {"priority": "high"})
        await patch(h, d, urgent, {"priority": "urgent"})
        await patch(h, d, vip, {"subject": "VIP"})  # any routing-relevant change recomputes; subject is not one
        await patch(h, d, vip, {"custom_attributes": {"plan": "gold"}})  # this is: the lift is computed again
        await patch(h, d, sla, {"custom_attributes": {"x": 1}})
        lifts = {cid: (await routing_of(h, d, cid))["lift"] for cid in (plain, vip, high, urgent, sla, older_plain)}
        assert lifts == {plain: 0, vip: 40, high: 50, urgent: 100, sla: 80, older_plain: 0}

        served = []
        await set_presence(h, ana, "online")
        await h.run_jobs()
        for _ in range(6):
            mine = (await call(h, d.ctx.admin, "GET", "/api/v1/conversations",
                               params={"assignee_id": ana.user_id, "status": "open"}))["items"]
            assert len(mine) == 1
            served.append(mine[0]["id"])
            await patch(h, d, mine[0]["id"], {"status": "resolved"})
        assert served == [urgent, sla, high, vip, plain, older_plain]
        assert (await routing_of(h, d, urgent))["decision"]["lifts"] == ["urgent"]
    finally:
        routing_service.lift_providers.unregister("sla")
        if previous is not None:
            routing_service.lift_providers.register("sla", previous)


# --- re-routing ------------------------------------------------------------------------------------

async def test_an_agent_going_offline_has_their_open_conversations_rerouted(h: Harness) -> None:
    d = await make_desk(h)
    await add_queue(h, d)
    ana = await add_agent(h, d, "ana", capacity={"webchat": 2})
    first, second = await chat(h, d, "v1"), await chat(h, d, "v2")
    pending = await chat(h, d, "v3")
    await add_agent(h, d, "bob", capacity={"webchat": 1})
    await h.run_jobs()  # bob coming online serves the waiting one
    assert [await assignee(h, d, c) for c in (first, second)] == [d.uid("ana")] * 2
    assert await assignee(h, d, pending) == d.uid("bob")
    await patch(h, d, pending, {"status": "pending", "assignee_id": d.uid("ana")})  # not open: stays hers

    with h.capture_events() as events:
        await set_presence(h, ana, "offline")
        await h.run_jobs()
    # bob has room for one (the pending one he lost does not count): the other waits, unassigned.
    assert await assignee(h, d, first) == d.uid("bob")
    assert await assignee(h, d, second) is None
    assert await assignee(h, d, pending) == d.uid("ana")
    initial, routed = await activities(h, first, "routed")
    assert (initial.data["to"], initial.data["reason"], routed.data["to"]) == (d.uid("ana"), "new", d.uid("bob"))
    assert routed.data["explanation"] == "1 of 1 chats; rerouted: Ana went offline"
    assert routed.data["reason"] == "agent_offline"
    assert (await routing_of(h, d, second))["state"] == "waiting"
    kinds = [e.type for e in events]
    assert kinds.count("routing.presence_changed") == 1 and kinds.count("conversation.routed") == 1
    (rerouted,) = [e for e in events if e.type == "conversation.routed"]
    assert (rerouted.conversation_id, rerouted.assignee_id, rerouted.previous_assignee_id, rerouted.reason) == (
        first, d.uid("bob"), ana.user_id, "agent_offline")
    # Both the agent it left and the one it went to hear of it.
    assert set(rerouted.audience.user_ids) == {ana.user_id, d.uid("bob")}
    (queued,) = [e for e in events if e.type == "conversation.queued"]
    assert (queued.conversation_id, queued.why) == (second, "everyone online is at capacity (1 online)")
    assert ana.user_id in queued.audience.user_ids

    # ana back: the waiting one is served (she is online again, with room).
    await set_presence(h, ana, "online")
    await h.run_jobs()
    assert await assignee(h, d, second) == d.uid("ana")


async def test_away_keeps_conversations_but_takes_nothing_new(h: Harness) -> None:
    d = await make_desk(h)
    await add_queue(h, d)
    ana = await add_agent(h, d, "ana")
    first = await chat(h, d, "v1")
    await set_presence(h, ana, "away")
    await h.run_jobs()
    second = await chat(h, d, "v2")
    assert (await assignee(h, d, first), await assignee(h, d, second)) == (d.uid("ana"), None)
    assert (await routing_of(h, d, second))["decision"]["explanation"] == "nobody who serves this queue is online"


# --- the explanation, events and activity ------------------------------------------------------------

async def test_the_decision_is_explained_evented_and_logged(h: Harness) -> None:
    d = await make_desk(h)
    await add_skill(h, d, "billing", min_proficiency=3, tags=["billing"])
    await add_skill(h, d, "Spanish", min_proficiency=4, languages=["es"])
    queue = await add_queue(h, d)
    ana = await add_agent(h, d, "ana", skills={"billing": 4, "Spanish": 5}, capacity={"webchat": 3})
    await add_agent(h, d, "bob", skills={"billing": 5}, capacity={"webchat": 3})
    await chat(h, d, "warmup")  # ana gets it (lowest id): 1 of 3
    await set_presence(h, ana, "away")
    cid = await chat(h, d, "maria")  # bob: no Spanish needed yet
    assert await assignee(h, d, cid) == d.uid("bob")
    await set_presence(h, ana, "online")

    # A Spanish speaker tagged billing, from a contact whose language is "es-MX".
    v = await visitor(h, d, "lucia")
    await call(h, d.ctx.admin, "PATCH", f"/api/v1/contacts/{v['contact_id']}",
               json={"custom_attributes": {"language": "es-MX"}})
    cid = await chat(h, d, "lucia", run=False)
    await call(h, d.ctx.admin, "POST", f"/api/v1/conversations/{cid}/tags", json={"add": ["billing"]})
    with h.capture_events() as events:
        await h.run_jobs()
    assert await assignee(h, d, cid) == d.uid("ana")
    routed = [e for e in events if e.type == "conversation.routed"]
    assert len(routed) == 1
    e = routed[0]
    assert e.model_dump(include={"conversation_id", "assignee_id", "previous_assignee_id", "queue_id", "strategy",
                                 "step", "lift", "explanation"}) == {
        "conversation_id": cid, "assignee_id": ana.user_id, "previous_assignee_id": None, "queue_id": queue["id"],
        "strategy": "balanced", "step": 0, "lift": 0, "explanation": "billing 4, Spanish 5, 2 of 3 chats"}
    # Two triggers were queued before the jobs ran (the new conversation and its new tag); the worker
    # runs them concurrently and whichever locks the conversation first decides, once.
    assert e.reason in ("new", "attributes_changed")
    # The conversation had no team: every agent saw it, and now the Support team and ana too.
    assert e.audience == Audience(roles=("admin", "supervisor"), all_agents=True, user_ids=(ana.user_id,))
    # The decision, then the assignment itself by Swarmdesk (the system actor), with its notification.
    assert [x.type for x in events] == ["conversation.routed", "conversation.assigned", "notification.created"]
    assigned = next(x for x in events if x.type == "conversation.assigned")
    assert (assigned.conversation.assignee_id, assigned.conversation.team_id) == (ana.user_id, d.team)

    (activity,) = await activities(h, cid, "routed")
    assert (activity.actor_type, activity.actor_id) == ("system", None)
    assert activity.data["to"] == ana.user_id and activity.data["explanation"] == "billing 4, Spanish 5, 2 of 3 chats"
    assert (activity.data["strategy"], activity.data["step"], activity.data["queue_id"]) == ("balanced", 0, queue["id"])
    (assigned_activity,) = await activities(h, cid, "assigned")
    assert (assigned_activity.actor_type, assigned_activity.data) == ("system", {"from": None, "to": ana.user_id})
    routing = await routing_of(h, d, cid)
    assert {(r["name"], r["min_proficiency"], r["source"]) for r in routing["requirements"]} == {
        ("billing", 3, "tag"), ("Spanish", 4, "language")}


async def test_queued_event_and_activity_when_nobody_qualifies(h: Harness) -> None:
    d = await make_desk(h)
    queue = await add_queue(h, d, relaxation=[{"after_seconds": 120, "any_agent_on_team": True}])
    cid = await chat(h, d, run=False)
    with h.capture_events() as events:
        await h.run_jobs()
    (queued,) = [e for e in events if e.type == "conversation.queued"]
    assert (queued.conversation_id, queued.queue_id, queued.queue_name, queued.lift, queued.why,
            queued.next_attempt_at) == (cid, queue["id"], "Support", 0, "nobody who serves this queue is online",
                                        T0 + timedelta(seconds=120))
    assert queued.audience == Audience(roles=("admin", "supervisor"), all_agents=True)
    (activity,) = await activities(h, cid, "queued")
    assert activity.data == {"queue_id": queue["id"], "queue": "Support", "why": "nobody who serves this queue is online"}
    # Routing again while it waits adds no second entry.
    await advance(h, 120)
    assert len(await activities(h, cid, "queued")) == 1


async def test_route_now_and_required_skills(h: Harness) -> None:
    d = await make_desk(h)
    await add_skill(h, d, "refunds")
    await add_queue(h, d)
    cid = await chat(h, d)
    await add_agent(h, d, "ana", skills={"refunds": 2})
    await add_agent(h, d, "bob", skills={"refunds": 5}, online=False)
    await h.run_jobs()  # ana online: she would get it, but...
    await patch(h, d, cid, {"assignee_id": None}, run=False)
    # A rule requires refunds ≥ 4 of whoever takes it (automation calls the same action).
    out = await call(h, d.supervisor, "PUT", f"/api/v1/conversations/{cid}/routing/skills",
                     json={"skills": [{"skill_id": d.skills["refunds"], "min_proficiency": 4}]})
    assert out["requirements"] == [{"skill_id": d.skills["refunds"], "name": "refunds", "min_proficiency": 4,
                                    "source": "rule"}]
    (changed,) = await activities(h, cid, "required_skills_changed")
    assert changed.data == {"skills": [{"skill_id": d.skills["refunds"], "min_proficiency": 4}]}
    await h.run_jobs()
    assert await assignee(h, d, cid) is None
    await set_presence(h, d.agents["bob"], "online")
    out = await call(h, d.supervisor, "POST", f"/api/v1/conversations/{cid}/route")
    assert out["state"] == "assigned" and out["decision"]["to"] == d.uid("bob")
    assert out["decision"]["reason"] == "requested" and out["decision"]["explanation"] == "refunds 5, 1 of 5 chats"
    # Already assigned: 409.
    r = await h.client.post(f"/api/v1/conversations/{cid}/route", headers=d.supervisor.headers)
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")


async def test_activity_entries_are_ordered_with_the_assignment(h: Harness) -> None:
    d = await make_desk(h)
    await add_queue(h, d)
    await add_agent(h, d, "ana")
    cid = await chat(h, d)
    async with h.runtime.uow() as uow:
        verbs = list((await uow.session.scalars(select(Activity.verb).where(Activity.conversation_id == cid)
                                                .order_by(Activity.id))).all())
    assert verbs == ["created", "routed", "assigned", "team_changed"]


async def test_automation_sets_required_skills_as_the_system(h: Harness) -> None:
    """What an automation rule's action does: the same action, as Swarmdesk, with plain dicts."""
    d = await make_desk(h)
    await add_skill(h, d, "refunds")
    await add_queue(h, d)
    cid = await chat(h, d)  # nobody online: it waits
    async with h.runtime.uow() as uow:
        conversation = await uow.session.get(Conversation, cid)
        required = await routing_actions.do_set_required_skills(
            uow, StaffPrincipal.system(d.ctx.account_id, "Automation"), conversation,
            [{"skill_id": d.skills["refunds"], "min_proficiency": 3}])
    assert required == [{"skill_id": d.skills["refunds"], "min_proficiency": 3}]
    (changed,) = await activities(h, cid, "required_skills_changed")
    assert (changed.actor_type, changed.actor_id) == ("system", None)
    async with h.runtime.uow() as uow:
        conversation = await uow.session.get(Conversation, cid)
        with pytest.raises(ValidationFailed):
            await routing_actions.do_set_required_skills(
                uow, StaffPrincipal.system(d.ctx.account_id), conversation, [{"skill_id": 999999, "min_proficiency": 3}])
        with pytest.raises(ValidationFailed):
            await routing_actions.do_set_required_skills(
                uow, StaffPrincipal.system(d.ctx.account_id), conversation,
                [{"skill_id": d.skills["refunds"], "min_proficiency": 9}])
    await add_agent(h, d, "ana", skills={"refunds": 2})
    await add_agent(h, d, "bob", skills={"refunds": 3})
    await h.run_jobs()
    assert await assignee(h, d, cid) == d.uid("bob")
    assert (await routing_of(h, d, cid))["decision"]["explanation"] == "refunds 3, 1 of 5 chats"


async def test_a_deactivated_agent_is_taken_offline_and_their_conversations_rerouted(h: Harness) -> None:
    d = await make_desk(h)
    await add_queue(h, d)
    ana = await add_agent(h, d, "ana")
    cid = await chat(h, d)
    await add_agent(h, d, "bob")
    with h.capture_events() as events:
        await call(h, d.ctx.admin, "PATCH", f"/api/v1/users/{ana.user_id}", json={"is_active": False})
        await h.run_jobs()
    presence = next(e for e in events if e.type == "routing.presence_changed")
    assert (presence.user_id, presence.status, presence.reason) == (ana.user_id, "offline", "deactivated")
    assert presence.audience == Audience(roles=("admin", "supervisor"), all_agents=True)
    assert await assignee(h, d, cid) == d.uid("bob")
    assert (await routing_of(h, d, cid))["decision"]["reason"] == "agent_offline"


async def test_settings_changes_reach_the_next_decision(h: Harness) -> None:
    """Queues, skills and agents are cached per process; each change is seen by the next decision."""
    d = await make_desk(h)
    skill = await add_skill(h, d, "billing", min_proficiency=2, inbox_ids=[d.inbox_id])
    queue = await add_queue(h, d)
    await add_agent(h, d, "ana", skills={"billing": 3})
    assert await assignee(h, d, await chat(h, d, "v1")) == d.uid("ana")
    await call(h, d.supervisor, "PATCH", f"/api/v1/routing/skills/{skill}", json={"min_proficiency": 4})
    cid = await chat(h, d, "v2")
    assert await assignee(h, d, cid) is None
    assert (await routing_of(h, d, cid))["decision"]["explanation"] == "nobody online with room has billing ≥ 4"
    await call(h, d.supervisor, "PATCH", f"/api/v1/routing/skills/{skill}", json={"min_proficiency": 3})
    await h.run_jobs()  # a skill change serves the queues' waiting lists again
    assert await assignee(h, d, cid) == d.uid("ana")
    assert (await routing_of(h, d, cid))["decision"]["reason"] == "skill_changed"
    await call(h, d.supervisor, "PATCH", f"/api/v1/routing/queues/{queue['id']}", json={"strategy": "manual"})
    cid = await chat(h, d, "v3")
    assert await assignee(h, d, cid) is None and (await routing_of(h, d, cid))["state"] == "manual"
    await call(h, d.supervisor, "DELETE", f"/api/v1/routing/queues/{queue['id']}", 204)
    cid = await chat(h, d, "v4")
    assert (await routing_of(h, d, cid))["state"] == "unqueued"
