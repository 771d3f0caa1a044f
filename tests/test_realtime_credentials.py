"""A real-time queue is bound to the credential it was registered with: revoking an API token,
signing out a browser or portal session, or a merge ending a visitor's session ends that
credential's live connections at once (``credential.revoked``, then reload), and its queue cannot
be resumed; the person's other sign-ins carry on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from swarmdesk.core.clock import clock
from tests.support import PASSWORD, Harness
from tests.test_realtime import api, deliver, open_ws, register, types_ids  # noqa: F401  (api: a fixture)


async def token_id(h: Harness, headers: dict[str, str], token: str) -> int:
    r = await h.client.get("/api/v1/api-tokens", headers=headers)
    assert r.status_code == 200, r.text
    (found,) = [t["id"] for t in r.json() if token.startswith(t["prefix"])]
    return found


async def test_revoking_a_token_ends_its_connections_and_no_others(h: Harness, live,  # noqa: ANN001
                                                                  api: httpx.AsyncClient) -> None:  # noqa: F811
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    inbox = await h.make_api_inbox(ctx)
    r = await h.client.post("/api/v1/api-tokens", headers=agent.headers,
                            json={"name": "laptop", "scopes": ["conversations:read"]})
    assert r.status_code == 201, r.text
    laptop = {"authorization": f"Bearer {r.json()['token']}"}
    first = await register(api, agent.headers)
    second = await register(api, laptop)
    idle = await register(api, agent.headers)  # registered, not connected when the token is revoked
    async with open_ws(live, first["queue_id"]) as revoked, open_ws(live, second["queue_id"]) as kept:
        await deliver(h, inbox, "cust-1", "one")
        assert len(await revoked.events(3)) == len(await kept.events(3)) == 3

        r = await h.client.delete(f"/api/v1/api-tokens/{await token_id(h, laptop, agent.token)}", headers=laptop)
        assert r.status_code == 204, r.text
        (event,) = await revoked.events(1)
        assert event["type"] == "credential.revoked" and set(event) == {"id", "type", "uid", "account_id",
                                                                       "occurred_at"}
        await revoked.expect_reload(1012)

        # The other token's connection never sees it and goes on.
        await deliver(h, inbox, "cust-2", "two")
        two = types_ids(await kept.events(3))
        assert [t for t, _ in two] == ["contact.created", "conversation.created", "message.created"]
    r = await api.post("/api/v1/realtime/register", headers=agent.headers)
    assert r.status_code == 401, r.text
    for queue in (first, idle):
        async with open_ws(live, queue["queue_id"], 0) as sock:
            await sock.expect_reload(4000)
    # Still resumable, from before the revocation: the replay skips what was for the other token.
    async with open_ws(live, second["queue_id"], 3) as sock:
        assert types_ids(await sock.events(3)) == two


async def test_signing_out_ends_the_sessions_connections_and_an_expired_session_cannot_resume(
        h: Harness, live, api: httpx.AsyncClient) -> None:  # noqa: ANN001, F811
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    inbox = await h.make_api_inbox(ctx)

    async def sign_in() -> dict[str, str]:
        api.cookies.clear()
        r = await api.post("/api/v1/auth/login", json={"email": agent.email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"x-csrf-token": r.json()["csrf_token"]}

    csrf = await sign_in()
    reg = await register(api, csrf)
    async with open_ws(live, reg["queue_id"]) as sock, open_ws(
            live, (await register(api, agent.headers))["queue_id"]) as by_token:
        r = await api.post("/api/v1/auth/logout", headers=csrf)
        assert r.status_code == 204, r.text
        (event,) = await sock.events(1)
        assert event["type"] == "credential.revoked"
        await sock.expect_reload(1012)
        await deliver(h, inbox, "cust-1", "one")
        assert [t for t, _ in types_ids(await by_token.events(3))][0] == "contact.created"
    async with open_ws(live, reg["queue_id"], 0) as sock:
        await sock.expect_reload(4000)

    # A session that simply runs out cannot resume its queue either.
    csrf = await sign_in()
    reg = await register(api, csrf)
    clock.advance(timedelta(days=h.runtime.settings.session_days, minutes=1))
    async with open_ws(live, reg["queue_id"]) as sock:
        await sock.expect_reload(4000)


async def test_a_merge_that_ends_a_visitors_session_ends_its_connection(h: Harness, live,  # noqa: ANN001
                                                                       api: httpx.AsyncClient) -> None:  # noqa: F811
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    inbox = await h.make_api_inbox(ctx)
    ana = await deliver(h, inbox, "ana", "my verified handle")
    r = await h.client.post(f"/api/v1/inboxes/{inbox.public_key}/customer-sessions", json={"name": "Visitor"})
    assert r.status_code == 201, r.text
    visitor: dict[str, Any] = r.json()
    visitor_headers = {"authorization": f"Bearer {visitor['token']}"}
    reg = await register(api, visitor_headers)
    async with open_ws(live, reg["queue_id"]) as sock:
        # The visitor's profile survives a merge with Ana's verified handle: the visitor never proved
        # it, so the session ends — and with it the connection, before Ana's history reaches it.
        r = await h.client.post(f"/api/v1/contacts/{visitor['contact_id']}/merge", headers=agent.headers,
                                json={"other_contact_id": ana["contact_id"]})
        assert r.status_code == 201, r.text
        assert r.json()["moved"]["revoked_sessions"] == 1
        frames = []
        while (frame := await sock.frame())["op"] != "reload":
            frames.append(frame)
        seen = [e["type"] for f in frames for e in f["events"]]
        assert seen[-1:] == ["credential.revoked"], seen
    async with open_ws(live, reg["queue_id"], 0) as sock:
        await sock.expect_reload(4000)
    r = await api.post("/api/v1/realtime/register", headers=visitor_headers)
    assert r.status_code == 401, r.text
