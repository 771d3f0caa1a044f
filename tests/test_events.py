"""Every publishing action: the exact events it publishes, their key payload and their audience
(Zulip's test_events.py). Events are captured after commit, so a rolled-back change must publish
nothing."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from sqlalchemy import func, select

from swarmdesk.accounts.models import Role
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations.actions import add_participant
from swarmdesk.conversations.models import Activity, Conversation, Message
from swarmdesk.core.clock import clock
from swarmdesk.events.base import Audience, BaseEvent
from tests.support import AccountCtx, ApiInbox, Harness, Receiver, inbound_payload

STAFF_ALL = Audience(roles=("admin", "supervisor"), all_agents=True)


def staff(*, team: int | None = None, users: tuple[int, ...] = ()) -> Audience:
    """What conversation events reach: admins and supervisors always, then a team or every agent."""
    if team is None:
        return Audience(roles=("admin", "supervisor"), all_agents=True, user_ids=users)
    return Audience(roles=("admin", "supervisor"), team_ids=(team,), user_ids=users)


def types(events: list[BaseEvent]) -> list[str]:
    return [e.type for e in events]


async def setup(h: Harness, **inbox_options) -> tuple[AccountCtx, ApiInbox]:  # noqa: ANN003
    clock.freeze(datetime.now(UTC).replace(microsecond=0))  # all clocks below read this instant
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx, **inbox_options)
    return ctx, inbox


async def inbound(h: Harness, inbox: ApiInbox, **kw) -> dict:  # noqa: ANN003
    r = await h.deliver(inbox, inbound_payload(**kw))
    assert r.status_code == 200, r.text
    return r.json()


async def patch(h: Harness, ctx: AccountCtx, conversation_id: int, body: dict, status: int = 200) -> dict:
    r = await h.client.patch(f"/api/v1/conversations/{conversation_id}", headers=ctx.admin.headers, json=body)
    assert r.status_code == status, r.text
    return r.json()


async def count(h: Harness, model: type, *where) -> int:  # noqa: ANN002
    async with h.runtime.uow() as uow:
        return await uow.session.scalar(select(func.count()).select_from(model).where(*where))


# --- inbound (API channel) ----------------------------------------------------------------------

async def test_inbound_message_new_conversation(h: Harness) -> None:
    ctx, inbox = await setup(h)
    with h.capture_events() as events:
        body = await inbound(h, inbox, message_id="m-1", content="Where is my parcel?", subject="Parcel")
    assert types(events) == ["contact.created", "conversation.created", "message.created",
                             "customer.message_created"]
    assert {e.account_id for e in events} == {ctx.account_id}
    contact_ev, conv_ev, msg_ev, cust_ev = events

    assert contact_ev.audience == STAFF_ALL
    assert contact_ev.contact.id == body["contact_id"]
    assert contact_ev.contact.name == "Ana Lima"
    assert contact_ev.contact.email is None

    assert conv_ev.audience == staff()
    c = conv_ev.conversation
    assert (c.id, c.inbox_id, c.channel, c.status, c.subject) == (body["conversation_id"], inbox.id, "api", "open",
                                                                  "Parcel")
    assert (c.contact.id, c.contact.name) == (body["contact_id"], "Ana Lima")
    assert (c.assignee_id, c.team_id, c.tags, c.message_count, c.reopen_count) == (None, None, [], 1, 0)
    assert c.waiting_since == clock.now() and c.last_customer_message_at == clock.now() and c.first_response_at is None

    assert msg_ev.audience == staff()
    m = msg_ev.message
    assert (m.id, m.conversation_id, m.content, m.direction, m.private, m.external_id, m.delivery_status) == (
        body["message_id"], body["conversation_id"], "Where is my parcel?", "incoming", False, "m-1", "received")
    assert (m.sender.type, m.sender.id, m.sender.name) == ("contact", body["contact_id"], "Ana Lima")
    assert msg_ev.conversation.id == body["conversation_id"]

    assert cust_ev.audience == Audience(contact_ids=(body["contact_id"],))
    cm = cust_ev.message
    assert (cm.id, cm.conversation_id, cm.content, cm.direction) == (
        body["message_id"], body["conversation_id"], "Where is my parcel?", "incoming")
    assert cust_ev.message.sender.id == body["contact_id"]


async def test_inbound_message_existing_conversation_reaches_team_and_assignee(h: Harness) -> None:
    ctx, inbox = await setup(h)
    team = await h.make_team(ctx, "Billing")
    agent = await h.make_user(ctx, "agent", teams=(team,))
    first = await inbound(h, inbox, message_id="m-1")
    await patch(h, ctx, first["conversation_id"], {"team_id": team, "assignee_id": agent.user_id})
    with h.capture_events() as events:
        again = await inbound(h, inbox, message_id="m-2", content="Any news?")
    assert again["conversation_id"] == first["conversation_id"]
    assert again["contact_id"] == first["contact_id"]
    assert types(events) == ["message.created", "customer.message_created", "notification.created"]
    msg_ev, cust_ev, _ = events
    assert msg_ev.audience == staff(team=team, users=(agent.user_id,))
    assert msg_ev.message.content == "Any news?"
    assert (msg_ev.conversation.message_count, msg_ev.conversation.assignee_id) == (2, agent.user_id)
    assert cust_ev.audience == Audience(contact_ids=(first["contact_id"],))


async def test_inbound_replay_publishes_nothing(h: Harness) -> None:
    ctx, inbox = await setup(h)
    payload = inbound_payload(message_id="m-1")
    assert (await h.deliver(inbox, payload, msg_id="msg_same")).status_code == 200
    with h.capture_events() as events:
        r = await h.deliver(inbox, payload, msg_id="msg_same")
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert events == []


async def test_inbound_message_reopens_resolved_conversation(h: Harness) -> None:
    ctx, inbox = await setup(h)
    first = await inbound(h, inbox, message_id="m-1")
    await patch(h, ctx, first["conversation_id"], {"status": "resolved"})
    with h.capture_events() as events:
        again = await inbound(h, inbox, message_id="m-2", content="Still broken")
    assert again["conversation_id"] == first["conversation_id"]
    # The reopen reaches staff and the customer's own widget (which showed "resolved").
    assert types(events) == ["conversation.status_changed", "customer.conversation_updated", "message.created",
                             "customer.message_created"]
    assert events[1].audience.contact_ids == (first["contact_id"],) and events[1].audience.user_ids == ()
    assert (events[1].conversation.id, events[1].conversation.status) == (first["conversation_id"], "open")
    status_ev = events[0]
    assert (status_ev.previous_status, status_ev.status) == ("resolved", "open")
    assert status_ev.audience == staff()
    c = status_ev.conversation
    assert (c.status, c.reopen_count, c.resolved_at, c.message_count) == ("open", 1, None, 2)


# --- agent side -------------------------------------------------------------------------------

async def test_agent_reply_events(h: Harness) -> None:
    ctx, inbox = await setup(h)
    team = await h.make_team(ctx, "Support")
    agent = await h.make_user(ctx, "agent", teams=(team,))
    first = await inbound(h, inbox)
    cid = first["conversation_id"]
    await patch(h, ctx, cid, {"team_id": team})
    with h.capture_events() as events:
        r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=agent.headers,
                                json={"content": "We are on it"})
    assert r.status_code == 201, r.text
    assert types(events) == ["message.created", "customer.message_created"]
    msg_ev, cust_ev = events
    assert msg_ev.audience == staff(team=team)
    m = msg_ev.message
    assert (m.id, m.content, m.direction, m.private, m.delivery_status) == (
        r.json()["id"], "We are on it", "outgoing", False, "pending")
    assert (m.sender.type, m.sender.id, m.sender.name) == ("user", agent.user_id, "Agent")
    c = msg_ev.conversation
    assert (c.first_response_at, c.last_agent_message_at, c.waiting_since, c.message_count) == (
        clock.now(), clock.now(), None, 2)

    assert cust_ev.audience == Audience(contact_ids=(first["contact_id"],))
    cm = cust_ev.message
    assert (cm.id, cm.content, cm.direction) == (r.json()["id"], "We are on it", "outgoing")
    # The customer sees the agent's name, never their user id.
    assert (cm.sender.type, cm.sender.id, cm.sender.name) == ("user", None, "Agent")
    assert "private" not in cust_ev.body()["message"]


async def test_internal_note_never_reaches_the_customer(h: Harness) -> None:
    ctx, inbox = await setup(h)
    first = await inbound(h, inbox)
    cid = first["conversation_id"]
    with h.capture_events() as events:
        r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=ctx.admin.headers,
                                json={"content": "Customer is a VIP", "private": True})
    assert r.status_code == 201, r.text
    assert types(events) == ["message.created"]
    assert not [e for e in events if e.type.startswith("customer.")]
    assert all(not e.audience.contact_ids for e in events)
    m = events[0].message
    assert (m.private, m.delivery_status, m.content) == (True, "not_sent", "Customer is a VIP")
    # A note is not a response: the customer is still waiting.
    c = events[0].conversation
    assert (c.first_response_at, c.waiting_since, c.message_count) == (None, clock.now(), 2)


async def test_participant_expert_is_in_the_audience(h: Harness) -> None:
    ctx, inbox = await setup(h)
    team = await h.make_team(ctx, "Tier 1")
    expert = await h.make_user(ctx, "expert", role=Role.expert)
    first = await inbound(h, inbox)
    cid = first["conversation_id"]
    await patch(h, ctx, cid, {"team_id": team})
    async with h.runtime.uow() as uow:  # the swarming layer's building block (no API yet)
        conversation = await uow.session.get(Conversation, cid)
        assert await add_participant(uow, conversation, expert.user_id) is True
        await uow.commit()
    with h.capture_events() as events:
        r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=expert.headers,
                                json={"content": "Check the firmware version", "private": True})
    assert r.status_code == 201, r.text
    assert types(events) == ["message.created"]
    assert events[0].audience == staff(team=team, users=(expert.user_id,))


async def test_customer_session_events(h: Harness) -> None:
    ctx, inbox = await setup(h)
    with h.capture_events() as events:
        headers = await h.customer_session(inbox, name="Widget Visitor")
    assert types(events) == ["contact.created"]
    contact_id = events[0].contact.id
    assert events[0].audience == STAFF_ALL
    assert events[0].contact.name == "Widget Visitor"

    with h.capture_events() as events:
        r = await h.client.post("/api/v1/customer/conversations", headers=headers,
                                json={"subject": "Login", "content": "I cannot log in"})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert types(events) == ["conversation.created", "message.created", "customer.message_created"]
    conv_ev, msg_ev, cust_ev = events
    assert conv_ev.audience == staff() and msg_ev.audience == staff()
    assert (conv_ev.conversation.id, conv_ev.conversation.subject, conv_ev.conversation.contact.id) == (
        cid, "Login", contact_id)
    assert (msg_ev.message.content, msg_ev.message.sender.type, msg_ev.message.sender.id) == (
        "I cannot log in", "contact", contact_id)
    assert msg_ev.message.channel == "api"
    assert cust_ev.audience == Audience(contact_ids=(contact_id,))

    with h.capture_events() as events:
        r = await h.client.post(f"/api/v1/customer/conversations/{cid}/messages", headers=headers,
                                json={"content": "Tried again, same error"})
    assert r.status_code == 201, r.text
    assert types(events) == ["message.created", "customer.message_created"]
    assert events[0].audience == staff()
    assert (events[0].message.id, events[0].message.content) == (r.json()["id"], "Tried again, same error")
    assert events[0].conversation.message_count == 2
    assert events[1].audience == Audience(contact_ids=(contact_id,))
    assert events[1].message.id == r.json()["id"]


# --- conversation updates ---------------------------------------------------------------------

async def test_status_change_events(h: Harness) -> None:
    ctx, inbox = await setup(h)
    first = await inbound(h, inbox)
    cid = first["conversation_id"]
    with h.capture_events() as events:
        await patch(h, ctx, cid, {"status": "pending"})
    assert types(events) == ["conversation.status_changed", "customer.conversation_updated"]
    status_ev, cust_ev = events
    assert (status_ev.previous_status, status_ev.status, status_ev.conversation.status) == ("open", "pending",
                                                                                         "pending")
    assert status_ev.audience == staff()
    assert cust_ev.audience == Audience(contact_ids=(first["contact_id"],))
    assert (cust_ev.conversation.id, cust_ev.conversation.status) == (cid, "pending")
    # The customer's shape carries no staff-only fields.
    assert set(cust_ev.body()["conversation"]) == {"id", "subject", "status", "created_at", "last_activity_at"}

    with h.capture_events() as events:
        await patch(h, ctx, cid, {"status": "resolved"})
    assert types(events) == ["conversation.status_changed", "customer.conversation_updated"]
    assert (events[0].previous_status, events[0].status, events[0].conversation.resolved_at) == (
        "pending", "resolved", clock.now())

    with h.capture_events() as events:  # no change, no event
        await patch(h, ctx, cid, {"status": "resolved"})
    assert events == []


async def test_assignment_events_reach_previous_and_new_assignee(h: Harness) -> None:
    ctx, inbox = await setup(h)
    a1 = await h.make_user(ctx, "first")
    a2 = await h.make_user(ctx, "second")
    cid = (await inbound(h, inbox))["conversation_id"]
    with h.capture_events() as events:
        body = await patch(h, ctx, cid, {"assignee_id": a1.user_id})
    assert body["assignee_id"] == a1.user_id
    assert types(events) == ["conversation.assigned", "notification.created"]
    ev = events[0]
    assert (ev.previous_assignee_id, ev.previous_team_id, ev.conversation.assignee_id) == (None, None, a1.user_id)
    assert ev.audience == staff(users=(a1.user_id,))

    with h.capture_events() as events:
        await patch(h, ctx, cid, {"assignee_id": a2.user_id})
    assert types(events) == ["conversation.assigned", "notification.created"]
    assert events[0].previous_assignee_id == a1.user_id
    assert events[0].audience == staff(users=tuple(sorted((a1.user_id, a2.user_id))))

    with h.capture_events() as events:
        await patch(h, ctx, cid, {"assignee_id": None})
    assert types(events) == ["conversation.assigned"]
    assert (events[0].previous_assignee_id, events[0].conversation.assignee_id) == (a2.user_id, None)
    assert events[0].audience == staff(users=(a2.user_id,))


async def test_team_change_events_reach_old_and_new_team(h: Harness) -> None:
    ctx, inbox = await setup(h)
    t1 = await h.make_team(ctx, "Billing")
    t2 = await h.make_team(ctx, "Returns")
    cid = (await inbound(h, inbox))["conversation_id"]
    with h.capture_events() as events:
        await patch(h, ctx, cid, {"team_id": t1})
    assert types(events) == ["conversation.assigned"]
    ev = events[0]
    assert (ev.previous_team_id, ev.previous_assignee_id, ev.conversation.team_id) == (None, None, t1)
    # Agents who saw it while it had no team hear that it left their view.
    assert ev.audience == Audience(roles=("admin", "supervisor"), all_agents=True, team_ids=(t1,))

    with h.capture_events() as events:
        await patch(h, ctx, cid, {"team_id": t2})
    assert types(events) == ["conversation.assigned"]
    assert (events[0].previous_team_id, events[0].conversation.team_id) == (t1, t2)
    assert events[0].audience == Audience(roles=("admin", "supervisor"), team_ids=tuple(sorted((t1, t2))))


async def test_priority_subject_and_attribute_events(h: Harness) -> None:
    ctx, inbox = await setup(h)
    first = await inbound(h, inbox)
    cid = first["conversation_id"]
    with h.capture_events() as events:
        await patch(h, ctx, cid, {"priority": "high", "subject": "Refund", "custom_attributes": {"order": "A-17"}})
    assert types(events) == ["conversation.updated"]
    ev = events[0]
    assert ev.changed == ["priority", "subject", "custom_attributes"]
    assert (ev.conversation.priority, ev.conversation.subject, ev.conversation.custom_attributes) == (
        "high", "Refund", {"order": "A-17"})
    assert ev.audience == staff()
    # Attributes are internal: nothing goes to the customer.
    assert not [e for e in events if e.audience.contact_ids]

    with h.capture_events() as events:
        await patch(h, ctx, cid, {"custom_attributes": {"plan": "pro"}})
    assert types(events) == ["conversation.updated"]
    assert events[0].changed == ["custom_attributes"]
    assert events[0].conversation.custom_attributes == {"order": "A-17", "plan": "pro"}


async def test_combined_update_publishes_each_kind_once(h: Harness) -> None:
    ctx, inbox = await setup(h)
    team = await h.make_team(ctx, "Support")
    agent = await h.make_user(ctx, "agent", teams=(team,))
    first = await inbound(h, inbox)
    cid = first["conversation_id"]
    with h.capture_events() as events:
        await patch(h, ctx, cid, {"status": "pending", "assignee_id": agent.user_id, "team_id": team,
                                  "priority": "urgent"})
    assert types(events) == ["conversation.status_changed", "customer.conversation_updated",
                             "conversation.assigned", "conversation.updated", "notification.created"]
    merged = Audience(roles=("admin", "supervisor"), all_agents=True, team_ids=(team,), user_ids=(agent.user_id,))
    assert [e.audience for e in events] == [merged, Audience(contact_ids=(first["contact_id"],)), merged, merged,
                                            Audience(user_ids=(agent.user_id,))]
    assert events[3].changed == ["priority"]


async def test_tag_events(h: Harness) -> None:
    ctx, inbox = await setup(h)
    cid = (await inbound(h, inbox))["conversation_id"]
    with h.capture_events() as events:
        r = await h.client.post(f"/api/v1/conversations/{cid}/tags", headers=ctx.admin.headers,
                                json={"add": ["Refund", "vip"]})
    assert r.status_code == 200 and r.json() == ["refund", "vip"]
    assert types(events) == ["conversation.updated"]
    assert (events[0].changed, events[0].conversation.tags) == (["tags"], ["refund", "vip"])
    assert events[0].audience == staff()

    with h.capture_events() as events:
        r = await h.client.post(f"/api/v1/conversations/{cid}/tags", headers=ctx.admin.headers,
                                json={"remove": ["vip"], "add": ["refund"]})
    assert r.json() == ["refund"]
    assert types(events) == ["conversation.updated"]
    assert events[0].conversation.tags == ["refund"]

    with h.capture_events() as events:  # nothing to change, nothing published
        r = await h.client.post(f"/api/v1/conversations/{cid}/tags", headers=ctx.admin.headers,
                                json={"add": ["refund"], "remove": ["absent"]})
    assert r.json() == ["refund"]
    assert events == []


# --- contacts -----------------------------------------------------------------------------------

async def test_contact_create_and_update_events(h: Harness) -> None:
    ctx, _ = await setup(h)
    with h.capture_events() as events:
        r = await h.client.post("/api/v1/contacts", headers=ctx.admin.headers,
                                json={"name": "Bea", "email": "Bea@Example.com", "phone": "+44 20 7946 0958"})
    assert r.status_code == 201, r.text
    assert types(events) == ["contact.created"]
    c = events[0].contact
    assert (c.id, c.name, c.email, c.phone) == (r.json()["id"], "Bea", "bea@example.com", "+442079460958")
    assert events[0].audience == STAFF_ALL
    assert events[0].account_id == ctx.account_id

    with h.capture_events() as events:
        r2 = await h.client.patch(f"/api/v1/contacts/{c.id}", headers=ctx.admin.headers,
                                  json={"name": "Beatriz", "custom_attributes": {"tier": "gold"}})
    assert r2.status_code == 200, r2.text
    assert types(events) == ["contact.updated"]
    assert (events[0].contact.name, events[0].contact.custom_attributes) == ("Beatriz", {"tier": "gold"})
    assert events[0].audience == STAFF_ALL

    with h.capture_events() as events:  # a conflict rolls back: nothing published
        other = await h.client.post("/api/v1/contacts", headers=ctx.admin.headers, json={"email": "bea@example.com"})
    assert other.status_code == 409
    assert events == []


# --- delivery -----------------------------------------------------------------------------------

async def test_delivery_failure_is_published_to_staff(h: Harness) -> None:
    ctx, inbox = await setup(h)  # no callback_url: replies cannot be delivered
    cid = (await inbound(h, inbox))["conversation_id"]
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=ctx.admin.headers,
                            json={"content": "Hello"})
    assert r.status_code == 201
    with h.capture_events() as events:
        await h.run_jobs()
    updates = [e for e in events if e.type == "message.updated"]
    assert len(updates) == 1
    assert (updates[0].message.id, updates[0].message.delivery_status, updates[0].message.delivery_error) == (
        r.json()["id"], "failed", "this API inbox has no callback_url to deliver replies to")
    assert updates[0].audience == staff()
    assert not [e for e in events if e.type.startswith("customer.")]


async def test_delivery_success_is_published_to_staff(h: Harness) -> None:
    clock.reset()  # the receiver's signature check and ours use the real time
    receiver = Receiver()
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    inbox = await h.make_api_inbox(ctx, callback_url=receiver.url)
    team = await h.make_team(ctx, "Support")
    first = await inbound(h, inbox)
    cid = first["conversation_id"]
    await patch(h, ctx, cid, {"team_id": team})
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=ctx.admin.headers,
                            json={"content": "Your refund is on its way"})
    async with receiver.running():
        with h.capture_events() as events:
            await h.run_jobs()
    assert len(receiver.requests) == 1
    assert receiver.requests[0].json()["data"]["content"] == "Your refund is on its way"
    assert types(events) == ["message.updated"]
    assert (events[0].message.id, events[0].message.delivery_status, events[0].message.delivery_error) == (
        r.json()["id"], "sent", None)
    assert events[0].audience == staff(team=team)


# --- access -------------------------------------------------------------------------------------

async def test_access_changed_on_deactivation_and_role_change(h: Harness) -> None:
    ctx, _ = await setup(h)
    agent = await h.make_user(ctx, "agent")
    with h.capture_events() as events:
        r = await h.client.patch(f"/api/v1/users/{agent.user_id}", headers=ctx.admin.headers,
                                 json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert types(events) == ["access.changed"]
    assert (events[0].user_id, events[0].audience) == (agent.user_id, Audience(user_ids=(agent.user_id,)))

    with h.capture_events() as events:
        r = await h.client.patch(f"/api/v1/users/{agent.user_id}", headers=ctx.admin.headers,
                                 json={"role": "supervisor"})
    assert r.status_code == 200
    assert types(events) == ["access.changed"]

    with h.capture_events() as events:  # a new display name changes nobody's access
        r = await h.client.patch(f"/api/v1/users/{agent.user_id}", headers=ctx.admin.headers, json={"name": "Al"})
    assert r.status_code == 200
    assert events == []


async def test_access_changed_on_team_membership(h: Harness) -> None:
    ctx, _ = await setup(h)
    team = await h.make_team(ctx, "Billing")
    agent = await h.make_user(ctx, "agent")
    with h.capture_events() as events:
        r = await h.client.post(f"/api/v1/teams/{team}/members", headers=ctx.admin.headers,
                                json={"user_id": agent.user_id})
    assert r.status_code == 200 and r.json()["member_ids"] == [agent.user_id]
    assert types(events) == ["access.changed"]
    assert (events[0].user_id, events[0].audience) == (agent.user_id, Audience(user_ids=(agent.user_id,)))

    with h.capture_events() as events:  # already a member: no change
        await h.client.post(f"/api/v1/teams/{team}/members", headers=ctx.admin.headers,
                            json={"user_id": agent.user_id})
    assert events == []

    with h.capture_events() as events:
        r = await h.client.delete(f"/api/v1/teams/{team}/members/{agent.user_id}", headers=ctx.admin.headers)
    assert r.status_code == 200 and r.json()["member_ids"] == []
    assert types(events) == ["access.changed"]
    assert events[0].audience == Audience(user_ids=(agent.user_id,))

    await h.client.post(f"/api/v1/teams/{team}/members", headers=ctx.admin.headers, json={"user_id": agent.user_id})
    with h.capture_events() as events:
        r = await h.client.delete(f"/api/v1/teams/{team}", headers=ctx.admin.headers)
    assert r.status_code == 204
    assert types(events) == ["access.changed"]
    assert events[0].user_id == agent.user_id


# --- nothing is published for a change that did not commit ------------------------------------

async def test_failed_update_publishes_nothing_and_changes_nothing(h: Harness) -> None:
    ctx, inbox = await setup(h)
    cid = (await inbound(h, inbox))["conversation_id"]
    activities = await count(h, Activity, Activity.conversation_id == cid)
    with h.capture_events() as events:
        # The status change is applied inside the action before the invalid priority is refused.
        r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=ctx.admin.headers,
                                 json={"status": "resolved", "priority": None})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "priority cannot be null"
    assert events == []
    got = (await h.client.get(f"/api/v1/conversations/{cid}", headers=ctx.admin.headers)).json()
    assert (got["status"], got["resolved_at"]) == ("open", None)
    assert await count(h, Activity, Activity.conversation_id == cid) == activities


async def test_failed_reply_publishes_nothing(h: Harness) -> None:
    ctx, inbox = await setup(h)
    cid = (await inbound(h, inbox))["conversation_id"]
    with h.capture_events() as events:
        r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=ctx.admin.headers,
                                json={"content": "See attached", "attachments": [
                                    {"filename": "a.txt", "data_base64": "not base64!"}]})
    assert r.status_code == 422, r.text
    assert events == []
    assert await count(h, Message, Message.conversation_id == cid) == 1


async def test_failed_inbound_publishes_nothing_and_creates_no_contact(h: Harness) -> None:
    ctx, inbox = await setup(h)
    await inbound(h, inbox, message_id="m-1", source_id="cust-1", conversation_key="thread-1")
    contacts = await count(h, Contact, Contact.account_id == ctx.account_id)
    with h.capture_events() as events:
        # A new sender claiming another customer's thread: the new contact (and its
        # contact.created event) is rolled back with the refused message.
        r = await h.deliver(inbox, inbound_payload(message_id="m-2", source_id="intruder",
                                                   conversation_key="thread-1"))
    assert r.status_code == 409, r.text
    assert events == []
    assert await count(h, Contact, Contact.account_id == ctx.account_id) == contacts
    assert await count(h, Conversation, Conversation.account_id == ctx.account_id) == 1


async def test_attachment_reply_events_carry_attachment_urls(h: Harness) -> None:
    ctx, inbox = await setup(h)
    first = await inbound(h, inbox)
    cid = first["conversation_id"]
    data = b"\x89PNG\r\n\x1a\n" + b"0" * 16
    with h.capture_events() as events:
        r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=ctx.admin.headers, json={
            "content": "Screenshot", "attachments": [{"filename": "shot.png", "content_type": "image/png",
                                                      "data_base64": base64.b64encode(data).decode()}]})
    assert r.status_code == 201, r.text
    (att,) = r.json()["attachments"]
    msg_ev, cust_ev = events
    assert [a.model_dump() for a in msg_ev.message.attachments] == [att]
    assert [a.url for a in cust_ev.message.attachments] == [
        f"/api/v1/customer/conversations/{cid}/attachments/{att['id']}"]
    assert (cust_ev.message.attachments[0].size, cust_ev.message.attachments[0].filename) == (len(data), "shot.png")
