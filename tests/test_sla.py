"""SLAs end to end, through the API and the real job worker: deadlines across business hours,
weekends, holidays and DST; pause and resume while pending; next-response cycles; policy
matching; warnings and breaches exactly once (across a simulated restart, duplicated jobs and two
workers at once); stale jobs; the safety sweep; the inbox filter; events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from sqlalchemy import delete, func, select

from swarmdesk.accounts.models import Role
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.channels.base import InboundMessage
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations import actions as conversations_actions
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Activity, Conversation, Message
from swarmdesk.conversations.schemas import MessageCreate
from swarmdesk.core.clock import clock
from swarmdesk.core.storage import AttachmentStore
from swarmdesk.events.base import Audience, BaseEvent
from swarmdesk.jobs.models import Job, JobStatus
from swarmdesk.jobs.worker import Worker
from swarmdesk.notifications.models import Notification
from swarmdesk.routing.service import lift_providers
from swarmdesk.runtime import Runtime, create_runtime
from swarmdesk.sla import actions as sla_actions
from swarmdesk.sla import service as sla_service
from swarmdesk.sla.models import SlaAlert
from swarmdesk.sla.schemas import SlaState
from tests.support import AccountCtx, ApiInbox, Harness, Receiver, Staff, inbound_payload, sign

BERLIN = ZoneInfo("Europe/Berlin")
DAY = [{"start": "09:00", "end": "17:00"}]
OFFICE = {"mon": DAY, "tue": DAY, "wed": DAY, "thu": DAY, "fri": DAY}
HOLIDAYS = [{"date": "2026-12-24", "name": "Christmas Eve", "start": "12:00", "end": "24:00"},
            {"date": "2026-12-25", "name": "Christmas"}]


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


def at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def staff(*, team: int | None = None, users: tuple[int, ...] = ()) -> Audience:
    if team is None:
        return Audience(roles=("admin", "supervisor"), all_agents=True, user_ids=users)
    return Audience(roles=("admin", "supervisor"), team_ids=(team,), user_ids=users)


def sla_events(events: list[BaseEvent]) -> list[BaseEvent]:
    return [e for e in events if e.type.startswith("sla.") or e.type.startswith("notification.")]


@contextlib.contextmanager
def spy(runtime: Runtime) -> Iterator[list[BaseEvent]]:
    """Every event a runtime publishes after commit while the block runs (any runtime, unlike
    Harness.capture_events)."""
    captured: list[BaseEvent] = []
    original = runtime.bus.publish

    async def publish(events):  # noqa: ANN001, ANN202
        captured.extend(events)
        await original(events)

    runtime.bus.publish = publish  # type: ignore[method-assign]
    try:
        yield captured
    finally:
        runtime.bus.publish = original  # type: ignore[method-assign]


# --- API helpers --------------------------------------------------------------------------------

async def setup(h: Harness, start: datetime) -> tuple[AccountCtx, ApiInbox]:
    clock.freeze(start)
    ctx = await h.make_account()
    return ctx, await h.make_api_inbox(ctx)


async def make_calendar(h: Harness, ctx: AccountCtx, **body: Any) -> int:
    r = await h.client.post("/api/v1/sla/calendars", headers=ctx.admin.headers, json={
        "name": "Berlin office", "time_zone": "Europe/Berlin", "hours": OFFICE, "holidays": HOLIDAYS, **body})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def make_policy(h: Harness, ctx: AccountCtx, **body: Any) -> dict:
    r = await h.client.post("/api/v1/sla/policies", headers=ctx.admin.headers, json={"name": "Default", **body})
    assert r.status_code == 201, r.text
    await h.run_jobs()
    return r.json()


async def customer_writes(h: Harness, inbox: ApiInbox, source_id: str = "cust-1", content: str = "Help!") -> int:
    body = orjson.dumps(inbound_payload(source_id=source_id, content=content))
    r = await h.client.post(inbox.webhook_path, content=body, headers=sign(inbox.secret, body, at=clock.now()))
    assert r.status_code == 200, r.text
    await h.run_jobs()
    return r.json()["conversation_id"]


async def reply(h: Harness, who: Staff, cid: int, content: str = "On it", private: bool = False) -> None:
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=who.headers,
                            json={"content": content, "private": private})
    assert r.status_code == 201, r.text
    await h.run_jobs()


async def patch(h: Harness, ctx: AccountCtx, cid: int, body: dict) -> None:
    r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=ctx.admin.headers, json=body)
    assert r.status_code == 200, r.text
    await h.run_jobs()


async def sla(h: Harness, who: Staff, cid: int) -> dict:
    r = await h.client.get(f"/api/v1/conversations/{cid}/sla", headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()


def target(body: dict, name: str) -> dict:
    (found,) = [t for t in body["targets"] if t["target"] == name]
    return found


async def move_to(h: Harness, moment: datetime) -> None:
    clock.freeze(moment)
    await h.run_jobs()


async def count(h: Harness, model: type, *where: Any) -> int:
    async with h.runtime.uow() as uow:
        return await uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


# --- calculation ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "due"), [
    pytest.param(berlin(2026, 11, 25, 10, 0), berlin(2026, 11, 25, 12, 0), id="business-hours"),
    pytest.param(berlin(2026, 11, 25, 16, 0), berlin(2026, 11, 26, 10, 0), id="overnight"),
    pytest.param(berlin(2026, 11, 27, 16, 0), berlin(2026, 11, 30, 10, 0), id="weekend"),
    pytest.param(berlin(2026, 12, 24, 11, 0), berlin(2026, 12, 28, 10, 0), id="holiday"),
    pytest.param(berlin(2026, 3, 27, 16, 0), berlin(2026, 3, 30, 10, 0), id="dst-spring-forward"),
    pytest.param(berlin(2026, 10, 23, 16, 30), berlin(2026, 10, 26, 10, 30), id="dst-fall-back"),
])
async def test_first_response_due_in_business_time(h: Harness, written: datetime, due: datetime) -> None:
    ctx, inbox = await setup(h, written)
    calendar = await make_calendar(h, ctx)
    policy = await make_policy(h, ctx, calendar_id=calendar, first_response_minutes=120)
    cid = await customer_writes(h, inbox)
    body = await sla(h, ctx.admin, cid)
    assert (body["state"], body["policy_id"], body["policy_name"], at(body["next_due_at"])) == (
        "ok", policy["id"], "Default", due)
    fr = target(body, "first_response")
    assert (fr["state"], fr["minutes"], at(fr["started_at"]), at(fr["due_at"]), fr["met_at"], fr["breached"]) == (
        "ok", 120, written, due, None, False)
    # The warning comes 80 % of the way, in business time.
    async with h.runtime.uow() as uow:
        cal = sla_service.compile_calendar(await sla_service.get_calendar(uow.session, ctx.account_id, calendar))
    assert at(fr["warn_at"]) == cal.add(written, 96)
    # A person's reply meets it.
    clock.advance(timedelta(minutes=1))
    await reply(h, ctx.admin, cid)
    body = await sla(h, ctx.admin, cid)
    fr = target(body, "first_response")
    assert (body["state"], at(fr["met_at"]), fr["state"], fr["breached"], body["next_due_at"]) == (
        "met", clock.now(), "met", False, None)


# --- warnings and breaches, exactly once ---------------------------------------------------------

async def test_warning_then_breach_exactly_once_across_a_restart(h: Harness) -> None:
    t0 = berlin(2026, 11, 25, 10, 0)
    ctx, inbox = await setup(h, t0)
    agent = await h.make_user(ctx, "agent")
    policy = await make_policy(h, ctx, name="Standard", first_response_minutes=60)  # 24/7, warns at 80 %
    cid = await customer_writes(h, inbox)
    await patch(h, ctx, cid, {"assignee_id": agent.user_id})

    with h.capture_events() as events:
        await move_to(h, t0 + timedelta(minutes=47, seconds=59))
    assert sla_events(events) == []

    with h.capture_events() as events:
        await move_to(h, t0 + timedelta(minutes=48))
    assert [e.type for e in sla_events(events)] == ["sla.warning", "notification.created"]
    warning, notification = sla_events(events)
    assert warning.audience == staff(users=(agent.user_id,))
    assert (warning.conversation.id, warning.target, warning.due_at, warning.minutes_left, warning.policy_id,
            warning.policy_name) == (cid, "first_response", t0 + timedelta(minutes=60), 12, policy["id"], "Standard")
    assert (warning.sla.state, warning.sla.next_due_at) == (SlaState.warning, t0 + timedelta(minutes=60))
    assert notification.audience == Audience(user_ids=(agent.user_id,))
    assert (notification.notification.kind, notification.notification.conversation_id,
            notification.notification.actor_name, notification.notification.snippet) == (
        "sla_warning", cid, "Standard", "First response due in 12 min")
    assert (await sla(h, agent, cid))["state"] == "warning"

    with h.capture_events() as events:
        await move_to(h, t0 + timedelta(minutes=60))
    assert [e.type for e in sla_events(events)] == ["sla.breached"]
    (breach,) = sla_events(events)
    assert breach.audience == staff(users=(agent.user_id,))
    assert (breach.conversation.id, breach.target, breach.due_at, breach.policy_id, breach.sla.state) == (
        cid, "first_response", t0 + timedelta(minutes=60), policy["id"], SlaState.breached)
    r = await h.client.get(f"/api/v1/conversations/{cid}/activity", headers=ctx.admin.headers)
    (activity,) = [a for a in r.json()["items"] if a["verb"] == "sla_breached"]
    assert (activity["actor_type"], activity["actor_id"], activity["data"]) == (
        "system", None, {"target": "first_response", "due_at": (t0 + timedelta(minutes=60)).isoformat(),
                         "policy_id": policy["id"], "policy_name": "Standard"})
    body = await sla(h, agent, cid)
    assert (body["state"], target(body, "first_response")["breached"]) == ("breached", True)

    # A restart: a second runtime and worker find every deadline job queued again (as after a crash
    # between a job's effect and its completion), plus a duplicate of each; both workers drain, and
    # two evaluations run at the same moment. Nothing happens twice.
    clock.advance(timedelta(minutes=5))
    async with h.runtime.uow() as uow:
        jobs = (await uow.session.scalars(select(Job).where(Job.kind == sla_actions.DEADLINE_JOB))).all()
        assert len(jobs) == 2 and all(j.status == JobStatus.done for j in jobs)
        for job in jobs:
            job.status, job.run_at, job.attempts, job.locked_until, job.finished_at = (
                JobStatus.queued, clock.now(), 0, None, None)
            uow.session.add(Job(kind=job.kind, payload=dict(job.payload), account_id=job.account_id,
                                run_at=clock.now(), created_at=clock.now(), status=JobStatus.queued, attempts=0,
                                max_attempts=8))
        await uow.session.commit()
    second = create_runtime(h.runtime.settings)
    await second.start(with_worker=False)
    try:
        with spy(h.runtime) as first_events, spy(second) as second_events:
            await asyncio.gather(Worker(second, second.jobs).drain(), h.worker.drain())

            async def evaluate(runtime: Runtime) -> list:
                async with runtime.uow() as uow:
                    return await sla_actions.do_evaluate_sla(uow, cid)

            assert await asyncio.gather(evaluate(h.runtime), evaluate(second)) == [[], []]
        assert sla_events(first_events + second_events) == []
    finally:
        await second.stop()
    assert await count(h, Job, Job.kind == sla_actions.DEADLINE_JOB, Job.status == JobStatus.done) == 4
    assert await count(h, SlaAlert, SlaAlert.conversation_id == cid) == 2
    assert await count(h, Notification, Notification.conversation_id == cid, Notification.kind == "sla_warning") == 1
    assert await count(h, Activity, Activity.conversation_id == cid, Activity.verb == "sla_breached") == 1


async def test_warnings_and_breaches_reach_webhook_subscribers(h: Harness) -> None:
    t0 = berlin(2026, 11, 25, 10, 0)
    ctx, inbox = await setup(h, t0)
    await h.allowlist_loopback(ctx)
    async with Receiver().running() as receiver:
        r = await h.client.post("/api/v1/webhooks", headers=ctx.admin.headers,
                                json={"url": receiver.url, "event_types": ["sla.warning", "sla.breached"]})
        assert r.status_code == 201, r.text
        await make_policy(h, ctx, name="Standard", first_response_minutes=60)
        cid = await customer_writes(h, inbox)
        await move_to(h, t0 + timedelta(minutes=48))
        await move_to(h, t0 + timedelta(minutes=60))
        bodies = [request.json() for request in receiver.requests]
    assert [(b["type"], b["conversation"]["id"], b["target"], b["policy_name"]) for b in bodies] == [
        ("sla.warning", cid, "first_response", "Standard"), ("sla.breached", cid, "first_response", "Standard")]
    assert bodies[0]["minutes_left"] == 12 and "audience" not in bodies[0]


async def test_a_stale_job_after_the_deadline_moved_does_nothing(h: Harness) -> None:
    t0 = berlin(2026, 11, 25, 10, 0)
    ctx, inbox = await setup(h, t0)
    urgent = await make_policy(h, ctx, name="Urgent", first_response_minutes=30, conditions={"priorities": ["urgent"]})
    default = await make_policy(h, ctx, name="Default", first_response_minutes=120)
    cid = await customer_writes(h, inbox)
    assert (await sla(h, ctx.admin, cid))["policy_id"] == default["id"]
    await patch(h, ctx, cid, {"priority": "urgent"})
    body = await sla(h, ctx.admin, cid)
    assert (body["policy_id"], at(body["next_due_at"])) == (urgent["id"], t0 + timedelta(minutes=30))

    clock.freeze(t0 + timedelta(minutes=10))
    await patch(h, ctx, cid, {"priority": "low"})
    body = await sla(h, ctx.admin, cid)
    assert (body["policy_id"], at(body["next_due_at"])) == (default["id"], t0 + timedelta(minutes=120))

    # The jobs for the urgent policy's warning (t0+24) and deadline (t0+30) run, and do nothing.
    with h.capture_events() as events:
        await move_to(h, t0 + timedelta(minutes=31))
    assert sla_events(events) == []
    async with h.runtime.uow() as uow:
        ran = (await uow.session.scalars(select(Job.payload).where(
            Job.kind == sla_actions.DEADLINE_JOB, Job.status == JobStatus.done))).all()
    assert sorted((p["kind"], p["at"]) for p in ran) == [
        ("breach", (t0 + timedelta(minutes=30)).isoformat()), ("warning", (t0 + timedelta(minutes=24)).isoformat())]
    assert await count(h, SlaAlert) == 0
    assert (await sla(h, ctx.admin, cid))["state"] == "ok"

    with h.capture_events() as events:
        await move_to(h, t0 + timedelta(minutes=96))
        await move_to(h, t0 + timedelta(minutes=120))
    assert [(e.type, e.policy_id) for e in sla_events(events)] == [
        ("sla.warning", default["id"]), ("sla.breached", default["id"])]


async def test_the_sweep_catches_lost_jobs_once_and_a_late_warning_gives_way_to_the_breach(h: Harness) -> None:
    t0 = berlin(2026, 11, 25, 10, 0)
    ctx, inbox = await setup(h, t0)
    await make_policy(h, ctx, first_response_minutes=60)
    cid = await customer_writes(h, inbox)
    async with h.runtime.uow() as uow:  # the deadline jobs are lost (deleted by hand, say)
        await uow.session.execute(delete(Job).where(Job.kind == sla_actions.DEADLINE_JOB))
        await uow.session.commit()
    with h.capture_events() as events:
        await move_to(h, t0 + timedelta(minutes=90))  # the sweep job, due every 5 minutes, runs
    assert [(e.type, e.target) for e in sla_events(events)] == [("sla.breached", "first_response")]
    async with h.runtime.uow() as uow:
        alerts = await sla_service.alerts_for(uow.session, cid)
        assert sorted((a.target, a.kind, a.suppressed) for a in alerts) == [
            ("first_response", "breach", False), ("first_response", "warning", True)]
        assert await sla_actions.do_sweep_sla(uow, grace=timedelta()) == 0
    # The sweep keeps exactly one successor queued.
    assert await count(h, Job, Job.kind == sla_actions.SWEEP_JOB, Job.status == JobStatus.queued) == 1
    with h.capture_events() as events:
        await move_to(h, t0 + timedelta(minutes=200))
    assert sla_events(events) == []


# --- pause, resume, next response -------------------------------------------------------------------

async def test_pending_pauses_and_the_customers_reply_resumes(h: Harness) -> None:
    t0 = berlin(2026, 11, 25, 10, 0)  # Wednesday
    ctx, inbox = await setup(h, t0)
    calendar = await make_calendar(h, ctx)
    await make_policy(h, ctx, calendar_id=calendar, first_response_minutes=60, next_response_minutes=30,
                      resolution_minutes=240)
    cid = await customer_writes(h, inbox)
    body = await sla(h, ctx.admin, cid)
    assert at(target(body, "resolution")["due_at"]) == berlin(2026, 11, 25, 14, 0)

    clock.freeze(berlin(2026, 11, 25, 10, 30))
    await reply(h, ctx.admin, cid, "Could you send the order number?")
    with h.capture_events() as events:
        await patch(h, ctx, cid, {"status": "pending"})
    body = await sla(h, ctx.admin, cid)
    assert (body["state"], at(body["paused_since"]), body["next_due_at"]) == ("paused", clock.now(), None)
    assert [(t["target"], t["state"], at(t["due_at"])) for t in body["targets"]] == [
        ("first_response", "met", berlin(2026, 11, 25, 11, 0)), ("resolution", "paused", None)]
    (updated,) = [e for e in sla_events(events) if e.type == "sla.updated"]
    assert (updated.audience, updated.conversation_id, updated.sla.state) == (staff(), cid, SlaState.paused)

    # The old resolution deadline passes while paused: nothing happens.
    with h.capture_events() as events:
        await move_to(h, berlin(2026, 11, 25, 14, 30))
    assert sla_events(events) == []

    # Thursday 10:00 the customer answers: 3.5 business hours were left -> 13:30; the next response
    # is due in 30 business minutes.
    clock.freeze(berlin(2026, 11, 26, 10, 0))
    await customer_writes(h, inbox, content="It's 4711")
    body = await sla(h, ctx.admin, cid)
    assert (body["state"], body["paused_since"], at(body["next_due_at"])) == ("ok", None, berlin(2026, 11, 26, 10, 30))
    assert at(target(body, "resolution")["due_at"]) == berlin(2026, 11, 26, 13, 30)
    assert at(target(body, "next_response")["started_at"]) == clock.now()

    # The worker comes by only at 10:30: past the warning (10:24) and the deadline, only the breach is told.
    with h.capture_events() as events:
        await move_to(h, berlin(2026, 11, 26, 10, 30))
    assert [(e.type, e.target) for e in sla_events(events)] == [("sla.breached", "next_response")]

    # Resolving meets the resolution target.
    clock.freeze(berlin(2026, 11, 26, 11, 0))
    await patch(h, ctx, cid, {"status": "resolved"})
    body = await sla(h, ctx.admin, cid)
    assert (body["state"], target(body, "resolution")["state"], at(target(body, "resolution")["met_at"])) == (
        "met", "met", clock.now())


async def test_next_response_cycles_and_what_is_not_a_response(h: Harness) -> None:
    t0 = berlin(2026, 11, 25, 10, 0)
    ctx, inbox = await setup(h, t0)
    await make_policy(h, ctx, first_response_minutes=60, next_response_minutes=30, warn_percent=None)
    cid = await customer_writes(h, inbox)
    clock.freeze(t0 + timedelta(minutes=5))
    await reply(h, ctx.admin, cid)
    body = await sla(h, ctx.admin, cid)
    assert (body["state"], [t["target"] for t in body["targets"]]) == ("met", ["first_response"])

    clock.freeze(t0 + timedelta(minutes=10))
    with h.capture_events() as events:
        await customer_writes(h, inbox, content="And another thing")
    (updated,) = [e for e in sla_events(events)]
    assert (updated.type, updated.audience, updated.conversation_id, updated.sla.state, updated.sla.next_due_at) == (
        "sla.updated", staff(), cid, SlaState.ok, t0 + timedelta(minutes=40))
    # Swarmdesk's own replies, internal notes and an out-of-office mail from the customer change nothing.
    clock.freeze(t0 + timedelta(minutes=12))
    async with h.runtime.uow() as uow:
        conversation = await conversations_service.get_by_id(uow.session, ctx.account_id, cid)
        await conversations_actions.do_send_message(uow, StaffPrincipal.system(ctx.account_id), conversation,
                                                    MessageCreate(content="We received your message."),
                                                    store=None, max_attachment_bytes=1)  # type: ignore[arg-type]
    await reply(h, ctx.admin, cid, "note to self", private=True)
    async with h.runtime.uow() as uow:
        conversation = await conversations_service.get_by_id(uow.session, ctx.account_id, cid)
        inbox_row = await uow.session.get(Inbox, inbox.id)
        contact = await uow.session.get(Contact, conversation.contact_id)
        await conversations_actions.receive_message(
            uow, inbox_row, contact, InboundMessage(external_id=None, content="I am out of office", automatic=True),
            store=AttachmentStore(h.runtime.settings.attachments_dir), conversation=conversation)
        await uow.commit()
    await h.run_jobs()
    body = await sla(h, ctx.admin, cid)
    nr = target(body, "next_response")
    assert (body["state"], nr["state"], at(nr["started_at"]), at(nr["due_at"])) == (
        "ok", "ok", t0 + timedelta(minutes=10), t0 + timedelta(minutes=40))

    clock.freeze(t0 + timedelta(minutes=20))
    await reply(h, ctx.admin, cid)
    nr = target(await sla(h, ctx.admin, cid), "next_response")
    assert (nr["state"], at(nr["met_at"]), nr["breached"]) == ("met", clock.now(), False)

    clock.freeze(t0 + timedelta(minutes=30))
    await customer_writes(h, inbox, content="Still there?")
    async with h.runtime.uow() as uow:
        cycle = await uow.session.scalar(select(func.max(Message.id)))
    with h.capture_events() as events:
        await move_to(h, t0 + timedelta(minutes=60))
    assert [(e.type, e.target) for e in sla_events(events)] == [("sla.breached", "next_response")]
    async with h.runtime.uow() as uow:
        alerts = await sla_service.alerts_for(uow.session, cid)
    assert [(a.target, a.cycle, a.kind) for a in alerts] == [("next_response", cycle, "breach")]


# --- policy matching -----------------------------------------------------------------------------

async def test_policy_matching_first_match_wins_and_changes_re_evaluate(h: Harness) -> None:
    ctx, inbox = await setup(h, berlin(2026, 11, 25, 10, 0))
    other_inbox = await h.make_api_inbox(ctx)
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                            json={"name": "Chat", "channel_kind": "webchat", "config": {}})
    assert r.status_code == 201, r.text
    vip = await make_policy(h, ctx, name="VIP", first_response_minutes=15, conditions={"tiers": ["Gold"]})
    await make_policy(h, ctx, name="Off", enabled=False, first_response_minutes=1)
    urgent = await make_policy(h, ctx, name="Urgent", first_response_minutes=30,
                               conditions={"priorities": ["urgent", "high"]})
    chat = await make_policy(h, ctx, name="Chat", first_response_minutes=5, conditions={"channels": ["webchat"]})
    other = await make_policy(h, ctx, name="Other inbox", first_response_minutes=45,
                              conditions={"inbox_ids": [other_inbox.id]})
    assert chat["conditions"] == {"priorities": [], "channels": ["webchat"], "inbox_ids": [], "tiers": []}
    assert vip["conditions"]["tiers"] == ["gold"]

    plain = await customer_writes(h, inbox, "plain")
    elsewhere = await customer_writes(h, other_inbox, "elsewhere")
    assert (await sla(h, ctx.admin, plain))["state"] == "none"  # no policy matches
    assert (await sla(h, ctx.admin, elsewhere))["policy_id"] == other["id"]

    await patch(h, ctx, plain, {"priority": "high"})
    assert (await sla(h, ctx.admin, plain))["policy_id"] == urgent["id"]

    # The organization's tier is read whenever the clock is synced.
    r = await h.client.post("/api/v1/organizations", headers=ctx.admin.headers,
                            json={"name": "Globex", "custom_attributes": {"tier": " GOLD "}})
    assert r.status_code == 201, r.text
    contact_id = (await h.client.get(f"/api/v1/conversations/{elsewhere}", headers=ctx.admin.headers)).json()[
        "contact"]["id"]
    r = await h.client.patch(f"/api/v1/contacts/{contact_id}", headers=ctx.admin.headers,
                             json={"organization_id": r.json()["id"]})
    assert r.status_code == 200, r.text
    await customer_writes(h, other_inbox, "elsewhere", content="Hello again")
    assert (await sla(h, ctx.admin, elsewhere))["policy_id"] == vip["id"]

    # A policy change re-evaluates open conversations: the urgent one now needs "urgent".
    r = await h.client.patch(f"/api/v1/sla/policies/{urgent['id']}", headers=ctx.admin.headers,
                             json={"conditions": {"priorities": ["urgent"]}})
    assert r.status_code == 200, r.text
    await h.run_jobs()
    assert (await sla(h, ctx.admin, plain))["state"] == "none"
    # Deleting a policy takes it off its conversations.
    r = await h.client.delete(f"/api/v1/sla/policies/{vip['id']}", headers=ctx.admin.headers)
    assert r.status_code == 204
    await h.run_jobs()
    assert (await sla(h, ctx.admin, elsewhere))["policy_id"] == other["id"]


# --- visible and filterable ------------------------------------------------------------------------

async def test_inbox_filter_batch_states_and_routing_lift(h: Harness) -> None:
    t0 = berlin(2026, 11, 25, 10, 0)
    ctx, inbox = await setup(h, t0)
    other_inbox = await h.make_api_inbox(ctx)
    await make_policy(h, ctx, first_response_minutes=60, conditions={"inbox_ids": [inbox.id]})
    c: dict[str, int] = {}
    c["breached"] = await customer_writes(h, inbox, "b")
    clock.freeze(t0 + timedelta(minutes=10))
    c["warning"] = await customer_writes(h, inbox, "w")
    clock.freeze(t0 + timedelta(minutes=65))
    c["ok"] = await customer_writes(h, inbox, "o")
    c["paused"] = await customer_writes(h, inbox, "p")
    await patch(h, ctx, c["paused"], {"status": "pending"})
    c["met"] = await customer_writes(h, inbox, "m")
    await reply(h, ctx.admin, c["met"])
    c["none"] = await customer_writes(h, other_inbox, "n")

    async def listed(**params: Any) -> set[int]:
        r = await h.client.get("/api/v1/inbox/conversations", headers=ctx.admin.headers, params=params)
        assert r.status_code == 200, r.text
        return {row["conversation"]["id"] for row in r.json()["items"]}

    for state in ("ok", "warning", "breached", "met", "none"):
        assert await listed(sla_state=state) == {c[state]}, state
    assert await listed(sla_state="paused", status="pending") == {c["paused"]}
    assert await listed(sla_state=["warning", "breached"]) == {c["warning"], c["breached"]}
    assert await listed(sla_state=["none", "ok"]) == {c["none"], c["ok"]}
    r = await h.client.get("/api/v1/inbox/conversations", headers=ctx.admin.headers, params={"sla_state": "late"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    r = await h.client.post("/api/v1/inbox/saved-views", headers=ctx.admin.headers,
                            json={"name": "Late", "filters": {"sla_state": ["breached"]}})
    assert r.status_code == 201, r.text
    assert await listed(saved_view_id=r.json()["id"]) == {c["breached"]}

    async with h.runtime.uow() as uow:
        states = await sla_service.states_for(uow.session, [*c.values(), 10**9])
        assert {cid: states[cid].state for cid in c.values()} == {c[s]: SlaState(s) for s in c}
        assert states[10**9].state == SlaState.none
        due = await sla_service.due_soon(uow.session, list(c.values()), timedelta(minutes=10))
        assert due == {c["breached"]: t0 + timedelta(minutes=60), c["warning"]: t0 + timedelta(minutes=70)}
        assert "sla" in lift_providers.keys()
        lift = dict(lift_providers.items())["sla"]
        conversations = {x.id: x for x in (await uow.session.scalars(select(Conversation))).all()}
        assert [await lift(uow.session, conversations[c[s]], clock.now()) for s in ("warning", "ok", "paused")] == [
            True, False, False]


# --- calendars and policies API ----------------------------------------------------------------------

async def test_policies_are_reordered_in_one_change(h: Harness) -> None:
    ctx, inbox = await setup(h, berlin(2026, 11, 25, 10, 0))
    first = await make_policy(h, ctx, name="First", first_response_minutes=60)
    second = await make_policy(h, ctx, name="Second", first_response_minutes=30, conditions={"priorities": ["urgent"]})
    third = await make_policy(h, ctx, name="Third", resolution_minutes=600)
    agent = await h.make_user(ctx, "agent", Role.agent)
    other = await h.make_account("Other")
    foreign = await make_policy(h, other, name="Theirs", first_response_minutes=5)

    async def order(ids: list[int], who: Staff | None = None) -> Any:
        return await h.client.put("/api/v1/sla/policies/order", headers=(who or ctx.admin).headers,
                                  json={"policy_ids": ids})

    async def names() -> list[tuple[str, int]]:
        r = await h.client.get("/api/v1/sla/policies", headers=ctx.admin.headers)
        return [(p["name"], p["position"]) for p in r.json()["items"]]

    before = await names()
    for ids, detail in (([third["id"], first["id"]], f"missing: [{second['id']}]"),
                        ([third["id"], first["id"], second["id"], foreign["id"]], f"unknown: [{foreign['id']}]"),
                        ([third["id"], third["id"], first["id"], second["id"]], "more than once")):
        r = await order(ids)
        assert r.status_code == 422 and detail in r.text, r.text
    assert (await order([third["id"], second["id"], first["id"]], agent)).status_code == 403
    assert await names() == before  # nothing moved
    r = await order([third["id"], second["id"], first["id"]])
    assert r.status_code == 200, r.text
    assert [p["name"] for p in r.json()["items"]] == ["Third", "Second", "First"]
    assert await names() == [("Third", 10), ("Second", 20), ("First", 30)]
    # The new order decides: an urgent conversation is under Third (tried first, no conditions) now.
    cid = await customer_writes(h, inbox)
    await patch(h, ctx, cid, {"priority": "urgent"})
    assert (await sla(h, ctx.admin, cid))["policy_name"] == "Third"


async def test_calendars_and_policies_api_gates_and_validation(h: Harness) -> None:
    ctx, inbox = await setup(h, berlin(2026, 11, 25, 10, 0))
    supervisor = await h.make_user(ctx, "supervisor", role=Role.supervisor)
    agent = await h.make_user(ctx, "agent")
    base = {"name": "Office", "time_zone": "Europe/Berlin", "hours": OFFICE}

    r = await h.client.post("/api/v1/sla/calendars", headers=agent.headers, json=base)
    assert r.status_code == 403
    assert (await h.client.get("/api/v1/sla/calendars", headers=agent.headers)).json()["items"] == []
    r = await h.client.post("/api/v1/sla/calendars", headers=supervisor.headers, json={**base, "holidays": HOLIDAYS})
    assert r.status_code == 201, r.text
    calendar = r.json()
    assert (calendar["time_zone"], calendar["hours"]["mon"], calendar["hours"]["sat"], calendar["holidays"][0]) == (
        "Europe/Berlin", DAY, [], {"date": "2026-12-24", "name": "Christmas Eve", "start": "12:00", "end": "24:00"})
    r = await h.client.get(f"/api/v1/sla/calendars/{calendar['id']}", headers=agent.headers)
    assert r.status_code == 200 and r.json() == calendar
    assert (await h.client.post("/api/v1/sla/calendars", headers=ctx.admin.headers, json=base)).status_code == 409

    bad_calendars = [
        {**base, "time_zone": "Europe/Atlantis"},
        {**base, "time_zone": "../../etc/passwd"},
        {**base, "hours": {"mon": [{"start": "22:00", "end": "06:00"}]}},  # overnight: two ranges instead
        {**base, "hours": {"mon": [{"start": "09:00", "end": "13:00"}, {"start": "12:00", "end": "17:00"}]}},
        {**base, "hours": {"mon": [{"start": "9:00", "end": "17:00"}]}},
        {**base, "hours": {"mon": [{"start": "24:00", "end": "24:00"}]}},
        {**base, "hours": {}},
        {**base, "hours": {"monday": DAY}},
        {**base, "holidays": [{"date": "2026-12-25"}, {"date": "2026-12-25"}]},
        {**base, "holidays": [{"date": "2026-12-24", "start": "12:00"}]},
        {**base, "holidays": [{"date": "2026-02-30"}]},
        {**base, "colour": "blue"},
    ]
    for body in bad_calendars:
        r = await h.client.post("/api/v1/sla/calendars", headers=ctx.admin.headers, json={**body, "name": "X"})
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"

    r = await h.client.patch(f"/api/v1/sla/calendars/{calendar['id']}", headers=ctx.admin.headers,
                             json={"time_zone": "America/New_York", "holidays": []})
    assert r.status_code == 200 and (r.json()["time_zone"], r.json()["holidays"]) == ("America/New_York", [])
    r = await h.client.patch(f"/api/v1/sla/calendars/{calendar['id']}", headers=agent.headers, json={"name": "Mine"})
    assert r.status_code == 403
    assert (await h.client.get(f"/api/v1/sla/calendars/{calendar['id']}", headers=agent.headers)).json()["name"] == \
        "Office"

    policy = {"name": "Gold", "first_response_minutes": 30, "calendar_id": calendar["id"]}
    r = await h.client.post("/api/v1/sla/policies", headers=agent.headers, json=policy)
    assert r.status_code == 403
    bad_policies = [
        {"name": "No targets"},
        {**policy, "first_response_minutes": 0},
        {**policy, "resolution_minutes": -5},
        {**policy, "warn_percent": 80, "warn_before_minutes": 5},
        {**policy, "warn_percent": 100},
        {**policy, "calendar_id": 10**6},
        {**policy, "conditions": {"channels": ["pigeon"]}},
        {**policy, "conditions": {"inbox_ids": [10**6]}},
        {**policy, "conditions": {"priorities": ["critical"]}},
        {**policy, "conditions": {"tier": ["gold"]}},
        {**policy, "sla": True},
    ]
    for body in bad_policies:
        r = await h.client.post("/api/v1/sla/policies", headers=ctx.admin.headers, json=body)
        assert r.status_code == 422, (body, r.text)
    assert (await h.client.get("/api/v1/sla/policies", headers=agent.headers)).json()["items"] == []

    r = await h.client.post("/api/v1/sla/policies", headers=supervisor.headers, json=policy)
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["position"], created["warn_percent"], created["warn_before_minutes"], created["enabled"]) == (
        0, 80, None, True)
    r = await h.client.post("/api/v1/sla/policies", headers=ctx.admin.headers,
                            json={"name": "Silver", "resolution_minutes": 600, "warn_before_minutes": 60})
    assert r.status_code == 201 and (r.json()["position"], r.json()["warn_percent"]) == (1, None)
    silver = r.json()["id"]
    r = await h.client.patch(f"/api/v1/sla/policies/{created['id']}", headers=ctx.admin.headers,
                             json={"warn_before_minutes": 10, "position": 5})
    assert r.status_code == 200 and (r.json()["warn_percent"], r.json()["warn_before_minutes"]) == (None, 10)
    assert [p["name"] for p in (await h.client.get("/api/v1/sla/policies", headers=agent.headers)).json()["items"]] \
        == ["Silver", "Gold"]
    r = await h.client.patch(f"/api/v1/sla/policies/{created['id']}", headers=ctx.admin.headers,
                             json={"first_response_minutes": None})
    assert r.status_code == 422  # the only target
    r = await h.client.patch(f"/api/v1/sla/policies/{created['id']}", headers=ctx.admin.headers,
                             json={"enabled": None})
    assert r.status_code == 422
    assert (await h.client.get(f"/api/v1/sla/policies/{silver}", headers=agent.headers)).status_code == 200
    assert (await h.client.get("/api/v1/sla/policies/123456", headers=agent.headers)).status_code == 404
    # A calendar in use cannot go; once free it can.
    r = await h.client.delete(f"/api/v1/sla/calendars/{calendar['id']}", headers=ctx.admin.headers)
    assert r.status_code == 409 and r.json()["policies"] == ["Gold"]
    assert (await h.client.delete(f"/api/v1/sla/policies/{created['id']}", headers=agent.headers)).status_code == 403
    assert (await h.client.delete(f"/api/v1/sla/policies/{created['id']}", headers=ctx.admin.headers)).status_code \
        == 204
    assert (await h.client.delete(f"/api/v1/sla/calendars/{calendar['id']}", headers=ctx.admin.headers)).status_code \
        == 204

    # Another account sees none of it.
    other = await h.make_account("Other")
    assert (await h.client.get(f"/api/v1/sla/policies/{silver}", headers=other.admin.headers)).status_code == 404
    assert (await h.client.get("/api/v1/sla/policies", headers=other.admin.headers)).json()["items"] == []
    cid = await customer_writes(h, inbox)
    assert (await h.client.get(f"/api/v1/conversations/{cid}/sla", headers=other.admin.headers)).status_code == 404
