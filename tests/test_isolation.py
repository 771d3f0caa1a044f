"""Tenant and principal isolation, for every route the application serves.

Account A ("Aardvark") owns one object of every kind; every distinctive string of A contains
``aardvark``, so "no response leaks A's data" is one substring check (plus A's credentials and
keys, which do not). Account B ("Borealis") has its own admin, inbox, conversation and customer.

The routes are enumerated from the OpenAPI document and cross-checked against the application's
route table (so a route hidden from the schema cannot escape either). For each (method, path):

* B's admin, with A's ids in every path parameter -> 404 or 403; without path parameters the call
  acts on B's own data (A's ids are still put in every ``*_id`` query parameter and into bodies
  that reference other objects) and must not return anything of A;
* a customer of A on an agent route -> exactly 403; another customer of A and a customer of B on a
  customer route that names A's conversation -> 404;
* nobody at all -> 401, unless the route is in the explicit, asserted table of public routes.

Afterwards A's rows (every table, read straight from the database) and A's view through the API
(read as A's admin) are exactly what they were: a denied write changed nothing.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import select
from websockets.asyncio.client import connect as ws_connect

from swarmdesk.accounts.models import Account, Role
from swarmdesk.auth.dependencies import current_customer, current_staff
from swarmdesk.config import Settings
from swarmdesk.contacts.models import CustomerSession
from swarmdesk.core.clock import utcnow
from swarmdesk.core.models import Base
from swarmdesk.core.security import CUSTOMER_TOKEN_PREFIX, new_token, token_digest
from swarmdesk.main import create_app
from swarmdesk.realtime.router import any_principal
from swarmdesk.web.dependencies import optional_staff
from tests.support import AccountCtx, ApiInbox, Harness, Staff, sign

MARK = "aardvark"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
MEMO = base64.b64encode(b"aardvark secret memo: approve the refund").decode()

# Routes anyone may call without a credential. A route added without an access gate fails
# test_public_routes_are_exactly_the_listed_ones until it is listed here (and thought about).
PUBLIC_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/inboxes/{public_key}/webhook"),  # authenticated by the channel's signature
    ("GET", "/api/v1/inboxes/{public_key}/webhook"),  # a vendor's subscription check, verified by the adapter
    ("POST", "/api/v1/inboxes/{public_key}/customer-sessions"),  # anonymous visitors, if the inbox allows
    ("GET", "/api/v1/realtime/events"),  # the 128-bit queue id is the credential
    ("WEBSOCKET", "/api/v1/realtime/ws"),  # idem
    # The web chat widget, loaded by anyone's browser on the customer's site: the script, its frame
    # and static files, the inbox's public form and availability, and the visitor's session (a
    # logged-in visitor's identity is proven by the HMAC user_hash, checked by the route).
    ("GET", "/widget/{public_key}.js"),
    ("GET", "/widget/{public_key}/frame"),
    ("GET", "/widget/static/{filename}"),
    ("GET", "/api/v1/inboxes/{public_key}/widget-config"),
    ("POST", "/api/v1/inboxes/{public_key}/widget-sessions"),
    # The portal's sign-in: the same answer for any address (no enumeration), mailed only to a
    # verified one.
    ("POST", "/api/v1/portal/{account_slug}/magic-links"),
    # Pages anyone may open: the sign-in form's post and static files. (GET /login and the
    # workspace pages go through optional_staff: no session there means the sign-in page.)
    ("POST", "/login"),
    ("GET", "/static/{name:path}"),
    ("GET", "/favicon.ico"),
    # The customer portal's pages check the portal session cookie themselves (a page without one
    # shows the sign-in form; its data is read only for the signed-in contact; see test_portal.py).
    ("GET", "/portal/{slug}"),
    ("POST", "/portal/{slug}/magic-link"),
    ("GET", "/portal/{slug}/sign-in"),
    ("POST", "/portal/{slug}/sign-in"),
    ("POST", "/portal/{slug}/sign-out"),
    ("GET", "/portal/{slug}/conversations"),
    ("GET", "/portal/{slug}/conversations/new"),
    ("GET", "/portal/{slug}/conversations/{conversation_id}"),
    ("GET", "/portal/{slug}/preferences"),
}
# Served HTML pages: never in the OpenAPI document.
PAGE_PREFIXES = ("/app", "/portal/", "/login", "/static/", "/favicon.ico")
# Served but deliberately absent from the OpenAPI document.
NOT_IN_SCHEMA = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"),
                 ("WEBSOCKET", "/api/v1/realtime/ws")}
# Staff and customers alike.
ANY_PRINCIPAL = {("POST", "/api/v1/realtime/register")}
CUSTOMER_PREFIX = "/api/v1/customer/"
PORTAL_PREFIX = "/api/v1/portal/"  # customer portal sessions only (a magic-link sign-in)
# Customer routes for portal sessions only: contact rules hold on every channel, so a widget's session
# (one inbox, perhaps an anonymous visitor) may neither read nor change them.
PORTAL_ONLY = {("GET", "/api/v1/customer/preferences"), ("PUT", "/api/v1/customer/preferences")}
PROBLEM = "application/problem+json"


@dataclass
class World:
    a: AccountCtx
    b: AccountCtx
    agent: Staff
    inbox: ApiInbox
    b_inbox: ApiInbox
    ids: dict[str, Any]  # A's ids, by path/query parameter name
    b_ids: dict[str, int]
    owner: dict[str, str]  # the customer of A who owns A's conversation
    bystander: dict[str, str]  # another customer of A
    b_customer: dict[str, str]  # a customer of B
    note_id: int
    note_attachment_id: int
    customer_attachment_id: int
    credentials: list[str] = field(default_factory=list)  # A's tokens, keys and secrets
    portal: dict[str, str] = field(default_factory=dict)  # the owner's customer portal session (cookie + CSRF)


def _bodies(w: World) -> dict[tuple[str, str], dict[str, Any]]:
    """A valid body for every gated route that takes one, so the call reaches the access check.
    Ids in bodies are A's: B must not be able to reference them either."""
    a, b = w.ids, w.b_ids
    hook = "http://127.0.0.1:9/borealis-hook"
    return {
        ("PATCH", "/api/v1/account"): {"name": "Borealis Renamed"},
        ("POST", "/api/v1/conversations/{conversation_id}/typing"): {"private": True},
        ("DELETE", "/api/v1/conversations/{conversation_id}/typing"): {"private": True},
        ("POST", "/api/v1/conversations/{conversation_id}/viewing"): {"composing": "note"},
        ("POST", "/api/v1/notifications/read"): {"all": True},
        ("POST", "/api/v1/contacts/{contact_id}/notes"): {"body": "Borealis was here"},
        ("POST", "/api/v1/inbox/saved-views"): {"name": "Borealis view", "filters": {"status": ["open"]}},
        ("PATCH", "/api/v1/inbox/saved-views/{view_id}"): {"name": "Borealis renamed", "shared": False},
        ("POST", "/api/v1/inbox/bulk"): {"conversation_ids": [a["conversation_id"]], "status": "resolved"},
        ("POST", "/api/v1/canned-responses"): {"short_code": "borealis", "title": "Borealis", "body": "Hi"},
        ("PATCH", "/api/v1/canned-responses/{canned_id}"): {"body": "Borealis pwned"},
        ("POST", "/api/v1/portal/conversations"): {"subject": "Borealis portal", "content": "Hello"},
        ("POST", "/api/v1/portal/conversations/{conversation_id}/messages"): {"content": "Borealis reply"},
        # A raw mail (message/rfc822); the JSON client sends this object's bytes, which is enough
        # to reach the access check.
        ("POST", "/api/v1/inboxes/{inbox_id}/email/messages"): {"raw": "From: b@borealis.example.com"},
        ("POST", "/api/v1/users"): {"email": "new-user@borealis.example.com", "name": "Borealis New", "role": "agent"},
        ("PATCH", "/api/v1/users/{user_id}"): {"name": "Borealis Pwned", "role": "admin", "is_active": False},
        ("POST", "/api/v1/teams"): {"name": "Borealis New Team"},
        ("PATCH", "/api/v1/teams/{team_id}"): {"name": "Borealis Pwned", "description": "pwned"},
        ("POST", "/api/v1/teams/{team_id}/members"): {"user_id": b["user_id"]},
        ("POST", "/api/v1/api-tokens"): {"name": "Borealis token", "scopes": ["conversations:read"]},
        ("POST", "/api/v1/contacts"): {"name": "Borealis Contact", "organization_id": a["organization_id"]},
        ("PATCH", "/api/v1/contacts/{contact_id}"): {"name": "Borealis Pwned", "email": "x@borealis.example.com"},
        ("POST", "/api/v1/contacts/{contact_id}/merge"): {"other_contact_id": a["twin_contact_id"]},
        ("POST", "/api/v1/merge-suggestions/{suggestion_id}/accept"): {"survivor_id": a["contact_id"]},
        ("POST", "/api/v1/organizations"): {"name": "Borealis Org"},
        ("POST", "/api/v1/conversations"): {"inbox_id": a["inbox_id"], "contact_id": a["contact_id"],
                                            "content": "Borealis outreach"},
        ("PATCH", "/api/v1/conversations/{conversation_id}"): {"status": "resolved", "assignee_id": b["user_id"],
                                                               "subject": "Borealis pwned"},
        ("POST", "/api/v1/conversations/{conversation_id}/tags"): {"add": ["borealis-pwned"],
                                                                   "remove": ["aardvark-vip"]},
        ("POST", "/api/v1/conversations/{conversation_id}/messages"): {"content": "Borealis pwned"},
        ("POST", "/api/v1/customer/conversations"): {"subject": "Borealis question", "content": "Borealis hi"},
        ("POST", "/api/v1/customer/conversations/{conversation_id}/messages"): {"content": "Borealis pwned"},
        ("POST", "/api/v1/inboxes"): {"name": "Borealis Inbox", "channel_kind": "api", "config": {}},
        ("PATCH", "/api/v1/inboxes/{inbox_id}"): {"name": "Borealis Pwned", "is_active": False},
        ("POST", "/api/v1/webhooks"): {"url": hook, "event_types": ["message.created"]},
        ("PATCH", "/api/v1/webhooks/{subscription_id}"): {"url": hook, "is_active": False},
        # Routing.
        ("POST", "/api/v1/routing/skills"): {"name": "Borealis skill", "inbox_ids": [a["inbox_id"]]},
        ("PATCH", "/api/v1/routing/skills/{skill_id}"): {"name": "Borealis pwned", "inbox_ids": [b["inbox_id"]]},
        ("PUT", "/api/v1/routing/agents/{user_id}/skills"): {"skills": [{"skill_id": a["skill_id"], "proficiency": 1}]},
        ("PUT", "/api/v1/routing/agents/{user_id}/capacity"): {"capacity": {"default": 0}},
        ("PUT", "/api/v1/routing/presence"): {"status": "online"},
        ("POST", "/api/v1/routing/queues"): {"name": "Borealis queue", "team_id": a["team_id"],
                                             "inbox_ids": [a["inbox_id"]]},
        ("PATCH", "/api/v1/routing/queues/{queue_id}"): {"name": "Borealis pwned", "team_id": b["team_id"]},
        ("PUT", "/api/v1/conversations/{conversation_id}/routing/skills"): {
            "skills": [{"skill_id": a["skill_id"], "min_proficiency": 5}]},
        # SLAs.
        ("POST", "/api/v1/sla/calendars"): {"name": "Borealis Hours", "time_zone": "America/Anchorage",
                                            "hours": {"mon": [{"start": "08:00", "end": "16:00"}]}},
        ("PATCH", "/api/v1/sla/calendars/{calendar_id}"): {"name": "Borealis pwned", "holidays": []},
        ("POST", "/api/v1/sla/policies"): {"name": "Borealis SLA", "calendar_id": a["calendar_id"],
                                           "first_response_minutes": 30},
        ("PATCH", "/api/v1/sla/policies/{policy_id}"): {"name": "Borealis pwned", "enabled": False},
        ("PUT", "/api/v1/sla/policies/order"): {"policy_ids": [a["policy_id"]]},
        # Automation.
        ("POST", "/api/v1/automation/rules"): {
            "name": "Borealis rule", "trigger": {"type": "event", "events": ["conversation_created"]},
            "conditions": {"all": [{"type": "inbox", "inbox_ids": [a["inbox_id"]]}]},
            "actions": [{"type": "assign", "user_id": a["user_id"]}]},
        ("PATCH", "/api/v1/automation/rules/{rule_id}"): {"name": "Borealis pwned", "enabled": False},
        ("POST", "/api/v1/macros"): {"name": "Borealis macro", "actions": [
            {"type": "reply_template", "canned_response_id": a["canned_id"]}]},
        ("PATCH", "/api/v1/macros/{macro_id}"): {"name": "Borealis pwned", "actions": [{"type": "resolve"}]},
        # Swarming.
        ("POST", "/api/v1/conversations/{conversation_id}/swarms"): {"note": "Borealis swarm",
                                                                    "invite_user_ids": [b["user_id"]]},
        ("POST", "/api/v1/conversations/{conversation_id}/swarms/{swarm_id}/invitations"): {
            "user_ids": [b["user_id"]]},
        ("POST", "/api/v1/conversations/{conversation_id}/swarms/{swarm_id}/end"): {
            "outcome": "unresolved", "summary": "Borealis ended it"},
        ("POST", "/api/v1/conversations/{conversation_id}/swarms/{swarm_id}/messages"): {"content": "Borealis pwned"},
        # Contact rules (the customer's own, in a portal session).
        ("PUT", "/api/v1/customer/preferences"): {"never_channels": ["email"],
                                                  "contact_cap": {"max_contacts": 1, "per_days": 365}},
    }


# Routes without path parameters whose body (above) names A's objects: B gets 404 or 422.
REFERENCES_A = {("POST", "/api/v1/contacts"), ("POST", "/api/v1/conversations"), ("POST", "/api/v1/inbox/bulk"),
                ("POST", "/api/v1/routing/skills"), ("POST", "/api/v1/routing/queues"),
                ("POST", "/api/v1/sla/policies"), ("PUT", "/api/v1/sla/policies/order"),
                ("POST", "/api/v1/automation/rules"), ("POST", "/api/v1/macros")}


# --- building the two accounts ------------------------------------------------------------------

async def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


async def build_world(h: Harness) -> World:
    c = h.client
    a = await h.make_account("Aardvark")
    team_id = await h.make_team(a, "Aardvark Escalations")
    agent = await h.make_user(a, "aardvark-agent", Role.agent, teams=(team_id,))
    await _ok(await c.patch(f"/api/v1/teams/{team_id}", headers=a.admin.headers,
                            json={"description": "aardvark tier two"}))
    # Subscribed before anything happens, so events become deliveries. 127.0.0.1 is not on A's
    # allowlist: the delivery is refused without any network traffic and recorded as failed.
    sub = await _ok(await c.post("/api/v1/webhooks", headers=a.admin.headers, json={
        "url": "http://127.0.0.1:9/aardvark-hook", "event_types": ["message.created", "contact.created"],
        "description": "aardvark crm sync"}), 201)
    token = await _ok(await c.post("/api/v1/api-tokens", headers=agent.headers, json={
        "name": "aardvark deploy token", "scopes": ["conversations:read"]}), 201)
    inbox = await h.make_api_inbox(a)
    await _ok(await c.patch(f"/api/v1/inboxes/{inbox.id}", headers=a.admin.headers,
                            json={"name": "Aardvark Support App"}))
    org = await _ok(await c.post("/api/v1/organizations", headers=a.admin.headers, json={
        "name": "Aardvark Holdings", "domain": "aardvark-holdings.test",
        "custom_attributes": {"tier": "aardvark-gold"}}), 201)

    # A customer of A writes in through the channel API (a contact, an inbound receipt) ...
    r = await h.deliver(inbox, {"message_id": "aardvark-m1", "subject": "Aardvark webhook subject",
                                "contact": {"source_id": "aardvark-src-1", "name": "Aardvark Webhook Wanda",
                                            "email": "wanda@aardvark-customer.example.com"},
                                "content": "Aardvark parcel 7781 never arrived"})
    await _ok(r)
    # ... and another through a customer session: this one's conversation is the one we attack.
    owner_r = await _ok(await c.post(f"/api/v1/inboxes/{inbox.public_key}/customer-sessions",
                                     json={"name": "Aardvark Customer Ana",
                                           "email": "ana@aardvark-customer.example.com"}), 201)
    owner = {"authorization": f"Bearer {owner_r['token']}"}
    contact_id = owner_r["contact_id"]
    conv = await _ok(await c.post("/api/v1/customer/conversations", headers=owner, json={
        "subject": "Aardvark refund request", "content": "Aardvark order 4411 is late"}), 201)
    conversation_id = conv["id"]
    await _ok(await c.post(f"/api/v1/customer/conversations/{conversation_id}/messages", headers=owner, json={
        "content": "Aardvark receipt attached", "attachments": [
            {"filename": "aardvark-receipt.png", "content_type": "image/png", "data_base64": PNG}]}), 201)
    await _ok(await c.patch(f"/api/v1/contacts/{contact_id}", headers=a.admin.headers, json={
        "organization_id": org["id"], "custom_attributes": {"vip": "aardvark-platinum"}}))
    await _ok(await c.patch(f"/api/v1/conversations/{conversation_id}", headers=a.admin.headers, json={
        "assignee_id": agent.user_id, "team_id": team_id, "priority": "high",
        "custom_attributes": {"order": "aardvark-4411"}}))
    await _ok(await c.post(f"/api/v1/conversations/{conversation_id}/tags", headers=a.admin.headers,
                           json={"add": ["aardvark-vip"]}))
    await _ok(await c.post(f"/api/v1/conversations/{conversation_id}/messages", headers=agent.headers,
                           json={"content": "Aardvark reply: the courier has it"}), 201)
    note = await _ok(await c.post(f"/api/v1/conversations/{conversation_id}/messages", headers=agent.headers, json={
        "content": "Aardvark internal note: refund approved, do not tell yet", "private": True,
        "attachments": [{"filename": "aardvark-secret-memo.txt", "content_type": "text/plain",
                         "data_base64": MEMO}]}), 201)
    # Two probable duplicates (same name at the same organization: a merge suggestion) and a merge.
    twins = [await _ok(await c.post("/api/v1/contacts", headers=a.admin.headers, json={
        "name": "Aardvark Twin", "organization_id": org["id"]}), 201) for _ in range(2)]
    merged = await _ok(await c.post("/api/v1/contacts", headers=a.admin.headers, json={
        "name": "Aardvark Merged Max", "email": "max@aardvark-customer.example.com"}), 201)
    await h.run_jobs()  # the reply's channel job dies (no callback_url); the webhook delivery is refused
    (suggestion,) = (await _ok(await c.get("/api/v1/merge-suggestions", headers=a.admin.headers)))["items"]
    merge = await _ok(await c.post(f"/api/v1/contacts/{twins[0]['id']}/merge", headers=a.admin.headers,
                                   json={"other_contact_id": merged["id"]}), 201)
    await h.run_jobs()

    messages = (await _ok(await c.get(f"/api/v1/conversations/{conversation_id}/messages",
                                      headers=a.admin.headers)))["items"]
    customer_attachment_id = next(m["attachments"][0]["id"] for m in messages
                                  if m["attachments"] and not m["private"])
    deliveries = (await _ok(await c.get("/api/v1/webhooks/deliveries", headers=a.admin.headers)))["items"]
    dead = (await _ok(await c.get("/api/v1/jobs", headers=a.admin.headers, params={"status": "dead"})))["items"]
    assert deliveries and dead, (deliveries, dead)
    bystander_r = await _ok(await c.post(f"/api/v1/inboxes/{inbox.public_key}/customer-sessions",
                                         json={"name": "Bystander Bob"}), 201)

    # A mail that could not be used, kept in the quarantine of A's email inbox.
    r = await c.post("/api/v1/inboxes", headers=a.admin.headers, json={
        "name": "Aardvark mail", "channel_kind": "email", "config": {"address": "help@aardvark.example.com"}})
    email_inbox = await _ok(r, 201)
    quarantined = await _ok(await c.post(f"/api/v1/inboxes/{email_inbox['id']}/email/messages", headers={
        **a.admin.headers, "content-type": "message/rfc822"}, content=b"\x00 not a mail"))
    assert quarantined["outcome"] == "quarantined", quarantined

    # The workspace's own objects: a note about the customer, a shared saved view, a canned response.
    await _ok(await c.post(f"/api/v1/contacts/{contact_id}/notes", headers=a.admin.headers,
                           json={"body": "Aardvark prefers email"}), 201)
    view = await _ok(await c.post("/api/v1/inbox/saved-views", headers=a.admin.headers, json={
        "name": "Aardvark urgent", "filters": {"priority": ["urgent"]}, "shared": True}), 201)
    canned = await _ok(await c.post("/api/v1/canned-responses", headers=a.admin.headers, json={
        "short_code": "aardvark", "title": "Aardvark hello", "body": "Hello from Aardvark"}), 201)

    # Routing: a skill the agent has, their capacity and presence, a queue, and a skill A's
    # conversation requires.
    skill = await _ok(await c.post("/api/v1/routing/skills", headers=a.admin.headers, json={
        "name": "aardvark-refunds", "description": "Aardvark refund desk", "inbox_ids": [inbox.id],
        "tags": ["aardvark-vip"], "languages": ["pt"]}), 201)
    await _ok(await c.put(f"/api/v1/routing/agents/{agent.user_id}/skills", headers=a.admin.headers,
                          json={"skills": [{"skill_id": skill["id"], "proficiency": 4}]}))
    await _ok(await c.put(f"/api/v1/routing/agents/{agent.user_id}/capacity", headers=a.admin.headers,
                          json={"capacity": {"default": 3, "api": 7}}))
    await _ok(await c.put("/api/v1/routing/presence", headers=agent.headers, json={"status": "away"}))
    queue = await _ok(await c.post("/api/v1/routing/queues", headers=a.admin.headers, json={
        "name": "Aardvark Tier Two", "team_id": team_id, "inbox_ids": [inbox.id], "tags": ["aardvark-vip"],
        "vip_attribute": "aardvark-tier", "vip_values": ["aardvark-platinum"]}), 201)
    await _ok(await c.put(f"/api/v1/conversations/{conversation_id}/routing/skills", headers=a.admin.headers,
                          json={"skills": [{"skill_id": skill["id"], "min_proficiency": 3}]}))
    # SLAs: business hours and a policy on them.
    calendar = await _ok(await c.post("/api/v1/sla/calendars", headers=a.admin.headers, json={
        "name": "Aardvark Office Hours", "time_zone": "Europe/Lisbon",
        "hours": {day: [{"start": "08:00", "end": "20:00"}] for day in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": [{"date": "2026-12-25", "name": "Aardvark Day"}]}), 201)
    policy = await _ok(await c.post("/api/v1/sla/policies", headers=a.admin.headers, json={
        "name": "Aardvark Gold SLA", "calendar_id": calendar["id"], "first_response_minutes": 240,
        "resolution_minutes": 2400, "conditions": {"inbox_ids": [inbox.id], "tiers": ["aardvark-gold"]}}), 201)
    # Automation: a rule in two versions, and a macro applied to A's conversation (an execution).
    rule = await _ok(await c.post("/api/v1/automation/rules", headers=a.admin.headers, json={
        "name": "Aardvark escalation rule", "description": "aardvark: breached VIPs go to tier two",
        "trigger": {"type": "event", "events": ["sla_breached"]},
        "conditions": {"all": [{"type": "inbox", "inbox_ids": [inbox.id]},
                               {"type": "text_contains", "any": ["aardvark"]}]},
        "actions": [{"type": "assign", "user_id": agent.user_id}, {"type": "set_team", "team_id": team_id}]}), 201)
    await _ok(await c.patch(f"/api/v1/automation/rules/{rule['id']}", headers=a.admin.headers, json={
        "actions": [{"type": "assign", "user_id": agent.user_id}, {"type": "add_tags", "tags": ["aardvark-breach"]},
                    {"type": "reply_template", "canned_response_id": canned["id"]}]}))
    macro = await _ok(await c.post("/api/v1/macros", headers=a.admin.headers, json={
        "name": "Aardvark refund macro", "description": "aardvark refunds",
        "actions": [{"type": "add_tags", "tags": ["aardvark-refund"]},
                    {"type": "add_note", "content": "Aardvark macro: refund queued"}]}), 201)
    await _ok(await c.post(f"/api/v1/conversations/{conversation_id}/macros/{macro['id']}/apply",
                           headers=agent.headers))
    # Swarming: the assignee asks an expert of A, who joins and answers in the room.
    expert = await h.make_user(a, "aardvark-expert", Role.expert)
    swarm = await _ok(await c.post(f"/api/v1/conversations/{conversation_id}/swarms", headers=agent.headers, json={
        "note": "Aardvark: is refund 4411 safe?", "invite_user_ids": [expert.user_id]}), 201)
    room = f"/api/v1/conversations/{conversation_id}/swarms/{swarm['id']}"
    await _ok(await c.post(f"{room}/join", headers=expert.headers))
    await _ok(await c.post(f"{room}/messages", headers=expert.headers,
                           json={"content": "Aardvark expert: approve the refund"}), 201)
    # Contact rules: the owner, signed in to the portal (as a magic link leaves it, see
    # tests/test_portal.py), is in quiet hours right now, so an agent's outreach is held back.
    portal_token, csrf = new_token(CUSTOMER_TOKEN_PREFIX), "csrf-" + uuid.uuid4().hex
    async with h.runtime.uow() as uow:
        uow.session.add(CustomerSession(account_id=a.account_id, contact_id=contact_id, inbox_id=None,
                                        token_hash=token_digest(portal_token), csrf_token=csrf, created_at=utcnow(),
                                        expires_at=utcnow() + timedelta(days=1)))
        await uow.session.commit()
    portal = {"cookie": f"sd_portal={portal_token}; sd_portal_csrf={csrf}", "x-csrf-token": csrf}
    now = utcnow()
    await _ok(await c.put("/api/v1/customer/preferences", headers=portal, json={
        "never_channels": ["twilio_sms"], "contact_cap": {"max_contacts": 5, "per_days": 7},
        "quiet_hours": {"start": f"{(now.hour - 1) % 24:02d}:00", "end": f"{(now.hour + 2) % 24:02d}:00",
                        "time_zone": "UTC"}}))
    outreach = await _ok(await c.post("/api/v1/conversations", headers=agent.headers, json={
        "inbox_id": inbox.id, "contact_id": contact_id, "subject": "Aardvark outreach",
        "content": "Aardvark: your refund 4411 is ready"}), 201)
    assert outreach["first_message"]["outcome"] == "defer", outreach
    deferred_send_id = outreach["first_message"]["deferred_send_id"]

    b = await h.make_account("Borealis")
    b_team = await h.make_team(b, "Borealis Team")
    b_inbox = await h.make_api_inbox(b)
    b_conv = await _ok(await h.deliver(b_inbox, {"message_id": "b-1", "contact": {"source_id": "b-src-1",
                                                                                  "name": "Borealis Bea"},
                                                 "content": "Borealis hello"}))
    b_customer = await h.customer_session(b_inbox, "Borealis Visitor")

    ids = {"user_id": agent.user_id, "team_id": team_id, "token_id": token["id"], "contact_id": contact_id,
           "organization_id": org["id"], "inbox_id": inbox.id, "conversation_id": conversation_id,
           "attachment_id": note["attachments"][0]["id"], "subscription_id": sub["id"],
           "delivery_id": deliveries[0]["id"], "job_id": dead[0]["id"], "public_key": inbox.public_key,
           "assignee_id": agent.user_id, "suggestion_id": suggestion["id"], "merge_id": merge["id"],
           "twin_contact_id": twins[1]["id"], "quarantine_id": quarantined["quarantine_id"],
           "view_id": view["id"], "canned_id": canned["id"], "skill_id": skill["id"], "queue_id": queue["id"],
           "calendar_id": calendar["id"], "policy_id": policy["id"], "rule_id": rule["id"], "version": 1,
           "macro_id": macro["id"], "swarm_id": swarm["id"], "deferred_send_id": deferred_send_id,
           "outreach_conversation_id": outreach["id"]}
    b_ids = {"user_id": b.admin.user_id, "team_id": b_team, "inbox_id": b_inbox.id,
             "conversation_id": b_conv["conversation_id"], "contact_id": b_conv["contact_id"]}
    w = World(a=a, b=b, agent=agent, inbox=inbox, b_inbox=b_inbox, ids=ids, b_ids=b_ids, owner=owner,
              bystander={"authorization": f"Bearer {bystander_r['token']}"}, b_customer=b_customer,
              note_id=note["id"], note_attachment_id=note["attachments"][0]["id"],
              customer_attachment_id=customer_attachment_id, portal=portal)
    w.credentials = [a.admin.token, agent.token, token["token"], inbox.public_key, inbox.secret,
                     owner_r["token"], bystander_r["token"], expert.token, portal_token, csrf]
    return w


# --- snapshots of everything A has ------------------------------------------------------------

VOLATILE_COLUMNS = {"last_used_at", "last_seen_at"}  # touched by A's own reads


async def db_snapshot(h: Harness, account_id: int) -> dict[str, list[tuple]]:
    """Every row of account A, in every table, read directly from the database."""
    snap: dict[str, list[tuple]] = {}
    async with h.runtime.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            cols = [col for col in table.columns if col.name not in VOLATILE_COLUMNS]
            stmt = select(*cols).order_by(*table.primary_key.columns)
            if "account_id" in table.c:
                stmt = stmt.where(table.c.account_id == account_id)
            elif table.name == "accounts":
                stmt = stmt.where(table.c.id == account_id)
            elif table.name == "conversation_reads":
                users = Base.metadata.tables["users"]
                stmt = stmt.where(table.c.user_id.in_(select(users.c.id).where(users.c.account_id == account_id)))
            elif table.name == "team_members":
                teams = Base.metadata.tables["teams"]
                stmt = stmt.where(table.c.team_id.in_(select(teams.c.id).where(teams.c.account_id == account_id)))
            else:
                pytest.fail(f"table {table.name} has no account scope: teach db_snapshot how to read A's rows")
            snap[table.name] = [tuple(row) for row in (await conn.execute(stmt)).all()]
    files = sorted(p.name for p in h.runtime.settings.attachments_dir.rglob("*") if p.is_file())
    snap["attachment files"] = [(f,) for f in files]
    return snap


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE_COLUMNS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


async def api_snapshot(h: Harness, w: World) -> dict[str, Any]:
    """A's data as A's admin (and A's agent, for their tokens) reads it through the API."""
    cid = w.ids["conversation_id"]
    reads = {
        "/api/v1/account": w.a.admin, "/api/v1/users": w.a.admin, "/api/v1/teams": w.a.admin,
        "/api/v1/contacts": w.a.admin, f"/api/v1/contacts/{w.ids['contact_id']}": w.a.admin,
        "/api/v1/organizations": w.a.admin, "/api/v1/conversations": w.a.admin,
        f"/api/v1/conversations/{cid}": w.a.admin, f"/api/v1/conversations/{cid}/messages": w.a.admin,
        f"/api/v1/conversations/{cid}/activity": w.a.admin, "/api/v1/inboxes": w.a.admin,
        "/api/v1/webhooks": w.a.admin, "/api/v1/webhooks/deliveries": w.a.admin, "/api/v1/jobs": w.a.admin,
        "/api/v1/audit-log": w.a.admin, "/api/v1/api-tokens": w.agent,
        "/api/v1/routing/skills": w.a.admin, "/api/v1/routing/agents": w.a.admin, "/api/v1/routing/queues": w.a.admin,
        "/api/v1/routing/presence": w.agent, f"/api/v1/conversations/{cid}/routing": w.a.admin,
        "/api/v1/sla/calendars": w.a.admin, "/api/v1/sla/policies": w.a.admin, f"/api/v1/conversations/{cid}/sla": w.a.admin,
        "/api/v1/automation/rules": w.a.admin, f"/api/v1/automation/rules/{w.ids['rule_id']}/versions": w.a.admin,
        "/api/v1/automation/executions": w.a.admin, "/api/v1/macros": w.a.admin,
        f"/api/v1/conversations/{cid}/swarms": w.a.admin,
        f"/api/v1/conversations/{cid}/swarms/{w.ids['swarm_id']}/messages": w.a.admin,
        f"/api/v1/contacts/{w.ids['contact_id']}/preferences": w.a.admin,
        f"/api/v1/conversations/{w.ids['outreach_conversation_id']}/deferred-sends": w.a.admin,
    }
    snap = {}
    for url, who in reads.items():
        r = await h.client.get(url, headers=who.headers)
        assert r.status_code == 200, (url, r.text)
        snap[url] = _strip(r.json())
    r = await h.client.get(f"/api/v1/customer/conversations/{cid}/messages", headers=w.owner)
    assert r.status_code == 200, r.text
    snap["owner's view"] = r.json()
    r = await h.client.get("/api/v1/customer/preferences", headers=w.portal)
    assert r.status_code == 200, r.text
    snap["owner's contact rules"] = _strip(r.json())
    return snap


async def assert_a_unchanged(h: Harness, w: World, db_before: dict, api_before: dict) -> None:
    db_after = await db_snapshot(h, w.a.account_id)
    for table in db_before:
        assert db_after[table] == db_before[table], f"account A's {table} changed"
    assert await api_snapshot(h, w) == api_before


# --- route enumeration -------------------------------------------------------------------------

HTTP_METHODS = ("get", "put", "post", "patch", "delete")


def openapi_routes(app) -> list[tuple[str, str, dict]]:  # noqa: ANN001
    return [(method.upper(), path, op) for path, ops in app.openapi()["paths"].items()
            for method, op in ops.items() if method in HTTP_METHODS]


def served_routes(app) -> Iterator[tuple[str, str, Any]]:  # noqa: ANN001
    """Every route the application answers, from its own routing table."""
    for rc in iter_route_contexts(app.routes):
        methods = rc.methods
        if methods is None:
            yield "WEBSOCKET", rc.path, rc
            continue
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            yield method, rc.path, rc


def _calls(dependant: Any) -> Iterator[Any]:
    if dependant is None:
        return
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


# The dependencies that establish who is calling (any_principal picks one of the first two;
# optional_staff is the workspace pages' gate: no session there means the sign-in page).
AUTH_GATES = {current_staff, current_customer, any_principal, optional_staff}


def authenticates(rc: Any) -> bool:
    return bool(AUTH_GATES & set(_calls(getattr(rc, "dependant", None))))


def kind_of(method: str, path: str) -> str:
    if (method, path) in PUBLIC_ROUTES:
        return "public"
    if (method, path) in ANY_PRINCIPAL:
        return "any"
    if path.startswith(PORTAL_PREFIX) or (method, path) in PORTAL_ONLY:
        return "portal"
    return "customer" if path.startswith(CUSTOMER_PREFIX) else "staff"


def path_params(path: str) -> list[str]:
    return re.findall(r"{(\w+)}", path)


def fill(path: str, ids: dict[str, Any]) -> str:
    for name in path_params(path):
        assert name in ids, f"no id for path parameter {name!r} of {path}: add one of A's to build_world"
        path = path.replace("{" + name + "}", str(ids[name]))
    return path


def id_query(op: dict, ids: dict[str, Any]) -> dict[str, Any]:
    """A's ids in every id-like query parameter (filters must not reach across accounts either)."""
    return {p["name"]: ids[p["name"]] for p in op.get("parameters", [])
            if p["in"] == "query" and p["name"] in ids}


def has_body(op: dict) -> bool:
    return "requestBody" in op


def assert_no_leak(r: httpx.Response, w: World, who: str, route: str) -> None:
    assert r.status_code < 500, f"{who} {route}: {r.status_code} {r.text[:300]}"
    text = r.text
    assert MARK not in text.lower(), f"{who} {route} leaks account A's data: {text[:500]}"
    for secret in w.credentials:
        assert secret not in text, f"{who} {route} leaks one of A's credentials"


def assert_problem(r: httpx.Response, status: set[int], who: str, route: str) -> None:
    assert r.status_code in status, f"{who} {route}: expected {sorted(status)}, got {r.status_code} {r.text[:300]}"
    assert r.headers["content-type"].startswith(PROBLEM), (who, route, r.headers["content-type"])
    body = r.json()
    assert body["status"] == r.status_code and body["title"] and body["detail"], (who, route, body)


@pytest.fixture
async def world(h: Harness) -> World:
    return await build_world(h)


# --- tests ----------------------------------------------------------------------------------------

def test_public_routes_are_exactly_the_listed_ones(tmp_path) -> None:  # noqa: ANN001
    """The routes without an authentication gate are exactly PUBLIC_ROUTES, and the OpenAPI
    document lists every served route except the ones NOT_IN_SCHEMA names."""
    app = create_app(Settings(env="test", data_dir=tmp_path, secret_key="t" * 40))
    served = {(m, p): rc for m, p, rc in served_routes(app)}
    documented = {(m, p) for m, p, _ in openapi_routes(app)}
    pages = {(m, p) for m, p in served if p == "/" or p.startswith(PAGE_PREFIXES)}
    assert not pages & documented
    assert set(served) - documented - pages == NOT_IN_SCHEMA
    assert documented <= set(served)
    unauthenticated = {key for key, rc in served.items() if not authenticates(rc)}
    assert unauthenticated == PUBLIC_ROUTES
    assert ANY_PRINCIPAL <= documented


async def test_every_route_refuses_other_accounts_and_customers(h: Harness, app,  # noqa: ANN001
                                                                 world: World) -> None:
    w, c = world, h.client
    bodies = _bodies(w)
    routes = openapi_routes(app)
    db_before = await db_snapshot(h, w.a.account_id)
    api_before = await api_snapshot(h, w)
    deferred: list[tuple[str, str, dict]] = []
    checked = {"b-admin": 0, "customer": 0, "anonymous": 0}

    for method, path, op in routes:
        route = f"{method} {path}"
        kind = kind_of(method, path)
        if kind == "public":
            continue
        if has_body(op):
            assert (method, path) in bodies, f"{route} takes a body: add a valid one to _bodies()"
        body = bodies.get((method, path))
        url = fill(path, w.ids)
        query = id_query(op, w.ids)

        async def call(headers: dict[str, str] | None, *, url: str = url) -> httpx.Response:
            return await c.request(method, url, headers=headers, params=query,
                                   **({"json": body} if body is not None else {}))

        # Nobody: every non-public route wants a credential.
        r = await call(None)
        assert_problem(r, {401}, "anonymous", route)
        assert r.json()["type"].endswith("/not-authenticated"), (route, r.text)
        assert_no_leak(r, w, "anonymous", route)
        checked["anonymous"] += 1

        # B's admin.
        r = await call(w.b.admin.headers)
        if kind in ("customer", "portal"):
            assert_problem(r, {403}, "B admin", route)
        elif path_params(path):
            assert_problem(r, {403, 404}, "B admin", route)
        elif (method, path) in REFERENCES_A:
            assert_problem(r, {404, 422}, "B admin", route)
        else:
            assert 200 <= r.status_code < 300, f"B admin {route}: {r.status_code} {r.text[:300]}"
        assert_no_leak(r, w, "B admin", route)
        checked["b-admin"] += 1

        # Customers.
        if kind == "staff":
            # The customer who owns A's conversation is still not staff.
            r = await call(w.owner)
            assert_problem(r, {403}, "A's customer", route)
            assert_no_leak(r, w, "A's customer", route)
            checked["customer"] += 1
        elif kind == "customer" and method != "GET" and not path_params(path):
            deferred.append((method, path, op))  # the caller's own new object: after the comparison
        elif kind == "customer":
            for who, headers in (("another customer of A", w.bystander), ("B's customer", w.b_customer)):
                r = await call(headers)
                if path_params(path):
                    assert_problem(r, {404}, who, route)
                else:
                    assert r.status_code == 200, (who, route, r.text)
                assert_no_leak(r, w, who, route)
                checked["customer"] += 1
        elif kind == "portal":
            # A widget's customer session is not a portal session, whoever's it is.
            for who, headers in (("A's customer", w.owner), ("B's customer", w.b_customer)):
                r = await call(headers)
                assert_problem(r, {403}, who, route)
                assert_no_leak(r, w, who, route)
                checked["customer"] += 1
        elif kind == "any":
            for who, headers in (("another customer of A", w.bystander), ("B's customer", w.b_customer)):
                r = await call(headers)
                assert 200 <= r.status_code < 300, (who, route, r.text)
                assert_no_leak(r, w, who, route)
                checked["customer"] += 1

    gated = [1 for m, p, _ in routes if kind_of(m, p) != "public"]
    assert checked["anonymous"] == checked["b-admin"] == len(gated)
    assert checked["customer"] >= len(gated)
    await assert_a_unchanged(h, w, db_before, api_before)

    # Creating one's own conversation is allowed; it still shows nothing of anyone else.
    assert deferred, "expected customer routes that create the caller's own objects"
    for method, path, _ in deferred:
        for who, headers in (("another customer of A", w.bystander), ("B's customer", w.b_customer)):
            r = await c.request(method, path, headers=headers, json=bodies[(method, path)])
            assert 200 <= r.status_code < 300, (who, path, r.text)
            assert_no_leak(r, w, who, f"{method} {path}")
    r = await c.get("/api/v1/customer/conversations", headers=w.bystander)
    assert [conv["subject"] for conv in r.json()] == ["Borealis question"]


async def test_public_routes_leak_nothing(h: Harness, app, world: World) -> None:  # noqa: ANN001
    """What the public routes answer, called by a stranger, names nothing of A."""
    w, c = world, h.client
    db_before = await db_snapshot(h, w.a.account_id)
    for url in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        r = await c.get(url)
        assert r.status_code == 200, (url, r.text)
        assert_no_leak(r, w, "anonymous", url)
    # A's agent's real email with a wrong password: the same answer as an unknown email.
    for email in (w.agent.email, "nobody@borealis.example.com"):
        r = await c.post("/api/v1/auth/login", json={"email": email, "password": "wrong password!"})
        assert_problem(r, {401}, "anonymous", "login")
        assert r.json()["detail"] == "email or password is wrong"
        assert email not in r.text
    # A's inbox address with B's credentials and a body signed with B's secret: refused.
    body = orjson.dumps({"message_id": "x-1", "contact": {"source_id": "evil"}, "content": "Borealis injected"})
    for headers in ({}, sign(w.b_inbox.secret, body), {**sign(w.b_inbox.secret, body), **w.b.admin.headers}):
        r = await c.post(w.inbox.webhook_path, content=body, headers=headers)
        assert_problem(r, {401}, "stranger", "webhook")
        assert MARK not in r.text.lower()
    r = await c.post("/api/v1/realtime/register", headers=w.b.admin.headers)
    queue_id = r.json()["queue_id"]
    r = await c.get("/api/v1/realtime/events", params={"queue_id": "q" + queue_id[1:][::-1]})
    assert_problem(r, {401}, "stranger", "realtime events")
    await assert_a_unchanged(h, w, db_before, await api_snapshot(h, w))
    # A customer session on A's inbox is public by design; it belongs to a new, empty contact.
    r = await c.post(f"/api/v1/inboxes/{w.inbox.public_key}/customer-sessions", json={"name": "Stranger"})
    assert r.status_code == 201, r.text
    assert set(r.json()) == {"token", "contact_id", "expires_at"}
    r = await c.get("/api/v1/customer/conversations", headers={"authorization": f"Bearer {r.json()['token']}"})
    assert r.json() == []
    # The portal's contact preferences page: only the contact's own portal session of that account
    # sees it; anyone else is sent to the sign-in page, A's session on B's portal included.
    async with h.runtime.uow() as uow:
        a_slug, b_slug = [(await uow.session.get(Account, account_id)).slug
                          for account_id in (w.a.account_id, w.b.account_id)]
    for slug, headers in ((a_slug, {}), (a_slug, w.owner), (a_slug, w.bystander), (a_slug, w.b_customer),
                          (a_slug, w.b.admin.headers), (a_slug, w.agent.headers), (b_slug, w.portal)):
        r = await c.get(f"/portal/{slug}/preferences", headers=headers)
        assert (r.status_code, r.headers.get("location")) == (303, f"/portal/{slug}"), (slug, r.text[:300])
        assert "ana@aardvark" not in r.text.lower() and "quiet" not in r.text.lower()
    r = await c.get(f"/portal/{a_slug}/preferences", headers=w.portal)
    assert r.status_code == 200 and 'data-saved-zone="UTC"' in r.text, r.text[:300]


async def test_customer_cannot_read_another_customers_conversation(h: Harness, world: World) -> None:
    w, c = world, h.client
    cid = w.ids["conversation_id"]
    for headers in (w.bystander, w.b_customer):
        for url in (f"/api/v1/customer/conversations/{cid}", f"/api/v1/customer/conversations/{cid}/messages",
                    f"/api/v1/customer/conversations/{cid}/attachments/{w.customer_attachment_id}",
                    f"/api/v1/customer/conversations/{cid}/attachments/{w.note_attachment_id}"):
            r = await c.get(url, headers=headers)
            assert_problem(r, {404}, "customer", url)
            assert_no_leak(r, w, "customer", url)
        r = await c.get("/api/v1/customer/conversations", headers=headers)
        assert r.status_code == 200 and r.json() == [], r.text
        db_before = await db_snapshot(h, w.a.account_id)
        r = await c.post(f"/api/v1/customer/conversations/{cid}/messages", headers=headers,
                         json={"content": "Borealis butting in"})
        assert_problem(r, {404}, "customer", "post message")
        assert (await db_snapshot(h, w.a.account_id)) == db_before
    # The owner, as a control, does see it.
    r = await c.get(f"/api/v1/customer/conversations/{cid}", headers=w.owner)
    assert r.status_code == 200 and r.json()["subject"] == "Aardvark refund request"


async def test_customer_never_sees_internal_notes_or_their_attachments(h: Harness, world: World) -> None:
    w, c = world, h.client
    cid = w.ids["conversation_id"]
    r = await c.get(f"/api/v1/customer/conversations/{cid}/messages", headers=w.owner)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [m["content"] for m in items] == ["Aardvark order 4411 is late", "Aardvark receipt attached",
                                            "Aardvark reply: the courier has it"]
    assert w.note_id not in {m["id"] for m in items}
    assert "internal note" not in r.text and "secret-memo" not in r.text and "private" not in r.text
    # The agent's reply shows their name, not their user id.
    assert items[2]["sender"] == {"type": "user", "id": None, "name": "Aardvark-Agent"}
    # Paging right up to the note does not surface it either.
    for after_id in (w.note_id - 1, w.note_id - 2):
        r = await c.get(f"/api/v1/customer/conversations/{cid}/messages", headers=w.owner,
                        params={"after_id": after_id, "limit": 1})
        assert all(m["id"] != w.note_id for m in r.json()["items"])
    # The note's attachment is not the customer's: 404, exactly as if it did not exist.
    r = await c.get(f"/api/v1/customer/conversations/{cid}/attachments/{w.note_attachment_id}", headers=w.owner)
    assert_problem(r, {404}, "owner", "note attachment")
    assert "secret memo" not in r.text
    # Control: their own attachment downloads, and staff can read the note's.
    r = await c.get(f"/api/v1/customer/conversations/{cid}/attachments/{w.customer_attachment_id}",
                    headers=w.owner)
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
    r = await c.get(f"/api/v1/conversations/{cid}/attachments/{w.note_attachment_id}", headers=w.agent.headers)
    assert r.status_code == 200 and r.content == b"aardvark secret memo: approve the refund"
    # The customer's conversation view has no staff-only fields.
    r = await c.get(f"/api/v1/customer/conversations/{cid}", headers=w.owner)
    assert set(r.json()) == {"id", "subject", "status", "created_at", "last_activity_at"}
    # Nor does the customer's real-time initial state.
    r = await c.post("/api/v1/realtime/register", headers=w.owner)
    assert r.status_code == 200 and "internal note" not in r.text and "secret-memo" not in r.text


async def _b_objects(h: Harness, w: World) -> dict[str, int]:
    """B's own routing, SLA, automation and swarming objects (a macro applied: an execution)."""
    c, hb, b = h.client, w.b.admin.headers, w.b_ids
    made: dict[str, int] = {}
    for name, url, payload in (
            ("skill", "/api/v1/routing/skills", {"name": "borealis-skill"}),
            ("queue", "/api/v1/routing/queues", {"name": "Borealis Queue", "team_id": b["team_id"]}),
            ("calendar", "/api/v1/sla/calendars", {"name": "Borealis Hours", "time_zone": "UTC",
                                                   "hours": {"tue": [{"start": "09:00", "end": "17:00"}]}}),
            ("policy", "/api/v1/sla/policies", {"name": "Borealis SLA", "first_response_minutes": 30}),
            ("rule", "/api/v1/automation/rules", {"name": "Borealis rule", "trigger": {
                "type": "event", "events": ["status_changed"]}, "actions": [{"type": "add_tags", "tags": ["b"]}]}),
            ("macro", "/api/v1/macros", {"name": "Borealis macro", "actions": [{"type": "add_tags",
                                                                                 "tags": ["borealis"]}]}),
            ("swarm", f"/api/v1/conversations/{b['conversation_id']}/swarms", {"note": "Borealis help"})):
        made[name] = (await _ok(await c.post(url, headers=hb, json=payload), 201))["id"]
    await _ok(await c.post(f"/api/v1/conversations/{b['conversation_id']}/macros/{made['macro']}/apply", headers=hb))
    return made


async def test_references_to_another_accounts_objects_are_refused(h: Harness, world: World) -> None:
    """B's own routes, with A's ids inside B's bodies, paths and filters."""
    w, c = world, h.client
    a, b = w.ids, w.b_ids
    hb = w.b.admin.headers
    mine = await _b_objects(h, w)
    b_conversation = f"/api/v1/conversations/{b['conversation_id']}"
    b_swarm = f"{b_conversation}/swarms/{mine['swarm']}"
    # Every action and condition of a rule or macro that names another object, naming A's.
    a_actions = [{"type": "assign", "user_id": a["user_id"]}, {"type": "set_team", "team_id": a["team_id"]},
                 {"type": "reply_template", "canned_response_id": a["canned_id"]},
                 {"type": "notify", "user_ids": [a["user_id"]], "text": "Borealis ping"},
                 {"type": "call_webhook", "subscription_id": a["subscription_id"]},
                 {"type": "start_swarm", "invite_user_ids": [a["user_id"]]},
                 {"type": "set_required_skills", "skills": [{"skill_id": a["skill_id"]}]}]
    a_conditions = [{"type": "inbox", "inbox_ids": [a["inbox_id"]]},
                    {"type": "team", "op": "in", "team_ids": [a["team_id"]]},
                    {"type": "assignee", "op": "in", "user_ids": [a["user_id"]]}]
    rule_base = {"name": "Borealis X", "trigger": {"type": "event", "events": ["conversation_created"]}}
    db_before = await db_snapshot(h, w.a.account_id)
    api_before = await api_snapshot(h, w)
    refused = [
        ("POST", "/api/v1/conversations", {"inbox_id": b["inbox_id"], "contact_id": a["contact_id"]}),
        ("POST", "/api/v1/conversations", {"inbox_id": a["inbox_id"], "contact_id": b["contact_id"]}),
        ("POST", "/api/v1/conversations", {"inbox_id": b["inbox_id"], "contact_id": b["contact_id"],
                                           "team_id": a["team_id"]}),
        ("POST", "/api/v1/conversations", {"inbox_id": b["inbox_id"], "contact_id": b["contact_id"],
                                           "assignee_id": a["user_id"]}),
        ("PATCH", f"/api/v1/conversations/{b['conversation_id']}", {"assignee_id": a["user_id"]}),
        ("PATCH", f"/api/v1/conversations/{b['conversation_id']}", {"team_id": a["team_id"]}),
        ("PATCH", f"/api/v1/contacts/{b['contact_id']}", {"organization_id": a["organization_id"]}),
        ("POST", f"/api/v1/contacts/{b['contact_id']}/merge", {"other_contact_id": a["contact_id"]}),
        ("POST", "/api/v1/contacts", {"name": "Borealis X", "organization_id": a["organization_id"]}),
        ("POST", f"/api/v1/teams/{b['team_id']}/members", {"user_id": a["user_id"]}),
        ("GET", f"/api/v1/conversations/{b['conversation_id']}/attachments/{a['attachment_id']}", None),
        ("GET", f"/api/v1/conversations/{b['conversation_id']}/attachments/{w.customer_attachment_id}", None),
        # Routing.
        ("PUT", f"/api/v1/routing/agents/{b['user_id']}/skills", {"skills": [{"skill_id": a["skill_id"],
                                                                              "proficiency": 3}]}),
        ("PATCH", f"/api/v1/routing/skills/{mine['skill']}", {"inbox_ids": [a["inbox_id"]]}),
        ("POST", "/api/v1/routing/queues", {"name": "Borealis X", "inbox_ids": [a["inbox_id"]]}),
        ("PATCH", f"/api/v1/routing/queues/{mine['queue']}", {"team_id": a["team_id"]}),
        ("PATCH", f"/api/v1/routing/queues/{mine['queue']}", {"inbox_ids": [a["inbox_id"]]}),
        ("PUT", f"{b_conversation}/routing/skills", {"skills": [{"skill_id": a["skill_id"], "min_proficiency": 1}]}),
        # SLAs.
        ("POST", "/api/v1/sla/policies", {"name": "Borealis X", "first_response_minutes": 5,
                                          "conditions": {"inbox_ids": [a["inbox_id"]]}}),
        ("PATCH", f"/api/v1/sla/policies/{mine['policy']}", {"calendar_id": a["calendar_id"]}),
        ("PATCH", f"/api/v1/sla/policies/{mine['policy']}", {"conditions": {"inbox_ids": [a["inbox_id"]]}}),
        # Automation.
        *[("POST", "/api/v1/automation/rules", {**rule_base, "actions": [action]}) for action in a_actions],
        *[("PATCH", f"/api/v1/automation/rules/{mine['rule']}", {"actions": [action]}) for action in a_actions],
        *[("POST", "/api/v1/automation/rules", {**rule_base, "conditions": {"all": [condition]},
                                                "actions": [{"type": "resolve"}]}) for condition in a_conditions],
        *[("PATCH", f"/api/v1/automation/rules/{mine['rule']}", {"conditions": {"any": [condition]}})
          for condition in a_conditions],
        *[("POST", "/api/v1/macros", {"name": "Borealis X", "actions": [action]}) for action in a_actions],
        *[("PATCH", f"/api/v1/macros/{mine['macro']}", {"actions": [action]}) for action in a_actions],
        ("POST", f"{b_conversation}/macros/{a['macro_id']}/apply", None),
        # Swarming: A's swarm under B's conversation, A's people in B's swarm.
        ("GET", f"{b_conversation}/swarms/{a['swarm_id']}", None),
        ("GET", f"{b_conversation}/swarms/{a['swarm_id']}/messages", None),
        ("POST", f"{b_conversation}/swarms/{a['swarm_id']}/join", None),
        ("POST", f"{b_conversation}/swarms/{a['swarm_id']}/messages", {"content": "Borealis pwned"}),
        ("POST", f"{b_swarm}/invitations", {"user_ids": [a["user_id"]]}),
    ]
    for method, url, body in refused:
        r = await c.request(method, url, headers=hb, **({"json": body} if body is not None else {}))
        assert_problem(r, {404, 422}, "B admin", f"{method} {url} {body}")
        assert_no_leak(r, w, "B admin", url)
    # Removing A's agent from B's team is a no-op on B's team, never on A's.
    r = await c.delete(f"/api/v1/teams/{b['team_id']}/members/{a['user_id']}", headers=hb)
    assert r.status_code == 200 and r.json()["member_ids"] == [], r.text
    # Filters naming A's objects find nothing; searching for A's strings finds nothing.
    empty_pages = [
        ("/api/v1/conversations", {"inbox_id": a["inbox_id"]}),
        ("/api/v1/conversations", {"contact_id": a["contact_id"]}),
        ("/api/v1/conversations", {"team_id": a["team_id"]}),
        ("/api/v1/conversations", {"assignee_id": a["user_id"]}),
        ("/api/v1/conversations", {"tag": "aardvark-vip"}),
        ("/api/v1/contacts", {"organization_id": a["organization_id"]}),
        ("/api/v1/contacts", {"q": "aardvark"}),
        ("/api/v1/contacts", {"q": "ana@aardvark-customer.example.com"}),
        ("/api/v1/webhooks/deliveries", {"subscription_id": a["subscription_id"]}),
        ("/api/v1/automation/executions", {"rule_id": a["rule_id"]}),
        ("/api/v1/automation/executions", {"macro_id": a["macro_id"]}),
        ("/api/v1/automation/executions", {"conversation_id": a["conversation_id"]}),
    ]
    for url, params in empty_pages:
        r = await c.get(url, headers=hb, params=params)
        assert r.status_code == 200 and r.json()["items"] == [], (url, params, r.text)
    # A user id from A in B's listing of users or teams: absent.
    r = await c.get("/api/v1/users", headers=hb)
    assert [u["id"] for u in r.json()] == [w.b.admin.user_id]
    # B's routing, automation and swarming views: B's own, and nothing of A's.
    r = await c.get("/api/v1/routing/agents", headers=hb)
    assert [agent["user_id"] for agent in r.json()] == [w.b.admin.user_id], r.text
    r = await c.get("/api/v1/automation/executions", headers=hb)
    assert [e["macro_id"] for e in r.json()["items"]] == [mine["macro"]], r.text
    r = await c.get(f"{b_conversation}/swarm-suggestions", headers=hb)
    assert r.status_code == 200 and {s["user_id"] for s in r.json()["items"]} <= {w.b.admin.user_id}, r.text
    assert_no_leak(r, w, "B admin", "swarm suggestions")
    r = await c.get("/api/v1/swarms/metrics", headers=hb)
    assert r.status_code == 200 and (r.json()["started"], r.json()["with_expert"]) == (1, 0), r.text
    assert_no_leak(r, w, "B admin", "swarm metrics")
    await assert_a_unchanged(h, w, db_before, api_before)


# --- real time -----------------------------------------------------------------------------------

@pytest.fixture
async def api(live) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=live.url, timeout=5.0) as client:
        yield client


async def _sse_until(api: httpx.AsyncClient, queue_id: str, marker: str) -> str:
    """Everything the SSE stream sends, replay included, up to the frame that carries marker."""
    seen = ""
    async with api.stream("GET", "/api/v1/realtime/events",
                          params={"queue_id": queue_id, "last_event_id": 0}) as r:
        assert r.status_code == 200
        async for chunk in r.aiter_text():
            seen += chunk
            if marker in seen:
                return seen
    raise AssertionError(f"stream ended before {marker!r}: {seen[:500]}")


async def _ws_until(live, queue_id: str, marker: str) -> str:  # noqa: ANN001
    seen = ""
    async with ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id={queue_id}&last_event_id=0",
                          open_timeout=5) as ws:
        while marker not in seen:
            seen += str(await ws.recv())
    return seen


async def test_realtime_streams_never_cross_accounts_or_customers(h: Harness, world: World, live,
                                                                  api: httpx.AsyncClient) -> None:
    """B's admin and a bystander customer of A ask for the whole event log (last_event_id=0) over
    SSE and WebSocket: they get their own events, and not one of A's (or of the owner's)."""
    w, c = world, h.client
    b_queue = (await api.post("/api/v1/realtime/register", headers=w.b.admin.headers)).json()["queue_id"]
    bystander_queue = (await api.post("/api/v1/realtime/register", headers=w.bystander)).json()["queue_id"]
    # More of A's activity while both are registered, then each one's own fence event.
    cid = w.ids["conversation_id"]
    r = await c.post(f"/api/v1/conversations/{cid}/messages", headers=w.agent.headers,
                     json={"content": "Aardvark follow-up while you listen"})
    assert r.status_code == 201, r.text
    r = await c.post("/api/v1/contacts", headers=w.b.admin.headers, json={"name": "Borealis Fence"})
    assert r.status_code == 201, r.text
    r = await c.post("/api/v1/customer/conversations", headers=w.bystander,
                     json={"subject": "Bystander fence", "content": "Bystander fence"})
    assert r.status_code == 201, r.text
    # A queue id nobody registered (the socket's only credential) gets nothing but "reload".
    async with ws_connect(f"{live.ws_url}/api/v1/realtime/ws?queue_id=q{b_queue[::-1]}", open_timeout=5) as ws:
        assert orjson.loads(await ws.recv()) == {"op": "reload"}
    for queue_id, marker in ((b_queue, "Borealis Fence"), (bystander_queue, "Bystander fence")):
        for seen in (await _sse_until(api, queue_id, marker), await _ws_until(live, queue_id, marker)):
            assert MARK not in seen.lower(), f"{marker}: A's events reached another principal: {seen[:800]}"
            for secret in w.credentials:
                assert secret not in seen
