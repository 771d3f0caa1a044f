"""Trust: browser sessions and CSRF, API tokens and their scopes, roles and what each may see or
change, teams, users, the audit log, and creating the first admin from the command line."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from swarmdesk.accounts.models import Account, AuditEntry, BrowserSession, Role, Team, TeamMember, User
from swarmdesk.channels.models import Inbox
from swarmdesk.config import Settings
from swarmdesk.conversations.models import ConversationParticipant, Message
from swarmdesk.core.clock import clock
from swarmdesk.main import create_app
from swarmdesk.runtime import create_runtime
from tests.support import PASSWORD, AccountCtx, Harness, Staff, inbound_payload

CSRF_DETAIL = "missing or wrong CSRF token (send the X-CSRF-Token header)"


@pytest.fixture
async def browser(app) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    """A second client with its own cookie jar, like a browser tab."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


def cookies_set(response: httpx.Response) -> dict[str, dict[str, str]]:
    """Set-Cookie headers as {name: {"value": ..., attribute (lowercased): value or ""}}."""
    result = {}
    for header in response.headers.get_list("set-cookie"):
        first, *attrs = [p.strip() for p in header.split(";")]
        name, _, value = first.partition("=")
        parsed = {"value": value.strip('"')}
        for attr in attrs:
            key, _, v = attr.partition("=")
            parsed[key.lower()] = v
        result[name] = parsed
    return result


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["csrf_token"]


async def scalar(h: Harness, stmt):  # noqa: ANN001, ANN201
    async with h.runtime.uow() as uow:
        return await uow.session.scalar(stmt)


async def inbound(h: Harness, inbox, source_id: str) -> int:  # noqa: ANN001
    r = await h.deliver(inbox, inbound_payload(source_id=source_id))
    assert r.status_code == 200, r.text
    return r.json()["conversation_id"]


async def message_count(h: Harness, cid: int) -> int:
    return await scalar(h, select(func.count()).select_from(Message).where(Message.conversation_id == cid))


# --- browser sessions ---------------------------------------------------------------------------

async def test_login_sets_httponly_session_cookie_and_csrf(h: Harness, browser: httpx.AsyncClient) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    r = await browser.post("/api/v1/auth/login", json={"email": f"  {agent.email.upper()} ", "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["user"]["id"], body["user"]["email"], body["user"]["role"]) == (agent.user_id, agent.email, "agent")
    cookies = cookies_set(r)
    assert set(cookies) == {"sd_session", "sd_csrf"}
    session, csrf = cookies["sd_session"], cookies["sd_csrf"]
    assert session["value"].startswith("sds_")
    assert "httponly" in session and session["samesite"].lower() == "lax" and session["path"] == "/"
    assert session["max-age"] == str(14 * 86400)
    assert "secure" not in session  # base_url is plain http in tests
    # The CSRF cookie is readable by our pages (not HttpOnly) and equals the token in the body.
    assert "httponly" not in csrf and csrf["samesite"].lower() == "strict"
    assert csrf["value"] == body["csrf_token"] and len(body["csrf_token"]) >= 32
    # Only a digest of the session token is stored.
    stored = await scalar(h, select(BrowserSession).where(BrowserSession.user_id == agent.user_id))
    assert stored.token_hash == hashlib.sha256(session["value"].encode()).hexdigest()
    assert stored.csrf_token == body["csrf_token"]

    r = await browser.get("/api/v1/auth/me")
    assert r.status_code == 200 and r.json()["id"] == agent.user_id


async def test_login_failures(h: Harness, browser: httpx.AsyncClient) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    for email, password in ((agent.email, "wrong password"), ("nobody@example.com", PASSWORD)):
        r = await browser.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert (r.status_code, r.json()["detail"]) == (401, "email or password is wrong")
        assert "set-cookie" not in r.headers
    await h.client.patch(f"/api/v1/users/{agent.user_id}", headers=ctx.admin.headers, json={"is_active": False})
    r = await browser.post("/api/v1/auth/login", json={"email": agent.email, "password": PASSWORD})
    assert (r.status_code, r.json()["detail"]) == (401, "email or password is wrong")
    assert await scalar(h, select(func.count()).select_from(BrowserSession)) == 0
    r = await browser.get("/api/v1/auth/me")
    assert (r.status_code, r.json()["detail"]) == (401, "sign in or send an API token")


async def test_cookie_requests_need_the_csrf_header(h: Harness, browser: httpx.AsyncClient) -> None:
    ctx = await h.make_account()
    csrf = await login(browser, ctx.admin.email)
    other_tab = httpx.AsyncClient(transport=browser._transport, base_url="http://testserver")  # noqa: SLF001
    async with other_tab:
        other_csrf = await login(other_tab, ctx.admin.email)

    assert (await browser.get("/api/v1/teams")).status_code == 200  # safe methods need no token
    for headers in ({}, {"x-csrf-token": "wrong"}, {"x-csrf-token": other_csrf}, {"x-csrf-token": ""}):
        r = await browser.post("/api/v1/teams", json={"name": "Billing"}, headers=headers)
        assert (r.status_code, r.json()["detail"]) == (403, CSRF_DETAIL), headers
        r = await browser.patch("/api/v1/account", json={"name": "Hijacked"}, headers=headers)
        assert r.status_code == 403
    assert await scalar(h, select(func.count()).select_from(Team)) == 0
    assert (await scalar(h, select(Account).where(Account.id == ctx.account_id))).name == "Acme"

    r = await browser.post("/api/v1/teams", json={"name": "Billing"}, headers={"x-csrf-token": csrf})
    assert r.status_code == 201, r.text
    r = await browser.patch("/api/v1/account", json={"name": "Acme Inc"}, headers={"X-CSRF-Token": csrf})
    assert (r.status_code, r.json()["name"]) == (200, "Acme Inc")
    # A bearer token needs no CSRF token: a page cannot make the browser send one.
    r = await h.client.post("/api/v1/teams", json={"name": "Returns"}, headers=ctx.admin.headers)
    assert r.status_code == 201


async def test_logout_ends_the_session(h: Harness, browser: httpx.AsyncClient) -> None:
    ctx = await h.make_account()
    csrf = await login(browser, ctx.admin.email)
    session_cookie = browser.cookies["sd_session"]
    r = await browser.post("/api/v1/auth/logout")
    assert (r.status_code, r.json()["detail"]) == (403, CSRF_DETAIL)
    r = await browser.post("/api/v1/auth/logout", headers={"x-csrf-token": csrf})
    assert r.status_code == 204
    cleared = cookies_set(r)
    assert set(cleared) == {"sd_session", "sd_csrf"}
    assert cleared["sd_session"]["max-age"] == "0" and cleared["sd_session"]["value"] == ""
    assert await scalar(h, select(func.count()).select_from(BrowserSession)) == 0
    # The old cookie, replayed, is worthless.
    async with httpx.AsyncClient(transport=browser._transport, base_url="http://testserver",  # noqa: SLF001
                                 cookies={"sd_session": session_cookie}) as replay:
        r = await replay.get("/api/v1/auth/me")
    assert (r.status_code, r.json()["detail"]) == (401, "session expired; sign in again")


async def test_session_expires_and_ends_on_password_change(h: Harness, browser: httpx.AsyncClient) -> None:
    clock.freeze(datetime.now(UTC))
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    await login(browser, agent.email)
    clock.advance(timedelta(days=13, hours=23))
    assert (await browser.get("/api/v1/auth/me")).status_code == 200
    clock.advance(timedelta(hours=2))
    r = await browser.get("/api/v1/auth/me")
    assert (r.status_code, r.json()["detail"]) == (401, "session expired; sign in again")

    await login(browser, agent.email)
    r = await h.client.patch(f"/api/v1/users/{agent.user_id}", headers=ctx.admin.headers,
                             json={"password": "a brand new password"})
    assert r.status_code == 200
    assert (await browser.get("/api/v1/auth/me")).status_code == 401
    await login(browser, agent.email, "a brand new password")
    assert (await browser.get("/api/v1/auth/me")).status_code == 200


async def test_session_cookie_and_role_gate(h: Harness, browser: httpx.AsyncClient) -> None:
    """A browser session has every scope, so only the role gate stands between an agent and admin routes."""
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    csrf = await login(browser, agent.email)
    r = await browser.post("/api/v1/teams", json={"name": "Mine"}, headers={"x-csrf-token": csrf})
    assert (r.status_code, r.json()["detail"]) == (403, "requires the admin role")
    r = await browser.post("/api/v1/users", headers={"x-csrf-token": csrf},
                           json={"email": "x@example.com", "name": "X", "role": "admin"})
    assert r.status_code == 403
    assert await scalar(h, select(func.count()).select_from(Team)) == 0
    assert await scalar(h, select(func.count()).select_from(User).where(User.email == "x@example.com")) == 0


# --- API tokens ---------------------------------------------------------------------------------

async def test_token_scopes_are_enforced(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    cid = await inbound(h, inbox, "cust-1")
    reader = await h.make_user(ctx, "reader", scopes=["conversations:read"])
    assert (await h.client.get(f"/api/v1/conversations/{cid}", headers=reader.headers)).status_code == 200

    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=reader.headers,
                            json={"content": "should not be sent"})
    assert (r.status_code, r.json()["detail"]) == (403, "this API token lacks the 'conversations:write' scope")
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=reader.headers,
                            json={"content": "nor this note", "private": True})
    assert r.status_code == 403
    r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=reader.headers, json={"status": "resolved"})
    assert r.status_code == 403
    assert await message_count(h, cid) == 1
    got = (await h.client.get(f"/api/v1/conversations/{cid}", headers=ctx.admin.headers)).json()
    assert (got["status"], got["message_count"]) == ("open", 1)

    r = await h.client.get("/api/v1/contacts", headers=reader.headers)
    assert (r.status_code, r.json()["detail"]) == (403, "this API token lacks the 'contacts:read' scope")
    r = await h.client.post("/api/v1/contacts", headers=reader.headers, json={"name": "X"})
    assert r.status_code == 403

    writer = await h.make_user(ctx, "writer", scopes=["conversations:read", "conversations:write"])
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=writer.headers, json={"content": "ok"})
    assert r.status_code == 201
    assert await message_count(h, cid) == 2


async def test_token_creation_rules(h: Harness) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    r = await h.client.post("/api/v1/api-tokens", headers=agent.headers,
                            json={"name": "ci", "scopes": ["conversations:read", "admin"]})
    assert (r.status_code, r.json()["detail"]) == (422, "only admins can create tokens with the admin scope")
    r = await h.client.post("/api/v1/api-tokens", headers=agent.headers, json={"name": "ci", "scopes": ["root"]})
    assert r.status_code == 422
    r = await h.client.post("/api/v1/api-tokens", headers=agent.headers, json={"name": "ci", "scopes": []})
    assert r.status_code == 422
    r = await h.client.post("/api/v1/api-tokens", headers=agent.headers,
                            json={"name": "ci", "scopes": ["conversations:read"], "expires_at": "2031-01-01T00:00:00"})
    assert (r.status_code, r.json()["errors"][0]["loc"]) == (422, ["body", "expires_at"])  # no offset: ambiguous
    r = await h.client.post("/api/v1/api-tokens", headers=agent.headers,
                            json={"name": "ci", "scopes": ["conversations:read"], "expires_at": "2001-01-01T00:00:00Z"})
    assert (r.status_code, r.json()["detail"]) == (422, "expires_at must be in the future")
    assert [t["name"] for t in (await h.client.get("/api/v1/api-tokens", headers=agent.headers)).json()] == ["test"]

    r = await h.client.post("/api/v1/api-tokens", headers=agent.headers,
                            json={"name": "ci", "scopes": ["contacts:read", "conversations:read", "contacts:read"]})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["token"].startswith("sdp_") and created["prefix"] == created["token"][:10]
    assert created["scopes"] == ["contacts:read", "conversations:read"]
    listed = (await h.client.get("/api/v1/api-tokens", headers=agent.headers)).json()
    assert [t["name"] for t in listed] == ["test", "ci"]
    assert all("token" not in t for t in listed)  # shown once, never again


async def test_revoked_and_expired_tokens_are_refused(h: Harness) -> None:
    clock.freeze(datetime.now(UTC))
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    other = await h.make_user(ctx, "other")
    r = await h.client.post("/api/v1/api-tokens", headers=agent.headers,
                            json={"name": "short-lived", "scopes": ["conversations:read"],
                                  "expires_at": (clock.now() + timedelta(hours=1)).isoformat()})
    short = r.json()
    r = await h.client.post("/api/v1/api-tokens", headers=agent.headers,
                            json={"name": "revocable", "scopes": ["conversations:read"]})
    revocable = r.json()
    for token in (short["token"], revocable["token"]):
        r = await h.client.get("/api/v1/conversations", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200

    # Only the owner can revoke a token.
    r = await h.client.delete(f"/api/v1/api-tokens/{revocable['id']}", headers=other.headers)
    assert r.status_code == 404
    r = await h.client.delete(f"/api/v1/api-tokens/{revocable['id']}", headers=agent.headers)
    assert r.status_code == 204
    r = await h.client.get("/api/v1/conversations", headers={"authorization": f"Bearer {revocable['token']}"})
    assert (r.status_code, r.json()["detail"]) == (401, "API token is invalid, expired or revoked")
    listed = {t["name"]: t for t in (await h.client.get("/api/v1/api-tokens", headers=agent.headers)).json()}
    assert listed["revocable"]["revoked_at"] is not None

    clock.advance(timedelta(minutes=59))
    r = await h.client.get("/api/v1/conversations", headers={"authorization": f"Bearer {short['token']}"})
    assert r.status_code == 200
    clock.advance(timedelta(minutes=2))
    r = await h.client.get("/api/v1/conversations", headers={"authorization": f"Bearer {short['token']}"})
    assert (r.status_code, r.json()["detail"]) == (401, "API token is invalid, expired or revoked")
    # The agent's other token still works.
    assert (await h.client.get("/api/v1/conversations", headers=agent.headers)).status_code == 200


async def test_bad_credentials(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    customer = await h.customer_session(inbox)
    cases = [
        ({"authorization": "Bearer sdp_not-a-real-token"}, 401, "API token is invalid, expired or revoked"),
        ({"authorization": "Bearer something-else"}, 401, "unknown kind of API token"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, 401, "Authorization header must be 'Bearer <token>'"),
        (customer, 403, "a customer credential cannot be used on an agent route"),
        ({}, 401, "sign in or send an API token"),
    ]
    for headers, status, detail in cases:
        r = await h.client.get("/api/v1/conversations", headers=headers)
        assert (r.status_code, r.json()["detail"]) == (status, detail), headers
    # And the other way round: agent credentials are not customer credentials.
    r = await h.client.get("/api/v1/customer/conversations", headers=ctx.admin.headers)
    assert r.status_code == 403


async def test_deactivated_user_loses_token_access(h: Harness) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    assert (await h.client.get("/api/v1/auth/me", headers=agent.headers)).status_code == 200
    r = await h.client.patch(f"/api/v1/users/{agent.user_id}", headers=ctx.admin.headers, json={"is_active": False})
    assert r.status_code == 200
    r = await h.client.get("/api/v1/auth/me", headers=agent.headers)
    assert (r.status_code, r.json()["detail"]) == (401, "this user is deactivated")
    r = await h.client.patch(f"/api/v1/users/{agent.user_id}", headers=ctx.admin.headers, json={"is_active": True})
    assert (await h.client.get("/api/v1/auth/me", headers=agent.headers)).status_code == 200


# --- roles --------------------------------------------------------------------------------------

async def _snapshot(h: Harness, ctx: AccountCtx) -> tuple:
    async with h.runtime.uow() as uow:
        s = uow.session
        account = await s.get(Account, ctx.account_id)
        users = (await s.execute(select(User.id, User.role, User.is_active, User.name)
                                 .where(User.account_id == ctx.account_id).order_by(User.id))).all()
        teams = (await s.execute(select(Team.id, Team.name).order_by(Team.id))).all()
        members = (await s.execute(select(TeamMember.team_id, TeamMember.user_id))).all()
        inboxes = await s.scalar(select(func.count()).select_from(Inbox))
        audit = await s.scalar(select(func.count()).select_from(AuditEntry))
        return account.name, account.settings, users, teams, sorted(members), inboxes, audit


async def test_agent_and_supervisor_cannot_use_admin_routes(h: Harness) -> None:
    ctx = await h.make_account()
    team = await h.make_team(ctx, "Billing")
    agent = await h.make_user(ctx, "agent")
    supervisor = await h.make_user(ctx, "supervisor", role=Role.supervisor)
    inbox = await h.make_api_inbox(ctx)
    before = await _snapshot(h, ctx)
    requests = [
        ("POST", "/api/v1/users", {"email": "new@example.com", "name": "New", "role": "admin"}),
        ("PATCH", f"/api/v1/users/{agent.user_id}", {"role": "admin"}),
        ("PATCH", f"/api/v1/users/{ctx.admin.user_id}", {"is_active": False}),
        ("PATCH", "/api/v1/account", {"name": "Pwned", "settings": {"outbound_allowlist": ["10.0.0.1"]}}),
        ("POST", "/api/v1/teams", {"name": "Shadow"}),
        ("PATCH", f"/api/v1/teams/{team}", {"name": "Renamed"}),
        ("POST", f"/api/v1/teams/{team}/members", {"user_id": agent.user_id}),
        ("DELETE", f"/api/v1/teams/{team}", None),
        ("POST", "/api/v1/inboxes", {"name": "X", "channel_kind": "api", "config": {}}),
        ("PATCH", f"/api/v1/inboxes/{inbox.id}", {"is_active": False}),
        ("GET", "/api/v1/inboxes", None),
        ("GET", "/api/v1/audit-log", None),
    ]
    for who in (agent, supervisor):
        for method, url, body in requests:
            r = await h.client.request(method, url, headers=who.headers, json=body)
            assert r.status_code == 403, (who.role, method, url, r.text)
            assert r.json()["detail"] == "this API token lacks the 'admin' scope"
    assert await _snapshot(h, ctx) == before
    # What staff may read, they can.
    assert (await h.client.get("/api/v1/users", headers=agent.headers)).status_code == 200
    assert (await h.client.get("/api/v1/teams", headers=agent.headers)).status_code == 200
    assert (await h.client.get("/api/v1/account", headers=agent.headers)).status_code == 200


async def test_visibility_by_role(h: Harness) -> None:
    ctx = await h.make_account()
    t1 = await h.make_team(ctx, "Tier 1")
    t2 = await h.make_team(ctx, "Tier 2")
    agent = await h.make_user(ctx, "agent", teams=(t1,))
    supervisor = await h.make_user(ctx, "supervisor", role=Role.supervisor)
    expert = await h.make_user(ctx, "expert", role=Role.expert)
    inbox = await h.make_api_inbox(ctx)
    c_none = await inbound(h, inbox, "a")
    c_t1 = await inbound(h, inbox, "b")
    c_t2 = await inbound(h, inbox, "c")
    c_t2_mine = await inbound(h, inbox, "d")
    c_t2_expert = await inbound(h, inbox, "e")
    for cid, body in ((c_t1, {"team_id": t1}), (c_t2, {"team_id": t2}),
                      (c_t2_mine, {"team_id": t2, "assignee_id": agent.user_id}), (c_t2_expert, {"team_id": t2})):
        r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=ctx.admin.headers, json=body)
        assert r.status_code == 200
    async with h.runtime.uow() as uow:
        uow.session.add(ConversationParticipant(conversation_id=c_t2_expert, user_id=expert.user_id,
                                                account_id=ctx.account_id, created_at=clock.now()))
        await uow.session.commit()
    everything = {c_none, c_t1, c_t2, c_t2_mine, c_t2_expert}

    async def visible(who: Staff) -> set[int]:
        r = await h.client.get("/api/v1/conversations", headers=who.headers)
        assert r.status_code == 200
        listed = {c["id"] for c in r.json()["items"]}
        for cid in everything:  # the list and the single-item gate agree
            one = await h.client.get(f"/api/v1/conversations/{cid}", headers=who.headers)
            assert one.status_code == (200 if cid in listed else 404), (who.role, cid)
        return listed

    assert await visible(ctx.admin) == everything
    assert await visible(supervisor) == everything
    assert await visible(agent) == {c_none, c_t1, c_t2_mine}
    assert await visible(expert) == {c_t2_expert}

    # Out of sight is out of reach: writes answer 404 and change nothing.
    r = await h.client.post(f"/api/v1/conversations/{c_t2}/messages", headers=agent.headers, json={"content": "hi"})
    assert r.status_code == 404
    r = await h.client.patch(f"/api/v1/conversations/{c_t2}", headers=agent.headers,
                             json={"assignee_id": agent.user_id})
    assert r.status_code == 404
    assert await message_count(h, c_t2) == 1
    got = (await h.client.get(f"/api/v1/conversations/{c_t2}", headers=ctx.admin.headers)).json()
    assert got["assignee_id"] is None

    # Joining a team widens the view on the next request.
    r = await h.client.post(f"/api/v1/teams/{t2}/members", headers=ctx.admin.headers, json={"user_id": agent.user_id})
    assert r.status_code == 200
    assert await visible(agent) == everything


async def test_expert_adds_notes_but_not_replies(h: Harness) -> None:
    ctx = await h.make_account()
    expert = await h.make_user(ctx, "expert", role=Role.expert)
    inbox = await h.make_api_inbox(ctx)
    cid = await inbound(h, inbox, "cust-1")
    async with h.runtime.uow() as uow:
        uow.session.add(ConversationParticipant(conversation_id=cid, user_id=expert.user_id,
                                                account_id=ctx.account_id, created_at=clock.now()))
        await uow.session.commit()
    url = f"/api/v1/conversations/{cid}"
    r = await h.client.post(f"{url}/messages", headers=expert.headers,
                            json={"content": "Firmware 2.1 fixes this", "private": True})
    assert r.status_code == 201, r.text
    assert (r.json()["private"], r.json()["sender"]["id"]) == (True, expert.user_id)

    r = await h.client.post(f"{url}/messages", headers=expert.headers, json={"content": "Hi, I am the engineer"})
    assert (r.status_code, r.json()["detail"]) == (403, "experts can add internal notes but not reply to the customer")
    r = await h.client.patch(url, headers=expert.headers, json={"status": "resolved"})
    assert (r.status_code, r.json()["detail"]) == (403, "experts cannot change a conversation's status, owner or "
                                                        "attributes")
    r = await h.client.post(f"{url}/tags", headers=expert.headers, json={"add": ["hw"]})
    assert r.status_code == 403
    r = await h.client.get("/api/v1/contacts", headers=expert.headers)
    assert (r.status_code, r.json()["detail"]) == (403, "requires the admin or supervisor or agent role")

    messages = (await h.client.get(f"{url}/messages", headers=ctx.admin.headers)).json()["items"]
    assert [(m["content"], m["private"]) for m in messages] == [("Hello, my order is late", False),
                                                               ("Firmware 2.1 fixes this", True)]
    got = (await h.client.get(url, headers=ctx.admin.headers)).json()
    assert (got["status"], got["tags"], got["first_response_at"]) == ("open", [], None)


# --- teams and users ----------------------------------------------------------------------------

async def test_teams_and_membership(h: Harness) -> None:
    ctx = await h.make_account()
    other = await h.make_account("Other")
    agent = await h.make_user(ctx, "agent")
    admin = ctx.admin.headers
    r = await h.client.post("/api/v1/teams", headers=admin, json={"name": "Billing", "description": "Invoices"})
    assert r.status_code == 201, r.text
    team = r.json()
    assert (team["name"], team["description"], team["member_ids"]) == ("Billing", "Invoices", [])
    r = await h.client.post("/api/v1/teams", headers=admin, json={"name": "Billing"})
    assert (r.status_code, r.json()["detail"]) == (409, "a team named 'Billing' already exists")
    # Names are per account.
    assert (await h.client.post("/api/v1/teams", headers=other.admin.headers,
                                json={"name": "Billing"})).status_code == 201

    r = await h.client.patch(f"/api/v1/teams/{team['id']}", headers=admin, json={"name": "Finance"})
    assert (r.status_code, r.json()["name"], r.json()["description"]) == (200, "Finance", "Invoices")
    r = await h.client.post(f"/api/v1/teams/{team['id']}/members", headers=admin, json={"user_id": agent.user_id})
    assert r.json()["member_ids"] == [agent.user_id]
    r = await h.client.post(f"/api/v1/teams/{team['id']}/members", headers=admin,
                            json={"user_id": other.admin.user_id})
    assert (r.status_code, r.json()["detail"]) == (422, f"user {other.admin.user_id} does not exist in this account")
    assert (await h.client.get(f"/api/v1/users/{agent.user_id}", headers=admin)).json()["team_ids"] == [team["id"]]
    listed = (await h.client.get("/api/v1/teams", headers=agent.headers)).json()
    assert [(t["id"], t["name"], t["member_ids"]) for t in listed] == [(team["id"], "Finance", [agent.user_id])]
    assert (await h.client.get(f"/api/v1/teams/{team['id']}", headers=other.admin.headers)).status_code == 404

    inbox = await h.make_api_inbox(ctx)
    cid = await inbound(h, inbox, "cust-1")
    await h.client.patch(f"/api/v1/conversations/{cid}", headers=admin, json={"team_id": team["id"]})
    r = await h.client.delete(f"/api/v1/teams/{team['id']}/members/{agent.user_id}", headers=admin)
    assert r.json()["member_ids"] == []
    assert (await h.client.get(f"/api/v1/users/{agent.user_id}", headers=admin)).json()["team_ids"] == []

    r = await h.client.delete(f"/api/v1/teams/{team['id']}", headers=admin)
    assert r.status_code == 204
    assert (await h.client.get(f"/api/v1/teams/{team['id']}", headers=admin)).status_code == 404
    # Its conversations stay, without a team.
    assert (await h.client.get(f"/api/v1/conversations/{cid}", headers=admin)).json()["team_id"] is None


async def test_users_create_and_update(h: Harness, browser: httpx.AsyncClient) -> None:
    ctx = await h.make_account()
    other = await h.make_account("Other")
    admin = ctx.admin.headers
    r = await h.client.post("/api/v1/users", headers=admin, json={
        "email": "  Nora@Example.COM ", "name": "Nora", "role": "supervisor", "password": "nora's password"})
    assert r.status_code == 201, r.text
    nora = r.json()
    assert (nora["email"], nora["name"], nora["role"], nora["is_active"], nora["team_ids"]) == (
        "nora@example.com", "Nora", "supervisor", True, [])
    await login(browser, "nora@example.com", "nora's password")

    bad = [
        ({"email": "NORA@example.com", "name": "Dup"}, 409),
        ({"email": "not-an-email", "name": "X"}, 422),
        ({"email": "x@example.com", "name": "X", "password": "short"}, 422),
        ({"email": "x@example.com", "name": "X", "role": "owner"}, 422),
        ({"email": "x@example.com", "name": ""}, 422),
        ({"email": "x@example.com", "name": "X", "is_admin": True}, 422),
    ]
    for body, status in bad:
        r = await h.client.post("/api/v1/users", headers=admin, json=body)
        assert r.status_code == status, (body, r.text)
    assert (await h.client.post("/api/v1/users", headers=other.admin.headers,
                                json={"email": "nora@example.com", "name": "N"})).status_code == 409

    r = await h.client.patch(f"/api/v1/users/{nora['id']}", headers=admin, json={"name": "Nora B", "role": "agent"})
    assert (r.status_code, r.json()["name"], r.json()["role"]) == (200, "Nora B", "agent")
    for body in ({"role": "agent"}, {"is_active": False}):
        r = await h.client.patch(f"/api/v1/users/{ctx.admin.user_id}", headers=admin, json=body)
        assert (r.status_code, r.json()["detail"]) == (422, "you cannot demote or deactivate yourself; ask another "
                                                            "admin")
    me = (await h.client.get("/api/v1/auth/me", headers=admin)).json()
    assert (me["role"], me["is_active"]) == ("admin", True)

    assert (await h.client.get(f"/api/v1/users/{other.admin.user_id}", headers=admin)).status_code == 404
    r = await h.client.patch(f"/api/v1/users/{other.admin.user_id}", headers=admin, json={"name": "Mine now"})
    assert r.status_code == 404
    listed = (await h.client.get("/api/v1/users", headers=admin)).json()
    assert [u["id"] for u in listed] == [ctx.admin.user_id, nora["id"]]


async def test_audit_log_records_administrative_changes(h: Harness) -> None:
    ctx = await h.make_account()
    admin = ctx.admin.headers
    r = await h.client.get("/api/v1/audit-log", headers=admin)
    assert [(e["action"], e["actor_user_id"]) for e in r.json()["items"]] == [
        ("api_token.created", ctx.admin.user_id), ("account.created", None)]
    start = r.json()["items"][0]["id"]

    user = (await h.client.post("/api/v1/users", headers=admin,
                                json={"email": "ines@example.com", "name": "Ines"})).json()
    team = (await h.client.post("/api/v1/teams", headers=admin, json={"name": "Billing"})).json()
    await h.client.post(f"/api/v1/teams/{team['id']}/members", headers=admin, json={"user_id": user["id"]})
    await h.client.patch(f"/api/v1/users/{user['id']}", headers=admin,
                         json={"role": "supervisor", "password": "a secret password"})
    await h.client.delete(f"/api/v1/teams/{team['id']}/members/{user['id']}", headers=admin)
    await h.client.patch("/api/v1/account", headers=admin, json={"name": "Acme Ltd"})
    await h.client.delete(f"/api/v1/teams/{team['id']}", headers=admin)

    r = await h.client.get("/api/v1/audit-log", headers=admin, params={"limit": 4})
    first = r.json()
    r = await h.client.get("/api/v1/audit-log", headers=admin, params={"limit": 4, "cursor": first["next_cursor"]})
    entries = [e for e in first["items"] + r.json()["items"] if e["id"] > start]
    got = [(e["action"], e["actor_user_id"], e["subject_type"], e["subject_id"], e["data"]) for e in entries]
    me = ctx.admin.user_id
    assert got == [
        ("team.deleted", me, "team", team["id"], {"name": "Billing"}),
        ("account.updated", me, "account", ctx.account_id, {"name": "Acme Ltd"}),
        ("team.member_removed", me, "team", team["id"], {"user_id": user["id"]}),
        # The password itself is never written to the log.
        ("user.updated", me, "user", user["id"], {"role": "supervisor", "password": "changed"}),
        ("team.member_added", me, "team", team["id"], {"user_id": user["id"]}),
        ("team.created", me, "team", team["id"], {"name": "Billing"}),
        ("user.created", me, "user", user["id"], {"email": "ines@example.com", "role": "agent"}),
    ]
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    other = await h.make_account("Other")
    r = await h.client.get("/api/v1/audit-log", headers=other.admin.headers)
    assert {e["action"] for e in r.json()["items"]} == {"account.created", "api_token.created"}


# --- create-admin from the command line ---------------------------------------------------------

async def run_cli(data_dir: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMDESK_")}
    env["COLUMNS"] = "200"  # no wrapping of the console's messages
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "swarmdesk"), "create-admin", *args, "--data-dir", str(data_dir),
        env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, (out + err).decode()


async def test_cli_create_admin(tmp_path: Path) -> None:
    data_dir = tmp_path / "cli-data"
    (code, output), (bad_email, bad_email_out), (short, short_out) = await asyncio.gather(
        run_cli(data_dir, "--email", "Boss@Example.com", "--password", "long enough pw", "--account", "Initech",
                "--name", "Bill"),
        run_cli(tmp_path / "bad-email", "--email", "not-an-email", "--password", "long enough pw"),
        run_cli(tmp_path / "short", "--email", "ok@example.com", "--password", "short"))
    assert code == 0, output
    assert "created account 'Initech' (id 1) with admin boss@example.com" in output
    assert bad_email == 2, bad_email_out
    assert "error: --email: 'not-an-email' is not a valid email address" in bad_email_out
    assert short == 2, short_out
    assert "error: --password must be at least 10 characters" in short_out
    # Refused before anything was written.
    assert not (tmp_path / "bad-email").exists() and not (tmp_path / "short").exists()

    code, output = await run_cli(data_dir, "--email", "boss@example.com", "--password", "another long one")
    assert code == 1, output
    assert "error: a user with email boss@example.com already exists" in output

    # The admin exists and can sign in to a server on that data directory.
    settings = Settings(env="test", data_dir=data_dir, database_url="", secret_key="s" * 40, run_worker=False,
                        log_json=False)
    runtime = create_runtime(settings)
    await runtime.start(with_worker=False)
    try:
        app = create_app(settings, runtime=runtime, with_worker=False)
        app.state.runtime = runtime
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            r = await c.post("/api/v1/auth/login", json={"email": "boss@example.com", "password": "long enough pw"})
            assert r.status_code == 200, r.text
            assert (r.json()["user"]["role"], r.json()["user"]["name"]) == ("admin", "Bill")
            account = (await c.get("/api/v1/account")).json()
            assert (account["name"], account["slug"]) == ("Initech", "initech")
            users = (await c.get("/api/v1/users")).json()
            assert [u["email"] for u in users] == ["boss@example.com"]
    finally:
        await runtime.stop()
