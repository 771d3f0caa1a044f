"""The web chat widget, end to end in a real browser (Debian's chromium through Playwright) on a
page of another origin, plus the API's validation and events."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from websockets.asyncio.client import connect as ws_connect

from swarmdesk.accounts.models import Role
from swarmdesk.contacts.models import Contact, CustomerSession
from swarmdesk.events.types import ConversationTyping, CustomerTyping
from tests.browser import HostSite, chromium_page, screenshots_dir
from tests.mailservers import SmtpSink
from tests.support import AccountCtx, Harness, Staff

XSS = '<img src=x onerror="window.__pwned=1">'
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


# --- helpers ---------------------------------------------------------------------------------------

async def make_widget(h: Harness, ctx: AccountCtx, **config: Any) -> dict[str, Any]:
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                            json={"name": "Acme Shoes", "channel_kind": "webchat", "config": config})
    assert r.status_code == 201, r.text
    return r.json()


async def make_email_inbox(h: Harness, ctx: AccountCtx, smtp: SmtpSink) -> int:
    await h.allowlist_loopback(ctx)  # the SMTP sink listens on loopback
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers, json={
        "name": "Support mail", "channel_kind": "email",
        "config": {"address": "support@acme.example", "display_name": "Acme Support", "smtp": smtp.smtp_config()}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def user_hash(secret: str, user_id: str) -> str:
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


async def session(h: Harness, key: str, expect: int = 201, **body: Any) -> dict[str, Any]:
    r = await h.client.post(f"/api/v1/inboxes/{key}/widget-sessions", json=body)
    assert r.status_code == expect, r.text
    if expect >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()


async def counts(h: Harness) -> tuple[int, int]:
    async with h.runtime.uow() as uow:
        contacts = await uow.session.scalar(select(func.count(Contact.id)))
        sessions = await uow.session.scalar(select(func.count(CustomerSession.id)))
    return contacts, sessions


async def conversations(h: Harness, who: Staff) -> list[dict[str, Any]]:
    r = await h.client.get("/api/v1/conversations", headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def messages(h: Harness, who: Staff, conversation_id: int) -> list[dict[str, Any]]:
    r = await h.client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def until(check, timeout: float = 10.0):  # noqa: ANN001, ANN201
    """Poll an async check until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


class AgentSocket:
    """An agent with the workspace open: a registered queue and a live WebSocket."""

    def __init__(self, live, agent: Staff) -> None:  # noqa: ANN001
        self.live, self.agent = live, agent
        self.events: list[dict[str, Any]] = []

    async def __aenter__(self) -> AgentSocket:
        async with httpx.AsyncClient(base_url=self.live.url) as c:
            r = await c.post("/api/v1/realtime/register", headers=self.agent.headers)
        assert r.status_code == 200, r.text
        self.ws = await ws_connect(f"{self.live.ws_url}/api/v1/realtime/ws?queue_id={r.json()['queue_id']}")
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for raw in self.ws:
            frame = orjson.loads(raw)
            if frame.get("op") == "events":
                self.events.extend(frame["events"])

    async def __aexit__(self, *exc: object) -> None:
        self.reader.cancel()
        await self.ws.close()

    async def wait_for(self, type_: str, **fields: Any) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            return next((e for e in self.events if e["type"] == type_
                         and all(e.get(k) == v for k, v in fields.items())), None)
        return await until(found)


@pytest.fixture
async def host() -> AsyncIterator[HostSite]:
    site = HostSite()
    await site.start()
    yield site
    await site.stop()


@pytest.fixture
def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


# --- in the browser -------------------------------------------------------------------------------

async def test_visitor_and_agent_chat_live_with_typing_attachments_and_no_script_injection(
        h: Harness, live, host: HostSite) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme")
    agent = await h.make_user(ctx, "agent", Role.agent)
    widget = await make_widget(h, ctx, greeting="Hi! Ask us anything about your order.", color="#0b7a5c")
    host.embed(f"{live.url}/widget/{widget['public_key']}.js")
    async with AgentSocket(live, agent) as sock, chromium_page() as page:
        await page.goto(host.url)
        await page.locator("#swarmdesk-chat button.launcher").click()
        chat = page.frame_locator("#swarmdesk-chat iframe")
        await chat.get_by_text("Hi! Ask us anything about your order.").wait_for()
        assert await chat.locator(".notice.offline").is_hidden()  # an agent is online
        await chat.locator("input[name=name]").fill("Ana Lima")
        await chat.locator("input[name=email]").fill("Ana@Example.org")
        await chat.get_by_role("button", name="Start chat").click()

        # The visitor writes; the agent sees it through the API, live on their socket too.
        await chat.get_by_label("Message").fill("Where is my order 1234?")
        await chat.get_by_label("Message").press("Enter")
        created = await sock.wait_for("conversation.created")
        conversation_id = created["conversation"]["id"]
        assert created["conversation"]["contact"]["email"] == "ana@example.org"
        assert created["conversation"]["channel"] == "webchat"
        assert [m["content"] for m in await messages(h, agent, conversation_id)] == ["Where is my order 1234?"]

        # The visitor's typing reaches the agent's socket.
        await chat.get_by_label("Message").press_sequentially("It was")
        typing = await sock.wait_for("conversation.typing", sender_type="contact", typing=True)
        assert typing["conversation_id"] == conversation_id and typing["sender_name"] == "Ana Lima"

        # The agent types, then replies: both show in the browser as they happen.
        r = await h.client.post(f"/api/v1/conversations/{conversation_id}/typing", headers=agent.headers)
        assert r.status_code == 204, r.text
        await chat.get_by_text("Agent is typing…").wait_for()
        r = await h.client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=agent.headers,
                                json={"content": "It left our warehouse today."})
        assert r.status_code == 201, r.text
        await chat.locator(".msg.theirs .text", has_text="It left our warehouse today.").wait_for()
        assert await chat.locator(".typing").is_hidden()  # a message ends the agent's typing notice
        await h.run_jobs()
        (reply,) = [m for m in await messages(h, agent, conversation_id) if m["direction"] == "outgoing"]
        assert reply["delivery_status"] == "sent"

        # An attachment from the widget.
        await chat.get_by_label("Message").fill("Here is the receipt")
        await chat.get_by_label("Attach a file").set_input_files(
            files=[{"name": "receipt.png", "mimeType": "image/png", "buffer": PNG}])
        await chat.get_by_role("button", name="Send").click()
        await chat.locator(".msg.mine a.attachment", has_text="receipt.png").wait_for()
        last = (await messages(h, agent, conversation_id))[-1]
        assert last["content"] == "Here is the receipt"
        assert [(a["filename"], a["content_type"], a["size"]) for a in last["attachments"]] == \
            [("receipt.png", "image/png", len(PNG))]
        r = await h.client.get(last["attachments"][0]["url"], headers=agent.headers)
        assert r.content == PNG

        # Markup from either side is text: nothing parses it, nothing runs.
        await chat.get_by_label("Message").fill(XSS)
        await chat.get_by_role("button", name="Send").click()
        r = await h.client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=agent.headers,
                                json={"content": f"You wrote {XSS}"})
        assert r.status_code == 201
        await chat.locator(".msg.theirs .text", has_text=f"You wrote {XSS}").wait_for()
        assert await chat.locator(".msg.mine .text").last.text_content() == XSS
        assert await chat.locator(".messages img").count() == 0
        await page.wait_for_timeout(200)
        frame = next(f for f in page.frames if "/frame" in f.url)
        assert await frame.evaluate("window.__pwned") is None
        assert await page.evaluate("window.__pwned") is None

        # The launcher is in a shadow root; the frame is on our origin, not the page's.
        assert await page.evaluate("document.querySelector('#swarmdesk-chat').shadowRoot !== null")
        assert frame.url.startswith(live.url)
        await chat.get_by_label("Message").fill("Thanks, see you!")
        await page.screenshot(path=str(screenshots_dir() / "webchat.png"))


async def test_signed_visitor_joins_their_contact_and_a_forged_hash_is_refused(
        h: Harness, live, host: HostSite) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme")
    agent = await h.make_user(ctx, "agent", Role.agent)
    widget = await make_widget(h, ctx)
    secret = widget["generated_secrets"]["identity_secret"]
    earlier = await session(h, widget["public_key"], fields={"name": "Bo Berg"}, user_id="user-42",
                            user_hash=user_hash(secret, "user-42"))
    assert earlier["verified"] is True
    src = f"{live.url}/widget/{widget['public_key']}.js"

    # Forged: the visitor claims user 42 with a hash of their own making.
    host.embed(src, user_id="user-42", user_hash=user_hash("not-the-secret" * 3, "user-42"), user_name="Bo Berg")
    before = await counts(h)
    async with chromium_page() as page:
        await page.goto(host.url)
        await page.locator("#swarmdesk-chat button.launcher").click()
        chat = page.frame_locator("#swarmdesk-chat iframe")
        await chat.get_by_role("button", name="Start chat").click()  # the automatic start failed: the form
        await chat.get_by_text("user_hash is not the HMAC").wait_for()
    assert await counts(h) == before

    # Signed by the site's server: straight into the chat, as the contact they already are.
    host.embed(src, user_id="user-42", user_hash=user_hash(secret, "user-42"), user_name="Bo Berg")
    async with chromium_page() as page:
        await page.goto(host.url)
        await page.locator("#swarmdesk-chat button.launcher").click()
        chat = page.frame_locator("#swarmdesk-chat iframe")
        await chat.get_by_label("Message").fill("Signed in and asking")
        await chat.get_by_label("Message").press("Enter")
        (conversation,) = await until(lambda: conversations(h, agent))
    assert conversation["contact"]["id"] == earlier["contact_id"]
    assert (await counts(h))[0] == before[0]


async def test_nobody_online_continues_by_email_and_the_transcript_is_mailed(
        h: Harness, live, host: HostSite, smtp: SmtpSink) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme")
    agent = await h.make_user(ctx, "agent", Role.agent)
    email_inbox = await make_email_inbox(h, ctx, smtp)
    widget = await make_widget(h, ctx, offline_email_inbox_id=email_inbox)
    host.embed(f"{live.url}/widget/{widget['public_key']}.js")
    async with chromium_page() as page:
        await page.goto(host.url)
        await page.locator("#swarmdesk-chat button.launcher").click()
        chat = page.frame_locator("#swarmdesk-chat iframe")
        await chat.locator(".notice.offline").wait_for()
        await chat.locator("input[name=name]").fill("Cleo")
        await chat.get_by_role("button", name="Start chat").click()
        await chat.get_by_text("Please fill in: Your email").wait_for()  # nobody online: the address is needed
        await chat.locator("input[name=email]").fill("cleo@example.net")
        await chat.get_by_role("button", name="Start chat").click()
        await chat.get_by_text("We'll answer by email at cleo@example.net.").wait_for()
        await chat.get_by_label("Message").fill("My parcel is damaged")
        await chat.get_by_label("Message").press("Enter")
        (conversation,) = await until(lambda: conversations(h, agent))
        cid = conversation["id"]

        # The agent can answer by email: the email inbox is a reply channel for this visitor.
        r = await h.client.get(f"/api/v1/conversations/{cid}/reply-channels", headers=agent.headers)
        channels = {c["channel_kind"]: c for c in r.json()}
        assert channels["email"]["available"] is True and channels["webchat"]["default"] is True
        for body in ({"content": "Internal: check the courier first", "private": True},
                     {"content": "Sorry! A new pair is on its way.", "inbox_id": email_inbox}):
            r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=agent.headers, json=body)
            assert r.status_code == 201, r.text
        await h.run_jobs()
        (_, recipients, _), = smtp.received
        assert recipients == ["cleo@example.net"]
        assert "A new pair is on its way" in smtp.messages()[0].get_payload(decode=True).decode()

        # The visitor asks for the transcript: public messages only, by mail.
        await chat.locator(".msg.theirs .text", has_text="A new pair is on its way").wait_for()
        await chat.get_by_role("button", name="Email me the transcript").click()
        await chat.get_by_text("Transcript sent to cleo@example.net.").wait_for()
    await h.run_jobs()
    assert len(smtp.received) == 2
    mail = smtp.messages()[1]
    assert mail["To"] == "Cleo <cleo@example.net>" and "Transcript of your chat with Acme Shoes" in mail["Subject"]
    text = mail.get_payload(decode=True).decode()
    assert "My parcel is damaged" in text and "A new pair is on its way" in text
    assert "Internal" not in text and "courier" not in text


# --- the API ---------------------------------------------------------------------------------------

async def test_widget_config_is_public_and_holds_no_secret(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    widget = await make_widget(h, ctx, fields=[{"name": "name", "label": "Name", "required": True},
                                               {"name": "phone", "label": "Phone"},
                                               {"name": "order", "label": "Order number", "required": True}])
    r = await h.client.get(f"/api/v1/inboxes/{widget['public_key']}/widget-config")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fields"] == [{"name": "name", "label": "Name", "required": True, "input_type": "text"},
                              {"name": "phone", "label": "Phone", "required": False, "input_type": "tel"},
                              {"name": "order", "label": "Order number", "required": True, "input_type": "text"}]
    assert body["available"] is False and body["email_fallback"] is False
    assert widget["generated_secrets"]["identity_secret"] not in r.text
    assert widget["secrets_set"] == ["identity_secret"] and "identity_secret" not in widget["config"]
    # Only active web chat inboxes answer; an API inbox's key is nothing here.
    api_inbox = await h.make_api_inbox(ctx)
    for key in (api_inbox.public_key, "no-such-key"):
        for url in (f"/api/v1/inboxes/{key}/widget-config", f"/widget/{key}.js", f"/widget/{key}/frame"):
            r = await h.client.get(url)
            assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json"), url
    r = await h.client.get(f"/widget/{widget['public_key']}.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    r = await h.client.get(f"/widget/{widget['public_key']}/frame")
    assert "frame-ancestors *" in r.headers["content-security-policy"]
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert (await h.client.get("/widget/static/../adapter.py")).status_code == 404
    assert (await h.client.get("/widget/static/adapter.py")).status_code == 404


async def test_session_form_validation_errors_are_problems_and_create_nothing(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    widget = await make_widget(h, ctx, fields=[{"name": "name", "label": "Name", "required": True},
                                               {"name": "email", "label": "Email"},
                                               {"name": "phone", "label": "Phone"},
                                               {"name": "order", "label": "Order number", "required": True}])
    key = widget["public_key"]
    before = await counts(h)
    r = await session(h, key, 422, fields={"email": "not an email", "nickname": "x"})
    assert {tuple(e["loc"]) for e in r["errors"]} == {("fields", "email"), ("fields", "nickname"),
                                                      ("fields", "name"), ("fields", "order")}
    await session(h, key, 422, fields={"name": "Ana", "order": "1", "phone": "12"})
    await session(h, key, 422, fields={"name": "Ana", "order": "1"}, user_id="u-1")  # a claim without proof
    await session(h, key, 422, fields={"name": "Ana", "order": "1"}, user_hash="ab" * 32)
    await session(h, key, 422, fields={"name": "Ana", "order": "1"}, user_id="u-1", user_hash="not hex")
    r = await session(h, key, 401, fields={"name": "Ana", "order": "1"}, user_id="u-1", user_hash="ab" * 32)
    assert r["type"].endswith("/not-authenticated")
    await session(h, key, 422, fields={"name": "Ana", "order": "1", "x": "y" * 600})
    assert await counts(h) == before
    # Valid: values normalized, custom fields kept on the contact.
    r = await session(h, key, fields={"name": "Ana", "order": "A-77", "email": " Ana@Example.ORG ",
                                      "phone": "+49 151 23456789"})
    assert r["verified"] is False and r["email"] is None  # no email inbox: nothing goes out by email
    resp = await h.client.get(f"/api/v1/contacts/{r['contact_id']}", headers=ctx.admin.headers)
    contact = resp.json()
    assert (contact["name"], contact["email"], contact["phone"]) == ("Ana", "ana@example.org", "+4915123456789")
    assert contact["custom_attributes"] == {"order": "A-77"}
    assert contact["identities"] == []  # nothing the visitor typed is an identity


async def test_unsigned_visitors_never_join_existing_contacts_and_signed_ones_do(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    widget = await make_widget(h, ctx)
    key, secret = widget["public_key"], widget["generated_secrets"]["identity_secret"]
    r = await h.client.post("/api/v1/contacts", headers=ctx.admin.headers,
                            json={"name": "Real Ana", "email": "ana@example.org"})
    real = r.json()["id"]
    anon = await session(h, key, fields={"name": "Ana?", "email": "ana@example.org"})
    assert anon["contact_id"] != real
    first = await session(h, key, fields={"name": "Ana"}, user_id="42", user_hash=user_hash(secret, "42"))
    again = await session(h, key, fields={"name": "Someone"}, user_id="42", user_hash=user_hash(secret, "42").upper())
    assert first["contact_id"] == again["contact_id"] != real and again["verified"] is True
    # The hash binds the id: a valid hash for 42 does not open 43.
    await session(h, key, 401, fields={"name": "x"}, user_id="43", user_hash=user_hash(secret, "42"))


async def test_typing_reaches_staff_from_visitors_and_visitors_only_for_public_replies(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    agent = await h.make_user(ctx, "agent", Role.agent)
    expert = await h.make_user(ctx, "expert", Role.expert)
    widget = await make_widget(h, ctx)
    s = await session(h, widget["public_key"], fields={"name": "Ana"})
    visitor = {"authorization": f"Bearer {s['token']}"}
    r = await h.client.post("/api/v1/customer/conversations", headers=visitor, json={"content": "hello"})
    cid = r.json()["id"]
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=ctx.admin.headers,
                            json={"content": "Pulling in our expert", "private": True})
    with h.capture_events() as events:
        assert (await h.client.post(f"/api/v1/customer/conversations/{cid}/typing", headers=visitor)).status_code == 204
        assert (await h.client.delete(f"/api/v1/customer/conversations/{cid}/typing", headers=visitor)).status_code == 204
        assert (await h.client.post(f"/api/v1/conversations/{cid}/typing", headers=agent.headers)).status_code == 204
        r = await h.client.post(f"/api/v1/conversations/{cid}/typing", headers=agent.headers,
                                params={"private": "true"})
        assert r.status_code == 204
    assert [type(e) for e in events] == [ConversationTyping, ConversationTyping, ConversationTyping, CustomerTyping,
                                        ConversationTyping]
    visitor_typing, visitor_stopped, agent_public, to_customer, agent_note = events
    for e in (visitor_typing, visitor_stopped, agent_public, agent_note):
        assert e.audience.contact_ids == () and e.audience.all_agents  # staff only, never a customer
    assert (visitor_typing.sender_type, visitor_typing.sender_id, visitor_typing.typing) == ("contact", s["contact_id"],
                                                                                            True)
    assert visitor_stopped.typing is False
    assert (agent_public.sender_type, agent_public.sender_id, agent_public.private) == ("user", agent.user_id, False)
    assert to_customer.audience.contact_ids == (s["contact_id"],) and to_customer.sender_name == "Agent"
    assert agent_note.private is True
    # An expert who takes no part in the conversation does not see it; customers cannot use the staff route.
    assert (await h.client.post(f"/api/v1/conversations/{cid}/typing", headers=expert.headers)).status_code == 404
    assert (await h.client.post(f"/api/v1/conversations/{cid}/typing", headers=visitor)).status_code == 403
    other = await session(h, widget["public_key"], fields={"name": "Bo"})
    r = await h.client.post(f"/api/v1/customer/conversations/{cid}/typing",
                            headers={"authorization": f"Bearer {other['token']}"})
    assert r.status_code == 404


async def test_transcript_needs_an_email_and_an_email_inbox_and_is_rate_limited(h: Harness,
                                                                                 smtp: SmtpSink) -> None:
    ctx = await h.make_account("Acme")
    plain = await make_widget(h, ctx)
    s = await session(h, plain["public_key"], fields={"name": "Ana", "email": "ana@example.org"})
    visitor = {"authorization": f"Bearer {s['token']}"}
    cid = (await h.client.post("/api/v1/customer/conversations", headers=visitor, json={"content": "hi"})).json()["id"]
    r = await h.client.post(f"/api/v1/customer/conversations/{cid}/transcript", headers=visitor)
    assert r.status_code == 409 and "no email inbox" in r.json()["detail"]

    email_inbox = await make_email_inbox(h, ctx, smtp)
    widget = await make_widget(h, ctx, offline_email_inbox_id=email_inbox)
    nameless = await session(h, widget["public_key"], fields={"name": "Bo"})
    headers = {"authorization": f"Bearer {nameless['token']}"}
    cid = (await h.client.post("/api/v1/customer/conversations", headers=headers, json={"content": "hi"})).json()["id"]
    r = await h.client.post(f"/api/v1/customer/conversations/{cid}/transcript", headers=headers)
    assert r.status_code == 409 and "no email address" in r.json()["detail"]

    s = await session(h, widget["public_key"], fields={"name": "Cy", "email": "cy@example.org"})
    assert s["email"] == "cy@example.org"
    headers = {"authorization": f"Bearer {s['token']}"}
    cid = (await h.client.post("/api/v1/customer/conversations", headers=headers, json={"content": "hi"})).json()["id"]
    for _ in range(3):
        r = await h.client.post(f"/api/v1/customer/conversations/{cid}/transcript", headers=headers)
        assert r.status_code == 202 and r.json() == {"to": "cy@example.org", "status": "queued"}
    r = await h.client.post(f"/api/v1/customer/conversations/{cid}/transcript", headers=headers)
    assert r.status_code == 409 and "per hour" in r.json()["detail"]
    await h.run_jobs()
    assert [rcpt for _, rcpt, _ in smtp.received] == [["cy@example.org"]] * 3
    r = await h.client.get(f"/api/v1/conversations/{cid}/activity", headers=ctx.admin.headers)
    assert [a["verb"] for a in r.json()["items"]].count("transcript_emailed") == 3


async def test_config_is_validated(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    for config in ({"fields": [{"name": "name", "label": "A"}, {"name": "name", "label": "B"}]},
                   {"fields": [{"name": "Bad Name", "label": "A"}]}, {"color": "red"},
                   {"allowed_origins": ["javascript:alert(1)"]}, {"identity_secret": "short"}):
        r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                                json={"name": "W", "channel_kind": "webchat", "config": config})
        assert r.status_code == 422, (config, r.text)
    widget = await make_widget(h, ctx, allowed_origins=["https://shop.example.com"])
    r = await h.client.get(f"/widget/{widget['public_key']}/frame")
    assert "frame-ancestors https://shop.example.com;" in r.headers["content-security-policy"]
