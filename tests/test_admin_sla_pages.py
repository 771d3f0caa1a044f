"""The admin page for business hours and SLA policies: what it lists (each calendar's week in one
line, whether it is open now in its zone, policies in the order they are tried), who may open it,
and an admin setting up a calendar and a policy in a real browser."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from swarmdesk.accounts.models import Role
from swarmdesk.core.clock import clock
from swarmdesk.sla.business_time import BusinessCalendar
from swarmdesk.web.admin_sla import duration, now_status, week_summary
from tests.browser import ConsoleErrors, chromium_page, screenshots_dir, sign_in
from tests.support import PASSWORD, AccountCtx, Harness
from tests.test_admin_pages import HOSTILE, UNLABELLED, assert_page, session_for

PAGE = "/app/admin/sla"
NINE_TO_FIVE = [{"start": "09:00", "end": "17:00"}]
BERLIN_HOURS = {"mon": NINE_TO_FIVE, "tue": NINE_TO_FIVE, "wed": NINE_TO_FIVE, "thu": NINE_TO_FIVE,
                "fri": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}], "sat": [], "sun": []}
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
WEDNESDAY_11_IN_BERLIN = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)


async def post(h: Harness, ctx: AccountCtx, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await h.client.post(path, headers=ctx.admin.headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def items(h: Harness, ctx: AccountCtx, path: str) -> list[dict[str, Any]]:
    r = await h.client.get(path, headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def embedded_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="sla-data">(.*?)</script>', html, re.S)
    assert match is not None
    return json.loads(match.group(1))


def row(html: str, element_id: str) -> str:
    match = re.search(rf'<tr id="{element_id}"[^>]*>(.*?)</tr>', html, re.S)
    assert match is not None, element_id
    text = re.sub(r"<[^>]+>", " ", match.group(1).replace("<wbr>", ""))
    return re.sub(r"\s+", " ", text).strip()


# --- presentation ---------------------------------------------------------------------------------

def test_a_week_in_one_line_and_targets_in_hours() -> None:
    assert week_summary(BERLIN_HOURS) == "Mon–Thu 09:00–17:00, Fri 09:00–12:00 and 13:00–17:00, Sat–Sun closed"
    assert week_summary({"mon": [{"start": "13:00", "end": "17:00"}, {"start": "09:00", "end": "12:00"}],
                         "sat": [{"start": "00:00", "end": "24:00"}]}) == \
        "Mon 09:00–12:00 and 13:00–17:00, Tue–Fri closed, Sat all day, Sun closed"
    assert week_summary({d: NINE_TO_FIVE for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}) == \
        "Mon–Sun 09:00–17:00"
    assert [duration(m) for m in (1, 30, 60, 90, 480, 1440, 100_000)] == \
        ["1 min", "30 min", "1 h", "1 h 30 min", "8 h", "24 h", "1,666 h 40 min"]


def test_open_now_in_the_calendars_zone() -> None:
    weekly = [[(540, 1020)]] * 4 + [[(540, 720), (780, 1020)], [], []]
    berlin = BusinessCalendar("Europe/Berlin", weekly, {date(2026, 1, 16): [(0, 1440)]})  # Friday closed
    at = lambda *args: datetime(*args, tzinfo=UTC)  # noqa: E731
    assert now_status(berlin, at(2026, 1, 14, 10, 0)) == {"open": True, "local": "Wed 11:00", "change": "until 17:00"}
    assert now_status(berlin, at(2026, 1, 14, 16, 0)) == {"open": False, "local": "Wed 17:00",
                                                         "change": "opens Thu 09:00"}
    # Thursday evening: the Friday holiday and the weekend are skipped.
    assert now_status(berlin, at(2026, 1, 15, 18, 30)) == {"open": False, "local": "Thu 19:30",
                                                          "change": "opens Mon 09:00"}
    # A lunch break on an ordinary Friday, and the time of the zone in summer (UTC+2).
    assert now_status(berlin, at(2026, 1, 23, 11, 30))["change"] == "opens 13:00"
    assert now_status(berlin, at(2026, 7, 1, 6, 30)) == {"open": False, "local": "Wed 08:30", "change": "opens 09:00"}
    # A night shift of two ranges is one stretch; a calendar open every minute says so.
    night = BusinessCalendar("UTC", [[(1320, 1440)], [(0, 360)], [], [], [], [], []])
    assert now_status(night, at(2026, 1, 12, 23, 0)) == {"open": True, "local": "Mon 23:00", "change": "until Tue 06:00"}
    always = BusinessCalendar("Asia/Tokyo", [[(0, 1440)]] * 7)
    assert now_status(always, at(2026, 1, 12, 23, 0))["change"] == "open for two weeks or more"
    # Closed for more than a week: the date is named.
    closed = {date(2026, 1, 19) + timedelta(days=n): [(0, 1440)] for n in range(10)}
    assert now_status(BusinessCalendar("Europe/Berlin", weekly, closed), at(2026, 1, 16, 18, 0))["change"] == \
        "opens 2026-01-29 09:00"


# --- the page -------------------------------------------------------------------------------------

async def test_the_page_lists_calendars_and_policies_in_the_order_they_are_tried(
        h: Harness, browser_client: httpx.AsyncClient) -> None:
    ctx = await h.make_account("Acme")
    clock.freeze(WEDNESDAY_11_IN_BERLIN)
    inbox = await post(h, ctx, "/api/v1/inboxes", {"name": "Shop API", "channel_kind": "api", "config": {}})
    berlin = await post(h, ctx, "/api/v1/sla/calendars", {
        "name": "Berlin office", "time_zone": "Europe/Berlin", "hours": BERLIN_HOURS,
        "holidays": [{"date": "2025-12-25", "name": "Christmas Day"},
                     {"date": "2026-12-24", "name": "Christmas Eve", "start": "12:00", "end": "24:00"}]})
    hostile = await post(h, ctx, "/api/v1/sla/calendars", {
        "name": HOSTILE, "time_zone": "America/New_York", "hours": {"sat": [{"start": "00:00", "end": "24:00"}]}})
    urgent = await post(h, ctx, "/api/v1/sla/policies", {
        "name": "Urgent", "calendar_id": berlin["id"], "first_response_minutes": 30, "resolution_minutes": 480,
        "conditions": {"priorities": ["urgent", "high"]}})
    gold = await post(h, ctx, "/api/v1/sla/policies", {
        "name": HOSTILE, "next_response_minutes": 90, "warn_before_minutes": 15,
        "conditions": {"channels": ["api"], "inbox_ids": [inbox["id"]], "tiers": ["Gold"]}})
    fallback = await post(h, ctx, "/api/v1/sla/policies", {
        "name": "Everything else", "position": 0, "enabled": False, "calendar_id": hostile["id"],
        "resolution_minutes": 2880, "warn_percent": None})
    await session_for(browser_client, ctx.admin.email)

    r = await browser_client.get(PAGE)
    assert r.status_code == 200, r.text[:500]
    html = r.text
    # The hostile names, escaped, sit in attribute values too (aria-label): " onerror=" there is text.
    assert_page(httpx.Response(200, headers=r.headers, text=html.replace(ESCAPED, "X")))
    assert 'aria-current="page">Business hours &amp; SLAs</a>' in html
    assert HOSTILE not in html and ESCAPED in html

    assert row(html, f"calendar-{berlin['id']}") == (
        "Berlin office Europe/Berlin Mon–Thu 09:00–17:00, Fri 09:00–12:00 and 13:00–17:00, Sat–Sun closed "
        "2 holidays next: 2026-12-24 Christmas Eve (12:00–24:00) Open Wed 11:00 there · until 17:00 Urgent Edit Delete")
    assert row(html, f"calendar-{hostile['id']}") == (
        f"{ESCAPED} America/New_York Mon–Fri closed, Sat all day, Sun closed none "
        "Closed Wed 05:00 there · opens Sat 00:00 Everything else Edit Delete")

    # Tried by (position, id): the disabled fallback at position 0 comes right after Urgent.
    order = [int(i) for i in re.findall(r'<tr id="policy-(\d+)"', html)]
    assert order == [urgent["id"], fallback["id"], gold["id"]]
    assert row(html, f"policy-{urgent['id']}") == (
        "1 Urgent Priority: urgent or high Berlin office First response 30 min Resolution 8 h "
        "at 80 % of each target ↑ ↓ Edit Delete")
    assert row(html, f"policy-{fallback['id']}") == (
        f"2 Everything else Disabled every conversation {ESCAPED} Resolution 48 h "
        "no warning ↑ ↓ Edit Delete")
    assert row(html, f"policy-{gold['id']}") == (
        f"3 {ESCAPED} Channel: API Inbox: Shop API Tier: gold Round the clock "
        "Next response 1 h 30 min 15 min before each deadline ↑ ↓ Edit Delete")
    assert re.search(rf'id="policy-{urgent["id"]}-up"[^>]*disabled', html, re.S)
    assert re.search(rf'id="policy-{gold["id"]}-down"[^>]*disabled', html, re.S)

    # The editors are built from the API's own answers; the zone list offers common zones first.
    data = embedded_data(html)
    assert data["calendars"] == await items(h, ctx, "/api/v1/sla/calendars")
    assert data["policies"] == await items(h, ctx, "/api/v1/sla/policies")
    assert data["inboxes"] == [{"id": inbox["id"], "name": "Shop API", "channel": "API"}]
    assert [p["value"] for p in data["priorities"]] == ["urgent", "high", "medium", "low", "none"]
    assert {"kind": "webchat", "title": "Web chat widget"} in data["channels"]
    zones = re.findall(r'<option value="([^"]+)" label="(UTC[+-]\d\d:\d\d)">', html)
    assert zones[:3] == [("UTC", "UTC+00:00"), ("Europe/London", "UTC+00:00"), ("Europe/Dublin", "UTC+00:00")]
    assert ("Europe/Berlin", "UTC+01:00") in zones and ("America/St_Johns", "UTC-03:30") in zones
    assert len(zones) > 500 and "localtime" not in dict(zones)

    # The clock moves: the same page says Berlin has closed for the day.
    clock.freeze(datetime(2026, 1, 14, 16, 30, tzinfo=UTC))
    html = (await browser_client.get(PAGE)).text
    assert "Closed Wed 17:30 there · opens Thu 09:00" in row(html, f"calendar-{berlin['id']}")


async def test_an_empty_account_and_who_may_open_the_page(h: Harness, browser_client: httpx.AsyncClient) -> None:
    ctx = await h.make_account("Acme")
    r = await browser_client.get(PAGE)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fapp%2Fadmin%2Fsla"
    await post(h, ctx, "/api/v1/sla/calendars", {"name": "Secret office", "time_zone": "UTC", "hours": BERLIN_HOURS})
    supervisor = await h.make_user(ctx, "supervisor-person", Role.supervisor)
    await session_for(browser_client, supervisor.email)
    r = await browser_client.get(PAGE)  # supervisors edit calendars and policies (as the API lets them)
    assert r.status_code == 200 and "Secret office" in r.text
    for role in (Role.agent, Role.expert):
        user = await h.make_user(ctx, f"{role}-person", role)
        await session_for(browser_client, user.email)
        r = await browser_client.get(PAGE)
        assert r.status_code == 403, role
        assert "Admins only" in r.text and "Secret office" not in r.text

    other = await h.make_account("Globex")
    await session_for(browser_client, other.admin.email)
    r = await browser_client.get(PAGE)
    assert r.status_code == 200
    assert_page(r)
    assert "Secret office" not in r.text  # another account's calendar
    assert "No calendars yet" in r.text and "No SLA policies yet" in r.text
    assert embedded_data(r.text)["calendars"] == [] and embedded_data(r.text)["policies"] == []


# --- in the browser -------------------------------------------------------------------------------

async def test_an_admin_sets_up_business_hours_and_an_sla_policy(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme")
    await post(h, ctx, "/api/v1/sla/calendars", {"name": HOSTILE, "time_zone": "UTC", "hours": {"sun": NINE_TO_FIVE}})
    fallback = await post(h, ctx, "/api/v1/sla/policies", {"name": "Everything else", "resolution_minutes": 1440})
    async with chromium_page() as page:
        await page.set_viewport_size({"width": 1200, "height": 900})
        errors = ConsoleErrors(page)
        failed_loads: list[str] = []
        page.on("console", lambda m: failed_loads.append(m.location.get("url", ""))
                if m.type == "error" and m.text.startswith("Failed to load resource") else None)
        await sign_in(page, live.url, ctx.admin.email, PASSWORD, then=PAGE)
        await page.get_by_role("heading", name="Business hours & SLAs", exact=True).wait_for()

        # A new calendar starts as Mon–Fri 09:00–17:00. Tuesday is closed and copied back from
        # Monday; Friday gets a lunch break (two ranges); one holiday.
        await page.get_by_role("button", name="New calendar").click()
        form = page.locator("#calendar-form")
        await form.get_by_label(re.compile("^Name")).fill("Berlin office")
        await form.get_by_label("Time zone").fill("Europe/Berlin")
        assert await form.get_by_label("Saturday, range 1, from").count() == 0
        await form.get_by_label("Monday, range 1, from").fill("9")  # read as 09:00
        await form.get_by_role("button", name="Remove Tuesday range 1").click()
        assert await form.locator("[data-day=tue] .closed").is_visible()
        await form.get_by_role("button", name="Copy Monday to Tuesday–Friday").click()
        assert await form.get_by_label("Tuesday, range 1, to").input_value() == "17:00"
        await form.get_by_label("Friday, range 1, to").fill("12:00")
        await form.get_by_role("button", name="Add opening hours to Friday").click()
        await form.get_by_label("Friday, range 2, from").fill("13:00")
        await form.get_by_label("Friday, range 2, to").fill("17:00")
        await form.get_by_role("button", name="Add holiday").click()
        await form.get_by_label("Holiday 1 date").fill("2026-12-25")
        await form.get_by_label("Holiday 1 name").fill("Christmas Day")
        assert await page.evaluate(UNLABELLED) == []
        await form.get_by_role("button", name="Create calendar").click()
        berlin_row = page.locator("#calendar-list tbody tr", has_text="Berlin office")
        await berlin_row.wait_for()
        assert await berlin_row.locator("td.week").text_content() == \
            "Mon–Thu 09:00–17:00, Fri 09:00–12:00 and 13:00–17:00, Sat–Sun closed"
        assert await page.locator("#calendar-editor").is_hidden()

        # A policy for urgent conversations on those hours: 30 min first response, 8 h resolution.
        await page.get_by_role("button", name="New policy").click()
        policy_form = page.locator("#policy-form")
        await policy_form.get_by_label(re.compile("^Name")).fill("Urgent")
        await policy_form.get_by_role("checkbox", name="Urgent").check()
        await policy_form.get_by_label("Business hours").select_option(label="Berlin office (Europe/Berlin)")
        assert await policy_form.locator("option", has_text="onerror").count() == 1  # a name, as text
        await policy_form.get_by_label("First response minutes").fill("30")
        await policy_form.get_by_label("Resolution hours").fill("8")
        assert await policy_form.locator("output.total").all_text_contents() == \
            ["= 30 min", "no target", "= 480 min (8 h)"]
        assert await page.evaluate(UNLABELLED) == []
        await policy_form.get_by_role("button", name="Create policy").click()
        urgent_row = page.locator("#policy-list tbody tr", has_text="Urgent")
        await urgent_row.wait_for()
        assert await urgent_row.locator("dt").all_text_contents() == ["First response", "Resolution"]
        assert await urgent_row.locator("dd").all_text_contents() == ["30 min", "8 h"]
        # Tried before the catch-all once moved up.
        await page.get_by_role("button", name="Move Urgent up").click()
        await page.locator("#policy-list tbody tr").first.filter(has_text="Urgent").wait_for()
        # Edited: the form holds what was saved (8 h as 8 and 0); typing a lead time picks that warning.
        await urgent_row.get_by_role("button", name="Edit policy Urgent").click()
        assert (await policy_form.get_by_label("Resolution hours").input_value(),
                await policy_form.get_by_label("Resolution minutes").input_value()) == ("8", "0")
        assert await policy_form.get_by_role("checkbox", name="Urgent").is_checked()
        await policy_form.get_by_label("Warn this many minutes before each deadline").fill("20")
        await policy_form.get_by_role("button", name="Save policy").click()
        await urgent_row.get_by_text("20 min before each deadline").wait_for()

        # Saturday opens 10:00–14:00.
        await berlin_row.get_by_role("button", name="Edit calendar Berlin office").click()
        await form.get_by_role("button", name="Add opening hours to Saturday").click()
        await form.get_by_label("Saturday, range 1, from").fill("10:00")
        await form.get_by_label("Saturday, range 1, to").fill("14:00")
        await form.get_by_role("button", name="Save calendar").click()
        await berlin_row.locator("td.week", has_text="Sat 10:00–14:00").wait_for()

        calendars = await items(h, ctx, "/api/v1/sla/calendars")
        berlin = next(c for c in calendars if c["name"] == "Berlin office")
        assert berlin["time_zone"] == "Europe/Berlin"
        assert berlin["hours"] == {**BERLIN_HOURS, "sat": [{"start": "10:00", "end": "14:00"}]}
        assert berlin["holidays"] == [{"date": "2026-12-25", "name": "Christmas Day", "start": None, "end": None}]
        policies = await items(h, ctx, "/api/v1/sla/policies")
        assert [p["name"] for p in policies] == ["Urgent", "Everything else"]
        urgent = policies[0]
        assert {k: urgent[k] for k in ("enabled", "calendar_id", "first_response_minutes", "next_response_minutes",
                                       "resolution_minutes", "warn_percent", "warn_before_minutes", "conditions")} == {
            "enabled": True, "calendar_id": berlin["id"], "first_response_minutes": 30,
            "next_response_minutes": None, "resolution_minutes": 480, "warn_percent": None, "warn_before_minutes": 20,
            "conditions": {"priorities": ["urgent"], "channels": [], "inbox_ids": [], "tiers": []}}
        assert policies[1]["id"] == fallback["id"]

        # An overnight range is refused by the API: its message is shown by the form, nothing is saved.
        await berlin_row.get_by_role("button", name="Edit calendar Berlin office").click()
        await form.get_by_label("Monday, range 1, from").wait_for()
        await page.evaluate("document.getElementById('toasts').replaceChildren()")  # a clear picture
        await page.screenshot(path=str(screenshots_dir() / "admin-sla.png"), full_page=True)
        await form.get_by_label("Monday, range 1, from").fill("17:00")
        await form.get_by_label("Monday, range 1, to").fill("09:00")
        await form.get_by_role("button", name="Save calendar").click()
        problem = form.locator("[data-error]")
        await problem.get_by_text("17:00-09:00 ends before it starts").wait_for()
        assert (await problem.text_content()).startswith("Monday, range 1: 17:00-09:00 ends before it starts; write an "
                                                         "overnight shift as two ranges")
        assert await form.get_by_label("Monday, range 1, from").get_attribute("aria-invalid") == "true"
        assert await form.get_by_label("Tuesday, range 1, from").get_attribute("aria-invalid") is None
        assert await items(h, ctx, "/api/v1/sla/calendars") == calendars

        # A phone's width: nothing scrolls sideways, even with the week editor open.
        await page.set_viewport_size({"width": 375, "height": 800})
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375

        assert errors.dialogs == []
        assert await page.locator("#admin-section img").count() == 0
        assert [e for e in errors.errors if not e.startswith("Failed to load resource")] == [], errors.errors
        assert [url.removeprefix(live.url) for url in failed_loads] == [f"/api/v1/sla/calendars/{berlin['id']}"]
