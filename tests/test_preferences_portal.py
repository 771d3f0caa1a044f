"""Contact preferences in a real browser (Debian's chromium through Playwright): a customer signs in to
the portal with the link from the real mail, sets quiet hours in her time zone and "never SMS";
then an agent's proactive message at 22:30 her time is deferred to 08:00 with the explanation and
sent then by a delayed job, and one to SMS goes out by email instead."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import Page

from swarmdesk.core.clock import clock
from tests.browser import ConsoleErrors, chromium_page
from tests.channels.test_twilio_common import SMS_NUMBER, FakeTwilio, twilio_config
from tests.conftest import LiveServer
from tests.mailservers import SmtpSink
from tests.support import Harness
from tests.test_portal import make_email_inbox, slug_of, write_in

# The portal browser tests' live server, mail sink and settings (the mailed links point at the server).
from tests.test_portal_browser import csp_errors, live, port, settings, sign_in_by_mail, smtp  # noqa: F401

BERLIN = ZoneInfo("Europe/Berlin")


def next_berlin(after: datetime, wall: time) -> datetime:
    """The first time after ``after`` that Berlin's clocks show ``wall``."""
    local = after.astimezone(BERLIN)
    candidate = datetime.combine(local.date(), wall, tzinfo=BERLIN)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), wall, tzinfo=BERLIN)
    return candidate.astimezone(UTC)


def bodies(smtp: SmtpSink) -> list[str]:
    return [m.get_payload(decode=True).decode() for m in smtp.messages()]


async def preferences_form(page: Page) -> dict[str, Any]:
    return await page.evaluate("""() => ({
        preferred: document.querySelector("input[name=preferred]:checked").value,
        never: Array.from(document.querySelectorAll("input[name=never]:checked")).map((b) => b.value),
        quiet: document.querySelector("#quiet-on").checked,
        start: document.querySelector("#quiet-start").value, end: document.querySelector("#quiet-end").value,
        zone: document.querySelector("#quiet-zone").value, cap: document.querySelector("#cap-on").checked,
    })""")


async def test_customer_sets_quiet_hours_and_never_sms_and_the_agents_outreach_obeys(
        h: Harness, live: LiveServer, smtp: SmtpSink) -> None:
    ctx = await h.make_account("Northwind Outfitters")
    agent = await h.make_user(ctx, "maya")
    email = await make_email_inbox(h, ctx, smtp)
    async with FakeTwilio().running() as twilio:
        r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers, json={
            "name": "SMS", "channel_kind": "twilio_sms",
            "config": twilio_config(phone_number=SMS_NUMBER, api_base_url=twilio.url)})
        assert r.status_code == 201, r.text
        sms = r.json()["id"]
        slug = await slug_of(h, ctx)
        cid = await write_in(h, ctx, email, "ana.lima@example.org", "Ana Lima", "Boots", "Do you have size 39?")
        contact_id = (await h.client.get(f"/api/v1/conversations/{cid}", headers=agent.headers)).json()["contact"]["id"]
        r = await h.client.patch(f"/api/v1/contacts/{contact_id}", headers=agent.headers, json={"phone": "+14155550123"})
        assert r.status_code == 200, r.text
        await h.run_jobs()
        smtp.received.clear()

        async with chromium_page() as page:
            console = ConsoleErrors(page)
            await page.set_viewport_size({"width": 1000, "height": 900})
            await sign_in_by_mail(h, page, live, smtp, slug, "ana.lima@example.org")
            smtp.received.clear()

            # The portal's navigation leads to the preferences.
            await page.get_by_role("navigation", name="Portal").get_by_role("link", name="Contact preferences").click()
            await page.get_by_role("heading", name="Contact preferences").wait_for()
            assert await page.get_by_role("link", name="Contact preferences").get_attribute("aria-current") == "page"
            assert await preferences_form(page) == {"preferred": "", "never": [], "quiet": False, "start": "21:00",
                                                    "end": "08:00", "zone": "UTC", "cap": False}
            # Sections that are off cannot be edited.
            assert await page.get_by_label("From").is_disabled()
            assert await page.get_by_label("At most (messages)").is_disabled()

            # Preferring and forbidding SMS at once is refused in the page, and nothing is saved.
            await page.get_by_role("radio", name="SMS").check()
            await page.get_by_role("group", name="Never contact me by").get_by_label("SMS").check()
            await page.get_by_role("button", name="Save preferences").click()
            await page.get_by_text("SMS cannot be both your preferred channel and one never to use.").wait_for()
            r = await h.client.get(f"/api/v1/contacts/{contact_id}/preferences", headers=agent.headers)
            assert r.json()["updated_at"] is None

            # Quiet hours 21:00-08:00 in Berlin, never SMS, no preference.
            await page.get_by_role("radio", name="No preference").check()
            await page.get_by_label("Do not contact me during quiet hours").check()
            assert not await page.get_by_label("From").is_disabled()
            await page.get_by_label("From").fill("21:00")
            await page.get_by_label("Until").fill("08:00")
            await page.get_by_label("Time zone").select_option("Europe/Berlin")
            await page.get_by_role("button", name="Save preferences").click()
            await page.get_by_role("status").get_by_text("Your preferences are saved.").wait_for()
            assert await page.locator("#prefs-error").is_hidden()

            # Saved for good: the page shows them after a reload, and agents read them.
            await page.reload()
            await page.get_by_role("heading", name="Contact preferences").wait_for()
            assert await preferences_form(page) == {"preferred": "", "never": ["twilio_sms"], "quiet": True,
                                                    "start": "21:00", "end": "08:00", "zone": "Europe/Berlin",
                                                    "cap": False}
            r = await h.client.get(f"/api/v1/contacts/{contact_id}/preferences", headers=agent.headers)
            assert r.json()["summary"] == ["Never by SMS.", "Quiet hours 21:00–08:00 (Europe/Berlin)."]

            # 22:30 in Berlin: the agent's proactive message is held back until 08:00.
            evening = next_berlin(datetime.now(UTC), time(22, 30))
            morning = next_berlin(evening, time(8))
            clock.freeze(evening)
            r = await h.client.post("/api/v1/conversations", headers=agent.headers, json={
                "inbox_id": email, "contact_id": contact_id, "subject": "Size 39 is back",
                "content": "Good news, Ana: the Ridgeline boots are back in size 39."})
            assert r.status_code == 201, r.text
            deferred = r.json()
            assert deferred["first_message"]["outcome"] == "defer"
            assert deferred["first_message"]["explanation"] == (
                "Ana's quiet hours are 21:00–08:00 (Europe/Berlin): deferred to 08:00")
            assert datetime.fromisoformat(deferred["first_message"]["send_at"]) == morning
            r = await h.client.get(f"/api/v1/conversations/{deferred['id']}/activity", headers=agent.headers)
            assert [a["data"]["explanation"] for a in r.json()["items"] if a["verb"] == "send_deferred"] == [
                deferred["first_message"]["explanation"]]
            await h.run_jobs()
            assert bodies(smtp) == []

            # 08:00: the delayed job sends it, once.
            clock.freeze(morning)
            await h.run_jobs()
            clock.advance(timedelta(minutes=5))
            await h.run_jobs()
            assert [b for b in bodies(smtp) if "back in size 39" in b] != []
            assert len(bodies(smtp)) == 1

            # 10:00: a message the agent starts on SMS goes by email, and says why.
            clock.freeze(morning + timedelta(hours=2))
            r = await h.client.post("/api/v1/conversations", headers=agent.headers, json={
                "inbox_id": sms, "contact_id": contact_id, "subject": "Pickup",
                "content": "Your boots can be picked up at our Berlin store."})
            assert r.status_code == 201, r.text
            moved = r.json()
            assert (moved["first_message"]["outcome"], moved["first_message"]["explanation"]) == (
                "move", "Ana asked not to be contacted by SMS: moved to Email")
            assert (moved["channel"], moved["first_message"]["channel_kind"]) == ("email", "email")
            await h.run_jobs()
            assert twilio.requests == []
            assert len(bodies(smtp)) == 2 and "picked up at our Berlin store" in bodies(smtp)[-1]

            # Ana finds both messages in the portal.
            clock.reset()
            await page.get_by_role("link", name="My conversations").click()
            await page.get_by_role("link", name="Size 39 is back").wait_for()
            await page.get_by_role("link", name="Pickup").click()
            await page.locator(".msg.theirs .body", has_text="picked up at our Berlin store").wait_for()

            # On a phone, the form fits the screen.
            await page.goto(f"{live.url}/portal/{slug}/preferences")
            await page.set_viewport_size({"width": 390, "height": 844})
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        assert console.dialogs == []
        assert csp_errors(console) == [] and console.errors == []
