"""The customer portal through its API and pages: magic links (no enumeration, single use,
expiry, rate limit, mailed through the account's email inbox by a real SMTP server), portal
sessions (cookie + CSRF, one contact on every channel, never staff), replies and new
conversations from the portal, and bad input."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import make_msgid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from swarmdesk.contacts.models import CustomerSession
from swarmdesk.conversations.models import Message
from swarmdesk.core.clock import clock
from swarmdesk.events.types import CustomerConversationUpdated, CustomerMessageCreated
from swarmdesk.jobs.models import Job
from swarmdesk.portal.models import PortalMagicLink
from tests.mailservers import SmtpSink
from tests.support import AccountCtx, Harness
from tests.test_realtime import open_ws

AUTHSERV = "mx.acme.example"
SUPPORT = "support@acme.example"
PROBLEM = "application/problem+json"
ORIGIN = {"origin": "http://testserver"}
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
LINK = re.compile(r"http://\S+/portal/[\w-]+/sign-in\?token=(sdm_[\w-]+)")


# --- helpers ---------------------------------------------------------------------------------------

@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def portal(app) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    """A customer's browser: its own cookie jar."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


async def make_email_inbox(h: Harness, ctx: AccountCtx, smtp: SmtpSink | None) -> int:
    config: dict[str, Any] = {"address": SUPPORT, "display_name": "Acme Support", "trusted_authserv_ids": [AUTHSERV]}
    if smtp is not None:
        await h.allowlist_loopback(ctx)  # the SMTP sink listens on loopback
        config["smtp"] = smtp.smtp_config()
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                            json={"name": "Support mail", "channel_kind": "email", "config": config})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def raw_mail(sender: str, name: str, subject: str, body: str) -> bytes:
    domain = sender.rsplit("@", 1)[1]
    lines = [f"Authentication-Results: {AUTHSERV}; dkim=pass header.d={domain}; spf=pass smtp.mailfrom={sender}; "
             f"dmarc=pass header.from={domain}", f"From: {name} <{sender}>", f"To: {SUPPORT}", f"Subject: {subject}",
             f"Message-ID: {make_msgid(domain=domain)}", "Date: Mon, 23 Nov 2026 10:00:00 +0000", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


async def write_in(h: Harness, ctx: AccountCtx, inbox_id: int, sender: str, name: str, subject: str,
                   body: str) -> int:
    """The customer writes by email (authenticated: the address becomes a verified identity)."""
    r = await h.client.post(f"/api/v1/inboxes/{inbox_id}/email/messages",
                            headers={**ctx.admin.headers, "content-type": "message/rfc822"},
                            content=raw_mail(sender, name, subject, body))
    assert r.status_code == 200 and r.json()["outcome"] == "stored", r.text
    return r.json()["conversation_ids"][0]


async def slug_of(h: Harness, ctx: AccountCtx) -> str:
    r = await h.client.get("/api/v1/account", headers=ctx.admin.headers)
    return r.json()["slug"]


async def ask(client: httpx.AsyncClient, slug: str, email: str) -> httpx.Response:
    return await client.post(f"/api/v1/portal/{slug}/magic-links", json={"email": email})


def links_in(smtp: SmtpSink) -> list[str]:
    """The tokens of the sign-in mails the SMTP server received, in order."""
    mails = [m for m in smtp.messages() if "Your sign-in link for" in m["Subject"]]
    return [LINK.search(m.get_payload(decode=True).decode()).group(1) for m in mails]  # type: ignore[union-attr]


async def sign_in(client: httpx.AsyncClient, slug: str, token: str) -> httpx.Response:
    page = await client.get(f"/portal/{slug}/sign-in", params={"token": token})
    assert page.status_code == 200, page.text
    return await client.post(f"/portal/{slug}/sign-in", data={"token": token}, headers=ORIGIN)


async def count(h: Harness, model: type) -> int:
    async with h.runtime.uow() as uow:
        return await uow.session.scalar(select(func.count()).select_from(model)) or 0


def csrf(client: httpx.AsyncClient) -> dict[str, str]:
    return {"x-csrf-token": client.cookies["sd_portal_csrf"]}


@pytest.fixture
async def desk(h: Harness, smtp: SmtpSink) -> dict[str, Any]:
    """Acme with an email inbox; Ana wrote by email and got a public reply and an internal note."""
    ctx = await h.make_account("Acme")
    agent = await h.make_user(ctx, "agent")
    inbox = await make_email_inbox(h, ctx, smtp)
    cid = await write_in(h, ctx, inbox, "ana@example.org", "Ana Lima", "Where is order 1234?",
                         "Hello, my order has not arrived yet.")
    for body in ({"content": "Courier says Thursday; check with the warehouse", "private": True},
                 {"content": "It ships on Thursday. Sorry for the wait!"}):
        r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=agent.headers, json=body)
        assert r.status_code == 201, r.text
    await h.run_jobs()
    smtp.received.clear()
    return {"ctx": ctx, "agent": agent, "inbox": inbox, "cid": cid, "slug": await slug_of(h, ctx)}


async def signed_in(h: Harness, smtp: SmtpSink, client: httpx.AsyncClient, slug: str, email: str) -> None:
    before = len(links_in(smtp))
    assert (await ask(client, slug, email)).status_code == 202
    await h.run_jobs()
    token = links_in(smtp)[before]
    r = await sign_in(client, slug, token)
    assert r.status_code == 303, r.text


# --- magic links -----------------------------------------------------------------------------------

async def test_known_and_unknown_addresses_get_the_same_answer_and_only_the_known_one_a_mail(
        h: Harness, smtp: SmtpSink, desk: dict[str, Any]) -> None:
    slug = desk["slug"]
    # A widget visitor who typed an address has it on the profile only (not a verified identity).
    r = await h.client.post("/api/v1/inboxes", headers=desk["ctx"].admin.headers,
                            json={"name": "Chat", "channel_kind": "webchat", "config": {}})
    r = await h.client.post(f"/api/v1/inboxes/{r.json()['public_key']}/widget-sessions",
                            json={"fields": {"name": "Typed", "email": "typed@example.org"}})
    assert r.status_code == 201, r.text

    answers = [await ask(h.client, slug, email) for email in
               ("  ANA@Example.org ", "nobody@example.org", "typed@example.org", desk["agent"].email)]
    assert {(a.status_code, a.text) for a in answers} == {(202, answers[0].text)}
    assert answers[0].json() == {"status": "accepted", "expires_in_minutes": 15, "detail": (
        "If this address belongs to one of our customers, a sign-in link is on its way. "
        "It works once, within 15 minutes.")}
    assert await count(h, PortalMagicLink) == 1

    await h.run_jobs()
    (mail,) = smtp.messages()
    (sender, recipients, _), = smtp.received
    assert (sender, recipients) == (SUPPORT, ["ana@example.org"])
    # (The email channel writes every mail as a reply: "Re: " comes from it.)
    assert mail["To"] == "Ana Lima <ana@example.org>" and mail["Subject"].endswith("Your sign-in link for Acme")
    text = mail.get_payload(decode=True).decode()
    (token,) = links_in(smtp)
    assert f"{h.runtime.settings.base_url}/portal/{slug}/sign-in?token={token}" in text
    assert "works once, within 15 minutes" in text
    # Neither the database nor the job holds the token: a digest, and a seed only the secret key turns into it.
    async with h.runtime.uow() as uow:
        link = await uow.session.scalar(select(PortalMagicLink))
        job = await uow.session.scalar(select(Job).where(Job.kind == "portal.mail_magic_link"))
    assert link.token_hash == hashlib.sha256(token.encode()).hexdigest() and token not in link.seed
    assert job.payload == {"link_id": link.id} and job.status == "done"
    assert link.expires_at - link.created_at == timedelta(minutes=15)


async def test_a_link_works_once_and_a_get_never_uses_it(h: Harness, smtp: SmtpSink, portal: httpx.AsyncClient,
                                                        desk: dict[str, Any]) -> None:
    slug = desk["slug"]
    await ask(h.client, slug, "ana@example.org")
    await h.run_jobs()
    (token,) = links_in(smtp)

    for _ in range(2):  # a mail scanner's prefetch, then the customer
        r = await portal.get(f"/portal/{slug}/sign-in", params={"token": token})
        assert r.status_code == 200 and "ana@example.org" in r.text and ">Sign in</button>" in r.text
        assert "set-cookie" not in r.headers
        assert "script-src 'self'" in r.headers["content-security-policy"]
    # Another site cannot post the form (login CSRF): refused, and the link still works.
    for headers in ({"origin": "https://evil.example"}, {"referer": "https://evil.example/x"}, {}):
        r = await portal.post(f"/portal/{slug}/sign-in", data={"token": token}, headers=headers)
        assert r.status_code == 403 and "set-cookie" not in r.headers
    r = await portal.post(f"/portal/{slug}/sign-in", data={"token": token}, headers=ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == f"/portal/{slug}/conversations"
    cookies = {c.split("=", 1)[0]: c.lower() for c in r.headers.get_list("set-cookie")}
    assert set(cookies) == {"sd_portal", "sd_portal_csrf"}
    assert "httponly" in cookies["sd_portal"] and "samesite=lax" in cookies["sd_portal"]
    assert "path=/" in cookies["sd_portal"] and "max-age=604800" in cookies["sd_portal"]
    assert "httponly" not in cookies["sd_portal_csrf"] and "samesite=strict" in cookies["sd_portal_csrf"]
    async with h.runtime.uow() as uow:
        (session,) = (await uow.session.scalars(select(CustomerSession))).all()
    assert session.inbox_id is None and session.csrf_token == portal.cookies["sd_portal_csrf"]
    assert session.token_hash == hashlib.sha256(portal.cookies["sd_portal"].encode()).hexdigest()

    # Used: the same link again, by GET or POST, from anyone.
    async with httpx.AsyncClient(transport=portal._transport, base_url="http://testserver") as other:  # noqa: SLF001
        r = await other.post(f"/portal/{slug}/sign-in", data={"token": token}, headers=ORIGIN)
        assert r.status_code == 410 and "already used" in r.text and "set-cookie" not in r.headers
        r = await other.get(f"/portal/{slug}/sign-in", params={"token": token})
        assert r.status_code == 410 and "already used" in r.text
    assert await count(h, CustomerSession) == 1

    # Unknown, missing, forged, or another portal's link: a clear page, 400.
    other_ctx = await h.make_account("Other")
    for target, value in ((slug, "sdm_" + "A" * 43), (slug, ""), (slug, "not-a-token"),
                          (await slug_of(h, other_ctx), token)):
        r = await portal.get(f"/portal/{target}/sign-in", params={"token": value})
        assert r.status_code == 400 and "not one we sent" in r.text, (target, value)
        r = await portal.post(f"/portal/{target}/sign-in", data={"token": value}, headers=ORIGIN)
        assert r.status_code == 400 and "not one we sent" in r.text


async def test_a_link_expires_after_15_minutes(h: Harness, smtp: SmtpSink, portal: httpx.AsyncClient,
                                               desk: dict[str, Any]) -> None:
    slug, start = desk["slug"], datetime.now(UTC)
    clock.freeze(start)
    await ask(h.client, slug, "ana@example.org")
    await h.run_jobs()
    clock.advance(timedelta(minutes=14, seconds=59))
    await ask(h.client, slug, "ana@example.org")
    await h.run_jobs()
    first, second = links_in(smtp)
    clock.advance(timedelta(seconds=1))  # the first is 15 minutes old now
    r = await portal.get(f"/portal/{slug}/sign-in", params={"token": first})
    assert r.status_code == 410 and "expired" in r.text
    r = await portal.post(f"/portal/{slug}/sign-in", data={"token": first}, headers=ORIGIN)
    assert r.status_code == 410 and "expired" in r.text and "set-cookie" not in r.headers
    assert (await sign_in(portal, slug, second)).status_code == 303

    # A mail that could not go out before its link expired is not sent late: the job dies and says why.
    await ask(h.client, slug, "ana@example.org")
    clock.advance(timedelta(minutes=16))
    await h.run_jobs()
    assert len(smtp.received) == 2
    r = await h.client.get("/api/v1/jobs", headers=desk["ctx"].admin.headers, params={"status": "dead"})
    (dead,) = r.json()["items"]
    assert dead["kind"] == "portal.mail_magic_link" and "expired before it could be mailed" in dead["last_error"]


async def test_an_address_gets_at_most_five_links_an_hour(h: Harness, smtp: SmtpSink, desk: dict[str, Any]) -> None:
    slug = desk["slug"]
    clock.freeze(datetime.now(UTC))
    answers = {(r.status_code, r.text) for r in [await ask(h.client, slug, "ana@example.org") for _ in range(7)]}
    assert len(answers) == 1 and answers.pop()[0] == 202
    await h.run_jobs()
    assert len(smtp.received) == 5
    clock.advance(timedelta(minutes=61))
    assert (await ask(h.client, slug, "ana@example.org")).status_code == 202
    await h.run_jobs()
    assert len(smtp.received) == 6
    assert len(set(links_in(smtp))) == 6


async def test_without_an_email_inbox_the_request_is_accepted_and_the_job_dies_visibly(h: Harness,
                                                                                       smtp: SmtpSink) -> None:
    ctx = await h.make_account("Acme")
    r = await h.client.post("/api/v1/contacts", headers=ctx.admin.headers,
                            json={"name": "Bo Berg", "email": "bo@example.org"})  # an agent vouches for it
    assert r.status_code == 201, r.text
    r = await ask(h.client, await slug_of(h, ctx), "bo@example.org")
    assert r.status_code == 202
    await h.run_jobs()
    assert smtp.received == []
    r = await h.client.get("/api/v1/jobs", headers=ctx.admin.headers, params={"status": "dead"})
    (dead,) = r.json()["items"]
    assert dead["kind"] == "portal.mail_magic_link"
    assert "no active email inbox" in dead["last_error"] and "sign-in link cannot be mailed" in dead["last_error"]


# --- portal sessions ---------------------------------------------------------------------------------

async def test_a_portal_session_sees_its_contacts_conversations_on_every_channel_and_nothing_else(
        h: Harness, smtp: SmtpSink, portal: httpx.AsyncClient, desk: dict[str, Any]) -> None:
    ctx, slug, cid = desk["ctx"], desk["slug"], desk["cid"]
    # Ana also writes through the app (an API inbox that vouches for emails), in another conversation.
    app_inbox = await h.make_api_inbox(ctx, trust=True)
    r = await h.deliver(app_inbox, {"message_id": "m-1", "conversation_key": "order-77", "subject": "Invoice copy",
                                    "contact": {"source_id": "u-9", "name": "Ana Lima", "email": "ana@example.org"},
                                    "content": "Could I get a copy of the invoice?"})
    app_cid = r.json()["conversation_id"]
    assert app_cid != cid
    # Someone else's conversation.
    other_cid = await write_in(h, ctx, desk["inbox"], "cleo@example.net", "Cleo", "Broken zip", "The zip broke.")
    r = await h.client.post(f"/api/v1/conversations/{other_cid}/messages", headers=desk["agent"].headers,
                            json={"content": "Cleo, a new one is on its way", "attachments": [
                                {"filename": "label.png", "content_type": "image/png",
                                 "data_base64": base64.b64encode(PNG).decode()}]})
    other_attachment = r.json()["attachments"][0]["id"]

    await signed_in(h, smtp, portal, slug, "ana@example.org")
    r = await portal.get("/api/v1/customer/conversations")
    assert r.status_code == 200
    assert [c["id"] for c in r.json()] == [app_cid, cid]
    r = await portal.get(f"/api/v1/customer/conversations/{cid}/messages")
    messages = r.json()["items"]
    assert [(m["direction"], m["sender"], m["content"]) for m in messages] == [
        ("incoming", {"type": "contact", "id": messages[0]["sender"]["id"], "name": "Ana Lima"},
         "Hello, my order has not arrived yet."),
        ("outgoing", {"type": "user", "id": None, "name": "Agent"}, "It ships on Thursday. Sorry for the wait!")]
    for url in (f"/api/v1/customer/conversations/{other_cid}", f"/api/v1/customer/conversations/{other_cid}/messages",
                f"/api/v1/customer/conversations/{other_cid}/attachments/{other_attachment}"):
        r = await portal.get(url)
        assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM), url
    r = await portal.post(f"/api/v1/portal/conversations/{other_cid}/messages", json={"content": "hi"},
                          headers=csrf(portal))
    assert r.status_code == 404

    # The pages: both of Ana's conversations, none of Cleo's; never the internal note.
    r = await portal.get(f"/portal/{slug}/conversations")
    assert r.status_code == 200 and "Where is order 1234?" in r.text and "Invoice copy" in r.text
    assert "Broken zip" not in r.text and "Signed in as <strong>Ana Lima</strong>" in r.text
    r = await portal.get(f"/portal/{slug}/conversations/{cid}")
    assert r.status_code == 200 and "It ships on Thursday" in r.text and "<strong>Agent</strong>" in r.text
    assert "warehouse" not in r.text and "Courier" not in r.text
    assert (await portal.get(f"/portal/{slug}/conversations/{other_cid}")).status_code == 404
    assert (await portal.get(f"/portal/{slug}/conversations/99999999999999999999")).status_code == 422

    # Signed out, the pages send the visitor to the sign-in form.
    async with httpx.AsyncClient(transport=portal._transport, base_url="http://testserver") as stranger:  # noqa: SLF001
        r = await stranger.get(f"/portal/{slug}/conversations/{cid}")
        assert r.status_code == 303 and r.headers["location"] == f"/portal/{slug}"
        r = await stranger.get(f"/portal/{slug}")
        assert r.status_code == 200 and 'name="email"' in r.text


async def test_a_portal_reply_is_an_incoming_message_on_the_conversations_inbox_and_reopens_it(
        h: Harness, smtp: SmtpSink, portal: httpx.AsyncClient, desk: dict[str, Any]) -> None:
    cid, agent = desk["cid"], desk["agent"]
    await signed_in(h, smtp, portal, desk["slug"], "ana@example.org")
    r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=agent.headers, json={"status": "resolved"})
    assert r.status_code == 200

    with h.capture_events() as events:
        r = await portal.post(f"/api/v1/portal/conversations/{cid}/messages", headers=csrf(portal), json={
            "content": "It has not come yet; here is the receipt.",
            "attachments": [{"filename": "receipt.png", "content_type": "image/png",
                             "data_base64": base64.b64encode(PNG).decode()}]})
    assert r.status_code == 201, r.text
    mine = r.json()
    assert mine["sender"]["type"] == "contact" and mine["direction"] == "incoming"
    assert [a["filename"] for a in mine["attachments"]] == ["receipt.png"]
    assert mine["attachments"][0]["url"].startswith(f"/api/v1/customer/conversations/{cid}/attachments/")
    assert (await portal.get(mine["attachments"][0]["url"])).content == PNG

    r = await h.client.get(f"/api/v1/conversations/{cid}/messages", headers=agent.headers)
    last = r.json()["items"][-1]
    assert (last["id"], last["direction"], last["inbox_id"], last["channel"], last["meta"]) == \
        (mine["id"], "incoming", desk["inbox"], "email", {"via": "portal"})
    r = await h.client.get(f"/api/v1/conversations/{cid}", headers=agent.headers)
    assert r.json()["status"] == "open"
    by_type = {type(e).__name__: e for e in events}
    assert set(by_type) == {"ConversationStatusChanged", "CustomerConversationUpdated", "MessageCreated",
                            "CustomerMessageCreated"}
    customer_event = by_type["CustomerMessageCreated"]
    assert isinstance(customer_event, CustomerMessageCreated)
    assert customer_event.audience.contact_ids == (mine["sender"]["id"],) and customer_event.message.id == mine["id"]
    assert isinstance(by_type["CustomerConversationUpdated"], CustomerConversationUpdated)
    assert by_type["MessageCreated"].audience.all_agents and by_type["MessageCreated"].audience.contact_ids == ()

    # The agent's answer goes out on the conversation's channel (by email) as well.
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=agent.headers,
                            json={"content": "Thanks, we are sending a new one today."})
    assert r.status_code == 201
    await h.run_jobs()
    (_, recipients, _), = [m for m in smtp.received if b"new one today" in m[2]]
    assert recipients == ["ana@example.org"]

    # A closed conversation takes no more replies.
    r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=agent.headers, json={"status": "closed"})
    r = await portal.post(f"/api/v1/portal/conversations/{cid}/messages", headers=csrf(portal),
                          json={"content": "one more"})
    assert r.status_code == 409 and r.headers["content-type"].startswith(PROBLEM)
    r = await portal.get(f"/portal/{desk['slug']}/conversations/{cid}")
    assert "This conversation is closed." in r.text and 'id="reply-form"' not in r.text


async def test_a_new_conversation_from_the_portal_lives_on_the_email_inbox(h: Harness, smtp: SmtpSink,
                                                                           portal: httpx.AsyncClient,
                                                                           desk: dict[str, Any]) -> None:
    await signed_in(h, smtp, portal, desk["slug"], "ana@example.org")
    r = await portal.get("/api/v1/portal/me")
    assert r.json() == {"account_name": "Acme", "account_slug": desk["slug"], "contact_id": r.json()["contact_id"],
                        "name": "Ana Lima", "can_start_conversations": True}
    r = await portal.post("/api/v1/portal/conversations", headers=csrf(portal),
                          json={"subject": "Change my address", "content": "Please ship to Rua Nova 5."})
    assert r.status_code == 201, r.text
    new = r.json()
    assert (new["subject"], new["status"]) == ("Change my address", "open")
    r = await h.client.get(f"/api/v1/conversations/{new['id']}", headers=desk["agent"].headers)
    assert (r.json()["inbox_id"], r.json()["contact"]["email"]) == (desk["inbox"], "ana@example.org")
    r = await h.client.get(f"/api/v1/conversations/{new['id']}/messages", headers=desk["agent"].headers)
    (first,) = r.json()["items"]
    assert first["meta"] == {"via": "portal"} and first["content"] == "Please ship to Rua Nova 5."
    r = await portal.get(f"/portal/{desk['slug']}/conversations/new")
    assert r.status_code == 200 and 'id="new-form"' in r.text


async def test_unsafe_methods_with_the_portal_cookie_need_the_csrf_token(h: Harness, smtp: SmtpSink,
                                                                         portal: httpx.AsyncClient,
                                                                         desk: dict[str, Any]) -> None:
    cid = desk["cid"]
    await signed_in(h, smtp, portal, desk["slug"], "ana@example.org")
    before = await count(h, Message)
    for headers in ({}, {"x-csrf-token": "wrong"}, {"x-csrf-token": ""}, {"x-csrf-token": "ü".encode()}):
        for method, url, body in (("POST", f"/api/v1/portal/conversations/{cid}/messages", {"content": "x"}),
                                  ("POST", "/api/v1/portal/conversations", {"subject": "s", "content": "x"}),
                                  ("POST", f"/api/v1/customer/conversations/{cid}/typing", None),
                                  ("POST", "/api/v1/realtime/register", None),
                                  ("DELETE", "/api/v1/portal/session", None)):
            r = await portal.request(method, url, headers=headers, **({"json": body} if body else {}))
            assert r.status_code == 403 and r.json()["detail"].startswith("missing or wrong CSRF token"), (url, r.text)
    assert await count(h, Message) == before and await count(h, CustomerSession) == 1
    # Safe methods need none; with the token, the writes go through.
    assert (await portal.get(f"/api/v1/customer/conversations/{cid}")).status_code == 200
    r = await portal.post(f"/api/v1/portal/conversations/{cid}/messages", headers=csrf(portal), json={"content": "x"})
    assert r.status_code == 201
    # The real-time queue registers as this customer (customer events only).
    r = await portal.post("/api/v1/realtime/register", headers=csrf(portal))
    me = (await portal.get("/api/v1/portal/me")).json()
    assert r.status_code == 200 and r.json()["state"]["contact_id"] == me["contact_id"]
    assert [c["id"] for c in r.json()["state"]["conversations"]] == [cid]


async def test_a_portal_cookie_is_never_staff_and_other_credentials_cannot_use_portal_routes(
        h: Harness, smtp: SmtpSink, portal: httpx.AsyncClient, desk: dict[str, Any]) -> None:
    cid = desk["cid"]
    await signed_in(h, smtp, portal, desk["slug"], "ana@example.org")
    for method, url in (("GET", "/api/v1/conversations"), ("GET", f"/api/v1/conversations/{cid}/messages"),
                        ("POST", f"/api/v1/conversations/{cid}/messages"), ("GET", "/api/v1/auth/me"),
                        ("GET", "/api/v1/contacts"), ("PATCH", "/api/v1/account")):
        r = await portal.request(method, url, headers=csrf(portal), json={"content": "pwned", "name": "pwned"})
        assert r.status_code == 403 and r.headers["content-type"].startswith(PROBLEM), (url, r.text)
        assert r.json()["detail"] == "a customer portal session cannot be used on an agent route"
    r = await portal.get("/app")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    # Staff, a widget's bearer token and nobody at all cannot use the portal-only routes.
    r = await h.client.post("/api/v1/inboxes", headers=desk["ctx"].admin.headers,
                            json={"name": "Chat", "channel_kind": "webchat", "config": {}})
    visitor = await h.client.post(f"/api/v1/inboxes/{r.json()['public_key']}/widget-sessions",
                                  json={"fields": {"name": "V"}})
    widget = {"authorization": f"Bearer {visitor.json()['token']}"}
    for headers, status in ((desk["agent"].headers, 403), (widget, 403), ({}, 401)):
        for method, url in (("GET", "/api/v1/portal/me"), ("DELETE", "/api/v1/portal/session"),
                            ("POST", f"/api/v1/portal/conversations/{cid}/messages")):
            r = await h.client.request(method, url, headers=headers, json={"content": "x"})
            assert r.status_code == status and r.headers["content-type"].startswith(PROBLEM), (headers, url)


async def test_signing_out_deletes_the_session(h: Harness, smtp: SmtpSink, portal: httpx.AsyncClient,
                                               desk: dict[str, Any]) -> None:
    slug = desk["slug"]
    await signed_in(h, smtp, portal, slug, "ana@example.org")
    old = portal.cookies["sd_portal"]
    r = await portal.delete("/api/v1/portal/session", headers=csrf(portal))
    assert r.status_code == 204 and await count(h, CustomerSession) == 0
    assert {c.split("=", 1)[0] for c in r.headers.get_list("set-cookie")} == {"sd_portal", "sd_portal_csrf"}
    async with httpx.AsyncClient(transport=portal._transport, base_url="http://testserver",  # noqa: SLF001
                                 cookies={"sd_portal": old}) as replay:
        r = await replay.get("/api/v1/customer/conversations")
        assert (r.status_code, r.json()["detail"]) == (401, "portal session expired; sign in again")
        assert (await replay.get(f"/portal/{slug}/conversations")).status_code == 303

    # The page's sign-out form: its CSRF field and our origin, or nothing happens.
    await signed_in(h, smtp, portal, slug, "ana@example.org")
    for data, headers in (({"csrf": "wrong"}, ORIGIN), ({"csrf": portal.cookies["sd_portal_csrf"]},
                                                         {"origin": "https://evil.example"})):
        r = await portal.post(f"/portal/{slug}/sign-out", data=data, headers=headers)
        assert r.status_code == 403
    assert await count(h, CustomerSession) == 1
    r = await portal.post(f"/portal/{slug}/sign-out", data={"csrf": portal.cookies["sd_portal_csrf"]}, headers=ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == f"/portal/{slug}"
    assert await count(h, CustomerSession) == 0


async def test_signing_out_ends_the_sessions_live_connection(h: Harness, smtp: SmtpSink, portal: httpx.AsyncClient,
                                                             desk: dict[str, Any], live) -> None:  # noqa: ANN001
    await signed_in(h, smtp, portal, desk["slug"], "ana@example.org")
    r = await portal.post("/api/v1/realtime/register", headers=csrf(portal))
    assert r.status_code == 200, r.text
    queue_id = r.json()["queue_id"]
    async with open_ws(live, queue_id) as sock:
        r = await portal.delete("/api/v1/portal/session", headers=csrf(portal))
        assert r.status_code == 204, r.text
        (event,) = await sock.events(1)
        assert event["type"] == "credential.revoked"
        await sock.expect_reload(1012)
    async with open_ws(live, queue_id, 0) as sock:
        await sock.expect_reload(4000)


async def test_a_session_expires(h: Harness, smtp: SmtpSink, portal: httpx.AsyncClient, desk: dict[str, Any]) -> None:
    clock.freeze(datetime.now(UTC))
    await signed_in(h, smtp, portal, desk["slug"], "ana@example.org")
    clock.advance(timedelta(days=7))
    r = await portal.get("/api/v1/customer/conversations")
    assert r.status_code == 401


async def test_the_pages_escape_what_people_wrote(h: Harness, smtp: SmtpSink, portal: httpx.AsyncClient) -> None:
    ctx = await h.make_account("Acme")
    inbox = await make_email_inbox(h, ctx, smtp)
    xss = "<img src=x onerror=alert(1)>"
    cid = await write_in(h, ctx, inbox, "eve@example.org", f"Eve {xss}", f"Subject {xss}", f"Body {xss}")
    slug = await slug_of(h, ctx)
    await signed_in(h, smtp, portal, slug, "eve@example.org")
    for url in (f"/portal/{slug}/conversations", f"/portal/{slug}/conversations/{cid}"):
        r = await portal.get(url)
        assert r.status_code == 200 and xss not in r.text and "&lt;img src=x onerror=alert(1)&gt;" in r.text, url


# --- bad input -------------------------------------------------------------------------------------

async def test_bad_input_is_a_4xx_problem(h: Harness, smtp: SmtpSink, portal: httpx.AsyncClient,
                                          desk: dict[str, Any]) -> None:
    slug, cid = desk["slug"], desk["cid"]
    url = f"/api/v1/portal/{slug}/magic-links"
    for body, status in (({"email": "not an email"}, 422), ({}, 422), ({"email": "a@b.example", "x": 1}, 422),
                         ({"email": "a" * 320 + "@example.org"}, 422), ({"email": 5}, 422),
                         ({"email": "a\x00@example.org"}, 422)):
        r = await h.client.post(url, json=body)
        assert r.status_code == status and r.headers["content-type"].startswith(PROBLEM), (body, r.text)
    r = await h.client.post(url, content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"].startswith(PROBLEM)
    r = await h.client.post("/api/v1/portal/no-such-account/magic-links", json={"email": "a@b.example"})
    assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM)
    assert (await portal.get("/portal/no-such-account")).status_code == 404
    r = await portal.post(f"/portal/{slug}/magic-link", data={"email": "not an email"}, headers=ORIGIN)
    assert r.status_code == 422 and "Enter a valid email address" in r.text
    r = await portal.post(f"/portal/{slug}/magic-link", data={"email": "ana@example.org"})
    assert r.status_code == 403  # the form from another site (no Origin): nothing sent
    r = await portal.post(f"/portal/{slug}/magic-link", data={"email": " Ana@Example.org"}, headers=ORIGIN)
    assert r.status_code == 200 and "Check your mail" in r.text and "ana@example.org" in r.text
    r = await portal.get(f"/portal/{slug}/sign-in", params={"token": "x" * 201})
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM)

    await signed_in(h, smtp, portal, slug, "ana@example.org")
    reply = f"/api/v1/portal/conversations/{cid}/messages"
    for body in ({}, {"content": ""}, {"content": "x", "private": True}, {"content": 5},
                 {"content": "x", "attachments": [{"filename": "a.txt", "data_base64": "%%%"}]},
                 {"content": "x" * 50_001}):
        r = await portal.post(reply, json=body, headers=csrf(portal))
        assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith(PROBLEM), (body, r.text)
    for path in ("/api/v1/portal/conversations/0/messages", "/api/v1/portal/conversations/99999999999999999999/messages"):
        r = await portal.post(path, json={"content": "x"}, headers=csrf(portal))
        assert r.status_code == 422, r.text
    r = await portal.post("/api/v1/portal/conversations", json={"subject": "", "content": "x"}, headers=csrf(portal))
    assert r.status_code == 422


async def test_no_new_conversations_without_an_email_inbox(h: Harness, portal: httpx.AsyncClient,
                                                           smtp: SmtpSink, desk: dict[str, Any]) -> None:
    await signed_in(h, smtp, portal, desk["slug"], "ana@example.org")
    r = await h.client.patch(f"/api/v1/inboxes/{desk['inbox']}", headers=desk["ctx"].admin.headers,
                             json={"is_active": False})
    assert r.status_code == 200
    assert (await portal.get("/api/v1/portal/me")).json()["can_start_conversations"] is False
    r = await portal.post("/api/v1/portal/conversations", headers=csrf(portal), json={"subject": "s", "content": "x"})
    assert r.status_code == 409 and "no email inbox" in r.json()["detail"]
    assert (await portal.get(f"/portal/{desk['slug']}/conversations/new")).status_code == 404
    r = await portal.get(f"/portal/{desk['slug']}/conversations")
    assert "New conversation" not in r.text


async def test_the_customer_api_serves_a_portal_session_too(h: Harness, smtp: SmtpSink, portal: httpx.AsyncClient,
                                                            desk: dict[str, Any]) -> None:
    """The generic customer routes with a portal session: a reply lands on the conversation's own
    inbox (a portal session has none), marked as from the portal; starting a conversation there
    is refused with where to do it instead."""
    cid, agent = desk["cid"], desk["agent"]
    await signed_in(h, smtp, portal, desk["slug"], "ana@example.org")
    r = await portal.post(f"/api/v1/customer/conversations/{cid}/messages", headers=csrf(portal),
                          json={"content": "Any news on the courier?"})
    assert r.status_code == 201, r.text
    r = await h.client.get(f"/api/v1/conversations/{cid}/messages", headers=agent.headers)
    last = r.json()["items"][-1]
    assert (last["content"], last["inbox_id"], last["channel"], last["meta"]) == \
        ("Any news on the courier?", desk["inbox"], "email", {"via": "portal"})
    r = await portal.post("/api/v1/customer/conversations", headers=csrf(portal),
                          json={"subject": "New", "content": "Hello"})
    assert r.status_code == 409 and "/api/v1/portal/conversations" in r.json()["detail"]
