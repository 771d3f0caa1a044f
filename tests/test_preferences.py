"""Customer-set contact rules through the API: the customer sets them in a portal session (only
there), agents read them, and every proactive message obeys them. An agent's first message in a
conversation they start is deferred through quiet hours by a delayed job (exactly once, across a
restart and a dead worker, re-checking the rules when due), moved off a forbidden channel, or
refused by the cap; a direct reply is never held back; bad input is a 4xx problem."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.config import Settings
from swarmdesk.conversations.models import Activity, Conversation, Direction, Message
from swarmdesk.core.clock import clock
from swarmdesk.events.types import ContactUpdated, ConversationUpdated
from swarmdesk.jobs import service as jobs_service
from swarmdesk.jobs.models import Job, JobStatus
from swarmdesk.jobs.registry import JobContext
from swarmdesk.jobs.worker import Worker
from swarmdesk.preferences import actions
from swarmdesk.preferences.models import ContactRules, ContactTouch, DeferredSend, DeferredStatus
from swarmdesk.preferences.policy import Outcome, Purpose
from swarmdesk.preferences.tasks import send_deferred
from swarmdesk.runtime import Runtime, create_runtime
from tests.channels.test_twilio_common import SMS_NUMBER, FakeTwilio, twilio_config
from tests.mailservers import SmtpSink
from tests.support import AccountCtx, Harness, Staff, inbound_payload, sign
from tests.test_portal import make_email_inbox, signed_in, slug_of, write_in

PROBLEM = "application/problem+json"
PHONE = "+14155550123"
RULES = "/api/v1/customer/preferences"
BERLIN_NIGHT = {"start": "21:00", "end": "08:00", "time_zone": "Europe/Berlin"}
DEFERRED_TEXT = "Ana's quiet hours are 21:00–08:00 (Europe/Berlin): deferred to 08:00"


def berlin(text: str) -> datetime:
    """A Berlin wall-clock time in winter (UTC+1)."""
    return datetime.fromisoformat(text + "+01:00").astimezone(UTC)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio().running() as fake:
        yield fake


@pytest.fixture
async def portal(app) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


def csrf(client: httpx.AsyncClient) -> dict[str, str]:
    return {"x-csrf-token": client.cookies["sd_portal_csrf"]}


@pytest.fixture
async def desk(h: Harness, smtp: SmtpSink, twilio: FakeTwilio, portal: httpx.AsyncClient) -> dict[str, Any]:
    """Acme (email and SMS inboxes) on Tuesday 24 November 2026, 10:00 in Berlin. Ana wrote by
    email, has a phone number on file, and is signed in to the portal."""
    clock.freeze(berlin("2026-11-24T10:00:00"))
    ctx = await h.make_account("Acme")
    agent = await h.make_user(ctx, "agent")
    email = await make_email_inbox(h, ctx, smtp)
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers, json={
        "name": "SMS", "channel_kind": "twilio_sms",
        "config": twilio_config(phone_number=SMS_NUMBER, api_base_url=twilio.url)})
    assert r.status_code == 201, r.text
    sms = r.json()["id"]
    cid = await write_in(h, ctx, email, "ana@example.org", "Ana Lima", "Hello", "A question about my order.")
    contact_id = (await h.client.get(f"/api/v1/conversations/{cid}", headers=agent.headers)).json()["contact"]["id"]
    r = await h.client.patch(f"/api/v1/contacts/{contact_id}", headers=agent.headers, json={"phone": PHONE})
    assert r.status_code == 200, r.text
    slug = await slug_of(h, ctx)
    await signed_in(h, smtp, portal, slug, "ana@example.org")
    smtp.received.clear()
    return {"ctx": ctx, "agent": agent, "email": email, "sms": sms, "cid": cid, "contact_id": contact_id,
            "slug": slug}


async def set_rules(portal: httpx.AsyncClient, **rules: Any) -> dict[str, Any]:
    r = await portal.put(RULES, headers=csrf(portal), json=rules)
    assert r.status_code == 200, r.text
    return r.json()


async def outreach(h: Harness, agent: Staff, inbox: int, contact_id: int, content: str = "Your parcel is ready",
                   **extra: Any) -> httpx.Response:
    return await h.client.post("/api/v1/conversations", headers=agent.headers, json={
        "inbox_id": inbox, "contact_id": contact_id, "subject": "Parcel", "content": content, **extra})


async def count(h: Harness, model: type, *where: Any) -> int:
    async with h.runtime.uow() as uow:
        return await uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def rows(rt: Runtime, model: type, *where: Any) -> list[Any]:
    async with rt.uow() as uow:
        return list((await uow.session.scalars(select(model).where(*where).order_by(model.id))).all())


def mails_with(smtp: SmtpSink, text: str) -> int:
    return sum(text in m.get_payload(decode=True).decode() for m in smtp.messages())


# --- the customer sets them, agents read them --------------------------------------------------------

async def test_the_customer_sets_rules_in_a_portal_session_and_agents_read_them(
        h: Harness, portal: httpx.AsyncClient, desk: dict[str, Any]) -> None:
    r = await portal.get(RULES)
    assert r.status_code == 200, r.text
    assert r.json() == {"contact_id": desk["contact_id"], "preferred_channel": None, "never_channels": [],
                        "quiet_hours": None, "contact_cap": None, "updated_at": None, "channels": [
                            {"kind": "email", "label": "Email", "reachable": True},
                            {"kind": "twilio_sms", "label": "SMS", "reachable": True}]}
    with h.capture_events() as events:
        saved = await set_rules(portal, preferred_channel="email", never_channels=["twilio_sms", "twilio_sms"],
                                quiet_hours=BERLIN_NIGHT, contact_cap={"max_contacts": 2, "per_days": 7})
    assert {k: saved[k] for k in ("preferred_channel", "never_channels", "quiet_hours", "contact_cap")} == {
        "preferred_channel": "email", "never_channels": ["twilio_sms"], "quiet_hours": BERLIN_NIGHT,
        "contact_cap": {"max_contacts": 2, "per_days": 7}}
    assert saved["updated_at"].startswith("2026-11-24T09:00:00")
    assert (await portal.get(RULES)).json() == saved
    # Agents' views of the customer refresh.
    (event,) = events
    assert isinstance(event, ContactUpdated) and event.contact.id == desk["contact_id"]
    assert (event.audience.roles, event.audience.all_agents) == (("admin", "supervisor"), True)

    r = await h.client.get(f"/api/v1/contacts/{desk['contact_id']}/preferences", headers=desk["agent"].headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rules_of_contact_id"] == desk["contact_id"] and body["contacted_in_window"] == 0
    assert body["summary"] == ["Prefers Email.", "Never by SMS.", "Quiet hours 21:00–08:00 (Europe/Berlin).",
                               "At most 2 proactive contacts in 7 days."]
    # A PUT replaces everything: omitted rules are gone.
    saved = await set_rules(portal, quiet_hours={"start": "22:00", "end": "07:30", "time_zone": "America/New_York"})
    assert (saved["preferred_channel"], saved["never_channels"], saved["contact_cap"]) == (None, [], None)
    assert await count(h, ContactRules) == 1


async def test_only_a_portal_session_may_read_or_change_rules(h: Harness, portal: httpx.AsyncClient,
                                                              desk: dict[str, Any]) -> None:
    ctx = desk["ctx"]
    api = await h.make_api_inbox(ctx)
    widget = await h.customer_session(api, "Visitor")
    for method in ("GET", "PUT"):
        r = await h.client.request(method, RULES, headers=widget, json={"never_channels": ["email"]})
        assert (r.status_code, r.headers["content-type"]) == (403, PROBLEM)
        assert "customer portal" in r.json()["detail"]
        r = await h.client.request(method, RULES, headers=desk["agent"].headers, json={})
        assert r.status_code == 403
        r = await h.client.request(method, RULES, json={})
        assert r.status_code == 401
    # The portal's cookie without its CSRF token cannot change anything.
    r = await portal.put(RULES, json={"never_channels": ["email"]})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    assert await count(h, ContactRules) == 0
    # Agents: customer credentials are refused, another account's contact does not exist.
    path = f"/api/v1/contacts/{desk['contact_id']}/preferences"
    assert (await portal.get(path)).status_code == 403
    other = await h.make_account("Globex")
    r = await h.client.get(path, headers=other.admin.headers)
    assert (r.status_code, r.headers["content-type"]) == (404, PROBLEM)
    expert = await h.make_user(ctx, "expert", role="expert")
    assert (await h.client.get(path, headers=expert.headers)).status_code == 403


@pytest.mark.parametrize(("rules", "complaint"), [
    ({"quiet_hours": {**BERLIN_NIGHT, "time_zone": "Mars/Olympus_Mons"}}, "is not a time zone we know"),
    ({"quiet_hours": {**BERLIN_NIGHT, "time_zone": "../../etc/passwd"}}, "is not a time zone we know"),
    ({"quiet_hours": {**BERLIN_NIGHT, "start": "25:00"}}, "quiet_hours.start"),
    ({"quiet_hours": {**BERLIN_NIGHT, "start": "9:00"}}, "quiet_hours.start"),
    ({"quiet_hours": {**BERLIN_NIGHT, "end": "08:00:00"}}, "quiet_hours.end"),
    ({"quiet_hours": {**BERLIN_NIGHT, "end": "21:00"}}, "different start and end"),
    ({"quiet_hours": {"start": "21:00", "end": "08:00"}}, "quiet_hours.time_zone"),
    ({"preferred_channel": "twilio_sms", "never_channels": ["twilio_sms"]},
     "SMS cannot be both your preferred channel and one never to use"),
    ({"never_channels": ["pigeon"]}, "'pigeon' is not a channel we can contact you on"),
    ({"never_channels": ["phone"]}, "'phone' is not a channel we can contact you on"),
    ({"preferred_channel": "whatsapp"}, "we cannot reach you by WhatsApp"),
    ({"contact_cap": {"max_contacts": 0, "per_days": 7}}, "contact_cap.max_contacts"),
    ({"contact_cap": {"max_contacts": 2, "per_days": 366}}, "contact_cap.per_days"),
    ({"contact_cap": {"max_contacts": 2}}, "contact_cap.per_days"),
    ({"never_channels": "email"}, "never_channels"),
    ({"quiet": BERLIN_NIGHT}, "quiet"),
])
async def test_bad_rules_are_refused_and_change_nothing(h: Harness, portal: httpx.AsyncClient, desk: dict[str, Any],
                                                        rules: dict[str, Any], complaint: str) -> None:
    r = await portal.put(RULES, headers=csrf(portal), json=rules)
    assert (r.status_code, r.headers["content-type"]) == (422, PROBLEM), r.text
    assert complaint in r.json()["detail"], r.json()
    assert await count(h, ContactRules) == 0


# --- outreach: deferred by quiet hours ---------------------------------------------------------------

async def test_quiet_hours_defer_the_first_message_and_a_delayed_job_sends_it_once(
        h: Harness, portal: httpx.AsyncClient, smtp: SmtpSink, desk: dict[str, Any]) -> None:
    await set_rules(portal, quiet_hours=BERLIN_NIGHT)
    clock.freeze(berlin("2026-11-24T22:30:00"))
    with h.capture_events() as events:
        r = await outreach(h, desk["agent"], desk["email"], desk["contact_id"], "Your parcel is ready for pickup")
    assert r.status_code == 201, r.text
    # Agents see the new conversation; the customer sees nothing (no message exists yet).
    assert [(e.type, e.audience.all_agents, e.audience.contact_ids) for e in events] == [
        ("conversation.created", True, ())]
    conversation = r.json()
    first = conversation["first_message"]
    assert first == {"outcome": "defer", "explanation": DEFERRED_TEXT, "reasons": ["quiet_hours"],
                     "channel_kind": "email", "inbox_id": desk["email"], "requested_channel_kind": "email",
                     "requested_inbox_id": desk["email"], "send_at": "2026-11-25T07:00:00Z", "message_id": None,
                     "deferred_send_id": first["deferred_send_id"]}
    cid = conversation["id"]
    assert conversation["message_count"] == 0
    # The agent sees why, in the conversation's activity.
    r = await h.client.get(f"/api/v1/conversations/{cid}/activity", headers=desk["agent"].headers)
    deferred = [a for a in r.json()["items"] if a["verb"] == "send_deferred"]
    assert len(deferred) == 1 and deferred[0]["data"]["explanation"] == DEFERRED_TEXT
    assert (deferred[0]["actor_type"], deferred[0]["actor_id"]) == ("user", desk["agent"].user_id)
    assert deferred[0]["data"]["send_at"] == "2026-11-25T07:00:00+00:00"
    r = await h.client.get(f"/api/v1/conversations/{cid}/deferred-sends", headers=desk["agent"].headers)
    assert [(d["status"], d["content"], d["send_at"]) for d in r.json()] == [
        ("scheduled", "Your parcel is ready for pickup", "2026-11-25T07:00:00Z")]
    (job,) = await rows(h.runtime, Job, Job.kind == "preferences.send_deferred")
    assert (job.payload, job.run_at) == ({"deferred_send_id": first["deferred_send_id"]}, berlin("2026-11-25T08:00:00"))

    # Nothing goes out during the night.
    for at in ("2026-11-24T22:31:00", "2026-11-25T03:00:00", "2026-11-25T07:59:59"):
        clock.freeze(berlin(at))
        await h.run_jobs()
        assert await count(h, Message, Message.conversation_id == cid) == 0
    assert mails_with(smtp, "ready for pickup") == 0

    # At 08:00 it is sent, by the agent who wrote it, on the inbox decided, and delivered once.
    clock.freeze(berlin("2026-11-25T08:00:00"))
    await h.run_jobs()
    (message,) = await rows(h.runtime, Message, Message.conversation_id == cid)
    assert (message.direction, message.channel, message.sender_id, message.content) == (
        Direction.outgoing, "email", desk["agent"].user_id, "Your parcel is ready for pickup")
    assert message.created_at == berlin("2026-11-25T08:00:00")
    (row,) = await rows(h.runtime, DeferredSend)
    assert (row.status, row.message_id, row.finished_at) == (DeferredStatus.sent, message.id, message.created_at)
    assert mails_with(smtp, "ready for pickup") == 1
    (touch,) = await rows(h.runtime, ContactTouch)
    assert (touch.message_id, touch.purpose, touch.channel) == (message.id, "outreach", "email")

    # The job running again (a crash before it was marked done), or twice at once, sends nothing more.
    ctx = JobContext(job_id=job.id, attempt=2, max_attempts=8, account_id=desk["ctx"].account_id)
    await asyncio.gather(send_deferred(h.runtime, job.payload, ctx), send_deferred(h.runtime, job.payload, ctx))
    await h.run_jobs()
    assert await count(h, Message, Message.conversation_id == cid) == 1
    assert await count(h, ContactTouch) == 1
    assert mails_with(smtp, "ready for pickup") == 1


async def test_a_deferred_message_survives_a_restart_and_a_dead_worker_and_rechecks_the_rules(
        h: Harness, portal: httpx.AsyncClient, smtp: SmtpSink, settings: Settings, desk: dict[str, Any]) -> None:
    await set_rules(portal, quiet_hours=BERLIN_NIGHT)
    clock.freeze(berlin("2026-11-24T23:15:00"))
    r = await outreach(h, desk["agent"], desk["email"], desk["contact_id"], "Reminder: your return label")
    assert r.json()["first_message"]["outcome"] == "defer"
    cid, deferred_id = r.json()["id"], r.json()["first_message"]["deferred_send_id"]
    # Meanwhile Ana sleeps in: quiet hours until 09:30 now.
    await set_rules(portal, quiet_hours={**BERLIN_NIGHT, "end": "09:30"})
    await h.runtime.stop()  # the server goes down; nothing about the message lives in memory

    rt = create_runtime(settings)
    await rt.start(with_worker=False)
    try:
        # 08:00: a worker claims the job and dies before finishing it (its lease runs out).
        clock.freeze(berlin("2026-11-25T08:00:00"))
        async with rt.uow() as uow:
            (claimed,) = await jobs_service.claim(uow.session, "dead-worker", 10, lease_seconds=60)
            await uow.commit()
        assert claimed.kind == "preferences.send_deferred"
        clock.advance(timedelta(minutes=2))
        await Worker(rt, rt.jobs).drain()
        # The rules are checked again when due: still quiet, so it waits again (a new job).
        assert await rows(rt, Message, Message.conversation_id == cid) == []
        (row,) = await rows(rt, DeferredSend)
        assert (row.status, row.send_at) == (DeferredStatus.scheduled, berlin("2026-11-25T09:30:00"))
        assert row.explanation == "Ana's quiet hours are 21:00–09:30 (Europe/Berlin): deferred to 09:30"
        verbs = [(a.verb, a.actor_type.value, a.data["explanation"]) for a in
                 await rows(rt, Activity, Activity.conversation_id == cid, Activity.verb == "send_deferred")]
        assert verbs == [("send_deferred", "user", DEFERRED_TEXT), ("send_deferred", "system", row.explanation)]
        # The dead worker wakes up and runs its copy late: nothing happens.
        await send_deferred(rt, claimed.payload, JobContext(claimed.id, 1, 8, claimed.account_id))
        assert await rows(rt, Message, Message.conversation_id == cid) == []
        assert len(await rows(rt, Job, Job.kind == "preferences.send_deferred")) == 2
        assert len(await rows(rt, Activity, Activity.verb == "send_deferred")) == 2

        clock.freeze(berlin("2026-11-25T09:30:00"))
        await Worker(rt, rt.jobs).drain()
        (message,) = await rows(rt, Message, Message.conversation_id == cid)
        assert message.content == "Reminder: your return label"
        jobs = await rows(rt, Job, Job.kind == "preferences.send_deferred")
        assert [(j.status, j.payload["deferred_send_id"]) for j in jobs] == [(JobStatus.done, deferred_id)] * 2
        await Worker(rt, rt.jobs).drain()
        assert len(await rows(rt, Message, Message.conversation_id == cid)) == 1
        assert mails_with(smtp, "your return label") == 1
    finally:
        await rt.stop()


async def test_deferred_messages_do_not_count_until_sent_and_are_refused_when_due_if_the_cap_filled_up(
        h: Harness, portal: httpx.AsyncClient, smtp: SmtpSink, desk: dict[str, Any]) -> None:
    await set_rules(portal, quiet_hours=BERLIN_NIGHT, contact_cap={"max_contacts": 1, "per_days": 7})
    clock.freeze(berlin("2026-11-24T23:00:00"))
    r = await outreach(h, desk["agent"], desk["email"], desk["contact_id"], "Night outreach")
    night = r.json()
    assert night["first_message"]["outcome"] == "defer"
    # Held back, it does not count yet: an automatic reminder is deferred too, not refused.
    clock.freeze(berlin("2026-11-24T23:10:00"))
    async with h.runtime.uow() as uow:
        conversation = await uow.session.get(Conversation, desk["cid"])
        sent = await actions.do_send_proactive(uow, StaffPrincipal.system(desk["ctx"].account_id), conversation,
                                               "Automated reminder", Purpose.reminder)
    assert sent.decision.outcome == Outcome.defer and sent.message is None and sent.deferred is not None
    assert await count(h, ContactTouch) == 0

    # Both are due at 08:00: the first to get the customer's rules sends, the other finds the cap full.
    clock.freeze(berlin("2026-11-25T08:00:00"))
    with h.capture_events() as events:
        await h.run_jobs()
    outcomes = sorted((d.status.value, d.purpose) for d in await rows(h.runtime, DeferredSend))
    assert outcomes in ([("refused", "reminder"), ("sent", "outreach")], [("refused", "outreach"), ("sent", "reminder")])
    assert await count(h, ContactTouch) == 1
    assert mails_with(smtp, "Night outreach") + mails_with(smtp, "Automated reminder") == 1
    (refusal,) = await rows(h.runtime, Activity, Activity.verb == "send_refused")
    assert refusal.data["explanation"] == ("Ana was contacted 1 time in the last 7 days (their limit); the next "
                                           "contact is possible from 2 Dec 2026, 08:00 (Europe/Berlin)")
    assert (refusal.actor_type.value, refusal.data["outcome"]) == ("system", "refuse")
    assert [e.type for e in events if e.type == "message.created"] == ["message.created"]
    assert sum(e.type == "conversation.updated" and e.changed == ["contact_rules"] for e in events) == 1
    # And an agent trying now is told the same.
    r = await outreach(h, desk["agent"], desk["email"], desk["contact_id"], "One more")
    assert (r.status_code, r.headers["content-type"]) == (409, PROBLEM)


# --- outreach: moved off a forbidden channel; refused by the cap ---------------------------------------

async def test_outreach_by_a_forbidden_channel_is_moved_and_the_conversation_lives_there(
        h: Harness, portal: httpx.AsyncClient, smtp: SmtpSink, twilio: FakeTwilio, desk: dict[str, Any]) -> None:
    await set_rules(portal, never_channels=["twilio_sms"])
    r = await outreach(h, desk["agent"], desk["sms"], desk["contact_id"], "Your parcel is at the depot")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["first_message"] | {"message_id": None} == {
        "outcome": "move", "explanation": "Ana asked not to be contacted by SMS: moved to Email",
        "reasons": ["never_channel"], "channel_kind": "email", "inbox_id": desk["email"],
        "requested_channel_kind": "twilio_sms", "requested_inbox_id": desk["sms"], "send_at": None,
        "message_id": None, "deferred_send_id": None}
    # The conversation lives on email: later replies go there too, not back to SMS.
    assert (body["inbox_id"], body["channel"], body["message_count"]) == (desk["email"], "email", 1)
    (message,) = await rows(h.runtime, Message, Message.conversation_id == body["id"])
    assert (message.id, message.channel) == (body["first_message"]["message_id"], "email")
    r = await h.client.get(f"/api/v1/conversations/{body['id']}/activity", headers=desk["agent"].headers)
    moved = [a["data"] for a in r.json()["items"] if a["verb"] == "send_moved"]
    assert [(d["explanation"], d["channel"], d["requested_channel"]) for d in moved] == [
        ("Ana asked not to be contacted by SMS: moved to Email", "email", "twilio_sms")]
    await h.run_jobs()
    assert twilio.requests == [] and mails_with(smtp, "at the depot") == 1
    r = await h.client.post(f"/api/v1/conversations/{body['id']}/messages", headers=desk["agent"].headers,
                            json={"content": "Open until 18:00"})
    assert (r.status_code, r.json()["channel"]) == (201, "email")

    # Without the rule, SMS it is.
    await set_rules(portal)
    r = await outreach(h, desk["agent"], desk["sms"], desk["contact_id"], "By SMS")
    assert (r.json()["first_message"]["outcome"], r.json()["channel"]) == ("send", "twilio_sms")
    assert r.json()["first_message"]["explanation"] == "Ana has set no contact rules"
    await h.run_jobs()
    assert [form["Body"] for _, _, form in twilio.requests] == ["By SMS"]


async def test_a_chat_channel_the_customer_never_used_is_nowhere_to_move_to(
        h: Harness, portal: httpx.AsyncClient, desk: dict[str, Any]) -> None:
    app = await h.make_api_inbox(desk["ctx"], trust=True, callback_url="http://127.0.0.1:9/hook")
    await set_rules(portal, never_channels=["email", "twilio_sms"])
    assert [(c["kind"], c["reachable"]) for c in (await portal.get(RULES)).json()["channels"]] == [
        ("email", True), ("twilio_sms", True), ("api", False)]
    r = await outreach(h, desk["agent"], desk["email"], desk["contact_id"])
    assert r.status_code == 409
    assert r.json()["detail"] == ("Ana asked not to be contacted by Email, and cannot be reached on any channel "
                                  "they allow")
    # Once Ana has written in the app, it is somewhere to reach her.
    payload = inbound_payload(content="Hi from the app")
    payload["contact"] |= {"source_id": "ana-app", "email": "ana@example.org"}
    body = orjson.dumps(payload)  # signed at the test's (frozen) time
    r = await h.client.post(app.webhook_path, content=body, headers=sign(app.secret, body, at=clock.now()))
    assert r.status_code == 200 and r.json()["contact_id"] == desk["contact_id"], r.text
    r = await outreach(h, desk["agent"], desk["email"], desk["contact_id"])
    assert r.status_code == 201, r.text
    assert (r.json()["first_message"]["outcome"], r.json()["channel"]) == ("move", "api")
    assert r.json()["first_message"]["explanation"] == "Ana asked not to be contacted by Email: moved to API"


async def test_outreach_over_the_cap_is_409_and_creates_nothing(h: Harness, portal: httpx.AsyncClient,
                                                               desk: dict[str, Any]) -> None:
    await set_rules(portal, contact_cap={"max_contacts": 2, "per_days": 7}, never_channels=["twilio_sms"])
    for day in ("2026-11-20T10:00:00", "2026-11-24T10:00:00"):
        clock.freeze(berlin(day))
        r = await outreach(h, desk["agent"], desk["sms"], desk["contact_id"])  # moved to email: still counts
        assert r.status_code == 201 and r.json()["first_message"]["outcome"] == "move", r.text
    # Direct replies in a conversation where Ana wrote never count.
    r = await h.client.post(f"/api/v1/conversations/{desk['cid']}/messages", headers=desk["agent"].headers,
                            json={"content": "About your order: it ships today"})
    assert r.status_code == 201
    before = (await count(h, Conversation), await count(h, Message), await count(h, Job), await count(h, Activity))
    with h.capture_events() as events:
        r = await outreach(h, desk["agent"], desk["email"], desk["contact_id"], assignee_id=desk["agent"].user_id)
    assert (r.status_code, r.headers["content-type"]) == (409, PROBLEM)
    problem = r.json()
    assert problem["title"] == "Refused by the customer's contact rules" and problem["code"] == "contact_rules"
    assert problem["detail"] == ("Ana was contacted 2 times in the last 7 days (their limit); the next contact is "
                                 "possible from 27 Nov 2026, 09:00 (UTC)")
    assert problem["decision"]["outcome"] == "refuse" and problem["decision"]["send_at"] == "2026-11-27T09:00:00Z"
    assert (await count(h, Conversation), await count(h, Message), await count(h, Job),
            await count(h, Activity)) == before
    assert events == []
    r = await h.client.get(f"/api/v1/contacts/{desk['contact_id']}/preferences", headers=desk["agent"].headers)
    assert r.json()["contacted_in_window"] == 2
    # Once the first falls out of the window, a contact is possible again.
    clock.freeze(datetime(2026, 11, 27, 9, 0, 1, tzinfo=UTC))
    assert (await outreach(h, desk["agent"], desk["email"], desk["contact_id"])).status_code == 201
    # A conversation started without a message is not a contact.
    r = await h.client.post("/api/v1/conversations", headers=desk["agent"].headers,
                            json={"inbox_id": desk["email"], "contact_id": desk["contact_id"], "subject": "Later"})
    assert (r.status_code, r.json()["first_message"]) == (201, None)


async def test_a_direct_reply_is_never_deferred(h: Harness, portal: httpx.AsyncClient, smtp: SmtpSink,
                                                desk: dict[str, Any]) -> None:
    await set_rules(portal, quiet_hours=BERLIN_NIGHT, never_channels=["email"], contact_cap={"max_contacts": 1,
                                                                                             "per_days": 7})
    clock.freeze(berlin("2026-11-24T23:45:00"))
    r = await h.client.post(f"/api/v1/conversations/{desk['cid']}/messages", headers=desk["agent"].headers,
                            json={"content": "Answering right away, even at night"})
    assert (r.status_code, r.json()["channel"]) == (201, "email")
    await h.run_jobs()
    assert mails_with(smtp, "even at night") == 1
    assert await count(h, DeferredSend) == 0 and await count(h, ContactTouch) == 0
    with pytest.raises(ValueError, match="not proactive"):
        async with h.runtime.uow() as uow:
            conversation = await uow.session.get(Conversation, desk["cid"])
            await actions.do_send_proactive(uow, StaffPrincipal.system(desk["ctx"].account_id), conversation,
                                            "hello", Purpose.reply)


# --- the entry point for later paths ------------------------------------------------------------------

async def test_do_send_proactive_sends_defers_or_refuses_and_tells_the_agents(
        h: Harness, portal: httpx.AsyncClient, desk: dict[str, Any]) -> None:
    system = StaffPrincipal.system(desk["ctx"].account_id)

    async def remind(content: str) -> actions.Sent:
        async with h.runtime.uow() as uow:
            conversation = await uow.session.get(Conversation, desk["cid"])
            return await actions.do_send_proactive(uow, system, conversation, content, Purpose.reminder)

    sent = await remind("No rules: straight out")
    assert (sent.decision.outcome, sent.message.sender_type.value, sent.message.channel) == (Outcome.send, "system",
                                                                                             "email")
    await set_rules(portal, quiet_hours=BERLIN_NIGHT)
    clock.freeze(berlin("2026-11-24T21:30:00"))
    with h.capture_events() as events:
        sent = await remind("Are you still there?")
    assert sent.decision.outcome == Outcome.defer and sent.deferred is not None and sent.message is None
    (event,) = events
    assert isinstance(event, ConversationUpdated) and event.changed == ["contact_rules"]
    assert event.conversation.id == desk["cid"] and event.audience.all_agents
    r = await h.client.get(f"/api/v1/conversations/{desk['cid']}/activity", headers=desk["agent"].headers)
    (deferred,) = [a for a in r.json()["items"] if a["verb"] == "send_deferred"]
    assert (deferred["actor_type"], deferred["data"]["purpose"], deferred["data"]["explanation"]) == (
        "system", "reminder", DEFERRED_TEXT)
    clock.freeze(berlin("2026-11-25T08:00:00"))
    await h.run_jobs()
    messages = await rows(h.runtime, Message, Message.conversation_id == desk["cid"], Message.sender_type == "system")
    assert [m.content for m in messages] == ["No rules: straight out", "Are you still there?"]
    assert [t.purpose for t in await rows(h.runtime, ContactTouch)] == ["reminder", "reminder"]


async def test_an_agent_cancels_a_deferred_message(h: Harness, portal: httpx.AsyncClient, desk: dict[str, Any]) -> None:
    await set_rules(portal, quiet_hours=BERLIN_NIGHT)
    clock.freeze(berlin("2026-11-24T22:00:00"))
    r = await outreach(h, desk["agent"], desk["email"], desk["contact_id"], "Maybe not")
    cid, deferred_id = r.json()["id"], r.json()["first_message"]["deferred_send_id"]
    url = f"/api/v1/deferred-sends/{deferred_id}/cancel"
    other = await h.make_account("Globex")
    assert (await h.client.post(url, headers=other.admin.headers)).status_code == 404
    reader = await h.make_user(desk["ctx"], "reader", scopes=["conversations:read"])
    assert (await h.client.post(url, headers=reader.headers)).status_code == 403
    with h.capture_events() as events:
        r = await h.client.post(url, headers=desk["agent"].headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert [e.type for e in events] == ["conversation.updated"]
    r = await h.client.post(url, headers=desk["agent"].headers)
    assert (r.status_code, r.json()["detail"]) == (409, "this message is cancelled already; only a scheduled one "
                                                        "can be cancelled")
    clock.freeze(berlin("2026-11-25T09:00:00"))
    await h.run_jobs()
    assert await count(h, Message, Message.conversation_id == cid) == 0
    verbs = [a.verb for a in await rows(h.runtime, Activity, Activity.conversation_id == cid)]
    assert verbs == ["created", "send_deferred", "send_cancelled"]


async def test_a_deferred_message_the_channel_cannot_take_when_due_fails_visibly(
        h: Harness, portal: httpx.AsyncClient, desk: dict[str, Any]) -> None:
    await set_rules(portal, quiet_hours=BERLIN_NIGHT)
    clock.freeze(berlin("2026-11-24T22:00:00"))
    # What the channel could never take is refused now, not at 08:00 (SMS is 1600 characters at most).
    r = await outreach(h, desk["agent"], desk["sms"], desk["contact_id"], "x" * 1601)
    assert (r.status_code, r.headers["content-type"]) == (422, PROBLEM) and "at most 1600" in r.json()["detail"]
    assert await count(h, Conversation) == 1 and await count(h, DeferredSend) == 0
    r = await outreach(h, desk["agent"], desk["email"], desk["contact_id"], "Closed before morning")
    cid = r.json()["id"]
    r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=desk["agent"].headers, json={"status": "closed"})
    assert r.status_code == 200
    clock.freeze(berlin("2026-11-25T08:00:00"))
    await h.run_jobs()
    (row,) = await rows(h.runtime, DeferredSend)
    assert row.status == DeferredStatus.failed
    assert row.explanation == "Not sent: the conversation is closed; start a new one to write to the customer"
    (activity,) = await rows(h.runtime, Activity, Activity.conversation_id == cid, Activity.verb == "send_refused")
    assert activity.data["explanation"] == row.explanation
    assert await count(h, Message, Message.conversation_id == cid) == 0
    (job,) = await rows(h.runtime, Job, Job.kind == "preferences.send_deferred")
    assert job.status == JobStatus.done  # not retried: it is settled


# --- merged contacts ------------------------------------------------------------------------------

async def test_a_merge_keeps_the_survivors_rules_and_counts_both_histories(
        h: Harness, portal: httpx.AsyncClient, desk: dict[str, Any]) -> None:
    agent = desk["agent"]
    await set_rules(portal, contact_cap={"max_contacts": 2, "per_days": 7}, quiet_hours=BERLIN_NIGHT)
    r = await outreach(h, agent, desk["email"], desk["contact_id"], "Before the merge")
    assert r.json()["first_message"]["outcome"] == "send"
    r = await h.client.post("/api/v1/contacts", headers=agent.headers,
                            json={"name": "Ana L.", "email": "ana.work@example.org"})
    survivor = r.json()["id"]
    async with h.runtime.uow() as uow:
        uow.session.add(ContactRules(account_id=desk["ctx"].account_id, contact_id=survivor, never_channels=[],
                                     cap_count=2, cap_days=7, created_at=clock.now(), updated_at=clock.now()))
        await uow.session.commit()
    r = await h.client.post(f"/api/v1/contacts/{survivor}/merge", headers=agent.headers,
                            json={"other_contact_id": desk["contact_id"]})
    assert r.status_code == 201, r.text
    merge_id = r.json()["id"]

    # The merged contact's rules are not the survivor's: no quiet hours now; and its contact counts.
    r = await h.client.get(f"/api/v1/contacts/{desk['contact_id']}/preferences", headers=agent.headers)
    assert (r.json()["rules_of_contact_id"], r.json()["quiet_hours"]) == (survivor, None)
    assert r.json()["contacted_in_window"] == 1
    clock.freeze(berlin("2026-11-24T23:00:00"))
    r = await outreach(h, agent, desk["email"], survivor, "After the merge, at night")
    assert r.json()["first_message"]["outcome"] == "send"
    r = await outreach(h, agent, desk["email"], survivor, "A third one")
    assert r.status_code == 409 and "contacted 2 times" in r.json()["detail"]
    # Ana's portal session now reads (and writes) the survivor's rules.
    assert (await portal.get(RULES)).json()["contact_id"] == survivor
    # Undoing the merge gives Ana her own rules back.
    r = await h.client.post(f"/api/v1/contact-merges/{merge_id}/undo", headers=agent.headers)
    assert r.status_code == 200, r.text
    r = await h.client.get(f"/api/v1/contacts/{desk['contact_id']}/preferences", headers=agent.headers)
    assert (r.json()["rules_of_contact_id"], r.json()["quiet_hours"]) == (desk["contact_id"], BERLIN_NIGHT)


async def test_other_accounts_never_see_or_use_these_rules(h: Harness, portal: httpx.AsyncClient,
                                                           desk: dict[str, Any]) -> None:
    await set_rules(portal, never_channels=["twilio_sms"])
    other: AccountCtx = await h.make_account("Globex")
    r = await h.client.post("/api/v1/conversations", headers=other.admin.headers, json={
        "inbox_id": desk["email"], "contact_id": desk["contact_id"], "content": "hi"})
    assert r.status_code == 422 and await count(h, DeferredSend) == 0
    r = await h.client.get(f"/api/v1/conversations/{desk['cid']}/deferred-sends", headers=other.admin.headers)
    assert r.status_code == 404
