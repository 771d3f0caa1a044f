"""The admin area of the workspace: who may open it, what each section renders (and never renders:
channel secrets), and an admin setting up an inbox and a user in a real browser."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from swarmdesk.accounts.models import Role
from swarmdesk.channels import service as channels_service
from swarmdesk.channels.models import Inbox
from swarmdesk.channels.service import public_config
from swarmdesk.jobs import service as jobs_service
from swarmdesk.jobs.models import JobStatus
from swarmdesk.web.admin import SECTIONS, SUPERVISOR_SECTIONS
from tests.browser import ConsoleErrors, chromium_page, screenshots_dir, sign_in
from tests.support import PASSWORD, AccountCtx, Harness

SCREENSHOTS = screenshots_dir()
HOSTILE = "<img src=x onerror=alert(1)>"
SECTION_PATHS = ["/app/admin"] + [f"/app/admin/{key}" for key, _ in SECTIONS]
# Form controls a screen reader could not name: no <label>, no aria-label.
UNLABELLED = """Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea"))
  .filter((e) => !e.labels.length && !e.getAttribute("aria-label") && !e.getAttribute("aria-labelledby"))
  .map((e) => e.outerHTML)"""

TWILIO_TOKEN = "twilio-auth-" + "7" * 20
TELEGRAM_TOKEN = "123456789:AAF" + "x9" * 16
IMAP_PASSWORD = "imap-pass-Quokka-4411"
SMTP_PASSWORD = "smtp-pass-Wombat-9922"
META_ACCESS = "EAAG-meta-access-" + "k" * 24
META_SECRET = "meta-app-secret-0f0f0f0f"
META_VERIFY = "verify-me-please-123"


async def session_for(client: httpx.AsyncClient, email: str) -> None:
    client.cookies.clear()
    r = await client.post("/login", data={"email": email, "password": PASSWORD, "next": "/app"},
                          headers={"origin": "http://testserver"})
    assert r.status_code == 303, r.text
    assert "sd_session" in client.cookies


async def make_inbox(h: Harness, ctx: AccountCtx, name: str, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                            json={"name": name, "channel_kind": kind, "config": config})
    assert r.status_code == 201, r.text
    return r.json()


def assert_page(r: httpx.Response) -> None:
    """A page as the foundation promises it: strict CSP, no inline script, handler or style."""
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), "an inline event handler"
    assert not re.search(r"<[^>]+\sstyle\s*=", html), "a style attribute"


async def test_the_admin_area_needs_a_session_and_the_admin_role(h: Harness, browser_client: httpx.AsyncClient) -> None:
    ctx = await h.make_account("Acme")
    for path in SECTION_PATHS:
        r = await browser_client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"] == "/login?next=" + path.replace("/", "%2F")

    for role in (Role.agent, Role.supervisor, Role.expert):
        user = await h.make_user(ctx, f"{role}-person", role)
        await session_for(browser_client, user.email)
        for path in SECTION_PATHS:
            r = await browser_client.get(path)
            if role == Role.supervisor and path.rsplit("/", 1)[1] in SUPERVISOR_SECTIONS:
                # Supervisors set up routing and SLAs (as the API lets them), and see only those sections.
                assert r.status_code == 200, path
                assert_page(r)
                assert [label for key, label in SECTIONS if f'href="/app/admin/{key}"' in r.text] == [
                    "Skills & capacity", "Routing queues", "Business hours & SLAs"]
                continue
            if role == Role.supervisor and path == "/app/admin":
                assert (r.status_code, r.headers["location"]) == (303, "/app/admin/skills")
                continue
            assert r.status_code == 403, (role, path)
            assert_page(r)
            assert "Admins only" in r.text and f"<strong>{role}</strong>" in r.text
            # The top bar offers the admin area to admins and (for their sections) supervisors only.
            assert ('href="/app/admin"' in r.text) == (role == Role.supervisor)
        # The API agrees: the gate is the role, not the page.
        r = await browser_client.get("/api/v1/inboxes")
        assert r.status_code == 403

    # An API token is for the API: a page answers it like no session at all.
    r = await h.client.get("/app/admin/users", headers=ctx.admin.headers)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_every_section_renders_its_lists(h: Harness, browser_client: httpx.AsyncClient) -> None:
    ctx = await h.make_account("Acme")
    team_id = await h.make_team(ctx, "Billing")
    agent = await h.make_user(ctx, "agent", Role.agent, teams=(team_id,))
    await make_inbox(h, ctx, "Shop SMS", "twilio_sms", {"account_sid": "AC" + "a" * 32, "auth_token": TWILIO_TOKEN,
                                                        "phone_number": "+15550100"})
    r = await h.client.post("/api/v1/webhooks", headers=ctx.admin.headers,
                            json={"url": "https://crm.example.com/hook", "event_types": ["message.created"]})
    assert r.status_code == 201, r.text
    async with h.runtime.uow() as uow:
        job = jobs_service.enqueue(uow.session, "webhooks.deliver", {"delivery_id": 1}, account_id=ctx.account_id)
        await uow.session.flush()
        job.status, job.attempts, job.last_error = JobStatus.dead, 8, "ConnectError: connection refused"
        await uow.commit()
    await session_for(browser_client, ctx.admin.email)

    expected = {
        "/app/admin": ["Shop SMS", "SMS (Twilio)", "/webhook", 'aria-current="page">Inboxes'],
        "/app/admin/inboxes": ["Shop SMS", "+15550100"],
        "/app/admin/users": ["Acme Admin", agent.email, "Billing", "Deactivate", 'value="expert"'],
        "/app/admin/teams": ["Billing", "Agent", "Add member"],
        "/app/admin/tokens": ["test", "conversations:read", "Revoke"],
        "/app/admin/webhooks": ["https://crm.example.com/hook", "message.created", "Delivery log"],
        "/app/admin/account": ["Acme", "join_open", "within_hours", "Outbound allowlist"],
        "/app/admin/jobs": ["webhooks.deliver", "connection refused", "Retry", "8 / 8"],
        "/app/admin/skills": ["New skill", "Agents", "Acme Admin", "Shop SMS"],
        "/app/admin/queues": ["New queue", "Relaxation steps", "Round-robin"],
        "/app/admin/sla": ["Business calendars", "New calendar", "Europe/Berlin"],
        "/app/admin/automation": ["New rule", "Rules, in the order they run"],
        "/app/admin/macros": ["New macro", "No macros yet."],
    }
    for path in SECTION_PATHS:
        r = await browser_client.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert_page(r)
        assert r.headers["cache-control"] == "no-store"
        assert '<aside class="sidenav"' in r.text
        for _, label in SECTIONS:
            assert f">{html.escape(label)}</a>" in r.text
        for text in expected[path]:
            assert text in r.text, (path, text)
    # A page's cursor that is not an id is the first page, not an error.
    r = await browser_client.get("/app/admin/jobs?cursor=nope")
    assert r.status_code == 200 and "webhooks.deliver" in r.text


async def test_channel_secrets_never_reach_an_admin_page(h: Harness, browser_client: httpx.AsyncClient) -> None:
    ctx = await h.make_account("Acme")
    await h.allowlist_loopback(ctx)
    secrets = [TWILIO_TOKEN, TELEGRAM_TOKEN, IMAP_PASSWORD, SMTP_PASSWORD, META_ACCESS, META_SECRET, META_VERIFY]
    await make_inbox(h, ctx, "SMS", "twilio_sms", {"account_sid": "AC" + "b" * 32, "auth_token": TWILIO_TOKEN,
                                                  "phone_number": "+15550123"})
    telegram = await make_inbox(h, ctx, "Bot", "telegram", {"bot_token": TELEGRAM_TOKEN})
    email = await make_inbox(h, ctx, "Mail", "email", {
        "address": "help@acme.example", "display_name": "Acme Help",
        "imap": {"host": "127.0.0.1", "username": "help", "password": IMAP_PASSWORD},
        "smtp": {"host": "127.0.0.1", "username": "help", "password": SMTP_PASSWORD}})
    await make_inbox(h, ctx, "WhatsApp", "whatsapp", {"access_token": META_ACCESS, "app_secret": META_SECRET,
                                                      "verify_token": META_VERIFY, "phone_number_id": "1234567"})
    api = await make_inbox(h, ctx, "App", "api", {})
    chat = await make_inbox(h, ctx, "Chat", "webchat", {"greeting": "Hello there"})
    secrets += [telegram["generated_secrets"]["secret_token"], api["generated_secrets"]["secret"],
                chat["generated_secrets"]["identity_secret"]]
    r = await h.client.post("/api/v1/webhooks", headers=ctx.admin.headers,
                            json={"url": "https://crm.example.com/hook", "event_types": ["message.created"]})
    secrets.append(r.json()["secret"])
    r = await h.client.post("/api/v1/api-tokens", headers=ctx.admin.headers, json={"name": "ci", "scopes": ["admin"]})
    secrets.append(r.json()["token"])

    await session_for(browser_client, ctx.admin.email)
    pages = {path: (await browser_client.get(path)).text for path in SECTION_PATHS}
    for path, text in pages.items():
        for secret in secrets:
            assert secret not in text, (path, secret[:12])
            assert secret.replace("/", "\\/") not in text and secret.replace("+", "\\u002b") not in text
    inboxes = pages["/app/admin/inboxes"]
    # Non-secret settings are there to edit; the page knows which secrets are set, nested ones included.
    assert "help@acme.example" in inboxes and "Hello there" in inboxes and "1234567" in inboxes
    data = re.search(r'<script type="application/json" id="inbox-data">(.*?)</script>', inboxes, re.S).group(1)
    assert '"imap.password"' in data and '"smtp.password"' in data and '"auth_token"' in data
    assert f'src="{h.runtime.settings.base_url}/widget/{chat["public_key"]}.js"' in inboxes.replace("&#34;", '"')
    assert email["webhook_url"] not in inboxes  # email takes no webhook: the page says how mail arrives
    assert "IMAP polling" in inboxes


def test_public_config_drops_secrets_at_any_depth() -> None:
    from swarmdesk.channels.email.adapter import EmailChannelConfig

    config = EmailChannelConfig.model_validate({
        "address": "help@acme.example",
        "imap": {"host": "imap.acme.example", "username": "help", "password": IMAP_PASSWORD},
        "smtp": {"host": "smtp.acme.example", "password": None}})
    public, set_paths = public_config(config)
    assert set_paths == ["imap.password"]
    assert "password" not in public["imap"] and "password" not in public["smtp"]
    assert public["imap"]["host"] == "imap.acme.example" and public["imap"]["poll_seconds"] == 30
    assert IMAP_PASSWORD not in repr(public)


async def test_names_are_text_in_every_list(h: Harness, browser_client: httpx.AsyncClient) -> None:
    ctx = await h.make_account("Acme")
    team_id = await h.make_team(ctx, HOSTILE)
    r = await h.client.post("/api/v1/users", headers=ctx.admin.headers, json={
        "name": HOSTILE, "email": f"x-{uuid.uuid4().hex[:6]}@example.com", "role": "agent", "password": PASSWORD})
    user_id = r.json()["id"]
    await h.client.post(f"/api/v1/teams/{team_id}/members", headers=ctx.admin.headers, json={"user_id": user_id})
    await make_inbox(h, ctx, HOSTILE, "api", {})
    await session_for(browser_client, ctx.admin.email)
    for path in ("/app/admin/users", "/app/admin/teams", "/app/admin/inboxes"):
        html = (await browser_client.get(path)).text
        assert HOSTILE not in html, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path


# --- in the browser -------------------------------------------------------------------------------

async def stored_config(h: Harness, name: str) -> dict[str, Any]:
    async with h.runtime.uow() as uow:
        inbox = await uow.session.scalar(select(Inbox).where(Inbox.name == name))
        assert inbox is not None
        return channels_service.decrypt_config(inbox, h.runtime.secretbox).model_dump()


async def test_an_admin_sets_up_an_inbox_and_a_user_who_then_signs_in(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme")
    agent_email = f"bea-{uuid.uuid4().hex[:6]}@acme-shoes.com"
    account_sid = "AC" + "3f9c2b7e41d0a8c5" * 2
    auth_token = "9d2f71c4e8b05a36f1e7c2d9"
    await make_inbox(h, ctx, "Support mail", "email", {"address": "help@acme-shoes.com", "display_name": "Acme Shoes"})
    await make_inbox(h, ctx, "Website chat", "webchat", {"greeting": "Hi! Ask us anything about your order."})
    async with chromium_page() as page:
        await page.set_viewport_size({"width": 1200, "height": 800})
        errors = ConsoleErrors(page)
        failed_loads: list[str] = []  # where each "Failed to load resource" came from
        page.on("console", lambda m: failed_loads.append(m.location.get("url", ""))
                if m.type == "error" and m.text.startswith("Failed to load resource") else None)
        await sign_in(page, live.url, ctx.admin.email, PASSWORD, then="/app/admin/inboxes")
        await page.get_by_role("heading", name="Inboxes", exact=True).wait_for()

        # A new inbox: the form is generated from the SMS channel's config schema.
        await page.get_by_role("button", name="New inbox").click()
        editor = page.locator("#inbox-editor")
        await editor.get_by_label("Name").fill("Acme Shoes SMS")  # "Name *": the mark is aria-hidden
        await editor.get_by_label("Channel").select_option(label="SMS (Twilio)")
        sid = page.get_by_label("Account SID")
        await sid.wait_for()
        assert await page.get_by_label("Auth token").get_attribute("type") == "password"
        assert await page.get_by_label("API base URL").input_value() == "https://api.twilio.com/"  # the default
        assert await sid.get_attribute("required") is not None
        assert await page.get_by_text("Account SID (AC…), Twilio Console → Account Info").is_visible()  # description
        assert await page.evaluate(UNLABELLED) == []
        await sid.fill(account_sid)
        await page.get_by_label("Auth token").fill(auth_token)
        await page.get_by_label("Phone number").fill("+15550100")
        await page.evaluate("window.scrollTo(0, 0)")
        await page.get_by_label("Phone number").blur()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "admin-inbox-form.png"))
        await page.get_by_role("button", name="Create inbox").click()

        # Shown once: where to point Twilio.
        dialog = page.locator("#reveal-dialog")
        await dialog.get_by_text("Webhook URL", exact=True).wait_for()
        assert "/api/v1/inboxes/" in await dialog.locator("code").first.text_content()
        await dialog.get_by_role("button", name="Done, I stored it").click()
        row = page.locator("tbody tr", has_text="Acme Shoes SMS")
        await row.wait_for()
        assert "SMS (Twilio)" in await row.text_content()
        stored = await stored_config(h, "Acme Shoes SMS")
        assert (stored["account_sid"], stored["auth_token"], stored["phone_number"]) == \
            (account_sid, auth_token, "+15550100")
        assert auth_token not in await page.content()

        # Editing: the secret is write-only; it stays as it is unless typed.
        await row.get_by_role("button", name="Edit Acme Shoes SMS").click()
        token_field = page.get_by_label("Auth token")
        await token_field.wait_for()
        assert await token_field.input_value() == ""
        assert await page.locator("#inbox-editor .secret-state").first.text_content() == "set — leave empty to keep"
        assert await page.get_by_label("Account SID").input_value() == account_sid
        await page.get_by_label("Phone number").fill("+15550199")
        await page.get_by_role("button", name="Save changes").click()
        await page.locator("#inbox-editor").wait_for(state="hidden")
        stored = await stored_config(h, "Acme Shoes SMS")
        assert (stored["auth_token"], stored["phone_number"]) == (auth_token, "+15550199")

        # A wrong value: the API's problem detail shows next to the form, with the field.
        await page.get_by_role("button", name="Edit Acme Shoes SMS").click()
        await page.get_by_label("Account SID").fill("not-a-sid")
        await page.get_by_role("button", name="Save changes").click()
        problem = page.locator("#inbox-editor [data-error]")
        await problem.get_by_text("invalid twilio_sms channel config").wait_for()
        assert "account_sid" in await problem.text_content()
        assert await page.get_by_label("Account SID").get_attribute("aria-invalid") == "true"
        await page.get_by_role("button", name="Cancel").click()

        # A user with the agent role.
        await page.get_by_role("navigation", name="Admin").get_by_role("link", name="Users").click()
        await page.get_by_role("heading", name="Users", exact=True).wait_for()
        form = page.locator("#new-user-form")
        await form.get_by_label("Name").fill("Bea Agent")
        await form.get_by_label("Email").fill(agent_email)
        await form.get_by_label("Role").select_option("agent")
        await form.get_by_label("Initial password").fill(PASSWORD)
        await form.get_by_role("button", name="Create user").click()
        await page.locator("tbody tr", has_text=agent_email).wait_for()
        # The same email again: the API's 409 detail, next to the form.
        await form.get_by_label("Name").fill("Bea Again")
        await form.get_by_label("Email").fill(agent_email)
        await form.get_by_label("Initial password").fill(PASSWORD)
        await form.get_by_role("button", name="Create user").click()
        await form.locator("[data-error]").get_by_text("already exists").wait_for()

        # A hostile name for a team and a user is text: no dialog, nothing runs.
        await form.get_by_label("Name").fill(HOSTILE)
        await form.get_by_label("Email").fill(f"h-{uuid.uuid4().hex[:6]}@acme-shoes.com")
        await form.get_by_role("button", name="Create user").click()
        await page.locator("tbody .user-name", has_text=HOSTILE).wait_for()
        await page.get_by_role("link", name="Teams").click()
        team_form = page.locator("#new-team-form")
        await team_form.get_by_label("Name").fill(HOSTILE)
        await team_form.get_by_role("button", name="Create team").click()
        team = page.locator("section.team", has_text=HOSTILE)
        await team.wait_for()
        assert await team.locator("h2").text_content() == HOSTILE
        await team.get_by_label("Add member").select_option(label=f"Bea Agent ({agent_email})")
        await team.get_by_role("button", name="Add", exact=True).click()
        await team.locator(".members li", has_text="Bea Agent").wait_for()
        await page.reload()
        await page.locator("section.team", has_text=HOSTILE).wait_for()
        assert await page.locator("#admin-section img").count() == 0
        # Chrome logs every 4xx answer as a console error: only the two refusals provoked above may
        # be there; no CSP violation, no script error.
        assert errors.dialogs == []
        assert [e for e in errors.errors if not e.startswith("Failed to load resource")] == [], errors.errors
        assert sorted(re.sub(r"/\d+$", "/{id}", url.removeprefix(live.url)) for url in failed_loads) == \
            ["/api/v1/inboxes/{id}", "/api/v1/users"], failed_loads

        # The new agent signs in through the form and gets the workspace, but not the admin area.
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(f"{live.url}/login*")
        await sign_in(page, live.url, agent_email, PASSWORD, then="/app")
        await page.locator("body[data-page=inbox] #main h1").wait_for()  # the agent's inbox page
        assert await page.get_by_role("link", name="Admin").count() == 0
        response = await page.goto(f"{live.url}/app/admin/inboxes")
        assert response is not None and response.status == 403
        await page.get_by_role("heading", name="Admins only").wait_for()
        assert errors.dialogs == []
        assert [e for e in errors.errors if not e.startswith("Failed to load resource")] == [], errors.errors


async def test_tokens_webhooks_settings_and_failed_jobs_through_the_pages(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme")
    agent = await h.make_user(ctx, "agent", Role.agent)
    async with h.runtime.uow() as uow:
        job = jobs_service.enqueue(uow.session, "webhooks.deliver", {"delivery_id": 1}, account_id=ctx.account_id)
        await uow.session.flush()
        job.status, job.attempts, job.last_error = JobStatus.dead, 8, "ConnectError: connection refused"
        await uow.commit()
        job_id = job.id
    async with chromium_page() as page:
        errors = ConsoleErrors(page)
        await sign_in(page, live.url, ctx.admin.email, PASSWORD, then="/app/admin/tokens")

        # An API token with two scopes, shown once, and it works; then revoked after a confirmation.
        await page.locator("#new-token > summary").click()  # closed: the harness made a token already
        form = page.locator("#new-token-form")
        await form.get_by_label("Name").fill("CRM sync")
        await form.get_by_role("checkbox", name="contacts:read").uncheck()
        await form.get_by_role("checkbox", name="contacts:write").check()
        await form.get_by_role("button", name="Create token").click()
        dialog = page.locator("#reveal-dialog")
        token = (await dialog.locator("code").text_content()).strip()
        assert token.startswith("sdp_")
        await dialog.get_by_role("button", name="Done, I stored it").click()
        assert token not in await page.content()  # shown once
        row = page.locator("tbody tr", has_text="CRM sync")
        assert "contacts:write" in await row.text_content() and "contacts:read" not in await row.text_content()
        async with httpx.AsyncClient(base_url=live.url) as c:
            r = await c.get("/api/v1/conversations", headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 200
            await row.get_by_role("button", name="Revoke CRM sync").click()
            await page.locator("#confirm-dialog").get_by_role("button", name="Revoke").click()
            await row.get_by_text("Revoked", exact=True).first.wait_for()
            r = await c.get("/api/v1/conversations", headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 401

        # A webhook subscription: the signing secret once; edited to paused; its delivery log is there.
        await page.get_by_role("link", name="Webhooks").click()
        form = page.locator("#new-webhook-form")
        await form.get_by_label("URL").fill("https://crm.example.com/swarmdesk")
        await form.get_by_role("checkbox", name="contact.created").check()
        await form.get_by_role("button", name="Create subscription").click()
        secret = (await page.locator("#reveal-dialog code").text_content()).strip()
        assert secret.startswith("whsec_")
        await page.locator("#reveal-dialog").get_by_role("button", name="Done, I stored it").click()
        row = page.locator("tbody tr", has_text="https://crm.example.com/swarmdesk")
        await row.get_by_text("Edit").click()
        await row.get_by_label("Active").uncheck()
        await row.get_by_role("button", name="Save").click()
        await page.locator("tbody tr", has_text="https://crm.example.com/swarmdesk").get_by_text("Paused").wait_for()
        (sub,) = (await h.client.get("/api/v1/webhooks", headers=ctx.admin.headers)).json()
        assert (sub["is_active"], sub["event_types"]) == \
            (False, ["contact.created", "conversation.created", "message.created"])
        assert secret not in await page.content()

        # Account settings: the join policy and the allowlist, as PATCH /api/v1/account takes them.
        await page.get_by_role("link", name="Account settings").click()
        await page.get_by_label("Join a conversation active within some hours").check()
        await page.get_by_label("Hours", exact=True).fill("6")
        await page.get_by_label("Outbound allowlist").fill("crm.internal\n10.0.0.5:8443\n")
        await page.get_by_label("Time zone").select_option("Europe/Lisbon")
        await page.get_by_role("button", name="Save settings").click()
        await page.get_by_text("Settings saved").first.wait_for()
        account = (await h.client.get("/api/v1/account", headers=ctx.admin.headers)).json()
        assert account["settings"]["time_zone"] == "Europe/Lisbon"
        assert account["settings"]["conversation_join"] == {"mode": "within_hours", "hours": 6}
        assert account["settings"]["outbound_allowlist"] == ["crm.internal", "10.0.0.5:8443"]
        await page.get_by_label("Outbound allowlist").fill("not a host/")
        await page.get_by_role("button", name="Save settings").click()
        await page.locator("#account-form [data-error]").get_by_text("is not a bare host name").wait_for()

        # The dead job, retried.
        await page.get_by_role("link", name="Failed jobs").click()
        await page.get_by_role("button", name=f"Retry job webhooks.deliver #{job_id}").click()
        await page.get_by_text("No failed jobs").wait_for()
        r = await h.client.get("/api/v1/jobs?status=dead", headers=ctx.admin.headers)
        assert r.json()["items"] == []

        # A user deactivated after a confirmation (an in-page dialog, not window.confirm).
        await page.get_by_role("link", name="Users").click()
        await page.get_by_role("button", name="Deactivate Agent").click()
        await page.locator("#confirm-dialog").get_by_role("button", name="Deactivate").click()
        await page.locator("tbody tr", has_text=agent.email).get_by_text("Deactivated").wait_for()
        assert await page.evaluate("document.activeElement.id") == f"user-{agent.user_id}-active"  # focus kept
        assert (await h.client.get(f"/api/v1/users/{agent.user_id}", headers=ctx.admin.headers)).json()["is_active"] \
            is False
        assert errors.dialogs == []
        assert [e for e in errors.errors if not e.startswith("Failed to load resource")] == [], errors.errors

        # Every section: each control has a label, and nothing is wider than a phone.
        await page.set_viewport_size({"width": 375, "height": 740})
        for path in SECTION_PATHS:
            await page.goto(f"{live.url}{path}")
            for summary in await page.locator("#admin-section details > summary").all():
                await summary.click()  # open the create and edit forms too
            assert await page.evaluate(UNLABELLED) == [], path
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
