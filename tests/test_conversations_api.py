"""The conversations API: listing and filters, keyset pagination, the status life cycle, response
clocks, the activity log, tags, agent-started conversations and attachments."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from swarmdesk.core.clock import clock
from swarmdesk.core.pagination import encode_cursor
from tests.support import ApiInbox, Harness, Staff, inbound_payload

BASE = "/api/v1/conversations"


def start_clock() -> datetime:
    """Freeze time (near the real time, so webhook signatures stay inside their tolerance)."""
    at = datetime.now(UTC).replace(microsecond=123456)
    clock.freeze(at)
    return at


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def inbound(h: Harness, inbox: ApiInbox, source_id: str = "cust-1", **kw) -> dict:  # noqa: ANN003
    r = await h.deliver(inbox, inbound_payload(source_id=source_id, **kw))
    assert r.status_code == 200, r.text
    return r.json()


async def patch(h: Harness, who: Staff, cid: int, body: dict, status: int = 200) -> dict:
    r = await h.client.patch(f"{BASE}/{cid}", headers=who.headers, json=body)
    assert r.status_code == status, r.text
    return r.json()


async def reply(h: Harness, who: Staff, cid: int, content: str, *, private: bool = False,
                status: int = 201) -> dict:
    r = await h.client.post(f"{BASE}/{cid}/messages", headers=who.headers,
                            json={"content": content, "private": private})
    assert r.status_code == status, r.text
    return r.json()


async def get(h: Harness, who: Staff, cid: int) -> dict:
    r = await h.client.get(f"{BASE}/{cid}", headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def ids(h: Harness, who: Staff, **params) -> list[int]:  # noqa: ANN003
    r = await h.client.get(BASE, headers=who.headers, params=params)
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    return [c["id"] for c in r.json()["items"]]


async def activity(h: Harness, who: Staff, cid: int) -> list[dict]:
    r = await h.client.get(f"{BASE}/{cid}/activity", headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


# --- listing ------------------------------------------------------------------------------------

async def test_list_filters(h: Harness) -> None:
    t0 = start_clock()
    ctx = await h.make_account()
    admin = ctx.admin
    team = await h.make_team(ctx, "Billing")
    agent = await h.make_user(ctx, "agent", teams=(team,))
    inbox1 = await h.make_api_inbox(ctx)
    inbox2 = await h.make_api_inbox(ctx)
    conv = {}
    for n, (inbox, source) in enumerate([(inbox1, "c1"), (inbox1, "c2"), (inbox2, "c3"), (inbox2, "c4")], 1):
        clock.advance(timedelta(seconds=1))  # distinct last_activity_at: newest first
        conv[n] = (await inbound(h, inbox, source_id=source))["conversation_id"]
    c1, c2, c3, c4 = conv[1], conv[2], conv[3], conv[4]
    r = await h.client.post(f"{BASE}/{c1}/tags", headers=admin.headers, json={"add": ["vip"]})
    assert r.status_code == 200
    await patch(h, admin, c2, {"assignee_id": agent.user_id, "team_id": team, "status": "pending"})
    await patch(h, admin, c3, {"team_id": team, "status": "resolved"})
    await patch(h, admin, c4, {"assignee_id": admin.user_id})

    assert await ids(h, admin) == [c4, c3, c2, c1]
    assert await ids(h, admin, status="open") == [c4, c1]
    assert await ids(h, admin, status=["open", "pending"]) == [c4, c2, c1]
    assert await ids(h, admin, status="closed") == []
    assert await ids(h, admin, assignee_id="me") == [c4]
    assert await ids(h, agent, assignee_id="me") == [c2]
    assert await ids(h, admin, assignee_id="none") == [c3, c1]
    assert await ids(h, admin, assignee_id=str(agent.user_id)) == [c2]
    assert await ids(h, admin, team_id=team) == [c3, c2]
    assert await ids(h, admin, tag="VIP") == [c1]
    assert await ids(h, admin, tag="missing") == []
    assert await ids(h, admin, inbox_id=inbox2.id) == [c4, c3]
    assert await ids(h, admin, inbox_id=inbox1.id, status="pending") == [c2]

    clock.advance(timedelta(minutes=5))
    since = clock.now()
    await patch(h, admin, c1, {"priority": "high"})
    assert await ids(h, admin, updated_since=since.isoformat()) == [c1]
    assert await ids(h, admin, updated_since=iso(since + timedelta(seconds=1))) == []
    assert await ids(h, admin, updated_since=iso(t0)) == [c4, c3, c2, c1]

    r = await h.client.get(BASE, headers=admin.headers, params={"assignee_id": "someone"})
    assert r.status_code == 400
    assert r.json()["detail"] == "assignee_id must be a user id, 'me' or 'none'"
    r = await h.client.get(BASE, headers=admin.headers, params={"status": "bogus"})
    assert r.status_code == 422
    # A time without an offset is ambiguous: refused, not guessed (and never a 500).
    r = await h.client.get(BASE, headers=admin.headers, params={"updated_since": "2030-01-01T00:00:00"})
    assert (r.status_code, r.json()["errors"][0]["loc"]) == (422, ["query", "updated_since"])


async def test_list_is_scoped_to_the_account(h: Harness) -> None:
    start_clock()
    ctx = await h.make_account("Acme")
    other = await h.make_account("Other")
    inbox = await h.make_api_inbox(ctx)
    other_inbox = await h.make_api_inbox(other)
    mine = (await inbound(h, inbox))["conversation_id"]
    theirs = (await inbound(h, other_inbox))["conversation_id"]
    assert await ids(h, ctx.admin) == [mine]
    assert await ids(h, other.admin) == [theirs]
    r = await h.client.get(f"{BASE}/{theirs}", headers=ctx.admin.headers)
    assert r.status_code == 404


async def test_cursor_pagination_is_stable_across_ties(h: Harness) -> None:
    start_clock()
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    created = []
    for n in range(7):
        if n == 3:
            clock.advance(timedelta(seconds=1))  # three conversations share one instant, four the next
        created.append((await inbound(h, inbox, source_id=f"cust-{n}"))["conversation_id"])
    expected = list(reversed(created[3:])) + list(reversed(created[:3]))

    seen: list[int] = []
    pages = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = await h.client.get(BASE, headers=ctx.admin.headers, params=params)
        assert r.status_code == 200, r.text
        page = [c["id"] for c in r.json()["items"]]
        pages.append(page)
        seen.extend(page)
        cursor = r.json()["next_cursor"]
        if len(pages) == 1:
            # Something new arriving mid-walk lands before the cursor: no duplicates, no shifts.
            clock.advance(timedelta(seconds=1))
            newest = (await inbound(h, inbox, source_id="late"))["conversation_id"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 2, 1]
    assert seen == expected
    assert len(set(seen)) == 7
    assert newest not in seen

    r = await h.client.get(BASE, headers=ctx.admin.headers, params={"limit": 10})
    assert [c["id"] for c in r.json()["items"]] == [newest, *expected]
    assert r.json()["next_cursor"] is None

    for cursor in ("not-a-cursor", encode_cursor(["2030-01-01T00:00:00", 5]), encode_cursor([1, 2]),
                   encode_cursor(["2030-01-01T00:00:00+00:00"])):
        r = await h.client.get(BASE, headers=ctx.admin.headers, params={"cursor": cursor})
        assert (r.status_code, r.json()["detail"]) == (
            400, "cursor is not valid; use the next_cursor a previous page returned"), cursor
    r = await h.client.get(BASE, headers=ctx.admin.headers, params={"limit": 0})
    assert r.status_code == 422


# --- status life cycle --------------------------------------------------------------------------

async def test_resolve_then_customer_reply_reopens(h: Harness) -> None:
    t0 = start_clock()
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    first = await inbound(h, inbox, message_id="m-1")
    cid = first["conversation_id"]
    clock.advance(timedelta(minutes=1))
    body = await patch(h, ctx.admin, cid, {"status": "resolved"})
    assert (body["status"], body["resolved_at"], body["reopen_count"]) == ("resolved", iso(t0 + timedelta(minutes=1)),
                                                                          0)
    clock.advance(timedelta(minutes=1))
    again = await inbound(h, inbox, message_id="m-2", content="It broke again")
    assert again["conversation_id"] == cid
    body = await get(h, ctx.admin, cid)
    assert (body["status"], body["resolved_at"], body["reopen_count"], body["message_count"]) == ("open", None, 1, 2)
    # Resolving ended the wait; the customer's new message starts a new one.
    assert body["waiting_since"] == iso(t0 + timedelta(minutes=2))

    await patch(h, ctx.admin, cid, {"status": "resolved"})
    await inbound(h, inbox, message_id="m-3")
    assert (await get(h, ctx.admin, cid))["reopen_count"] == 2

    reopen = [a for a in await activity(h, ctx.admin, cid) if a["actor_type"] == "contact"]
    assert [(a["verb"], a["actor_id"], a["data"]) for a in reopen] == [
        ("created", first["contact_id"], {"inbox_id": inbox.id, "channel": "api"}),
        ("status_changed", first["contact_id"], {"from": "resolved", "to": "open", "reason": "customer replied"}),
        ("status_changed", first["contact_id"], {"from": "resolved", "to": "open", "reason": "customer replied"}),
    ]


async def test_pending_and_snoozed_reopen_on_customer_reply(h: Harness) -> None:
    t0 = start_clock()
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    cid = (await inbound(h, inbox))["conversation_id"]
    r = await h.client.patch(f"{BASE}/{cid}", headers=ctx.admin.headers, json={"status": "snoozed"})
    assert r.status_code == 422 and r.json()["detail"] == "snoozing needs snoozed_until"
    r = await h.client.patch(f"{BASE}/{cid}", headers=ctx.admin.headers,
                             json={"status": "snoozed", "snoozed_until": "2030-01-01T09:00:00"})
    assert (r.status_code, r.json()["errors"][0]["loc"]) == (422, ["body", "snoozed_until"])
    assert (await get(h, ctx.admin, cid))["status"] == "open"
    until = t0 + timedelta(days=1)
    body = await patch(h, ctx.admin, cid, {"status": "snoozed", "snoozed_until": until.isoformat()})
    assert (body["status"], body["snoozed_until"]) == ("snoozed", iso(until))
    await inbound(h, inbox)
    body = await get(h, ctx.admin, cid)
    # Only resolved and closed conversations count as reopened.
    assert (body["status"], body["snoozed_until"], body["reopen_count"]) == ("open", None, 0)

    await patch(h, ctx.admin, cid, {"status": "pending"})
    await inbound(h, inbox)
    body = await get(h, ctx.admin, cid)
    assert (body["status"], body["reopen_count"]) == ("open", 0)


async def test_closed_is_final_for_the_customer(h: Harness) -> None:
    t0 = start_clock()
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    first = await inbound(h, inbox, message_id="m-1")
    cid = first["conversation_id"]
    await patch(h, ctx.admin, cid, {"status": "resolved"})
    body = await patch(h, ctx.admin, cid, {"status": "closed"})
    assert (body["status"], body["resolved_at"]) == ("closed", iso(t0))

    # A public reply to a closed conversation is refused and stores nothing; a note is fine.
    r = await h.client.post(f"{BASE}/{cid}/messages", headers=ctx.admin.headers, json={"content": "Hello?"})
    assert r.status_code == 409
    await reply(h, ctx.admin, cid, "Closing note", private=True)

    clock.advance(timedelta(minutes=1))
    again = await inbound(h, inbox, message_id="m-2", content="New problem")
    assert again["contact_id"] == first["contact_id"]
    assert again["conversation_id"] != cid
    old = await get(h, ctx.admin, cid)
    assert (old["status"], old["reopen_count"], old["message_count"]) == ("closed", 0, 2)
    new = await get(h, ctx.admin, again["conversation_id"])
    assert (new["status"], new["message_count"], new["reopen_count"], new["created_at"]) == (
        "open", 1, 0, iso(t0 + timedelta(minutes=1)))
    r = await h.client.get(f"{BASE}/{cid}/messages", headers=ctx.admin.headers)
    assert [m["content"] for m in r.json()["items"]] == ["Hello, my order is late", "Closing note"]


async def test_closed_thread_key_is_refused(h: Harness) -> None:
    start_clock()
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    cid = (await inbound(h, inbox, message_id="m-1", conversation_key="order-17"))["conversation_id"]
    assert (await inbound(h, inbox, message_id="m-2", conversation_key="order-17"))["conversation_id"] == cid
    await patch(h, ctx.admin, cid, {"status": "closed"})
    r = await h.deliver(inbox, inbound_payload(message_id="m-3", conversation_key="order-17"))
    assert r.status_code == 409, r.text
    assert (await get(h, ctx.admin, cid))["message_count"] == 2


async def test_customer_session_cannot_write_to_closed_conversation(h: Harness) -> None:
    start_clock()
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    customer = await h.customer_session(inbox)
    r = await h.client.post("/api/v1/customer/conversations", headers=customer, json={"content": "Hi"})
    cid = r.json()["id"]
    await patch(h, ctx.admin, cid, {"status": "closed"})
    r = await h.client.post(f"/api/v1/customer/conversations/{cid}/messages", headers=customer,
                            json={"content": "Hello again"})
    assert r.status_code == 409
    assert (await get(h, ctx.admin, cid))["message_count"] == 1


# --- clocks -------------------------------------------------------------------------------------

async def test_response_clocks_and_message_count(h: Harness) -> None:
    t0 = start_clock()
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    cid = (await inbound(h, inbox))["conversation_id"]
    c = await get(h, ctx.admin, cid)
    assert (c["waiting_since"], c["last_customer_message_at"], c["first_response_at"], c["last_agent_message_at"],
            c["last_activity_at"], c["message_count"]) == (iso(t0), iso(t0), None, None, iso(t0), 1)

    clock.advance(timedelta(seconds=30))
    await reply(h, ctx.admin, cid, "Internal: checking the warehouse", private=True)
    c = await get(h, ctx.admin, cid)
    assert (c["waiting_since"], c["first_response_at"], c["last_agent_message_at"], c["last_activity_at"],
            c["message_count"]) == (iso(t0), None, None, iso(t0 + timedelta(seconds=30)), 2)

    clock.advance(timedelta(seconds=30))
    t2 = clock.now()
    await reply(h, ctx.admin, cid, "It ships today")
    c = await get(h, ctx.admin, cid)
    assert (c["waiting_since"], c["first_response_at"], c["last_agent_message_at"], c["message_count"]) == (
        None, iso(t2), iso(t2), 3)

    clock.advance(timedelta(seconds=30))
    t3 = clock.now()
    await reply(h, ctx.admin, cid, "Tracking number follows")
    c = await get(h, ctx.admin, cid)
    assert (c["first_response_at"], c["last_agent_message_at"]) == (iso(t2), iso(t3))

    clock.advance(timedelta(seconds=30))
    t4 = clock.now()
    await inbound(h, inbox, content="Thanks!")
    c = await get(h, ctx.admin, cid)
    assert (c["waiting_since"], c["last_customer_message_at"], c["first_response_at"], c["last_activity_at"],
            c["message_count"]) == (iso(t4), iso(t4), iso(t2), iso(t4), 5)

    r = await h.client.get(f"{BASE}/{cid}/messages", headers=ctx.admin.headers)
    assert [(m["direction"], m["private"], m["delivery_status"]) for m in r.json()["items"]] == [
        ("incoming", False, "received"), ("outgoing", True, "not_sent"), ("outgoing", False, "pending"),
        ("outgoing", False, "pending"), ("incoming", False, "received")]
    r = await h.client.get(f"{BASE}/{cid}/messages", headers=ctx.admin.headers, params={"limit": 2})
    first_page = r.json()
    r = await h.client.get(f"{BASE}/{cid}/messages", headers=ctx.admin.headers,
                           params={"limit": 2, "after_id": first_page["next_cursor"]})
    assert [m["content"] for m in first_page["items"] + r.json()["items"]] == [
        "Hello, my order is late", "Internal: checking the warehouse", "It ships today", "Tracking number follows"]


async def test_empty_reply_is_refused(h: Harness) -> None:
    start_clock()
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    cid = (await inbound(h, inbox))["conversation_id"]
    r = await h.client.post(f"{BASE}/{cid}/messages", headers=ctx.admin.headers, json={"content": "   "})
    assert r.status_code == 422
    assert r.json()["detail"] == "a message needs content or at least one attachment"
    assert (await get(h, ctx.admin, cid))["message_count"] == 1


# --- activity log -------------------------------------------------------------------------------

async def test_activity_log_records_who_what_when(h: Harness) -> None:
    t0 = start_clock()
    ctx = await h.make_account()
    admin = ctx.admin
    team = await h.make_team(ctx, "Billing")
    agent = await h.make_user(ctx, "agent", teams=(team,))
    inbox = await h.make_api_inbox(ctx)
    first = await inbound(h, inbox)
    cid = first["conversation_id"]

    steps = [
        (admin, {"status": "pending"}),
        (agent, {"assignee_id": agent.user_id}),
        (admin, {"team_id": team}),
        (agent, {"priority": "urgent", "subject": "Refund"}),
        (agent, {"custom_attributes": {"order": "A-17"}}),
        (admin, {"snoozed_until": iso(t0 + timedelta(hours=2))}),
    ]
    for n, (who, body) in enumerate(steps, 1):
        clock.advance(timedelta(seconds=n))
        await patch(h, who, cid, body)
    clock.advance(timedelta(seconds=10))
    r = await h.client.post(f"{BASE}/{cid}/tags", headers=agent.headers, json={"add": ["refund"], "remove": ["x"]})
    assert r.status_code == 200
    # Replies are messages, not activity; an update that changes nothing records nothing.
    await reply(h, agent, cid, "On it")
    await patch(h, admin, cid, {"priority": "urgent"})

    at = [t0 + timedelta(seconds=s) for s in (0, 1, 3, 6, 10, 15, 21, 31)]
    got = [(a["actor_type"], a["actor_id"], a["verb"], a["data"], a["created_at"], a["conversation_id"])
           for a in await activity(h, admin, cid)]
    assert got == [
        ("contact", first["contact_id"], "created", {"inbox_id": inbox.id, "channel": "api"}, iso(at[0]), cid),
        ("user", admin.user_id, "status_changed", {"from": "open", "to": "pending"}, iso(at[1]), cid),
        ("user", agent.user_id, "assigned", {"from": None, "to": agent.user_id}, iso(at[2]), cid),
        ("user", admin.user_id, "team_changed", {"from": None, "to": team}, iso(at[3]), cid),
        ("user", agent.user_id, "priority_changed", {"from": "none", "to": "urgent"}, iso(at[4]), cid),
        ("user", agent.user_id, "subject_changed", {"from": "", "to": "Refund"}, iso(at[4]), cid),
        ("user", agent.user_id, "custom_attributes_changed", {"from": {}, "to": {"order": "A-17"}}, iso(at[5]), cid),
        ("user", admin.user_id, "snoozed_until_changed",
         {"from": None, "to": (t0 + timedelta(hours=2)).isoformat()}, iso(at[6]), cid),
        ("user", agent.user_id, "tags_changed", {"added": ["refund"], "removed": []}, iso(at[7]), cid),
    ]

    r = await h.client.get(f"{BASE}/{cid}/activity", headers=admin.headers, params={"limit": 4})
    page = r.json()
    r = await h.client.get(f"{BASE}/{cid}/activity", headers=admin.headers,
                           params={"after_id": page["next_cursor"]})
    assert [a["verb"] for a in page["items"] + r.json()["items"]] == [g[2] for g in got]
    assert r.json()["next_cursor"] is None


async def test_invalid_assignment_changes_nothing(h: Harness) -> None:
    start_clock()
    ctx = await h.make_account()
    other = await h.make_account("Other")
    inbox = await h.make_api_inbox(ctx)
    cid = (await inbound(h, inbox))["conversation_id"]
    other_team = await h.make_team(other, "Theirs")
    r = await h.client.patch(f"{BASE}/{cid}", headers=ctx.admin.headers, json={"assignee_id": other.admin.user_id})
    assert r.status_code == 422
    assert r.json()["detail"] == f"user {other.admin.user_id} is not an active user of this account"
    r = await h.client.patch(f"{BASE}/{cid}", headers=ctx.admin.headers, json={"team_id": other_team})
    assert r.status_code == 422
    r = await h.client.patch(f"{BASE}/{cid}", headers=ctx.admin.headers, json={"status": None})
    assert r.status_code == 422
    r = await h.client.patch(f"{BASE}/{cid}", headers=ctx.admin.headers, json={"bogus": 1})
    assert r.status_code == 422
    body = await get(h, ctx.admin, cid)
    assert (body["assignee_id"], body["team_id"], body["status"]) == (None, None, "open")
    assert [a["verb"] for a in await activity(h, ctx.admin, cid)] == ["created"]


# --- tags ---------------------------------------------------------------------------------------

async def test_tags_add_and_remove(h: Harness) -> None:
    start_clock()
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    cid = (await inbound(h, inbox))["conversation_id"]
    url = f"{BASE}/{cid}/tags"
    r = await h.client.post(url, headers=ctx.admin.headers, json={"add": [" Billing ", "late delivery", "billing"]})
    assert r.status_code == 200 and r.json() == ["billing", "late delivery"]
    r = await h.client.post(url, headers=ctx.admin.headers, json={"add": ["vip"], "remove": ["billing"]})
    assert r.json() == ["late delivery", "vip"]
    assert (await get(h, ctx.admin, cid))["tags"] == ["late delivery", "vip"]
    assert await ids(h, ctx.admin, tag="vip") == [cid]
    assert await ids(h, ctx.admin, tag="billing") == []

    for bad in (["no/slash"], [""], ["x" * 101]):
        r = await h.client.post(url, headers=ctx.admin.headers, json={"add": bad})
        assert r.status_code == 422, bad
    assert (await get(h, ctx.admin, cid))["tags"] == ["late delivery", "vip"]

    r = await h.client.post(url, headers=ctx.admin.headers, json={"remove": ["late delivery", "vip"]})
    assert r.json() == []
    assert (await get(h, ctx.admin, cid))["tags"] == []


# --- agent-started conversations ---------------------------------------------------------------

async def test_agent_starts_a_conversation(h: Harness) -> None:
    t0 = start_clock()
    ctx = await h.make_account()
    team = await h.make_team(ctx, "Sales")
    agent = await h.make_user(ctx, "agent", teams=(team,))
    inbox = await h.make_api_inbox(ctx)
    r = await h.client.post("/api/v1/contacts", headers=agent.headers, json={"name": "Carla", "email": "c@ex.com"})
    contact_id = r.json()["id"]

    r = await h.client.post(BASE, headers=agent.headers, json={
        "inbox_id": inbox.id, "contact_id": contact_id, "subject": "Your renewal", "content": "Hi Carla, ...",
        "priority": "low", "team_id": team, "assignee_id": agent.user_id, "tags": ["Renewal"]})
    assert r.status_code == 201, r.text
    c = r.json()
    assert (c["inbox_id"], c["channel"], c["contact"], c["subject"], c["status"], c["priority"]) == (
        inbox.id, "api", {"id": contact_id, "name": "Carla", "email": "c@ex.com", "phone": None}, "Your renewal",
        "open", "low")
    assert (c["team_id"], c["assignee_id"], c["tags"], c["message_count"]) == (team, agent.user_id, ["renewal"], 1)
    # Nobody was waiting, so the first message is not a "response".
    assert (c["waiting_since"], c["first_response_at"], c["last_agent_message_at"], c["created_at"]) == (
        None, None, iso(t0), iso(t0))

    messages = (await h.client.get(f"{BASE}/{c['id']}/messages", headers=agent.headers)).json()["items"]
    assert [(m["direction"], m["content"], m["sender"]["id"], m["delivery_status"]) for m in messages] == [
        ("outgoing", "Hi Carla, ...", agent.user_id, "pending")]
    assert [(a["verb"], a["actor_type"], a["actor_id"]) for a in await activity(h, agent, c["id"])] == [
        ("created", "user", agent.user_id)]

    # Without content: a conversation with no messages yet.
    r = await h.client.post(BASE, headers=agent.headers, json={"inbox_id": inbox.id, "contact_id": contact_id})
    assert r.status_code == 201
    assert (r.json()["message_count"], r.json()["team_id"], r.json()["priority"]) == (0, None, "none")
    assert await ids(h, agent, contact_id=contact_id) == [r.json()["id"], c["id"]]


async def test_agent_started_conversation_validation(h: Harness) -> None:
    start_clock()
    ctx = await h.make_account()
    other = await h.make_account("Other")
    inbox = await h.make_api_inbox(ctx)
    other_inbox = await h.make_api_inbox(other)
    expert = await h.make_user(ctx, "expert", role="expert")
    contact_id = (await h.client.post("/api/v1/contacts", headers=ctx.admin.headers, json={"name": "D"})).json()["id"]
    other_contact = (await h.client.post("/api/v1/contacts", headers=other.admin.headers,
                                         json={"name": "E"})).json()["id"]
    cases = [
        (ctx.admin, {"inbox_id": other_inbox.id, "contact_id": contact_id}, 422,
         f"inbox {other_inbox.id} does not exist in this account"),
        (ctx.admin, {"inbox_id": inbox.id, "contact_id": other_contact}, 422,
         f"contact {other_contact} does not exist in this account"),
        (ctx.admin, {"inbox_id": inbox.id, "contact_id": contact_id, "assignee_id": other.admin.user_id}, 422,
         f"user {other.admin.user_id} is not an active user of this account"),
        (expert, {"inbox_id": inbox.id, "contact_id": contact_id}, 403,
         "experts can add internal notes but not reply to the customer"),
    ]
    for who, body, status, detail in cases:
        r = await h.client.post(BASE, headers=who.headers, json=body)
        assert (r.status_code, r.json()["detail"]) == (status, detail)
    assert await ids(h, ctx.admin) == []


# --- attachments --------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(64))


def disposition(header: str) -> tuple[str, str]:
    """(inline|attachment, filename) from an RFC 5987 ``filename*=UTF-8''...`` header."""
    kind, _, param = header.partition("; filename*=UTF-8''")
    return kind, unquote(param, errors="strict")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_attachment_upload_and_download(h: Harness) -> None:
    start_clock()
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    customer = await h.customer_session(inbox)
    cid = (await h.client.post("/api/v1/customer/conversations", headers=customer,
                               json={"content": "Hi"})).json()["id"]
    html = b"<script>alert(1)</script>"
    r = await h.client.post(f"{BASE}/{cid}/messages", headers=ctx.admin.headers, json={
        "content": "Files attached", "attachments": [
            {"filename": "../../shot.png", "content_type": "image/png", "data_base64": b64(PNG)},
            {"filename": "page.html", "content_type": "text/html; charset=utf-8", "data_base64": b64(html)},
            {"filename": "Größe\u200b.gif", "content_type": "image/gif", "data_base64": b64(b"GIF89a")}]})
    assert r.status_code == 201, r.text
    png_out, html_out, gif_out = r.json()["attachments"]
    assert gif_out["filename"] == "Größe.gif"  # invisible characters removed
    r = await h.client.get(gif_out["url"], headers=ctx.admin.headers)
    assert disposition(r.headers["content-disposition"]) == ("inline", "Größe.gif")
    assert (png_out["filename"], png_out["content_type"], png_out["size"], png_out["url"]) == (
        "shot.png", "image/png", len(PNG), f"{BASE}/{cid}/attachments/{png_out['id']}")
    assert (html_out["filename"], html_out["content_type"], html_out["size"]) == ("page.html", "text/html",
                                                                                  len(html))

    r = await h.client.get(png_out["url"], headers=ctx.admin.headers)
    assert r.status_code == 200
    assert r.content == PNG
    assert r.headers["content-type"] == "image/png"
    assert disposition(r.headers["content-disposition"]) == ("inline", "shot.png")
    assert r.headers["x-content-type-options"] == "nosniff"
    # Active content is only ever a download.
    r = await h.client.get(html_out["url"], headers=ctx.admin.headers)
    assert r.content == html
    assert r.headers["content-type"] == "application/octet-stream"
    assert disposition(r.headers["content-disposition"]) == ("attachment", "page.html")

    # The customer reaches the same file through their own route.
    r = await h.client.get(f"/api/v1/customer/conversations/{cid}/attachments/{png_out['id']}", headers=customer)
    assert (r.status_code, r.content) == (200, PNG)
    r = await h.client.get(f"/api/v1/customer/conversations/{cid}/messages", headers=customer)
    assert [a["url"] for a in r.json()["items"][1]["attachments"]] == [
        f"/api/v1/customer/conversations/{cid}/attachments/{png_out['id']}",
        f"/api/v1/customer/conversations/{cid}/attachments/{html_out['id']}",
        f"/api/v1/customer/conversations/{cid}/attachments/{gif_out['id']}"]


async def test_attachment_access_rules(h: Harness) -> None:
    start_clock()
    ctx = await h.make_account()
    other = await h.make_account("Other")
    inbox = await h.make_api_inbox(ctx)
    customer = await h.customer_session(inbox)
    cid = (await h.client.post("/api/v1/customer/conversations", headers=customer,
                               json={"content": "Hi"})).json()["id"]
    r = await h.client.post(f"{BASE}/{cid}/messages", headers=ctx.admin.headers, json={
        "content": "internal scan", "private": True,
        "attachments": [{"filename": "scan.png", "content_type": "image/png", "data_base64": b64(PNG)}]})
    assert r.status_code == 201, r.text
    (note_file,) = r.json()["attachments"]
    assert (await h.client.get(note_file["url"], headers=ctx.admin.headers)).status_code == 200
    # Not the customer's: a note's attachment does not exist for them. Nor for another account.
    r = await h.client.get(f"/api/v1/customer/conversations/{cid}/attachments/{note_file['id']}", headers=customer)
    assert r.status_code == 404
    r = await h.client.get(note_file["url"], headers=other.admin.headers)
    assert r.status_code == 404
    r = await h.client.get(f"{BASE}/{cid}/attachments/{note_file['id'] + 1000}", headers=ctx.admin.headers)
    assert r.status_code == 404

    r = await h.client.post(f"{BASE}/{cid}/messages", headers=ctx.admin.headers, json={
        "content": "x", "attachments": [{"filename": "a.bin", "data_base64": "@@not base64@@"}]})
    assert (r.status_code, r.json()["detail"]) == (422, "attachment data_base64 is not valid base64")
    assert (await get(h, ctx.admin, cid))["message_count"] == 2


async def test_inbound_attachment_via_api_channel(h: Harness) -> None:
    start_clock()
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    body = await inbound(h, inbox, content="", attachments=[
        {"filename": "receipt.png", "content_type": "image/png", "data_base64": b64(PNG)}])
    r = await h.client.get(f"{BASE}/{body['conversation_id']}/messages", headers=ctx.admin.headers)
    (message,) = r.json()["items"]
    assert message["content"] == ""
    (att,) = message["attachments"]
    assert (att["filename"], att["content_type"], att["size"]) == ("receipt.png", "image/png", len(PNG))
    r = await h.client.get(att["url"], headers=ctx.admin.headers)
    assert (r.status_code, r.content) == (200, PNG)


async def test_closed_is_final_for_agents_too_and_solved_cases_stop_waiting(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    t0 = start_clock()
    cid = (await inbound(h, inbox, message_id="c-1"))["conversation_id"]
    clock.advance(timedelta(minutes=5))
    body = await patch(h, ctx.admin, cid, {"status": "closed"})
    # Closing straight from open is a solution too: resolved_at is set, nobody is waiting any more.
    assert (body["status"], body["resolved_at"], body["waiting_since"]) == (
        "closed", iso(t0 + timedelta(minutes=5)), None)
    r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=ctx.admin.headers, json={"status": "open"})
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert (await get(h, ctx.admin, cid))["status"] == "closed"


async def test_nul_in_a_channel_payload_is_refused_on_every_backend(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    r = await h.deliver(inbox, {"message_id": "n-1", "contact": {"source_id": "c"}, "content": "bad \u0000 text"})
    assert r.status_code == 422, r.text
    r = await h.client.get("/api/v1/conversations", headers=ctx.admin.headers)
    assert r.json()["items"] == []
