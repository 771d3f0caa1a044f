"""Time-based rules: a conversation entering the watched state gets a timer (a delayed job at its
due time, kept in the database); at the due time the job re-checks the state and the conditions and
acts at most once per rule version, conversation and entry into the state. The clock is the
injectable one: tests move it instead of sleeping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from swarmdesk.auth.principals import CustomerPrincipal
from swarmdesk.automation import engine
from swarmdesk.automation.models import AutomationTimer
from swarmdesk.core.clock import clock
from swarmdesk.jobs import service as jobs_service
from swarmdesk.jobs.models import Job
from swarmdesk.jobs.worker import Worker
from swarmdesk.preferences.actions import do_set_contact_rules
from swarmdesk.preferences.schemas import ContactRulesIn, QuietHoursIn
from swarmdesk.runtime import create_runtime
from tests.support import AccountCtx, Harness
from tests.test_automation import (
    activity,
    canned,
    conversation,
    count,
    executions,
    make_rule,
    messages,
    patch,
    reply,
    say,
    settle,
    setup,
    tag,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday


def pending_for(hours: int, actions: list[dict[str, Any]], name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "trigger": {"type": "status_for", "statuses": ["pending"], "minutes": hours * 60},
            "actions": actions, **extra}


async def timers(h: Harness) -> list[tuple[Any, ...]]:
    async with h.runtime.uow() as uow:
        rows = (await uow.session.scalars(select(AutomationTimer).order_by(AutomationTimer.id))).all()
    return [(t.rule_id, t.conversation_id, t.due_at, str(t.state), t.reason) for t in rows]


async def at(h: Harness, moment: datetime) -> None:
    """Move the clock to ``moment`` and run what is due."""
    clock.freeze(moment)
    await settle(h)


async def reminder_rules(h: Harness, ctx: AccountCtx) -> tuple[dict[str, Any], dict[str, Any]]:
    nudge = await canned(h, ctx, "Hi {{contact.name}}, do you still need help with this?", code="nudge")
    remind = await make_rule(h, ctx, pending_for(48, [{"type": "reply_template", "canned_response_id": nudge}],
                                                 "Remind after 48 h"))
    close = await make_rule(h, ctx, pending_for(96, [
        {"type": "add_note", "content": "No answer in 4 days: resolved."}, {"type": "resolve"}], "Resolve after 96 h"))
    return remind, close


def outgoing(items: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in items if m["direction"] == "outgoing" and not m["private"]]


async def test_pending_48h_reminds_and_96h_resolves_exactly_once(h: Harness) -> None:
    ctx, inbox = await setup(h, frozen=T0)
    remind, close = await reminder_rules(h, ctx)
    cid = (await say(h, inbox, "My parcel never arrived"))["conversation_id"]
    await reply(h, ctx.admin, cid, "Could you send the tracking number?")
    await patch(h, ctx.admin, cid, {"status": "pending"})
    await settle(h)
    assert await timers(h) == [(remind["id"], cid, T0 + timedelta(hours=48), "scheduled", None),
                               (close["id"], cid, T0 + timedelta(hours=96), "scheduled", None)]
    # Delayed jobs, not a polling loop: two jobs wait in the database for their run_at.
    async with h.runtime.uow() as uow:
        waiting = (await uow.session.scalars(select(Job.run_at).where(Job.kind == engine.TIMER_JOB,
                                                                      Job.status == "queued"))).all()
    assert sorted(waiting) == [T0 + timedelta(hours=48), T0 + timedelta(hours=96)]

    await at(h, T0 + timedelta(hours=47, minutes=59))
    assert outgoing(await messages(h, ctx, cid)) == ["Could you send the tracking number?"]
    assert await executions(h, ctx.admin) == []

    with h.capture_events() as events:
        await at(h, T0 + timedelta(hours=48))
    assert outgoing(await messages(h, ctx, cid)) == ["Could you send the tracking number?",
                                                     "Hi Ana Lima, do you still need help with this?"]
    (run,) = await executions(h, ctx.admin)
    assert (run["name"], run["outcome"], run["trigger_event_uid"], run["cause"]) == (
        "Remind after 48 h", "applied", None, None)
    assert run["trigger_key"].startswith("timer:")
    result = run["actions"][0]["result"]
    # A reminder is not an answer to a waiting customer: it went through the contact rules.
    assert (result["outcome"], result["deferred_send_id"]) == ("send", None)
    assert {e.cause["rule_ids"][0] for e in events if e.cause} == {remind["id"]}
    c = await conversation(h, ctx, cid)
    assert c["status"] == "pending"  # the reminder does not change the state: the 96 h rule still holds

    await at(h, T0 + timedelta(hours=96))
    c = await conversation(h, ctx, cid)
    assert (c["status"], c["resolved_at"]) == ("resolved", (T0 + timedelta(hours=96)).isoformat().replace("+00:00", "Z"))
    assert [(e["name"], e["outcome"]) for e in await executions(h, ctx.admin)] == [
        ("Remind after 48 h", "applied"), ("Resolve after 96 h", "applied")]
    assert [t[3] for t in await timers(h)] == ["fired", "fired"]
    applied = [a["data"]["rule_name"] for a in await activity(h, ctx, cid) if a["verb"] == "rule_applied"]
    assert applied == ["Remind after 48 h", "Resolve after 96 h"]

    # Exactly once: the same jobs again (a worker that died before recording them as done).
    async with h.runtime.uow() as uow:
        for timer in (await uow.session.scalars(select(AutomationTimer))).all():
            jobs_service.enqueue(uow.session, engine.TIMER_JOB, {"timer_id": timer.id}, account_id=ctx.account_id)
        await uow.commit()
    await at(h, T0 + timedelta(hours=200))
    assert len(await executions(h, ctx.admin)) == 2
    assert len(outgoing(await messages(h, ctx, cid))) == 2


async def test_a_customer_reply_before_the_due_time_cancels_and_a_new_entry_starts_over(h: Harness) -> None:
    ctx, inbox = await setup(h, frozen=T0)
    remind, _ = await reminder_rules(h, ctx)
    cid = (await say(h, inbox, "Question"))["conversation_id"]
    await patch(h, ctx.admin, cid, {"status": "pending"})
    await settle(h)

    await at(h, T0 + timedelta(hours=24))
    await say(h, inbox, "Here is the number: 123")  # reopens: leaves "pending"
    await settle(h)
    assert [(t[0], t[3], t[4]) for t in await timers(h)] == [
        (remind["id"], "cancelled", "the conversation left the state"),
        (remind["id"] + 1, "cancelled", "the conversation left the state")]

    await at(h, T0 + timedelta(hours=100))  # the old jobs come due and find nothing to do
    assert await executions(h, ctx.admin) == []
    assert outgoing(await messages(h, ctx, cid)) == []
    assert await count(h, Job, Job.kind == engine.TIMER_JOB, Job.status == "queued") == 0

    # Pending again: a new entry, a new timer from now.
    entered = T0 + timedelta(hours=100)
    await patch(h, ctx.admin, cid, {"status": "pending"})
    await settle(h)
    assert [(t[2], t[3]) for t in await timers(h)][2:] == [(entered + timedelta(hours=48), "scheduled"),
                                                           (entered + timedelta(hours=96), "scheduled")]
    await at(h, entered + timedelta(hours=48))
    assert outgoing(await messages(h, ctx, cid)) == ["Hi Ana Lima, do you still need help with this?"]
    assert [(e["name"], e["outcome"]) for e in await executions(h, ctx.admin)] == [("Remind after 48 h", "applied")]


async def test_timers_survive_a_restart_and_concurrent_workers_act_once(h: Harness) -> None:
    ctx, inbox = await setup(h, frozen=T0)
    await reminder_rules(h, ctx)
    cid = (await say(h, inbox, "Question"))["conversation_id"]
    await patch(h, ctx.admin, cid, {"status": "pending"})
    await settle(h)
    clock.freeze(T0 + timedelta(hours=48))
    # A new process on the same database (the first one is gone: nothing lived in its memory),
    # and, in the same instant, the old one still running the same timer.
    restarted = create_runtime(h.runtime.settings)
    await restarted.start(with_worker=False)
    try:
        async with h.runtime.uow() as uow:
            timer_id = await uow.session.scalar(select(AutomationTimer.id).order_by(AutomationTimer.id).limit(1))
        assert timer_id is not None
        await asyncio.gather(engine.fire_timer(restarted, timer_id), engine.fire_timer(h.runtime, timer_id))
        await Worker(restarted, restarted.jobs, concurrency=1).drain(30)
    finally:
        await restarted.stop()
    await settle(h)
    assert [(e["name"], e["outcome"]) for e in await executions(h, ctx.admin)] == [("Remind after 48 h", "applied")]
    assert outgoing(await messages(h, ctx, cid)) == ["Hi Ana Lima, do you still need help with this?"]


async def test_changing_or_switching_off_a_time_rule(h: Harness) -> None:
    ctx, inbox = await setup(h, frozen=T0)
    rule = await make_rule(h, ctx, pending_for(48, [{"type": "add_note", "content": "nudge v1"}], "Nudge"))
    cid = (await say(h, inbox, "Question"))["conversation_id"]
    await patch(h, ctx.admin, cid, {"status": "pending"})
    await settle(h)

    # A new version: its own timer (due by its own delay), made by the backfill, which also cancels
    # the old version's.
    await at(h, T0 + timedelta(hours=1))
    r = await h.client.patch(f"/api/v1/automation/rules/{rule['id']}", headers=ctx.admin.headers, json={
        "trigger": {"type": "status_for", "statuses": ["pending"], "minutes": 24 * 60},
        "actions": [{"type": "add_note", "content": "nudge v2"}]})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    await settle(h)
    assert [(t[2], t[3], t[4]) for t in await timers(h)] == [
        (T0 + timedelta(hours=48), "cancelled", "the rule was changed"), (T0 + timedelta(hours=24), "scheduled", None)]
    await at(h, T0 + timedelta(hours=24))
    await at(h, T0 + timedelta(hours=48))
    assert [(t[3], t[4]) for t in await timers(h)] == [("cancelled", "the rule was changed"), ("fired", None)]
    notes = [m["content"] for m in await messages(h, ctx, cid) if m["private"]]
    assert notes == ["nudge v2"]
    assert [(e["rule_version"], e["outcome"]) for e in await executions(h, ctx.admin)] == [(2, "applied")]

    # Switched off: its timer lapses; switched on again before anything changed, it is rescheduled.
    other = (await say(h, inbox, "Another", source_id="cust-2"))["conversation_id"]
    await patch(h, ctx.admin, other, {"status": "pending"})
    await settle(h)
    entered = T0 + timedelta(hours=48)
    r = await h.client.patch(f"/api/v1/automation/rules/{rule['id']}", headers=ctx.admin.headers,
                             json={"enabled": False})
    assert r.status_code == 200
    await at(h, entered + timedelta(hours=24))
    assert (await timers(h))[-1][3:] == ("cancelled", "the rule is switched off")
    r = await h.client.patch(f"/api/v1/automation/rules/{rule['id']}", headers=ctx.admin.headers,
                             json={"enabled": True})
    await settle(h)  # the backfill reschedules it: it is overdue, so it runs now
    assert (await timers(h))[-1][3:] == ("fired", None)
    assert [m["content"] for m in await messages(h, ctx, other) if m["private"]] == ["nudge v2"]


async def test_a_new_time_rule_watches_conversations_already_in_the_state(h: Harness) -> None:
    ctx, inbox = await setup(h, frozen=T0)
    older = (await say(h, inbox, "old", source_id="c1"))["conversation_id"]
    await patch(h, ctx.admin, older, {"status": "pending"})
    newer = (await say(h, inbox, "new", source_id="c2"))["conversation_id"]
    await say(h, inbox, "open one", source_id="c3")
    clock.freeze(T0 + timedelta(hours=10))
    await patch(h, ctx.admin, newer, {"status": "pending"})
    await make_rule(h, ctx, pending_for(12, [{"type": "set_priority", "priority": "high"}], "Escalate pending"))
    await settle(h)
    assert [(t[1], t[2]) for t in await timers(h)] == [(older, T0 + timedelta(hours=12)),
                                                       (newer, T0 + timedelta(hours=22))]
    await at(h, T0 + timedelta(hours=12))
    assert [(await conversation(h, ctx, c))["priority"] for c in (older, newer)] == ["high", "none"]
    await at(h, T0 + timedelta(hours=22))
    assert [(await conversation(h, ctx, c))["priority"] for c in (older, newer)] == ["high", "high"]


async def test_conditions_are_checked_again_when_the_timer_is_due(h: Harness) -> None:
    ctx, inbox = await setup(h, frozen=T0)
    await make_rule(h, ctx, pending_for(24, [{"type": "resolve"}], "Auto-resolve unless on hold",
                                        conditions={"all": [{"type": "tag", "tags": ["hold"], "negate": True}]}))
    cid = (await say(h, inbox, "Question"))["conversation_id"]
    await patch(h, ctx.admin, cid, {"status": "pending"})
    await settle(h)
    await at(h, T0 + timedelta(hours=2))
    await tag(h, ctx.admin, cid, add=["hold"])
    await at(h, T0 + timedelta(hours=24))
    (run,) = await executions(h, ctx.admin)
    assert (run["outcome"], run["conditions"]) == ("not_matched", {"matched": False, "results": [
        {"type": "tag", "result": False}]})
    assert (await conversation(h, ctx, cid))["status"] == "pending"
    assert (await timers(h))[0][3] == "fired"  # this entry had its turn


async def test_customer_waiting_too_long_escalates_unless_someone_answers(h: Harness) -> None:
    ctx, inbox = await setup(h, frozen=T0)
    lead = await h.make_user(ctx, "lead")
    await make_rule(h, ctx, {"name": "Unanswered 2 h", "trigger": {"type": "waiting_for", "minutes": 120},
                             "actions": [{"type": "set_priority", "priority": "urgent"},
                                         {"type": "notify", "user_ids": [lead.user_id],
                                          "text": "{{contact.name}} has waited 2 h"}]})
    answered = (await say(h, inbox, "Help", source_id="c1"))["conversation_id"]
    ignored = (await say(h, inbox, "Help me too", source_id="c2"))["conversation_id"]
    await settle(h)
    await at(h, T0 + timedelta(minutes=90))
    await reply(h, ctx.admin, answered, "On it")
    await settle(h)
    await at(h, T0 + timedelta(minutes=120))
    assert [(await conversation(h, ctx, c))["priority"] for c in (answered, ignored)] == ["none", "urgent"]
    r = await h.client.get("/api/v1/notifications", headers=lead.headers)
    assert [(n["conversation_id"], n["snippet"]) for n in r.json()["items"]] == [(ignored, "Ana Lima has waited 2 h")]
    # The answered customer writes again: waiting again, a new entry, a new chance.
    await say(h, inbox, "Thanks, one more thing", source_id="c1")
    await settle(h)
    await at(h, T0 + timedelta(minutes=240))
    assert (await conversation(h, ctx, answered))["priority"] == "urgent"
    assert [(e["conversation_id"], e["outcome"]) for e in await executions(h, ctx.admin)] == [
        (ignored, "applied"), (answered, "applied")]


async def test_a_reminder_obeys_the_customers_quiet_hours(h: Harness) -> None:
    ctx, inbox = await setup(h, frozen=T0)
    nudge = await canned(h, ctx, "Still there?", code="nudge")
    await make_rule(h, ctx, pending_for(1, [{"type": "reply_template", "canned_response_id": nudge}], "Nudge"))
    body = await say(h, inbox, "Question")
    cid = body["conversation_id"]
    async with h.runtime.uow() as uow:
        await do_set_contact_rules(uow, CustomerPrincipal(contact_id=body["contact_id"], account_id=ctx.account_id,
                                                          inbox_id=None, session_id=0),
                                   ContactRulesIn(quiet_hours=QuietHoursIn(start="09:30", end="18:00",
                                                                           time_zone="UTC")))
    await reply(h, ctx.admin, cid, "Which order?")
    await patch(h, ctx.admin, cid, {"status": "pending"})
    await at(h, T0 + timedelta(hours=1))
    (run,) = await executions(h, ctx.admin)
    result = run["actions"][0]["result"]
    assert (run["outcome"], result["outcome"], result["message_id"]) == ("applied", "defer", None)
    assert result["deferred_send_id"] is not None
    assert outgoing(await messages(h, ctx, cid)) == ["Which order?"]
    assert "send_deferred" in [a["verb"] for a in await activity(h, ctx, cid)]
