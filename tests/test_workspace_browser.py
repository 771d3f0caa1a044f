"""The agent workspace in a real browser (Debian's chromium driven by Playwright): a customer
writes in the widget and the agent sees it live, replies and adds a note the customer never sees;
an email customer and a chat customer who are one person become one profile; and markup that
customers send through every intake never runs in any view."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from swarmdesk.accounts.models import Role
from tests.browser import ARGS, CHROMIUM, ConsoleErrors, HostSite, screenshots_dir, sign_in
from tests.support import PASSWORD, AccountCtx, Harness, inbound_payload

SCREENSHOTS = screenshots_dir()
AUTHSERV = "mx.acme-shoes.example"
XSS = '<img src=x onerror="window.__pwned=1">'
XSS_SCRIPT = "<script>window.__pwned=2</script>"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture
async def host() -> AsyncIterator[HostSite]:
    site = HostSite()
    await site.start()
    yield site
    await site.stop()


@asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


async def new_page(b: Browser, width: int = 1280, height: int = 800) -> Page:
    context = await b.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    return page


async def make_widget(h: Harness, ctx: AccountCtx) -> dict:
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers, json={
        "name": "Acme Shoes chat", "channel_kind": "webchat",
        "config": {"greeting": "Hi! Ask us anything about your order.", "color": "#1d4ed8"}})
    assert r.status_code == 201, r.text
    return r.json()


async def make_email_inbox(h: Harness, ctx: AccountCtx) -> int:
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers, json={
        "name": "Support mail", "channel_kind": "email",
        "config": {"address": "support@acme-shoes.example", "display_name": "Acme Support",
                   "trusted_authserv_ids": [AUTHSERV]}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def mail(sender: str, name: str, subject: str, text: str, *, html: str | None = None,
         attachment: tuple[str, bytes] | None = None) -> bytes:
    domain = sender.rsplit("@", 1)[1]
    msg = EmailMessage()
    msg["Authentication-Results"] = (f"{AUTHSERV}; dkim=pass header.d={domain}; spf=pass smtp.mailfrom={sender}; "
                                     f"dmarc=pass header.from={domain}")
    msg["From"] = f'"{name}" <{sender}>'
    msg["To"] = "support@acme-shoes.example"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=domain)
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        msg.add_attachment(attachment[1], maintype="image", subtype="png", filename=attachment[0])
    return msg.as_bytes()


async def upload_mail(h: Harness, ctx: AccountCtx, inbox_id: int, raw: bytes) -> int:
    r = await h.client.post(f"/api/v1/inboxes/{inbox_id}/email/messages",
                            headers={**ctx.admin.headers, "content-type": "message/rfc822"}, content=raw)
    assert r.status_code == 200, r.text
    return r.json()["conversation_ids"][0]


async def test_widget_to_agent_live_reply_and_a_note_the_customer_never_sees(h: Harness, live, host: HostSite) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme Shoes")
    support = await h.make_team(ctx, "Support")
    agent = await h.make_user(ctx, "maya", Role.agent, teams=(support,))
    widget = await make_widget(h, ctx)
    host.embed(f"{live.url}/widget/{widget['public_key']}.js")
    async with browser() as b:
        desk = await new_page(b)
        desk_errors = ConsoleErrors(desk)
        await sign_in(desk, live.url, agent.email, PASSWORD, then="/app?view=all")
        await desk.locator("#conversation-list .empty").wait_for()

        site = await new_page(b, 1000, 760)
        site_errors = ConsoleErrors(site)
        await site.goto(host.url)
        await site.locator("#swarmdesk-chat button.launcher").click()
        chat = site.frame_locator("#swarmdesk-chat iframe")
        await chat.locator("input[name=name]").fill("Ana Lima")
        await chat.locator("input[name=email]").fill("ana@example.org")
        await chat.get_by_role("button", name="Start chat").click()
        await chat.get_by_label("Message").fill("Hi! My order #4417 hasn't arrived yet. Can you check?")
        await chat.get_by_label("Message").press("Enter")

        # The agent's inbox shows it without a reload, marked unread.
        row = desk.locator(".conversation-row", has_text="Ana Lima")
        await row.wait_for()
        assert "unread" in (await row.get_attribute("class") or "")
        assert "hasn't arrived yet" in await row.inner_text()
        await desk.screenshot(path=str(SCREENSHOTS / "inbox.png"))

        # The agent opens it, replies; the customer sees the reply in the widget.
        await row.locator("a.open").click()
        await desk.wait_for_url("**/app/conversations/*")
        conversation_id = int(desk.url.rsplit("/", 1)[1])
        await desk.locator(".msg.incoming", has_text="#4417").wait_for()
        await desk.get_by_label("Message").fill("Hi Ana, I'm checking with the courier now — one moment.")
        await desk.get_by_role("button", name="Send").click()
        await desk.locator(".msg.outgoing", has_text="checking with the courier").wait_for()
        await chat.locator(".msg.theirs .text", has_text="checking with the courier").wait_for()

        # An internal note stays inside the team.
        await desk.get_by_role("tab", name="Internal note").click()
        await desk.get_by_label("Message").fill("Courier says the parcel is stuck in Leipzig; offer a reshipment.")
        await desk.get_by_role("button", name="Add note").click()
        await desk.locator(".msg.note", has_text="stuck in Leipzig").wait_for()

        # The customer writes again: it appears live in the conversation view.
        await chat.get_by_label("Message").fill("Thanks! I need them before Friday.")
        await chat.get_by_label("Message").press("Enter")
        await desk.locator(".msg.incoming", has_text="before Friday").wait_for()
        await desk.get_by_role("tab", name="Reply").click()
        await desk.get_by_label("Message").fill("We'll reship today by express — they'll be with you Thursday.")
        await desk.get_by_role("button", name="Send").click()
        await chat.locator(".msg.theirs .text", has_text="reship today by express").wait_for()
        await desk.screenshot(path=str(SCREENSHOTS / "conversation.png"))
        await site.screenshot(path=str(SCREENSHOTS / "widget.png"))

        await site.wait_for_timeout(300)
        assert await chat.get_by_text("Leipzig").count() == 0
        texts = await chat.locator(".msg:not(.greeting) .text").all_inner_texts()
        assert texts == ["Hi! My order #4417 hasn't arrived yet. Can you check?",
                         "Hi Ana, I'm checking with the courier now — one moment.",
                         "Thanks! I need them before Friday.",
                         "We'll reship today by express — they'll be with you Thursday."]
        # What the customer's own API answers agrees: every public message, never the note.
        r = await h.client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=agent.headers)
        assert [(m["private"], m["content"][:20]) for m in r.json()["items"]] == [
            (False, "Hi! My order #4417 h"), (False, "Hi Ana, I'm checking"), (True, "Courier says the par"),
            (False, "Thanks! I need them "), (False, "We'll reship today b")]
        assert desk_errors.errors == [] and site_errors.errors == []
        assert desk_errors.dialogs == [] and site_errors.dialogs == []


async def test_an_email_customer_and_a_chat_customer_become_one_profile(h: Harness, live, host: HostSite) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme")
    mail_inbox = await make_email_inbox(h, ctx)
    widget = await make_widget(h, ctx)
    email_conversation = await upload_mail(h, ctx, mail_inbox, mail(
        "ana@example.org", "Ana Lima", "Sizes for the trail runners", "Do the trail runners come in 38?"))
    host.embed(f"{live.url}/widget/{widget['public_key']}.js")
    async with browser() as b:
        desk = await new_page(b)
        errors = ConsoleErrors(desk)
        await sign_in(desk, live.url, ctx.admin.email, PASSWORD, then="/app?view=all")
        site = await new_page(b, 1000, 760)
        await site.goto(host.url)
        await site.locator("#swarmdesk-chat button.launcher").click()
        chat = site.frame_locator("#swarmdesk-chat iframe")
        await chat.locator("input[name=name]").fill("Ana Lima")
        await chat.locator("input[name=email]").fill("ana@example.org")
        await chat.get_by_role("button", name="Start chat").click()
        await chat.get_by_label("Message").fill("Hi, I emailed about sizes — any news?")
        await chat.get_by_label("Message").press("Enter")
        await desk.locator(".conversation-row", has_text="any news").wait_for()
        await h.run_jobs()  # the merge-suggestion job

        await desk.locator(".conversation-row", has_text="any news").locator("a.open").click()
        sidebar = desk.locator("#sidebar")
        await sidebar.get_by_text("Possibly the same person").wait_for()
        assert await sidebar.locator("#open-elsewhere a").count() == 0
        await sidebar.get_by_role("button", name="Merge the two profiles").click()
        # One profile: the email address (verified by the mail's authentication) and the chat
        # handle, and the email conversation listed beside this one.
        await sidebar.locator("#open-elsewhere a", has_text="Sizes for the trail runners").wait_for()
        identities = await sidebar.locator("#identities li").all_inner_texts()
        assert any("ana@example.org" in i and "verified" in i for i in identities), identities
        assert await sidebar.get_by_text("Possibly the same person").count() == 0
        await desk.screenshot(path=str(SCREENSHOTS / "one-profile.png"))
        r = await h.client.get(f"/api/v1/conversations/{email_conversation}", headers=ctx.admin.headers)
        chat_id = int(desk.url.rsplit("/", 1)[1])
        r2 = await h.client.get(f"/api/v1/conversations/{chat_id}", headers=ctx.admin.headers)
        assert r.json()["contact"]["id"] == r2.json()["contact"]["id"]
        assert errors.errors == [] and errors.dialogs == []


async def test_markup_from_every_intake_never_runs(h: Harness, live, host: HostSite) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme")
    mail_inbox = await make_email_inbox(h, ctx)
    api_inbox = await h.make_api_inbox(ctx)
    widget = await make_widget(h, ctx)
    # Email: the sender's name, the subject, the HTML body and an attachment's name.
    await upload_mail(h, ctx, mail_inbox, mail(
        "eve@example.org", f"Eve {XSS}", f"Refund {XSS}", f"Text part {XSS}",
        html=f"<p>HTML part</p>{XSS}{XSS_SCRIPT}<a href=\"javascript:window.__pwned=3\">click</a>",
        attachment=(f"invoice{XSS}.png", PNG)))
    # The API channel: name, text, HTML and an attachment's name.
    payload = inbound_payload(content=f"API text {XSS}", source_id="eve-api",
                              content_html=f"<b>API html</b>{XSS}{XSS_SCRIPT}",
                              attachments=[{"filename": f"{XSS}.png", "content_type": "image/png",
                                            "data_base64": base64.b64encode(PNG).decode()}])
    payload["contact"]["name"] = f"Mallory {XSS}"
    r = await h.deliver(api_inbox, payload)
    assert r.status_code == 200, r.text
    api_conversation = r.json()["conversation_id"]
    # Staff-side text too: a note and a note about the customer.
    r = await h.client.post(f"/api/v1/conversations/{api_conversation}/messages", headers=ctx.admin.headers,
                            json={"content": f"Note {XSS}", "private": True})
    assert r.status_code == 201, r.text
    host.embed(f"{live.url}/widget/{widget['public_key']}.js")
    async with browser() as b:
        desk = await new_page(b)
        errors = ConsoleErrors(desk)
        await sign_in(desk, live.url, ctx.admin.email, PASSWORD, then="/app?view=all")
        # Web chat: the pre-chat name, a message and an attachment's name, while the inbox is open.
        site = await new_page(b, 1000, 760)
        await site.goto(host.url)
        await site.locator("#swarmdesk-chat button.launcher").click()
        chat = site.frame_locator("#swarmdesk-chat iframe")
        await chat.locator("input[name=name]").fill(f"Trudy {XSS}")
        await chat.get_by_role("button", name="Start chat").click()
        await chat.get_by_label("Message").fill(f"Chat {XSS}")
        await chat.get_by_label("Attach a file").set_input_files(
            files=[{"name": f"{XSS}.png", "mimeType": "image/png", "buffer": PNG}])
        await chat.get_by_role("button", name="Send").click()
        await desk.locator(".conversation-row", has_text="Trudy").wait_for()
        assert await desk.locator(".conversation-row").count() == 3
        rows = await desk.locator("#conversation-list").inner_text()
        # (The mail's display name loses its inner quotes to RFC 5322 parsing; the markup stays text.)
        for text in ("Eve <img src=x onerror=", "Refund " + XSS, "Mallory " + XSS, "Trudy " + XSS):
            assert text in rows, text
        ids = [int(i) for i in await desk.locator(".conversation-row").evaluate_all("rows => rows.map(r => r.dataset.id)")]
        for conversation_id in ids:
            r = await h.client.get(f"/api/v1/conversations/{conversation_id}", headers=ctx.admin.headers)
            contact_id = r.json()["contact"]["id"]
            r = await h.client.post(f"/api/v1/contacts/{contact_id}/notes", headers=ctx.admin.headers,
                                    json={"body": f"VIP {XSS}"})
            assert r.status_code == 201, r.text
            await desk.goto(f"{live.url}/app/conversations/{conversation_id}")
            await desk.locator("#sidebar").get_by_text(f"VIP {XSS}").wait_for()
            for details in await desk.locator("details.original").all():
                await details.locator("summary").click()
            await desk.wait_for_timeout(200)
            assert await desk.evaluate("window.__pwned") is None
            assert await desk.locator("#timeline img, #sidebar img, #conversation-list img").count() == 0
        await desk.goto(f"{live.url}/app?view=all")
        await desk.locator("#bell").click()
        await desk.wait_for_timeout(300)
        assert await desk.evaluate("window.__pwned") is None
        for frame in desk.frames:
            assert await frame.evaluate("() => window.__pwned === undefined ? null : window.__pwned") is None
        assert errors.dialogs == []
        assert [e for e in errors.errors if "Content Security Policy" in e] == []
        assert errors.errors == [], errors.errors


async def test_collision_mentions_canned_responses_bulk_and_shortcuts(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme")
    support = await h.make_team(ctx, "Support")
    maya = await h.make_user(ctx, "maya", Role.agent, teams=(support,))
    omar = await h.make_user(ctx, "omar", Role.agent, teams=(support,))
    inbox = await h.make_api_inbox(ctx)
    ids = []
    for n, text in enumerate(("Can I change the delivery address?", "The zip on my jacket broke", "Invoice please")):
        payload = inbound_payload(content=text, source_id=f"c{n}")
        payload["contact"]["name"] = ["Ana Lima", "Bo Chen", "Cy Diaz"][n]
        r = await h.deliver(inbox, payload)
        assert r.status_code == 200, r.text
        ids.append(r.json()["conversation_id"])
    r = await h.client.post("/api/v1/canned-responses", headers=ctx.admin.headers, json={
        "short_code": "address", "title": "Change of address",
        "body": "Hi {{contact.name}}, I've updated the delivery address for you. — {{agent.name}}"})
    assert r.status_code == 201, r.text
    first = ids[0]
    async with browser() as b:
        a = await new_page(b)
        a_errors = ConsoleErrors(a)
        await sign_in(a, live.url, maya.email, PASSWORD, then=f"/app/conversations/{first}")
        # Omar allowed desktop notifications; his tab will be in the background when one arrives.
        o_context = await b.new_context(viewport={"width": 1280, "height": 800})
        await o_context.grant_permissions(["notifications"], origin=live.url)
        await o_context.add_init_script(DESKTOP_NOTIFICATIONS)
        o = await o_context.new_page()
        o.set_default_timeout(10_000)
        o_errors = ConsoleErrors(o)
        await sign_in(o, live.url, omar.email, PASSWORD, then=f"/app/conversations/{first}")
        # Collision: each sees the other open the conversation, and what the other is typing.
        await a.locator("#presence", has_text="Omar is viewing").wait_for()
        await o.locator("#presence", has_text="Maya is viewing").wait_for()
        await o.get_by_role("tab", name="Internal note").click()
        await o.get_by_role("textbox", name="Message").press_sequentially("Checking the")
        await a.locator("#presence", has_text="Omar is typing a note").wait_for()

        # A canned response: "/" lists them, Enter inserts it with the placeholders filled.
        await a.get_by_role("textbox", name="Message").press_sequentially("/addr")
        await a.locator("#suggest li", has_text="/address").wait_for()
        await a.get_by_role("textbox", name="Message").press("Enter")
        # (Not wait_for_function: its polling evaluates a string, which the page's CSP refuses.)
        await expect(a.locator("#composer-text")).to_have_value(re.compile("updated the delivery"))
        assert await a.locator("#composer-text").input_value() == \
            "Hi Ana Lima, I've updated the delivery address for you. — Maya"
        await a.locator("#attach").set_input_files(
            files=[{"name": "new-label.png", "mimeType": "image/png", "buffer": PNG}])
        await a.get_by_role("textbox", name="Message").press("Control+Enter")
        sent = a.locator(".msg.outgoing", has_text="updated the delivery address")
        await sent.wait_for()
        await sent.get_by_role("link", name="new-label.png").wait_for()
        # A tag from the conversation header.
        await a.get_by_label("Add a tag").fill("address-change")
        await a.get_by_label("Add a tag").press("Enter")
        await a.locator("#tags .badge", has_text="#address-change").wait_for()
        r = await h.client.get(f"/api/v1/conversations/{first}/messages", headers=maya.headers)
        reply = r.json()["items"][-1]
        assert [(x["filename"], x["size"]) for x in reply["attachments"]] == [("new-label.png", len(PNG))]
        assert (await h.client.get(f"/api/v1/conversations/{first}", headers=maya.headers)).json()["tags"] == \
            ["address-change"]
        await o.evaluate("window.__hidden = true")

        # @mention in a note: Omar gets a live notification in the bell and the notification centre.
        await a.get_by_role("tab", name="Internal note").click()
        box = a.get_by_role("textbox", name="Message")
        await box.press_sequentially("@Om")
        await a.locator("#suggest li", has_text="Omar").wait_for()
        await box.press("Enter")
        await box.press_sequentially("can you confirm the new address with the courier?")
        await a.get_by_role("button", name="Add note").click()
        await a.locator(".msg.note", has_text="confirm the new address").wait_for()
        await o.locator("#bell-count", has_text="1").wait_for()
        await o.locator("#bell").click()
        await o.locator(".notification", has_text="Maya mentioned you").wait_for()
        r = await h.client.get("/api/v1/notifications", headers=omar.headers)
        assert [(n["kind"], n["conversation_id"]) for n in r.json()["items"]] == [("mentioned", first)]
        shown = await o.evaluate("window.__desktop")
        assert shown == [{"title": "Maya mentioned you", "body": "@Omar can you confirm the new address with the courier?",
                          "tag": f"conversation-{first}"}], shown
        await o.evaluate("window.__hidden = false")

        # A macro: one click sets the priority and a tag.
        r = await h.client.post("/api/v1/macros", headers=ctx.admin.headers, json={
            "name": "Escalate to logistics", "actions": [{"type": "set_priority", "priority": "high"},
                                                         {"type": "add_tags", "tags": ["logistics"]}]})
        assert r.status_code == 201, r.text
        await a.reload()
        await a.get_by_label("Macro").select_option(label="Escalate to logistics")
        await a.locator("#priority").filter(has=a.locator("option:checked", has_text="high")).wait_for()
        await a.locator("#tags .badge", has_text="#logistics").wait_for()
        r = await h.client.get(f"/api/v1/conversations/{first}", headers=maya.headers)
        assert (r.json()["priority"], sorted(r.json()["tags"])) == ("high", ["address-change", "logistics"])

        # Keyboard: "?" shows the shortcuts, "a" assigns to me, "e" resolves.
        # Focus out of the macro picker; the shortcuts work with focus left on the dialog's checkbox.
        await a.evaluate("document.activeElement && document.activeElement.blur()")
        await a.keyboard.press("?")
        await a.get_by_role("dialog", name="Keyboard shortcuts").wait_for()
        await a.keyboard.press("Escape")
        await a.get_by_role("dialog", name="Keyboard shortcuts").wait_for(state="hidden")
        await a.keyboard.press("a")
        await a.locator("#assignee").filter(has=a.locator("option:checked", has_text="Maya")).wait_for()
        await a.keyboard.press("e")
        await o.locator("#status").filter(has=o.locator("option:checked", has_text="resolved")).wait_for()
        r = await h.client.get(f"/api/v1/conversations/{first}", headers=maya.headers)
        assert (r.json()["assignee_id"], r.json()["status"]) == (maya.user_id, "resolved")

        # Bulk: select two rows in the inbox, assign them to me and tag them.
        await a.goto(f"{live.url}/app?view=all")
        for cid in ids[1:]:
            await a.locator(f'.conversation-row[data-id="{cid}"] input.select').check()
        await a.locator("#bulk-count", has_text="2").wait_for()
        await a.locator("#bulk-assignee").select_option("me")
        await a.locator("#bulk-tag").fill("warranty")
        await a.get_by_role("button", name="Apply", exact=True).last.click()
        await a.locator('[data-count="mine"]', has_text="2").wait_for()
        for cid in ids[1:]:
            r = await h.client.get(f"/api/v1/conversations/{cid}", headers=maya.headers)
            assert (r.json()["assignee_id"], r.json()["tags"]) == (maya.user_id, ["warranty"])
        assert a_errors.errors == [] and o_errors.errors == []


# Records what the page shows as desktop notifications, and lets a test put the tab in the
# background (document.hidden), as the browser does for a tab that is not in front.
DESKTOP_NOTIFICATIONS = """
window.__desktop = [];
window.__hidden = false;
Object.defineProperty(Document.prototype, "hidden", { get() { return window.__hidden === true; } });
const Real = window.Notification;
class Recorded extends Real {
  constructor(title, options = {}) {
    super(title, options);
    window.__desktop.push({ title, body: options.body, tag: options.tag });
  }
}
Object.defineProperty(Recorded, "permission", { get: () => Real.permission });
Recorded.requestPermission = (...args) => Real.requestPermission(...args);
window.Notification = Recorded;
"""

CONTRAST = """
(selectors) => {
  function rgb(value) {
    const m = value.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return { r, g, b, a };
  }
  function lum({ r, g, b }) {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  }
  function background(el) {
    for (let node = el; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return { r: 255, g: 255, b: 255 };
  }
  const out = [];
  for (const selector of selectors) {
    for (const el of document.querySelectorAll(selector)) {
      if (!el.offsetParent && getComputedStyle(el).position !== "fixed") continue;
      const fg = rgb(getComputedStyle(el).color), bg = background(el);
      const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      out.push([selector, Math.round(((hi + 0.05) / (lo + 0.05)) * 100) / 100]);
    }
  }
  return out;
}
"""
UNLABELLED = """
() => Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea, button"))
  .filter((el) => el.offsetParent !== null)
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !(el.textContent || "").trim()
                  && !el.getAttribute("aria-labelledby") && !el.getAttribute("title"))
  .map((el) => el.outerHTML.slice(0, 120))
"""


async def test_readable_labelled_and_usable_on_a_phone_in_light_and_dark(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme")
    inbox = await h.make_api_inbox(ctx)
    payload = inbound_payload(content="My parcel arrived damaged; can I get a replacement?", source_id="c1")
    r = await h.deliver(inbox, payload)
    cid = r.json()["conversation_id"]
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=ctx.admin.headers,
                            json={"content": "Photos are in the ticket", "private": True})
    assert r.status_code == 201
    selectors = ["body", ".conversation-row .who a", ".conversation-row .subject", ".conversation-row .meta",
                 ".badge", ".btn", ".btn.primary", ".hint", ".muted", ".sidenav a", ".msg .body", ".msg .byline",
                 ".msg.note .body", ".sidebar dt", ".sidebar dd", ".sidebar h2", ".placeholder", ".activity",
                 "select", "textarea"]
    async with browser() as b:
        for scheme in ("light", "dark"):
            for width, height in ((1280, 800), (375, 740)):
                context = await b.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
                page = await context.new_page()
                page.set_default_timeout(10_000)
                errors = ConsoleErrors(page)
                await sign_in(page, live.url, ctx.admin.email, PASSWORD, then="/app?view=all")
                for path in ("/app?view=all", f"/app/conversations/{cid}"):
                    await page.goto(live.url + path)
                    await page.wait_for_load_state("networkidle")
                    measured = await page.evaluate(CONTRAST, selectors)
                    assert len({s for s, _ in measured}) >= 8, measured  # the check looked at the page
                    low = [(s, ratio) for s, ratio in measured if ratio < 4.5]
                    assert low == [], (scheme, width, path, low)
                    assert await page.evaluate(UNLABELLED) == [], (scheme, width, path)
                    # Nothing wider than the screen: no sideways scrolling on a phone.
                    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                    assert overflow <= 0, (scheme, width, path, overflow)
                    html = await page.content()
                    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), "inline event handler"
                    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
                if width == 375 and scheme == "light":
                    await page.screenshot(path=str(SCREENSHOTS / "conversation-phone.png"), full_page=False)
                if width == 1280 and scheme == "dark":
                    await page.screenshot(path=str(SCREENSHOTS / "conversation-dark.png"))
                assert errors.errors == [] and errors.dialogs == [], errors.errors
                await context.close()
