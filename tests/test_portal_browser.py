"""The customer portal in a real browser (Debian's chromium through Playwright): a customer who wrote
by email signs in with the link from the real mail, reads and answers their conversation, and sees
the agent's next reply arrive live; hostile markup stays text."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from playwright.async_api import Page

from swarmdesk.config import Settings
from swarmdesk.core.clock import clock
from tests.browser import ConsoleErrors, chromium_page, screenshots_dir
from tests.conftest import LiveServer, free_port
from tests.mailservers import SmtpSink
from tests.support import AccountCtx, Harness, Staff, sign
from tests.test_portal import make_email_inbox, raw_mail, slug_of

SCREENSHOTS = screenshots_dir()
XSS = "<img src=x onerror=alert(1)>"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
LINK = re.compile(r"(http://\S+/portal/[\w-]+/sign-in\?token=sdm_[\w-]+)")


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def settings(settings: Settings, port: int) -> Settings:
    """The links in the mails point at the live server this test's browser uses."""
    return settings.model_copy(update={"base_url": f"http://127.0.0.1:{port}"})


@pytest.fixture
async def live(app, port: int) -> AsyncIterator[LiveServer]:  # noqa: ANN001
    server = LiveServer(app, port)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


async def until(check, timeout: float = 10.0):  # noqa: ANN001, ANN201
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)
    return result


async def customer_writes(h: Harness, ctx: AccountCtx, inbox: int, sender: str, name: str, subject: str,
                          body: str) -> int:
    r = await h.client.post(f"/api/v1/inboxes/{inbox}/email/messages",
                            headers={**ctx.admin.headers, "content-type": "message/rfc822"},
                            content=raw_mail(sender, name, subject, body))
    assert r.status_code == 200 and r.json()["outcome"] == "stored", r.text
    return r.json()["conversation_ids"][0]


async def agent_says(h: Harness, agent: Staff, cid: int, content: str, **extra: Any) -> dict[str, Any]:
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=agent.headers,
                            json={"content": content, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def sign_in_by_mail(h: Harness, page: Page, live: LiveServer, smtp: SmtpSink, slug: str, email: str) -> None:
    """As a customer does it: the form, the real mail, its link, the button."""
    await page.goto(f"{live.url}/portal/{slug}")
    await page.get_by_label("Email").fill(email)
    await page.get_by_role("button", name="Email me a sign-in link").click()
    await page.get_by_role("heading", name="Check your mail").wait_for()
    before = len(smtp.received)
    await h.run_jobs()
    assert len(smtp.received) == before + 1
    mail = smtp.messages()[-1]
    assert mail["To"].endswith(f"<{email}>")
    (link,) = LINK.findall(mail.get_payload(decode=True).decode())
    assert link.startswith(f"{live.url}/portal/{slug}/sign-in?token=")
    await page.goto(link)
    await page.get_by_text(f"You are signing in as {email}.").wait_for()
    async with page.expect_response("**/api/v1/realtime/register") as registered:
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{live.url}/portal/{slug}/conversations")
    assert (await registered.value).status == 200  # the list page listens live too


def csp_errors(console: ConsoleErrors) -> list[str]:
    return [e for e in console.errors if "Content Security Policy" in e or "Refused to" in e]


async def test_customer_signs_in_by_mail_reads_replies_with_a_file_and_sees_the_agent_live(
        h: Harness, live: LiveServer, smtp: SmtpSink) -> None:
    ctx = await h.make_account("Northwind Outfitters")
    agent = await h.make_user(ctx, "maya")
    r = await h.client.patch(f"/api/v1/users/{agent.user_id}", headers=ctx.admin.headers, json={"name": "Maya Chen"})
    assert r.status_code == 200, r.text
    inbox = await make_email_inbox(h, ctx, smtp)
    slug = await slug_of(h, ctx)

    # Cross-channel messages start their own conversations here (an account policy).
    r = await h.client.patch("/api/v1/account", headers=ctx.admin.headers, json={"settings": {
        "outbound_allowlist": ["127.0.0.1"], "conversation_join": {"mode": "always_new"}}})
    assert r.status_code == 200, r.text

    # Ana asked twice through Northwind's app (an API inbox that vouches for email addresses: the
    # same customer), then wrote by email two hours ago.
    now = datetime.now(UTC)
    app = await h.make_api_inbox(ctx, trust=True)
    for days, key, subject, text, answer, status in (
            (12, "jacket", "Exchange the rain jacket for a size M",
             "Hi! The Cascade rain jacket is a little tight. Could I exchange it for a size M?",
             "Of course! The size M is on its way, and the return label is in the parcel.", "resolved"),
            (3, "gift", "Gift card balance", "How much is left on gift card NW-4471?",
             "There are 35.00 EUR left on it. Shall we send you a new card with the balance?", "pending")):
        clock.freeze(now - timedelta(days=days))
        body = orjson.dumps({"message_id": f"app-{key}", "conversation_key": key, "subject": subject,
                             "content": text, "contact": {"source_id": "ana-7", "name": "Ana Lima",
                                                          "email": "ana.lima@example.org"}})
        r = await h.client.post(app.webhook_path, content=body, headers=sign(app.secret, body, at=clock.now()))
        assert r.status_code == 200, r.text
        clock.advance(timedelta(hours=2, minutes=14))
        await agent_says(h, agent, r.json()["conversation_id"], answer)
        r = await h.client.patch(f"/api/v1/conversations/{r.json()['conversation_id']}", headers=agent.headers,
                                 json={"status": status})
        assert r.status_code == 200, r.text
    clock.freeze(now - timedelta(hours=2, minutes=5))
    cid = await customer_writes(h, ctx, inbox, "ana.lima@example.org", "Ana Lima",
                                "Hiking boots arrived with a torn seam",
                                "Hello,\n\nmy Ridgeline hiking boots (order 20417) arrived today, and the left boot "
                                "has a torn seam near the heel. What can I do?\n\nThanks, Ana")
    clock.advance(timedelta(minutes=31))
    await agent_says(h, agent, cid, "Sorry, Ana! Ask the courier's driver for the damage report; also check the batch",
                     private=True)
    await agent_says(h, agent, cid, "I'm so sorry about that, Ana. Could you send us a photo of the seam? "
                                    "Then we can send a new pair right away.")
    clock.reset()
    await h.run_jobs()
    smtp.received.clear()

    async with chromium_page() as page:
        console = ConsoleErrors(page)
        await page.set_viewport_size({"width": 1100, "height": 760})
        await sign_in_by_mail(h, page, live, smtp, slug, "ana.lima@example.org")

        # My conversations: newest activity first, each with its status.
        rows = page.locator(".portal-row")
        await rows.first.wait_for()
        assert await rows.locator(".row-link").all_text_contents() == [
            "Hiking boots arrived with a torn seam", "Gift card balance", "Exchange the rain jacket for a size M"]
        assert await rows.locator("[data-status]").all_text_contents() == ["Open", "Waiting for you", "Resolved"]
        await page.get_by_role("navigation", name="Portal").get_by_role("link", name="My conversations").wait_for()
        await page.screenshot(path=str(SCREENSHOTS / "portal-conversations.png"))

        # The conversation: the agent's public reply under their name, never the internal note.
        async with page.expect_response("**/api/v1/realtime/register"):
            await page.get_by_role("link", name="Hiking boots arrived with a torn seam").click()
        await page.locator(".msg.theirs .body", has_text="Could you send us a photo of the seam?").wait_for()
        assert await page.locator(".msg.theirs .byline strong").all_text_contents() == ["Maya Chen"]
        assert await page.get_by_text("damage report").count() == 0
        assert "courier" not in (await page.content()).lower()

        # Ana answers with a photo; the agent sees it as hers, through the API.
        await page.get_by_label("Your reply").fill("Here is a photo of the seam. The boots were never worn.")
        await page.get_by_label("Attach files").set_input_files(
            files=[{"name": "torn-seam.png", "mimeType": "image/png", "buffer": PNG}])
        await page.get_by_role("button", name="Send").click()
        await page.locator(".msg.mine a.attachment", has_text="torn-seam.png").wait_for()
        assert await page.get_by_label("Your reply").input_value() == ""

        async def last_message() -> dict[str, Any]:
            r = await h.client.get(f"/api/v1/conversations/{cid}/messages", headers=agent.headers)
            last = r.json()["items"][-1]
            return last if last["direction"] == "incoming" else {}
        mine = await until(last_message)
        assert mine["content"] == "Here is a photo of the seam. The boots were never worn."
        assert (mine["inbox_id"], mine["meta"]) == (inbox, {"via": "portal"})
        assert [(a["filename"], a["size"]) for a in mine["attachments"]] == [("torn-seam.png", len(PNG))]
        href = await page.locator(".msg.mine a.attachment").get_attribute("href")
        assert await (await page.request.get(f"{live.url}{href}")).body() == PNG

        # The agent answers: it appears without a reload.
        await agent_says(h, agent, cid, "Thank you! A new pair of Ridgeline boots leaves our warehouse today; "
                                        "you will get the tracking number by email.")
        await page.locator(".msg.theirs .body", has_text="A new pair of Ridgeline boots").wait_for()
        assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1
        assert await page.locator(".msg").count() == 4
        await page.locator("#reply-text").blur()
        await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        await page.screenshot(path=str(SCREENSHOTS / "portal-conversation.png"))

        # On a phone, nothing is wider than the screen.
        await page.set_viewport_size({"width": 390, "height": 844})
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        # Signing out ends the session: the pages ask for the email again.
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(f"{live.url}/portal/{slug}")
        await page.goto(f"{live.url}/portal/{slug}/conversations/{cid}")
        await page.get_by_label("Email").wait_for()

    assert console.dialogs == []
    assert csp_errors(console) == [] and console.errors == []


async def test_hostile_markup_is_shown_as_text_and_never_runs(h: Harness, live: LiveServer, smtp: SmtpSink) -> None:
    ctx = await h.make_account("Northwind Outfitters")
    agent = await h.make_user(ctx, "maya")
    inbox = await make_email_inbox(h, ctx, smtp)
    slug = await slug_of(h, ctx)
    cid = await customer_writes(h, ctx, inbox, "eve@example.org", f'"{XSS}"', XSS, f"Message {XSS}")
    await agent_says(h, agent, cid, f"Reply {XSS}", attachments=[
        {"filename": f"{XSS}.png", "content_type": "image/png", "data_base64": base64.b64encode(PNG).decode()}])
    await h.run_jobs()

    async with chromium_page() as page:
        console = ConsoleErrors(page)
        await sign_in_by_mail(h, page, live, smtp, slug, "eve@example.org")
        await page.get_by_role("link", name=XSS).wait_for()  # the subject, as text
        assert await page.locator(".who strong").text_content() == XSS  # the customer's name
        await page.get_by_role("link", name=XSS).click()
        await page.get_by_role("heading", name=XSS).wait_for()
        assert await page.locator(".msg.mine .body").text_content() == f"Message {XSS}"
        assert await page.locator(".msg.theirs .body").text_content() == f"Reply {XSS}"
        assert await page.locator(".msg.theirs a.attachment").text_content() == f"{XSS}.png"

        # Through the script's path too: a file Eve sends, and an agent's reply arriving live.
        await page.get_by_label("Your reply").fill(f"Again {XSS}")
        await page.get_by_label("Attach files").set_input_files(
            files=[{"name": f"{XSS}.txt", "mimeType": "text/plain", "buffer": b"hello"}])
        await page.get_by_role("button", name="Send").click()
        await page.locator(".msg.mine a.attachment", has_text=f"{XSS}.txt").wait_for()
        await agent_says(h, agent, cid, f"Live {XSS}")
        await page.locator(".msg.theirs .body", has_text=f"Live {XSS}").wait_for()
        assert await page.locator(".msg.mine .body").last.text_content() == f"Again {XSS}"
        assert await page.locator("main img").count() == 0
        await page.reload()
        await page.locator(".msg.mine a.attachment", has_text=f"{XSS}.txt").wait_for()
        assert await page.locator("main img").count() == 0
        await page.wait_for_timeout(200)

    assert console.dialogs == []
    assert csp_errors(console) == [] and console.errors == []
