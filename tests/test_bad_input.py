"""Hostile and broken input, one test per class. Each asserts the 4xx status, an RFC 9457
problem+json body with a title and a detail, and that nothing was stored: the row count of every
table and the attachment files on disk are re-read afterwards. No request may end in a 5xx.

Where a class applies to every route that takes a body (malformed JSON, wrong types, unknown
fields, out-of-range numbers, NUL characters), the routes come from the OpenAPI document, so a new
route is covered without anyone remembering to add it.
"""

from __future__ import annotations

import base64
import re
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from swarmdesk.accounts.models import Account, Role
from swarmdesk.config import Settings
from swarmdesk.contacts.models import CustomerSession
from swarmdesk.core.clock import utcnow
from swarmdesk.core.models import Base
from swarmdesk.core.security import CUSTOMER_TOKEN_PREFIX, new_token, token_digest
from swarmdesk.main import create_app
from tests.support import PASSWORD, AccountCtx, ApiInbox, Harness, Staff, sign

PROBLEM = "application/problem+json"
BODY_LIMIT = 32 * 1024
ATTACHMENT_LIMIT = 4 * 1024
HUGE = 2**64  # beyond every integer column (64-bit ids on PostgreSQL)
PUBLIC_BODY_ROUTES = {("POST", "/api/v1/auth/login"), ("POST", "/api/v1/inboxes/{public_key}/customer-sessions"),
                      ("POST", "/api/v1/portal/{account_slug}/magic-links")}
# Customer routes only a portal session may call (a widget's session gets 403 there).
PORTAL_ONLY_PATHS = {"/api/v1/customer/preferences"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with small limits, so oversized bodies stay cheap to send."""
    return settings.model_copy(update={"max_body_bytes": BODY_LIMIT, "max_attachment_bytes": ATTACHMENT_LIMIT})


@dataclass
class Desk:
    ctx: AccountCtx
    agent: Staff
    inbox: ApiInbox
    ids: dict[str, Any]  # this account's ids, by path parameter name
    customer: dict[str, str]
    customer_conversation_id: int
    portal: dict[str, str] = field(default_factory=dict)  # a customer portal session (cookie + CSRF)


@pytest.fixture
async def desk(h: Harness) -> Desk:
    c = h.client
    ctx = await h.make_account("Acme")
    team = await h.make_team(ctx, "Support")
    agent = await h.make_user(ctx, "agent", Role.agent, teams=(team,))
    inbox = await h.make_api_inbox(ctx)
    r = await h.deliver(inbox, {"message_id": "m-1", "contact": {"source_id": "cust-1", "name": "Ana"},
                                "content": "Hello, my order is late"})
    assert r.status_code == 200, r.text
    first = r.json()
    r = await c.post("/api/v1/webhooks", headers=ctx.admin.headers,
                     json={"url": "https://example.com/hook", "event_types": ["message.created"]})
    assert r.status_code == 201, r.text
    sub = r.json()["id"]
    r = await c.post("/api/v1/organizations", headers=ctx.admin.headers, json={"name": "Org"})
    assert r.status_code == 201, r.text
    org = r.json()["id"]
    customer = await h.customer_session(inbox, "Visitor")
    r = await c.post("/api/v1/customer/conversations", headers=customer, json={"content": "Visitor here"})
    assert r.status_code == 201, r.text
    twins = [await c.post("/api/v1/contacts", headers=ctx.admin.headers, json={"name": "Twin", "organization_id": org})
             for _ in range(2)]
    twin = twins[0].json()["id"]
    await h.run_jobs()
    (suggestion,) = (await c.get("/api/v1/merge-suggestions", headers=ctx.admin.headers)).json()["items"]
    customer_conversation_id = r.json()["id"]
    view = await c.post("/api/v1/inbox/saved-views", headers=ctx.admin.headers, json={"name": "Mine", "shared": True})
    canned = await c.post("/api/v1/canned-responses", headers=ctx.admin.headers,
                          json={"short_code": "hello", "title": "Hello", "body": "Hello there"})
    assert view.status_code == canned.status_code == 201, (view.text, canned.text)
    # Routing, SLAs, automation and swarming: one object of each kind.
    expert = await h.make_user(ctx, "expert", Role.expert)
    made: dict[str, Any] = {}
    for name, url, payload in (
            ("skill", "/api/v1/routing/skills", {"name": "Billing"}),
            ("queue", "/api/v1/routing/queues", {"name": "First line", "team_id": team}),
            ("calendar", "/api/v1/sla/calendars", {"name": "Office", "time_zone": "Europe/Berlin",
                                                   "hours": {"mon": [{"start": "09:00", "end": "17:00"}]}}),
            ("rule", "/api/v1/automation/rules", {"name": "Tag new", "trigger": {"type": "event", "events": [
                "conversation_created"]}, "actions": [{"type": "add_tags", "tags": ["new"]}]}),
            ("macro", "/api/v1/macros", {"name": "Escalate", "actions": [{"type": "set_priority",
                                                                           "priority": "urgent"}]})):
        r = await c.post(url, headers=ctx.admin.headers, json=payload)
        assert r.status_code == 201, (url, r.text)
        made[name] = r.json()["id"]
    r = await c.post("/api/v1/sla/policies", headers=ctx.admin.headers,
                     json={"name": "Standard", "calendar_id": made["calendar"], "first_response_minutes": 60})
    assert r.status_code == 201, r.text
    made["policy"] = r.json()["id"]
    r = await c.post(f"/api/v1/conversations/{first['conversation_id']}/swarms", headers=ctx.admin.headers,
                     json={"note": "Need a hand", "invite_user_ids": [agent.user_id]})
    assert r.status_code == 201, r.text
    made["swarm"] = r.json()["id"]
    # Ana's portal session, as signing in by a magic link leaves it (tests/test_portal.py covers the link).
    token, csrf = new_token(CUSTOMER_TOKEN_PREFIX), "csrf-" + uuid.uuid4().hex
    async with h.runtime.uow() as uow:
        uow.session.add(CustomerSession(account_id=ctx.account_id, contact_id=first["contact_id"], inbox_id=None,
                                        token_hash=token_digest(token), csrf_token=csrf, created_at=utcnow(),
                                        expires_at=utcnow() + timedelta(days=1)))
        await uow.session.commit()
        slug = (await uow.session.get(Account, ctx.account_id)).slug
    ids = {"user_id": agent.user_id, "team_id": team, "contact_id": first["contact_id"],
           "conversation_id": first["conversation_id"], "inbox_id": inbox.id, "public_key": inbox.public_key,
           "subscription_id": sub, "organization_id": org, "suggestion_id": suggestion["id"],
           "other_contact_id": twin, "merge_id": 1, "quarantine_id": 1, "view_id": view.json()["id"],
           "canned_id": canned.json()["id"], "account_slug": slug, "skill_id": made["skill"],
           "queue_id": made["queue"], "calendar_id": made["calendar"], "policy_id": made["policy"],
           "rule_id": made["rule"], "version": 1, "macro_id": made["macro"], "swarm_id": made["swarm"],
           "expert_id": expert.user_id, "deferred_send_id": 1}
    return Desk(ctx, agent, inbox, ids, customer, customer_conversation_id,
                portal={"cookie": f"sd_portal={token}; sd_portal_csrf={csrf}", "x-csrf-token": csrf})


@pytest.fixture
async def foreign(h: Harness, desk: Desk) -> dict[str, int]:
    """Another account's ids (made after the desk's, so no id of theirs is one of ours)."""
    other = await h.make_account("Globex")
    team = await h.make_team(other, "Globex Team")
    user = await h.make_user(other, "globex-agent", Role.agent)
    inbox = await h.make_api_inbox(other)
    org = await h.client.post("/api/v1/organizations", headers=other.admin.headers, json={"name": "Globex Org"})
    assert org.status_code == 201, org.text
    r = await h.deliver(inbox, {"message_id": "g-1", "contact": {"source_id": "g-1"}, "content": "hi"})
    assert r.status_code == 200, r.text
    ids = {"user_id": user.user_id, "team_id": team, "inbox_id": inbox.id, "contact_id": r.json()["contact_id"],
           "conversation_id": r.json()["conversation_id"], "organization_id": org.json()["id"]}
    for name, url, payload in (
            ("skill_id", "/api/v1/routing/skills", {"name": "Globex skill"}),
            ("calendar_id", "/api/v1/sla/calendars", {"name": "Globex hours", "time_zone": "UTC",
                                                      "hours": {"wed": [{"start": "09:00", "end": "12:00"}]}}),
            ("rule_id", "/api/v1/automation/rules", {"name": "Globex rule", "trigger": {
                "type": "waiting_for", "minutes": 30}, "actions": [{"type": "set_priority", "priority": "high"}]}),
            ("macro_id", "/api/v1/macros", {"name": "Globex macro", "actions": [{"type": "resolve"}]}),
            ("swarm_id", f"/api/v1/conversations/{ids['conversation_id']}/swarms", {"note": "Globex help"})):
        r = await h.client.post(url, headers=other.admin.headers, json=payload)
        assert r.status_code == 201, (url, r.text)
        ids[name] = r.json()["id"]
    return ids


def valid_bodies(d: Desk) -> dict[tuple[str, str], dict[str, Any]]:
    """A body each route accepts from its intended caller (used as the base of the broken ones)."""
    ids = d.ids
    return {
        ("POST", "/api/v1/auth/login"): {"email": d.ctx.admin.email, "password": PASSWORD},
        ("PATCH", "/api/v1/account"): {"name": "Acme Renamed"},
        ("POST", "/api/v1/users"): {"email": "new-user@example.com", "name": "New User", "role": "agent"},
        ("PATCH", "/api/v1/users/{user_id}"): {"name": "Renamed Agent"},
        ("POST", "/api/v1/teams"): {"name": "Second Team"},
        ("PATCH", "/api/v1/teams/{team_id}"): {"description": "tier two"},
        ("POST", "/api/v1/teams/{team_id}/members"): {"user_id": d.ctx.admin.user_id},
        ("POST", "/api/v1/api-tokens"): {"name": "ci", "scopes": ["conversations:read"]},
        ("POST", "/api/v1/contacts"): {"name": "New Contact"},
        ("PATCH", "/api/v1/contacts/{contact_id}"): {"name": "Ana Lima"},
        ("POST", "/api/v1/contacts/{contact_id}/merge"): {"other_contact_id": ids["other_contact_id"]},
        ("POST", "/api/v1/merge-suggestions/{suggestion_id}/accept"): {"survivor_id": None},
        ("POST", "/api/v1/organizations"): {"name": "Second Org"},
        ("POST", "/api/v1/inboxes/{public_key}/widget-sessions"): {"fields": {"name": "Visitor"}},
        ("POST", "/api/v1/conversations"): {"inbox_id": ids["inbox_id"], "contact_id": ids["contact_id"],
                                            "subject": "Outreach"},
        ("PATCH", "/api/v1/conversations/{conversation_id}"): {"priority": "high"},
        ("POST", "/api/v1/conversations/{conversation_id}/tags"): {"add": ["billing"]},
        ("POST", "/api/v1/conversations/{conversation_id}/messages"): {"content": "a note", "private": True},
        ("POST", "/api/v1/customer/conversations"): {"subject": "Another", "content": "Hello again"},
        ("POST", "/api/v1/customer/conversations/{conversation_id}/messages"): {"content": "More detail"},
        ("POST", "/api/v1/inboxes"): {"name": "Second Inbox", "channel_kind": "api"},
        ("PATCH", "/api/v1/inboxes/{inbox_id}"): {"name": "Renamed Inbox"},
        ("POST", "/api/v1/inboxes/{public_key}/customer-sessions"): {"name": "Another Visitor"},
        ("POST", "/api/v1/webhooks"): {"url": "https://example.com/other", "event_types": ["contact.created"]},
        ("PATCH", "/api/v1/webhooks/{subscription_id}"): {"description": "crm"},
        ("POST", "/api/v1/conversations/{conversation_id}/typing"): {"private": True},
        ("DELETE", "/api/v1/conversations/{conversation_id}/typing"): {"private": True},
        ("POST", "/api/v1/conversations/{conversation_id}/viewing"): {"composing": "note"},
        ("POST", "/api/v1/notifications/read"): {"all": True},
        ("POST", "/api/v1/contacts/{contact_id}/notes"): {"body": "Prefers email"},
        ("POST", "/api/v1/inbox/saved-views"): {"name": "Urgent", "filters": {"priority": ["urgent"]}},
        ("PATCH", "/api/v1/inbox/saved-views/{view_id}"): {"name": "Renamed view"},
        ("POST", "/api/v1/inbox/bulk"): {"conversation_ids": [ids["conversation_id"]], "add_tags": ["vip"]},
        ("POST", "/api/v1/canned-responses"): {"short_code": "bye", "title": "Bye", "body": "Goodbye"},
        ("PATCH", "/api/v1/canned-responses/{canned_id}"): {"title": "Hello again"},
        ("POST", "/api/v1/portal/{account_slug}/magic-links"): {"email": "ana@example.org"},
        ("POST", "/api/v1/portal/conversations"): {"subject": "From the portal", "content": "Hello"},
        ("POST", "/api/v1/portal/conversations/{conversation_id}/messages"): {"content": "More from the portal"},
        ("POST", "/api/v1/routing/skills"): {"name": "Refunds", "languages": ["pt-BR"]},
        ("PATCH", "/api/v1/routing/skills/{skill_id}"): {"description": "Invoices and refunds"},
        ("PUT", "/api/v1/routing/agents/{user_id}/skills"): {"skills": [{"skill_id": ids["skill_id"], "proficiency": 3}]},
        ("PUT", "/api/v1/routing/agents/{user_id}/capacity"): {"capacity": {"default": 4, "email": 10}},
        ("PUT", "/api/v1/routing/presence"): {"status": "away"},
        ("POST", "/api/v1/routing/queues"): {"name": "Second line", "team_id": ids["team_id"],
                                             "relaxation": [{"after_seconds": 300, "any_agent_on_team": True}]},
        ("PATCH", "/api/v1/routing/queues/{queue_id}"): {"name": "Renamed queue"},
        ("PUT", "/api/v1/conversations/{conversation_id}/routing/skills"): {
            "skills": [{"skill_id": ids["skill_id"], "min_proficiency": 2}]},
        ("POST", "/api/v1/sla/calendars"): {"name": "Weekend", "time_zone": "America/New_York",
                                            "hours": {"sat": [{"start": "10:00", "end": "14:00"}]},
                                            "holidays": [{"date": "2026-12-25", "name": "Christmas"}]},
        ("PATCH", "/api/v1/sla/calendars/{calendar_id}"): {"name": "Renamed calendar"},
        ("POST", "/api/v1/sla/policies"): {"name": "Urgent", "first_response_minutes": 15,
                                           "conditions": {"priorities": ["urgent"]}},
        ("PATCH", "/api/v1/sla/policies/{policy_id}"): {"name": "Renamed policy"},
        ("PUT", "/api/v1/sla/policies/order"): {"policy_ids": [ids["policy_id"]]},
        ("POST", "/api/v1/automation/rules"): {
            "name": "Route refunds", "trigger": {"type": "event", "events": ["message_received"]},
            "conditions": {"all": [{"type": "text_contains", "any": ["refund"]}]},
            "actions": [{"type": "set_team", "team_id": ids["team_id"]}]},
        ("PATCH", "/api/v1/automation/rules/{rule_id}"): {"name": "Renamed rule"},
        ("POST", "/api/v1/macros"): {"name": "Close", "actions": [{"type": "resolve"}]},
        ("PATCH", "/api/v1/macros/{macro_id}"): {"name": "Renamed macro"},
        # (The desk's conversation has its active swarm already: this body is valid, the call a 409.)
        ("POST", "/api/v1/conversations/{conversation_id}/swarms"): {"note": "Another one",
                                                                    "invite_user_ids": [ids["expert_id"]]},
        ("POST", "/api/v1/conversations/{conversation_id}/swarms/{swarm_id}/invitations"): {
            "user_ids": [ids["expert_id"]]},
        ("POST", "/api/v1/conversations/{conversation_id}/swarms/{swarm_id}/end"): {
            "outcome": "resolved", "summary": "Found it"},
        ("POST", "/api/v1/conversations/{conversation_id}/swarms/{swarm_id}/messages"): {"content": "Anyone?"},
        ("PUT", "/api/v1/customer/preferences"): {
            "preferred_channel": "api", "never_channels": ["twilio_sms"],
            "quiet_hours": {"start": "21:00", "end": "08:00", "time_zone": "Europe/Berlin"},
            "contact_cap": {"max_contacts": 3, "per_days": 7}},
    }


# --- helpers -------------------------------------------------------------------------------------

async def stored(h: Harness) -> dict[str, int]:
    """How much is stored: rows in every table, and attachment files on disk."""
    counts: dict[str, int] = {}
    async with h.runtime.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            counts[table.name] = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
    counts["attachment files"] = sum(1 for p in h.runtime.settings.attachments_dir.rglob("*") if p.is_file())
    return counts


def assert_problem(r: httpx.Response, status: int | set[int], context: Any = "") -> dict[str, Any]:
    allowed = {status} if isinstance(status, int) else status
    assert r.status_code in allowed, (context, r.status_code, r.text[:500])
    assert r.headers["content-type"].split(";")[0] == PROBLEM, (context, r.headers["content-type"])
    body = r.json()
    assert body["status"] == r.status_code, (context, body)
    assert isinstance(body["title"], str) and body["title"], (context, body)
    assert isinstance(body["detail"], str) and body["detail"], (context, body)
    return body


def body_routes(app) -> list[tuple[str, str, dict]]:  # noqa: ANN001
    """Routes taking a JSON body. Raw bodies (a mail as message/rfc822) have their own bad-input
    tests next to their channel (tests/test_email_channel.py)."""
    return [(m.upper(), path, op) for path, ops in app.openapi()["paths"].items() for m, op in ops.items()
            if isinstance(op, dict) and "requestBody" in op and "application/json" in op["requestBody"]["content"]]


def int_params(op: dict, where: str) -> list[str]:
    return [p["name"] for p in op.get("parameters", []) if p["in"] == where
            and "integer" in orjson.dumps(p.get("schema", {})).decode()]


def fill(path: str, ids: dict[str, Any], override: dict[str, Any] | None = None) -> str:
    """The path with this account's ids (the customer's own conversation on customer routes)."""
    values = dict(ids)
    if path.startswith("/api/v1/customer/"):
        values["conversation_id"] = ids["customer_conversation_id"]
    values.update(override or {})
    for name in re.findall(r"{(\w+)}", path):
        assert name in values, f"no id for {{{name}}} in {path}: add one to the desk fixture"
        path = path.replace("{" + name + "}", str(values[name]))
    return path


def caller(d: Desk, method: str, path: str) -> dict[str, str]:
    if (method, path) in PUBLIC_BODY_ROUTES:
        return {}
    if path.startswith("/api/v1/portal/") or path in PORTAL_ONLY_PATHS:
        return d.portal
    if path.startswith("/api/v1/customer/"):
        return d.customer
    return d.ctx.admin.headers


def each_body_route(app, d: Desk) -> Iterator[tuple[str, str, str, dict[str, str], dict[str, Any]]]:  # noqa: ANN001
    bodies = valid_bodies(d)
    ids = {**d.ids, "customer_conversation_id": d.customer_conversation_id}
    for method, path, _ in body_routes(app):
        assert (method, path) in bodies, f"{method} {path} takes a body: add a valid one to valid_bodies()"
        yield method, path, fill(path, ids), caller(d, method, path), bodies[(method, path)]


# --- 1. malformed JSON ------------------------------------------------------------------------------

MALFORMED = [b'{"name": ', b"{'name': 'single quotes'}", b'{"name": "x",}', b"\xff\xfe{}", b'{"a": tru}']


async def test_malformed_json_is_400(h: Harness, app, desk: Desk) -> None:  # noqa: ANN001
    before = await stored(h)
    for method, path, url, headers, _ in each_body_route(app, desk):
        for raw in MALFORMED:
            r = await h.client.request(method, url, content=raw,
                                       headers={**headers, "content-type": "application/json"})
            body = assert_problem(r, 400, (method, path, raw))
            assert body["title"] == "Malformed JSON", body
    # The channel webhook parses its own (signed) body: refused as well, before anything is stored.
    for raw in MALFORMED[:-2] + MALFORMED[-1:]:  # (the signing SDK wants UTF-8)
        r = await h.client.post(desk.inbox.webhook_path, content=raw, headers=sign(desk.inbox.secret, raw))
        assert_problem(r, 400, raw)
    assert await stored(h) == before


# --- 2. wrong types ------------------------------------------------------------------------------------

async def test_wrong_types_are_422(h: Harness, app, desk: Desk) -> None:  # noqa: ANN001
    before = await stored(h)
    c, admin = h.client, desk.ctx.admin.headers
    # Not an object at all, on every route with a body.
    for method, path, url, headers, _ in each_body_route(app, desk):
        for raw in (b"[]", b'"a string"', b"42", b"null"):
            r = await c.request(method, url, content=raw, headers={**headers, "content-type": "application/json"})
            assert_problem(r, 422, (method, path, raw))
    cid = desk.ids["conversation_id"]
    cases = [
        ("POST", "/api/v1/contacts", admin, {"name": ["Ana"]}, ["body", "name"]),
        ("POST", "/api/v1/contacts", admin, {"organization_id": "first"}, ["body", "organization_id"]),
        ("POST", "/api/v1/teams", admin, {"name": {"en": "Support"}}, ["body", "name"]),
        ("POST", f"/api/v1/conversations/{cid}/messages", admin, {"content": "x", "private": "maybe"},
         ["body", "private"]),
        ("POST", f"/api/v1/conversations/{cid}/messages", admin, {"content": 12}, ["body", "content"]),
        ("PATCH", f"/api/v1/conversations/{cid}", admin, {"status": "exploded"}, ["body", "status"]),
        ("PATCH", f"/api/v1/conversations/{cid}", admin, {"snoozed_until": "tomorrow"}, ["body", "snoozed_until"]),
        ("PATCH", f"/api/v1/conversations/{cid}", admin, {"custom_attributes": {"nested": {"a": 1}}},
         ["body", "custom_attributes"]),
        ("POST", "/api/v1/api-tokens", admin, {"name": "t", "scopes": "admin"}, ["body", "scopes"]),
        ("POST", "/api/v1/webhooks", admin, {"url": "not a url", "event_types": ["message.created"]},
         ["body", "url"]),
        ("POST", "/api/v1/users", admin, {"email": "not-an-email", "name": "X"}, ["body", "email"]),
        ("POST", f"/api/v1/teams/{desk.ids['team_id']}/members", admin, {"user_id": "me"}, ["body", "user_id"]),
        ("PUT", "/api/v1/routing/presence", admin, {"status": "busy"}, ["body", "status"]),
        ("PUT", f"/api/v1/routing/agents/{desk.ids['user_id']}/capacity", admin, {"capacity": {"default": "lots"}},
         ["body", "capacity"]),
        ("POST", "/api/v1/sla/policies", admin, {"name": "P", "first_response_minutes": "soon"},
         ["body", "first_response_minutes"]),
        ("POST", "/api/v1/macros", admin, {"name": "M", "actions": {"type": "resolve"}}, ["body", "actions"]),
        ("POST", f"/api/v1/conversations/{cid}/swarms/{desk.ids['swarm_id']}/end", admin,
         {"outcome": "exploded", "summary": "x"}, ["body", "outcome"]),
        ("PUT", "/api/v1/customer/preferences", desk.portal, {"never_channels": "email"}, ["body", "never_channels"]),
    ]
    for method, url, headers, payload, loc in cases:
        r = await c.request(method, url, headers=headers, json=payload)
        body = assert_problem(r, 422, (url, payload))
        assert [e["loc"][:len(loc)] for e in body["errors"]] == [loc], body
    # Path and query parameters of the wrong type.
    for url in (f"/api/v1/conversations/{cid}x", "/api/v1/users/abc", "/api/v1/conversations?limit=many",
                "/api/v1/conversations?limit=0", "/api/v1/conversations?limit=201",
                "/api/v1/conversations?status=exploded", "/api/v1/conversations?updated_since=yesterday",
                "/api/v1/jobs?status=sleeping", f"/api/v1/conversations/{cid}/messages?after_id=last"):
        assert_problem(await c.get(url, headers=admin), 422, url)
    # A webhook payload of the wrong shape, correctly signed.
    for payload in ({"message_id": 7, "contact": {"source_id": "c"}, "content": "x"},
                    {"message_id": "m-9", "contact": "c", "content": "x"},
                    {"message_id": "m-9", "contact": {"source_id": "c"}, "content": ["x"]}):
        r = await h.deliver(desk.inbox, payload)
        assert_problem(r, 422, payload)
    assert await stored(h) == before


async def test_unicode_digits_in_numeric_text_are_not_numbers(h: Harness, desk: Desk, live) -> None:  # noqa: ANN001
    """"²" and "①" pass str.isdigit() but not int(): where a number arrives as free text (an SSE
    Last-Event-ID header, a contacts cursor, assignee_id) they are treated as not-a-number."""
    admin = desk.ctx.admin.headers
    for url, params in (("/api/v1/contacts", {"cursor": "\u00b2"}),
                        ("/api/v1/conversations", {"assignee_id": "\u2460"})):
        assert_problem(await h.client.get(url, headers=admin, params=params), 400, params)
    # Over real TCP: the SSE stream falls back to the queue's own position and replays from there.
    async with httpx.AsyncClient(base_url=live.url, timeout=5.0) as api:
        queue_id = (await api.post("/api/v1/realtime/register", headers=admin)).json()["queue_id"]
        r = await h.client.post("/api/v1/contacts", headers=admin, json={"name": "Fence"})
        assert r.status_code == 201, r.text
        async with api.stream("GET", "/api/v1/realtime/events", params={"queue_id": queue_id},
                              headers={"last-event-id": b"\xb2"}) as r:  # "²" in Latin-1
            assert r.status_code == 200
            seen = ""
            async for chunk in r.aiter_text():
                seen += chunk
                if "Fence" in seen:
                    break
    assert '"type":"contact.created"' in seen


# --- 3. unknown fields -----------------------------------------------------------------------------

def test_every_input_model_forbids_unknown_fields(tmp_path) -> None:  # noqa: ANN001
    """Statically: every object schema reachable from a request body closes its properties."""
    app = create_app(Settings(env="test", data_dir=tmp_path, secret_key="t" * 40))
    spec = app.openapi()
    schemas = spec["components"]["schemas"]
    seen: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref:
                name = ref.rsplit("/", 1)[-1]
                if name not in seen:
                    seen.add(name)
                    schema = schemas[name]
                    if "properties" in schema:
                        assert schema.get("additionalProperties") is False, f"{name} accepts unknown fields"
                    visit(schema)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    for _, _, op in body_routes(app):
        visit(op["requestBody"])
    assert len(seen) >= 15, seen


async def test_unknown_fields_are_422(h: Harness, app, desk: Desk) -> None:  # noqa: ANN001
    before = await stored(h)
    for method, path, url, headers, body in each_body_route(app, desk):
        r = await h.client.request(method, url, headers=headers, json={**body, "is_admin": True})
        problem = assert_problem(r, 422, (method, path))
        assert [(e["loc"], e["type"]) for e in problem["errors"]] == [(["body", "is_admin"], "extra_forbidden")], \
            (method, path, problem)
    # Unknown fields inside nested objects too.
    c, admin, cid = h.client, desk.ctx.admin.headers, desk.ids["conversation_id"]
    nested = [
        ("PATCH", "/api/v1/account", {"settings": {"outbound_allowlist": [], "allow_everything": True}}),
        ("POST", "/api/v1/inboxes", {"name": "I", "channel_kind": "api", "settings": {"public": True}}),
        ("POST", "/api/v1/inboxes", {"name": "I", "channel_kind": "api", "config": {"callback": "x"}}),
        ("POST", f"/api/v1/conversations/{cid}/messages",
         {"content": "x", "attachments": [{"filename": "a.txt", "data_base64": "eA==", "path": "/etc/passwd"}]}),
        ("POST", "/api/v1/routing/queues", {"name": "Q", "relaxation": [{"after_seconds": 60, "any_agent_on_team": True,
                                                                         "skip_checks": True}]}),
        ("PUT", f"/api/v1/conversations/{cid}/routing/skills",
         {"skills": [{"skill_id": desk.ids["skill_id"], "min_proficiency": 1, "source": "rule"}]}),
        ("POST", "/api/v1/sla/calendars", {"name": "C", "time_zone": "UTC", "hours": {"funday": [
            {"start": "09:00", "end": "17:00"}]}}),
        ("POST", "/api/v1/sla/policies", {"name": "P", "first_response_minutes": 5, "conditions": {"everyone": True}}),
        ("POST", "/api/v1/automation/rules", {"name": "R", "trigger": {"type": "event", "events": ["assigned"],
                                                                       "delay": 5},
                                              "actions": [{"type": "resolve"}]}),
        ("POST", "/api/v1/macros", {"name": "M", "actions": [{"type": "add_tags", "tags": ["x"], "sudo": True}]}),
    ]
    for method, url, payload in nested:
        assert_problem(await c.request(method, url, headers=admin, json=payload), 422, payload)
    r = await c.put("/api/v1/customer/preferences", headers=desk.portal, json={
        "quiet_hours": {"start": "21:00", "end": "08:00", "time_zone": "UTC", "except_weekends": True}})
    assert_problem(r, 422, "nested unknown field in contact rules")
    for payload in ({"message_id": "m-2", "contact": {"source_id": "c", "verified": True}, "content": "x"},
                    {"message_id": "m-2", "contact": {"source_id": "c"}, "content": "x", "private": True}):
        assert_problem(await h.deliver(desk.inbox, payload), 422, payload)
    assert await stored(h) == before


# --- 4. oversized bodies -----------------------------------------------------------------------------

async def _chunks(data: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def test_oversized_bodies_are_413_with_and_without_content_length(h: Harness, desk: Desk) -> None:
    before = await stored(h)
    c, admin, cid = h.client, desk.ctx.admin.headers, desk.ids["conversation_id"]
    big = "x" * (BODY_LIMIT + 1)
    targets = [
        ("/api/v1/contacts", admin, orjson.dumps({"name": big})),
        (f"/api/v1/conversations/{cid}/messages", admin, orjson.dumps({"content": big})),
        (f"/api/v1/customer/conversations/{desk.customer_conversation_id}/messages", desk.customer,
         orjson.dumps({"content": big})),
        ("/api/v1/auth/login", {}, orjson.dumps({"email": "a@example.com", "password": big})),
    ]
    for url, headers, raw in targets:
        # With Content-Length: refused before the body is read.
        r = await c.post(url, content=raw, headers={**headers, "content-type": "application/json"})
        assert_problem(r, 413, (url, "content-length"))
        # Chunked, no Content-Length: refused once the running total passes the limit.
        r = await c.post(url, content=_chunks(raw), headers={**headers, "content-type": "application/json"})
        assert "content-length" not in r.request.headers
        assert_problem(r, 413, (url, "chunked"))
    # The channel webhook, validly signed, both ways.
    raw = orjson.dumps({"message_id": "big-1", "contact": {"source_id": "c"}, "content": big})
    for content in (raw, _chunks(raw)):
        r = await c.post(desk.inbox.webhook_path, content=content, headers=sign(desk.inbox.secret, raw))
        assert_problem(r, 413, "webhook")
    # One byte under the limit is still accepted (the limit is the limit, not less).
    ok = orjson.dumps({"name": "y" * (BODY_LIMIT - 20)})
    assert len(ok) <= BODY_LIMIT
    r = await c.post("/api/v1/contacts", content=_chunks(ok), headers={**admin, "content-type": "application/json"})
    assert r.status_code == 422, r.text  # too long a name for the schema: validated, not cut off
    assert await stored(h) == before
    # An attachment over max_attachment_bytes inside a body under the limit: 413, no file kept.
    data = base64.b64encode(b"z" * (ATTACHMENT_LIMIT + 1)).decode()
    r = await c.post(f"/api/v1/conversations/{cid}/messages", headers=admin, json={
        "content": "see file", "attachments": [{"filename": "big.bin", "data_base64": data}]})
    assert_problem(r, 413, "attachment")
    assert await stored(h) == before


# --- 5. webhook signatures and timestamps ------------------------------------------------------------

async def test_bad_and_missing_webhook_signatures_are_401(h: Harness, desk: Desk) -> None:
    before = await stored(h)
    c, inbox = h.client, desk.inbox
    body = orjson.dumps({"message_id": "sig-1", "contact": {"source_id": "c-9"}, "content": "forged"})
    good = sign(inbox.secret, body)
    other_secret = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()
    attempts: list[tuple[str, bytes, dict[str, str]]] = [
        ("no headers", body, {"content-type": "application/json"}),
        ("wrong secret", body, sign(other_secret, body)),
        ("body changed after signing", body.replace(b"forged", b"FORGED"), good),
        ("signature of another id", body, {**good, "webhook-id": "msg_other"}),
        ("garbage signature", body, {**good, "webhook-signature": "v1,not-base64!!"}),
        ("unknown version", body, {**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v9,")}),
        ("empty signature", body, {**good, "webhook-signature": ""}),
        ("non-integer timestamp", body, {**good, "webhook-timestamp": "yesterday"}),
        ("overlong webhook-id", body, sign(inbox.secret, body, msg_id="m" * 201)),
    ]
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        attempts.append((f"missing {name}", body, {k: v for k, v in good.items() if k != name}))
    for what, content, headers in attempts:
        r = await c.post(inbox.webhook_path, content=content, headers=headers)
        problem = assert_problem(r, 401, what)
        assert problem["title"] == "Invalid signature", (what, problem)
    # The right signature on another account's inbox address is not a signature for it.
    r = await c.post(f"/api/v1/inboxes/{uuid.uuid4().hex}/webhook", content=body, headers=good)
    assert_problem(r, 404, "unknown inbox")
    assert await stored(h) == before
    # The untouched request is accepted (the attempts above failed for their one defect).
    r = await c.post(inbox.webhook_path, content=body, headers=good)
    assert r.status_code == 200, r.text


async def test_stale_or_future_webhook_timestamp_is_401(h: Harness, desk: Desk) -> None:
    before = await stored(h)
    body = orjson.dumps({"message_id": "ts-1", "contact": {"source_id": "c-8"}, "content": "late"})
    now = datetime.now(UTC)
    for at in (now - timedelta(minutes=6), now + timedelta(minutes=6), now - timedelta(days=365)):
        r = await h.client.post(desk.inbox.webhook_path, content=body, headers=sign(desk.inbox.secret, body, at=at))
        problem = assert_problem(r, 401, at)
        assert "tolerance" in problem["detail"], problem
    assert await stored(h) == before
    r = await h.client.post(desk.inbox.webhook_path, content=body,
                            headers=sign(desk.inbox.secret, body, at=now - timedelta(minutes=4)))
    assert r.status_code == 200, r.text


async def _messages(h: Harness, d: Desk, conversation_id: int) -> list[str]:
    r = await h.client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=d.ctx.admin.headers)
    assert r.status_code == 200, r.text
    return [m["content"] for m in r.json()["items"]]


async def test_replayed_webhook_id(h: Harness, desk: Desk) -> None:
    """A webhook-id names one delivery: the same id with another body is a replay attack (409);
    the same id with the same body is a retry (200, duplicate, still one message)."""
    inbox = desk.inbox
    payload = {"message_id": "rp-1", "contact": {"source_id": "c-7", "name": "Bo"}, "content": "first words"}
    first = await h.deliver(inbox, payload, msg_id="msg_replay_1")
    assert first.status_code == 200 and first.json()["duplicate"] is False, first.text
    conversation_id = first.json()["conversation_id"]
    before = await stored(h)
    for changed in ({**payload, "content": "changed words"}, {**payload, "message_id": "rp-2"},
                    {**payload, "contact": {"source_id": "c-someone-else"}}):
        r = await h.deliver(inbox, changed, msg_id="msg_replay_1")
        assert_problem(r, 409, changed)
    assert await stored(h) == before
    # The retry: same id, same bytes, signed again at a new time.
    for _ in range(2):
        r = await h.deliver(inbox, payload, msg_id="msg_replay_1")
        assert r.status_code == 200, r.text
        assert r.json() == {**first.json(), "duplicate": True}
    # Another delivery id carrying the same message id is the same message too.
    r = await h.deliver(inbox, payload, msg_id="msg_replay_2")
    assert r.status_code == 200, r.text
    assert r.json()["duplicate"] is True and r.json()["message_id"] == first.json()["message_id"]
    assert await _messages(h, desk, conversation_id) == ["first words"]
    after = await stored(h)
    assert {k: v for k, v in after.items() if k != "inbound_receipts"} == \
           {k: v for k, v in before.items() if k != "inbound_receipts"}
    assert after["inbound_receipts"] - before["inbound_receipts"] <= 1


# --- 6. ids from another account -------------------------------------------------------------------

async def test_ids_from_another_account_are_404_or_422(h: Harness, desk: Desk, foreign: dict[str, int]) -> None:
    before = await stored(h)
    c, admin, mine, theirs = h.client, desk.ctx.admin.headers, desk.ids, foreign
    cases = [
        ("GET", f"/api/v1/conversations/{theirs['conversation_id']}", None, 404),
        ("GET", f"/api/v1/conversations/{theirs['conversation_id']}/messages", None, 404),
        ("POST", f"/api/v1/conversations/{theirs['conversation_id']}/messages", {"content": "hi"}, 404),
        ("GET", f"/api/v1/contacts/{theirs['contact_id']}", None, 404),
        ("PATCH", f"/api/v1/contacts/{theirs['contact_id']}", {"name": "mine now"}, 404),
        ("GET", f"/api/v1/users/{theirs['user_id']}", None, 404),
        ("PATCH", f"/api/v1/users/{theirs['user_id']}", {"is_active": False}, 404),
        ("PATCH", f"/api/v1/inboxes/{theirs['inbox_id']}", {"is_active": False}, 404),
        ("DELETE", f"/api/v1/teams/{theirs['team_id']}", None, 404),
        ("POST", "/api/v1/conversations", {"inbox_id": theirs["inbox_id"], "contact_id": mine["contact_id"]}, 422),
        ("POST", "/api/v1/conversations", {"inbox_id": mine["inbox_id"], "contact_id": theirs["contact_id"]}, 422),
        ("PATCH", f"/api/v1/conversations/{mine['conversation_id']}", {"assignee_id": theirs["user_id"]}, 422),
        ("PATCH", f"/api/v1/conversations/{mine['conversation_id']}", {"team_id": theirs["team_id"]}, 422),
        ("POST", f"/api/v1/teams/{mine['team_id']}/members", {"user_id": theirs["user_id"]}, 422),
        ("GET", f"/api/v1/organizations/{theirs['organization_id']}", None, 404),
        ("POST", "/api/v1/contacts", {"name": "X", "organization_id": theirs["organization_id"]}, 422),
        ("PATCH", f"/api/v1/contacts/{mine['contact_id']}", {"organization_id": theirs["organization_id"]}, 422),
        ("GET", f"/api/v1/contacts/{theirs['contact_id']}/preferences", None, 404),
        ("GET", f"/api/v1/conversations/{theirs['conversation_id']}/sla", None, 404),
        ("GET", f"/api/v1/conversations/{theirs['conversation_id']}/routing", None, 404),
        ("PATCH", f"/api/v1/routing/skills/{theirs['skill_id']}", {"name": "mine now"}, 404),
        ("PUT", f"/api/v1/routing/agents/{theirs['user_id']}/capacity", {"capacity": {"default": 1}}, 404),
        ("GET", f"/api/v1/sla/calendars/{theirs['calendar_id']}", None, 404),
        ("GET", f"/api/v1/automation/rules/{theirs['rule_id']}/versions/1", None, 404),
        ("PATCH", f"/api/v1/macros/{theirs['macro_id']}", {"name": "mine now"}, 404),
        ("POST", f"/api/v1/conversations/{mine['conversation_id']}/macros/{theirs['macro_id']}/apply", None, 404),
        ("GET", f"/api/v1/conversations/{mine['conversation_id']}/swarms/{theirs['swarm_id']}", None, 404),
        ("POST", f"/api/v1/conversations/{theirs['conversation_id']}/swarms/{theirs['swarm_id']}/join", None, 404),
        ("PUT", f"/api/v1/routing/agents/{mine['user_id']}/skills",
         {"skills": [{"skill_id": theirs["skill_id"], "proficiency": 2}]}, 422),
        ("POST", "/api/v1/routing/queues", {"name": "Q", "team_id": theirs["team_id"]}, 422),
        ("POST", "/api/v1/sla/policies", {"name": "P", "calendar_id": theirs["calendar_id"],
                                          "first_response_minutes": 5}, 422),
        ("POST", "/api/v1/automation/rules", {"name": "R", "trigger": {"type": "event", "events": ["assigned"]},
                                              "actions": [{"type": "assign", "user_id": theirs["user_id"]}]}, 422),
        ("POST", f"/api/v1/conversations/{mine['conversation_id']}/swarms/{mine['swarm_id']}/invitations",
         {"user_ids": [theirs["user_id"]]}, 422),
    ]
    for method, url, payload, status in cases:
        r = await c.request(method, url, headers=admin, **({"json": payload} if payload is not None else {}))
        assert_problem(r, {404, 422} if status == 422 else 404, (method, url, payload))
    assert await stored(h) == before


# --- 7. the wrong kind of credential ---------------------------------------------------------------

async def test_customer_token_on_agent_routes_is_403(h: Harness, app, desk: Desk) -> None:  # noqa: ANN001
    before = await stored(h)
    c, cid = h.client, desk.ids["conversation_id"]
    for method, url, payload in (("GET", "/api/v1/conversations", None), ("GET", f"/api/v1/conversations/{cid}", None),
                                 ("POST", f"/api/v1/conversations/{cid}/messages", {"content": "hijack"}),
                                 ("PATCH", f"/api/v1/conversations/{cid}", {"status": "closed"}),
                                 ("POST", "/api/v1/contacts", {"name": "X"}), ("GET", "/api/v1/account", None),
                                 ("POST", "/api/v1/api-tokens", {"name": "t", "scopes": ["admin"]}),
                                 ("GET", "/api/v1/auth/me", None)):
        r = await c.request(method, url, headers=desk.customer, **({"json": payload} if payload else {}))
        problem = assert_problem(r, 403, url)
        assert "customer credential" in problem["detail"], problem
    # And the other way round: staff tokens are not customer credentials.
    r = await c.get("/api/v1/customer/conversations", headers=desk.agent.headers)
    assert_problem(r, 403, "agent on customer route")
    # Credentials that are no credential at all.
    for header in ("Bearer", "Bearer ", "Basic YTpi", "Bearer sdc_not-a-real-token", "Bearer nonsense",
                   "Token abc"):
        r = await c.get("/api/v1/conversations", headers={"authorization": header})
        assert_problem(r, {401, 403}, header)
        r = await c.get("/api/v1/customer/conversations", headers={"authorization": header})
        assert_problem(r, {401, 403}, header)
    assert await stored(h) == before


# --- 8. invalid cursors ----------------------------------------------------------------------------------

def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


async def test_invalid_cursor_is_400(h: Harness, desk: Desk) -> None:
    c, admin = h.client, desk.ctx.admin.headers
    # A real cursor, as a control.
    for _ in range(2):
        r = await h.deliver(desk.inbox, {"message_id": uuid.uuid4().hex, "contact": {"source_id": uuid.uuid4().hex},
                                         "content": "more"})
        assert r.status_code == 200
    r = await c.get("/api/v1/conversations", headers=admin, params={"limit": 1})
    real = r.json()["next_cursor"]
    assert real and (await c.get("/api/v1/conversations", headers=admin, params={"cursor": real})).status_code == 200
    before = await stored(h)
    for cursor in ("garbage!", "%%%", real[:-3], real + "x", _b64({"a": 1}), _b64([1]), _b64([1, 2, 3]),
                   _b64(["not-a-date", 1]), _b64(["2026-01-01T00:00:00+00:00", "seven"]), _b64([None, None]),
                   _b64(["2026-01-01T00:00:00+00:00", [1]]), "AAAA", "\u00e9\u00e9"):
        r = await c.get("/api/v1/conversations", headers=admin, params={"cursor": cursor})
        problem = assert_problem(r, 400, cursor)
        assert "cursor" in problem["detail"], problem
    for url in ("/api/v1/contacts", "/api/v1/organizations"):
        for cursor in ("abc", "-5", "1.5", "\u00b2", "\u2460"):  # superscript two, circled one: isdigit(), not int
            r = await c.get(url, headers=admin, params={"cursor": cursor})
            assert_problem(r, 400, (url, cursor))
    # Cursors typed as integers are validated as such.
    for url in ("/api/v1/jobs", "/api/v1/audit-log", "/api/v1/webhooks/deliveries"):
        r = await c.get(url, headers=admin, params={"cursor": "abc"})
        assert_problem(r, {400, 422}, url)
    assert await stored(h) == before


# --- 9. numbers and characters the database cannot hold -------------------------------------------

async def test_out_of_range_numbers_and_nul_characters_are_refused(h: Harness, app, desk: Desk) -> None:  # noqa: ANN001
    before = await stored(h)
    c = h.client
    ids = {**desk.ids, "customer_conversation_id": desk.customer_conversation_id, "token_id": 1, "delivery_id": 1,
           "job_id": 1, "attachment_id": 1}
    # Every integer path and query parameter of every route, beyond 64 bits.
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            headers = caller(desk, method.upper(), path)
            for name in int_params(op, "path"):
                url = fill(path, ids, {name: HUGE})
                r = await c.request(method.upper(), url, headers=headers,
                                    **({"json": {}} if "requestBody" in op else {}))
                assert_problem(r, {404, 422}, (method, url))
            for name in int_params(op, "query"):
                r = await c.request(method.upper(), fill(path, ids), headers=headers, params={name: HUGE})
                assert_problem(r, 422, (method, path, name))
    # Integers in bodies.
    cid = desk.ids["conversation_id"]
    for method, url, payload in (("POST", "/api/v1/conversations", {"inbox_id": HUGE, "contact_id": 1}),
                                 ("PATCH", f"/api/v1/conversations/{cid}", {"assignee_id": HUGE}),
                                 ("POST", f"/api/v1/teams/{desk.ids['team_id']}/members", {"user_id": -HUGE}),
                                 ("POST", "/api/v1/contacts", {"organization_id": HUGE}),
                                 ("PUT", f"/api/v1/routing/agents/{desk.ids['user_id']}/skills",
                                  {"skills": [{"skill_id": HUGE, "proficiency": 1}]}),
                                 ("POST", "/api/v1/routing/queues", {"name": "Q", "team_id": HUGE}),
                                 ("POST", "/api/v1/sla/policies", {"name": "P", "calendar_id": HUGE,
                                                                   "first_response_minutes": 5}),
                                 ("POST", "/api/v1/sla/policies", {"name": "P", "first_response_minutes": HUGE}),
                                 ("POST", "/api/v1/macros", {"name": "M", "actions": [{"type": "assign",
                                                                                        "user_id": HUGE}]}),
                                 ("POST", f"/api/v1/conversations/{cid}/swarms/{desk.ids['swarm_id']}/invitations",
                                  {"user_ids": [HUGE]})):
        assert_problem(await c.request(method, url, headers=desk.ctx.admin.headers, json=payload), {404, 422}, url)
    # A NUL character in the first text field of every body.
    for method, path, url, headers, body in each_body_route(app, desk):
        key = next((k for k, v in body.items() if isinstance(v, str) and k != "channel_kind"), None)
        if key is None:
            continue
        r = await c.request(method, url, headers=headers, json={**body, key: "bad\x00" + body[key]})
        assert_problem(r, 422, (method, path, key))
    assert await stored(h) == before


# --- 10. hostile attachment filenames ---------------------------------------------------------------

HOSTILE = [
    ("../../../../etc/passwd", "text/plain"),
    ("..\\..\\windows\\system32\\evil.exe", "application/octet-stream"),
    ("in\u200bvoice\u200d.pdf", "application/pdf"),
    ("photo\u202egnp.exe", "image/png"),  # right-to-left override: displays as "photoexe.png"
    (".htaccess", "text/plain"),
    ("page.html", "text/html"),
    ("image.svg", "image/svg+xml"),
    ("looks-like.png", "text/html; charset=utf-8"),
    ("tab\tnew\nline\r.txt", "text/plain"),
    ("a" * 255, "text/plain"),
    ("\u00e9t\u00e9 r\u00e9sum\u00e9.txt", "text/plain"),
]
ACTIVE = {"text/html", "image/svg+xml", "application/pdf"}


def _assert_safe_name(name: str, original: str) -> None:
    assert name, original
    assert "/" not in name and "\\" not in name, (original, name)
    assert not name.startswith("."), (original, name)
    assert not any(unicodedata.category(ch).startswith("C") for ch in name), (original, repr(name))
    assert len(name) <= 255, (original, len(name))


async def test_hostile_attachment_filenames_are_stored_safely_and_served_as_downloads(
        h: Harness, desk: Desk, tmp_path) -> None:  # noqa: ANN001
    c, cid = h.client, desk.ids["conversation_id"]
    payloads = [{"filename": name, "content_type": ctype,
                 "data_base64": base64.b64encode(f"<script>alert({i})</script>".encode()).decode()}
                for i, (name, ctype) in enumerate(HOSTILE)]
    sent: list[dict[str, Any]] = []
    # From an agent, from a customer session and through the signed channel webhook.
    r = await c.post(f"/api/v1/conversations/{cid}/messages", headers=desk.agent.headers,
                     json={"content": "files", "private": True, "attachments": payloads[:6]})
    assert r.status_code == 201, r.text
    sent += [(a, cid, False) for a in r.json()["attachments"]]
    r = await c.post(f"/api/v1/customer/conversations/{desk.customer_conversation_id}/messages",
                     headers=desk.customer, json={"content": "files", "attachments": payloads[6:]})
    assert r.status_code == 201, r.text
    sent += [(a, desk.customer_conversation_id, True) for a in r.json()["attachments"]]
    r = await h.deliver(desk.inbox, {"message_id": "files-1", "contact": {"source_id": "cust-1"},
                                     "content": "files", "attachments": payloads[:6]})
    assert r.status_code == 200, r.text
    hook_messages = (await c.get(f"/api/v1/conversations/{r.json()['conversation_id']}/messages",
                                 headers=desk.ctx.admin.headers)).json()["items"]
    sent += [(a, r.json()["conversation_id"], False) for a in hook_messages[-1]["attachments"]]
    assert len(sent) == len(HOSTILE) + 6
    # A NUL byte in a name is refused outright (no storage can hold it faithfully).
    before = await stored(h)
    r = await c.post(f"/api/v1/conversations/{cid}/messages", headers=desk.agent.headers, json={
        "content": "nul", "attachments": [{**payloads[0], "filename": "\u0000nul.txt"}]})
    assert_problem(r, 422, "NUL in a filename")
    assert await stored(h) == before

    originals = [name for name, _ in HOSTILE] + [name for name, _ in HOSTILE[:6]]
    for (attachment, _, _), original in zip(sent, originals, strict=True):
        _assert_safe_name(attachment["filename"], original)
    assert sent[0][0]["filename"] == "passwd"
    assert sent[2][0]["filename"] == "invoice.pdf"

    # On disk: only server-generated keys, under the attachments directory; nothing else anywhere.
    root = h.runtime.settings.attachments_dir
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == len(sent)
    assert all(re.fullmatch(r"[0-9a-f]{32}", p.name) and p.parent.parent == root for p in files), files
    data_dir = h.runtime.settings.data_dir
    strays = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(root)
              and not p.is_relative_to(data_dir)]
    assert not [p for p in strays if p.name in ("passwd", "evil.exe", ".htaccess")], strays

    for (attachment, conversation_id, customer), (_, ctype) in zip(sent, HOSTILE + HOSTILE[:6], strict=True):
        headers = desk.customer if customer else desk.ctx.admin.headers
        r = await c.get(attachment["url"], headers=headers)
        assert r.status_code == 200, (attachment, r.text)
        assert r.content.startswith(b"<script>alert(")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in r.headers["content-security-policy"]
        disposition = r.headers["content-disposition"]
        disposition.encode("ascii")  # percent-encoded: no raw bytes, quotes or line breaks
        assert "\r" not in disposition and "\n" not in disposition and '"' not in disposition
        mode, _, name_part = disposition.partition(";")
        assert unquote(name_part.strip().removeprefix("filename*=UTF-8''")) == attachment["filename"]
        base_type = ctype.split(";")[0]
        if base_type in ACTIVE or base_type.startswith("text/"):
            assert mode == "attachment", (attachment, disposition)
            assert r.headers["content-type"] == "application/octet-stream", (attachment, r.headers["content-type"])
        else:
            assert mode in ("attachment", "inline")
            assert not r.headers["content-type"].startswith(("text/html", "image/svg"))


async def test_a_webhook_to_an_inbox_kind_without_webhooks_is_404_not_500(h: Harness) -> None:
    ctx = await h.make_account()
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                            json={"name": "Website", "channel_kind": "webchat", "config": {}})
    assert r.status_code == 201, r.text
    key = r.json()["public_key"]
    r = await h.client.post(f"/api/v1/inboxes/{key}/webhook", content=b'{"x": 1}')
    assert r.status_code == 404 and "do not accept webhooks" in r.json()["detail"]
    r = await h.client.get(f"/api/v1/inboxes/{key}/webhook")
    assert r.status_code == 404
