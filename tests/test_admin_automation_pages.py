"""The admin pages for automation rules and macros: what they list (in run order, in words, with
when a rule last acted), what they embed for the builder (the create model's JSON schema and the
account's own objects, nothing of another account), names as text, admins only; and, in a real
browser, a rule built with the structured builder, acting on a message, edited to a new version,
refused with the API's message on the right row, and a macro made with the same action builder."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from swarmdesk.accounts.models import Role
from swarmdesk.automation.schemas import MacroCreate, MacroUpdate, RuleCreate, RuleUpdate
from tests.browser import ConsoleErrors, chromium_page, screenshots_dir, sign_in
from tests.support import PASSWORD, AccountCtx, Harness, Staff, inbound_payload
from tests.test_admin_pages import HOSTILE, UNLABELLED, session_for
from tests.test_automation import settle

PAGES = ("/app/admin/automation", "/app/admin/macros")


async def api(h: Harness, who: Staff, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    r = await h.client.request(method, path, headers=who.headers, json=body)
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def embedded(html: str, element_id: str) -> Any:
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    assert found, element_id
    return json.loads(found.group(1))


def assert_strict_page(r: httpx.Response) -> None:
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    for tag in re.findall(r"<script\b[^>]*>", r.text):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", r.text) and not re.search(r"<[^>]+\sstyle\s*=", r.text)
    assert r.text.count("admin_automation.js") == 1 and "js/admin.js" not in r.text  # admin.js through the import


# --- plain HTTP -----------------------------------------------------------------------------------

async def test_rules_are_listed_in_run_order_in_words_with_when_they_last_acted(
        h: Harness, browser_client: httpx.AsyncClient) -> None:
    ctx = await h.make_account("Acme")
    other = await h.make_account("Other")
    await h.make_team(other, "Elsewhere team")
    billing = await h.make_team(ctx, "Billing")
    inbox = await h.make_api_inbox(ctx)
    rules = "/api/v1/automation/rules"
    reminder = await api(h, ctx.admin, "POST", rules, {
        "name": "Remind after 2 days", "position": 50,
        "trigger": {"type": "status_for", "statuses": ["pending"], "minutes": 2880},
        "actions": [{"type": "add_note", "content": "Still waiting"}]}, status=201)
    refunds = await api(h, ctx.admin, "POST", rules, {
        "name": "Refunds", "position": 10, "description": "Money matters go to billing",
        "trigger": {"type": "event", "events": ["message_received", "conversation_created"]},
        "conditions": {"all": [{"type": "text_contains", "any": ["refund"]}]},
        "actions": [{"type": "set_team", "team_id": billing}, {"type": "add_tags", "tags": ["refund"]}]}, status=201)
    waiting = await api(h, ctx.admin, "POST", rules, {
        "name": "Waiting too long", "enabled": False,
        "trigger": {"type": "waiting_for", "minutes": 90}, "actions": [{"type": "set_priority", "priority": "high"}]},
        status=201)
    await api(h, ctx.admin, "PATCH", f"{rules}/{waiting['id']}", {"trigger": {"type": "waiting_for", "minutes": 1500}})
    quiet = await api(h, ctx.admin, "POST", rules, {
        "name": "Never holds", "position": 70, "trigger": {"type": "event", "events": ["message_received"]},
        "conditions": {"all": [{"type": "text_contains", "any": ["no such words"]}]},
        "actions": [{"type": "add_tags", "tags": ["x"]}]}, status=201)
    r = await h.deliver(inbox, inbound_payload(content="A refund, please"))
    assert r.status_code == 200, r.text
    await settle(h)
    # Newer evaluations that did not act: "last fired" is still the run that acted.
    for n in range(3):
        r = await h.deliver(inbox, inbound_payload(content=f"Thanks {n}"))
        assert r.status_code == 200, r.text
        await settle(h)

    await session_for(browser_client, ctx.admin.email)
    r = await browser_client.get("/app/admin/automation")
    assert r.status_code == 200
    assert_strict_page(r)
    html = r.text
    # Run order: position, then id.
    ids = [int(i) for i in re.findall(r'<li class="panel rule[^"]*" id="rule-(\d+)"', html)]
    assert ids == [refunds["id"], reminder["id"], waiting["id"], quiet["id"]]
    cards = {int(re.match(r'[^"]*" id="rule-(\d+)"', part).group(1)): part
             for part in html.split("</ol>\n<script")[0].split('<li class="panel rule')[1:]}
    assert "When the customer writes or a conversation is created" in cards[refunds["id"]]
    assert "Money matters go to billing" in cards[refunds["id"]]
    assert "Set team (team: Billing)" in cards[refunds["id"]] and "Add tags (tags: refund)" in cards[refunds["id"]]
    assert "Text contains (field: message; any: refund)" in cards[refunds["id"]]
    assert re.search(r"<time datetime=.*?</time> <span class=\"badge outcome-applied\">applied</span>",
                     cards[refunds["id"]])
    assert "After 2 days pending" in cards[reminder["id"]] and ">never<" in cards[reminder["id"]]
    assert "not yet acted; conditions last checked <time" in cards[quiet["id"]]
    assert "After the customer has waited 1 day 1 h" in cards[waiting["id"]]
    assert ">Paused<" in cards[waiting["id"]] and "Version 2" in cards[waiting["id"]] and ">Resume<" in cards[waiting["id"]]
    assert ">Active<" in cards[refunds["id"]] and "Version 1" in cards[refunds["id"]] and ">Pause<" in cards[refunds["id"]]

    # What the builder is made from: the create model's schema, the rules as the API has them, and
    # the account's own objects for the id fields (never another account's).
    builder = embedded(html, "builder-data")
    assert builder["schema"] == json.loads(json.dumps(RuleCreate.model_json_schema()))
    assert set(builder["update_fields"]) == set(RuleUpdate.model_fields)
    assert {"id": billing, "label": "Billing"} in builder["refs"]["teams"]
    assert [i["id"] for i in builder["refs"]["inboxes"]] == [inbox.id]
    assert {"id": "api", "label": "API"} in builder["refs"]["channel_kinds"]
    assert "Elsewhere team" not in html and other.admin.email not in html
    assert builder["labels"]["events"]["message_received"] == "Message received from the customer"
    data = {d["id"]: d for d in embedded(html, "rules-data")}
    listed = {d["id"]: d for d in await api(h, ctx.admin, "GET", rules)}
    for rule_id, rule in data.items():
        assert rule == {k: listed[rule_id][k] for k in rule}
        assert set(rule) == {"id", "version", *RuleCreate.model_fields}


async def test_the_macros_page_lists_shared_macros_and_the_admins_own(h: Harness,
                                                                      browser_client: httpx.AsyncClient) -> None:
    ctx = await h.make_account("Acme")
    agent = await h.make_user(ctx, "agent", Role.agent)
    await api(h, ctx.admin, "POST", "/api/v1/macros", {
        "name": "Shipping delay", "description": "Apologise and wait",
        "actions": [{"type": "add_tags", "tags": ["shipping"]}, {"type": "snooze", "minutes": 1440}]}, status=201)
    await api(h, ctx.admin, "POST", "/api/v1/macros", {
        "name": "My shortcut", "personal": True, "actions": [{"type": "resolve"}]}, status=201)
    await api(h, agent, "POST", "/api/v1/macros", {
        "name": "Agent's own", "personal": True, "actions": [{"type": "resolve"}]}, status=201)
    await session_for(browser_client, ctx.admin.email)
    r = await browser_client.get("/app/admin/macros")
    assert r.status_code == 200
    assert_strict_page(r)
    rows = dict(re.findall(r'<strong class="macro-name">(.*?)</strong>(.*?)</tr>', r.text, re.S))
    assert set(rows) == {"Shipping delay", "My shortcut"}  # someone else's personal macro does not exist here
    assert ">Shared<" in rows["Shipping delay"] and "Apologise and wait" in rows["Shipping delay"]
    assert "Add tags (tags: shipping)" in rows["Shipping delay"] and "Snooze (minutes: 1440)" in rows["Shipping delay"]
    assert ">Personal<" in rows["My shortcut"] and "only Acme Admin" in rows["My shortcut"]
    builder = embedded(r.text, "builder-data")
    assert builder["schema"] == json.loads(json.dumps(MacroCreate.model_json_schema()))
    assert set(builder["update_fields"]) == set(MacroUpdate.model_fields)
    assert {m["name"] for m in embedded(r.text, "macros-data")} == {"Shipping delay", "My shortcut"}


async def test_names_are_text_on_both_pages(h: Harness, browser_client: httpx.AsyncClient) -> None:
    ctx = await h.make_account("Acme")
    team = await h.make_team(ctx, HOSTILE)
    await api(h, ctx.admin, "POST", "/api/v1/automation/rules", {
        "name": HOSTILE, "description": HOSTILE, "trigger": {"type": "event", "events": ["tags_changed"]},
        "conditions": {"any": [{"type": "tag", "tags": ["vip"]}]},
        "actions": [{"type": "set_team", "team_id": team}, {"type": "add_note", "content": HOSTILE}]}, status=201)
    await api(h, ctx.admin, "POST", "/api/v1/macros", {
        "name": HOSTILE, "description": HOSTILE, "actions": [{"type": "add_note", "content": HOSTILE}]}, status=201)
    await session_for(browser_client, ctx.admin.email)
    for path in PAGES:
        html = (await browser_client.get(path)).text
        assert HOSTILE not in html, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path
        for script in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S):
            assert "<" not in script  # JSON for scripts is escaped too: it cannot close its element


async def test_only_admins_see_the_automation_pages(h: Harness, browser_client: httpx.AsyncClient) -> None:
    ctx = await h.make_account("Acme")
    for path in PAGES:
        r = await browser_client.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=" + path.replace("/", "%2F")
    for role in (Role.supervisor, Role.agent, Role.expert):
        user = await h.make_user(ctx, f"{role}-person", role)
        await session_for(browser_client, user.email)
        for path in PAGES:
            r = await browser_client.get(path)
            assert r.status_code == 403, (role, path)
            assert "Admins only" in r.text and "builder-data" not in r.text


# --- in the browser -------------------------------------------------------------------------------

async def every_type_rule(h: Harness, ctx: AccountCtx, inbox_id: int) -> dict[str, Any]:
    """A rule with each condition and action type, every id naming one of the account's objects."""
    team = await h.make_team(ctx, "Billing")
    me = ctx.admin.user_id
    canned = await api(h, ctx.admin, "POST", "/api/v1/canned-responses",
                       {"short_code": "ack", "title": "Ack", "body": "On it"}, status=201)
    hook = await api(h, ctx.admin, "POST", "/api/v1/webhooks",
                     {"url": "https://crm.example.com/hook", "event_types": ["message.created"]}, status=201)
    skill = await api(h, ctx.admin, "POST", "/api/v1/routing/skills", {"name": "Refunds"}, status=201)
    org = await api(h, ctx.admin, "POST", "/api/v1/organizations", {"name": "Globex"}, status=201)
    return {
        "name": "Everything", "description": "Each type once", "max_runs_per_hour": 3,
        "trigger": {"type": "status_for", "statuses": ["pending", "snoozed"], "minutes": 120},
        "conditions": {"any": [
            {"type": "inbox", "inbox_ids": [inbox_id]},
            {"type": "text_matches", "pattern": "\\border\\b", "field": "subject", "case_sensitive": True},
            {"all": [
                {"type": "customer_attribute", "name": "plan", "op": "in", "value": ["gold", "platinum"]},
                {"type": "organization", "ids": [org["id"]], "attribute": {"name": "tier", "op": "eq", "value": "big"}},
                {"any": [
                    {"type": "time_of_day", "start": "09:00", "end": "18:00", "weekdays": ["mon", "fri"],
                     "timezone": "Europe/Lisbon", "negate": True},
                    {"type": "tag", "tags": ["vip"], "match": "all"}]}]},
            {"type": "channel", "kinds": ["api", "email"]},
            {"type": "text_contains", "any": ["a, b", "c"], "field": "message_or_subject"},
            {"type": "status", "statuses": ["open"]}, {"type": "priority", "priorities": ["high", "urgent"]},
            {"type": "assignee", "op": "in", "user_ids": [me]}, {"type": "team", "op": "unset"}]},
        "actions": [
            {"type": "assign", "user_id": me}, {"type": "set_team", "team_id": None},
            {"type": "set_team", "team_id": team}, {"type": "set_priority", "priority": "low"},
            {"type": "remove_tags", "tags": ["old"]}, {"type": "reply_template", "canned_response_id": canned["id"]},
            {"type": "add_note", "content": "Line one\nline two"},
            {"type": "notify", "user_ids": [me], "notify_assignee": True, "text": "Look"},
            {"type": "call_webhook", "subscription_id": hook["id"]},
            {"type": "start_swarm", "invite_user_ids": [me], "note": "Help"},
            {"type": "set_required_skills", "skills": [{"skill_id": skill["id"], "min_proficiency": 3}]},
            {"type": "snooze", "minutes": 60}, {"type": "resolve"}]}


async def conversation_of(h: Harness, ctx: AccountCtx, cid: int) -> dict[str, Any]:
    return await api(h, ctx.admin, "GET", f"/api/v1/conversations/{cid}")


async def test_an_admin_builds_a_rule_that_acts_then_versions_it_and_makes_a_macro(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme")
    inbox = await h.make_api_inbox(ctx)
    async with chromium_page() as page:
        await page.set_viewport_size({"width": 1100, "height": 900})
        errors = ConsoleErrors(page)
        await sign_in(page, live.url, ctx.admin.email, PASSWORD, then="/app/admin/automation")

        # The builder: trigger, two conditions, two actions, each row's fields from its type's schema.
        await page.get_by_role("button", name="New rule").click()
        editor = page.locator("#rule-editor")
        await editor.get_by_role("textbox", name="Name", exact=True).fill("Refunds to billing")
        assert await editor.get_by_label("When something happens").is_checked()  # the first trigger type
        await editor.get_by_label("Message received from the customer").check()
        conditions = editor.locator("li.cond-row")
        await editor.get_by_role("button", name="Add condition").click()
        await conditions.nth(0).get_by_label("Type").select_option("text_contains")
        await conditions.nth(0).get_by_label("Any of these texts").fill("refund")
        await editor.get_by_role("button", name="Add condition").click()
        await conditions.nth(1).get_by_label("Type").select_option("channel")
        await conditions.nth(1).get_by_label("API", exact=True).check()
        actions = editor.locator("fieldset.list li.row")
        assert await actions.count() == 1  # a rule needs one action: its row is there from the start
        await actions.nth(0).get_by_label("Type").select_option("add_tags")
        await actions.nth(0).get_by_label("Tags").fill("refund")
        await editor.get_by_role("button", name="Add action").click()
        await actions.nth(1).get_by_label("Type").select_option("set_priority")
        await actions.nth(1).get_by_label("Priority").select_option("high")
        assert await page.evaluate(UNLABELLED) == []
        await page.set_viewport_size({"width": 1100, "height": 2500})  # the whole builder, no sticky bar mid-page
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(screenshots_dir() / "admin-automation.png"))
        await page.set_viewport_size({"width": 1100, "height": 900})
        await editor.get_by_role("button", name="Create rule").click()
        card = page.locator("li.rule", has_text="Refunds to billing")
        await card.get_by_text("When the customer writes").wait_for()

        (rule,) = await api(h, ctx.admin, "GET", "/api/v1/automation/rules")
        assert {k: rule[k] for k in ("name", "description", "enabled", "version", "max_runs_per_hour")} == \
            {"name": "Refunds to billing", "description": "", "enabled": True, "version": 1, "max_runs_per_hour": 10}
        assert rule["trigger"] == {"type": "event", "events": ["message_received"]}
        assert rule["conditions"] == {"all": [
            {"type": "text_contains", "field": "message", "any": ["refund"], "case_sensitive": False, "negate": False},
            {"type": "channel", "kinds": ["api"], "negate": False}]}
        assert rule["actions"] == [{"type": "add_tags", "tags": ["refund"]}, {"type": "set_priority", "priority": "high"}]

        # It acts on a customer's message, and its log says so, linking the conversation.
        r = await h.deliver(inbox, inbound_payload(content="I would like a refund for order 1234"))
        assert r.status_code == 200, r.text
        cid = r.json()["conversation_id"]
        await settle(h)
        after = await conversation_of(h, ctx, cid)
        assert (after["tags"], after["priority"]) == (["refund"], "high")
        await page.reload()
        card = page.locator("li.rule", has_text="Refunds to billing")
        await card.locator(".rule-last .badge", has_text="applied").wait_for()
        await card.get_by_text("Versions and execution log").click()
        log_row = card.locator("table.log tbody tr").first
        await log_row.wait_for()
        assert await log_row.get_by_role("link").get_attribute("href") == f"/app/conversations/{cid}"
        assert "v1" in await log_row.text_content() and "applied" in await log_row.text_content()
        assert "add_tags" in await log_row.text_content() and "set_priority" in await log_row.text_content()

        # Edited: the tag changes, which is version 2; the history (left open) shows the change.
        await card.get_by_role("button", name="Edit Refunds to billing").click()
        await editor.locator("fieldset.list li.row").nth(0).get_by_label("Tags").fill("refunds")
        await editor.get_by_role("button", name="Save rule").click()
        await card.locator(".rule-head .badge", has_text="Version 2").wait_for()
        version = card.locator("li.version", has_text="Version 2")
        await version.wait_for()
        assert "Changed: Actions" in await version.text_content()
        assert await version.locator("pre.diff .add").filter(has_text='"refunds"').count() == 1
        assert await version.locator("pre.diff .del").filter(has_text='"refund"').count() == 1
        await card.get_by_role("button", name="Pause Refunds to billing").click()
        await card.get_by_text("Paused", exact=True).wait_for()
        (rule,) = await api(h, ctx.admin, "GET", "/api/v1/automation/rules")
        assert (rule["version"], rule["enabled"], rule["actions"][0]) == (2, False, {"type": "add_tags", "tags": ["refunds"]})

        # A pattern RE2 refuses: the API's message next to the form and on the condition's row.
        await card.get_by_role("button", name="Edit Refunds to billing").click()
        await editor.get_by_role("button", name="Add condition").click()
        await conditions.nth(2).get_by_label("Type").select_option("text_matches")
        await conditions.nth(2).get_by_label("Pattern").fill("(refund")
        await editor.get_by_role("button", name="Save rule").click()
        row_error = conditions.nth(2).locator(".row-error")
        await row_error.get_by_text("not a valid RE2 regular expression").wait_for()
        assert (await row_error.text_content()).startswith("Condition 3: Value error, pattern '(refund' is not")
        assert await conditions.nth(0).locator(".row-error").is_hidden()
        assert "body.conditions.all.2.text_matches" in await editor.locator(".form-error").text_content()
        assert await conditions.nth(2).get_by_label("Type").get_attribute("aria-invalid") == "true"
        assert await page.evaluate("document.activeElement.value") == "text_matches"  # focus on the row in question
        # On a phone: every control of the builder labelled, nothing wider than the screen.
        await page.set_viewport_size({"width": 375, "height": 740})
        assert await page.evaluate(UNLABELLED) == []
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await page.set_viewport_size({"width": 1100, "height": 900})
        # A generic button re-renders the list: the open editor, with what was typed, stays.
        await card.get_by_role("button", name="Resume Refunds to billing").click()
        await card.get_by_text("Active", exact=True).wait_for()
        assert await conditions.nth(2).get_by_label("Pattern").input_value() == "(refund"
        await editor.get_by_role("button", name="Cancel").click()
        assert (await api(h, ctx.admin, "GET", f"/api/v1/automation/rules/{rule['id']}"))["version"] == 2

        # A macro with two actions, through the same action builder.
        await page.get_by_role("navigation", name="Admin").get_by_role("link", name="Macros").click()
        await page.get_by_role("button", name="New macro").click()
        macro_editor = page.locator("#macro-editor")
        await macro_editor.get_by_role("textbox", name="Name", exact=True).fill("Refund follow-up")
        await macro_editor.get_by_label("Description").fill("Note the request and tag it")
        rows = macro_editor.locator("fieldset.list li.row")
        await rows.nth(0).get_by_label("Type").select_option("add_note")
        await rows.nth(0).get_by_label("Content").fill("Refund requested: check the order")
        await macro_editor.get_by_role("button", name="Add action").click()
        await rows.nth(1).get_by_label("Type").select_option("add_tags")
        await rows.nth(1).get_by_label("Tags").fill("refund\nfollow-up")
        await macro_editor.get_by_role("button", name="Create macro").click()
        await page.locator("tbody tr", has_text="Refund follow-up").wait_for()
        (macro,) = await api(h, ctx.admin, "GET", "/api/v1/macros")
        assert {k: macro[k] for k in ("name", "description", "personal", "actions")} == {
            "name": "Refund follow-up", "description": "Note the request and tag it", "personal": False,
            "actions": [{"type": "add_note", "content": "Refund requested: check the order"},
                        {"type": "add_tags", "tags": ["refund", "follow-up"]}]}

        # Every condition and action type, groups nested as deep as allowed: the builder shows the
        # rule and reads it back as it is (nothing to save), also after a round trip through JSON.
        everything = await api(h, ctx.admin, "POST", "/api/v1/automation/rules",
                               await every_type_rule(h, ctx, inbox.id), status=201)
        await page.goto(f"{live.url}/app/admin/automation")
        await page.get_by_role("button", name="Edit Everything").click()
        await editor.locator("li.cond-row").nth(11).wait_for()  # 12 conditions, in three levels of groups
        assert await editor.locator("fieldset.cond-group.depth-3").count() == 1
        assert await editor.locator("fieldset.cond-group.depth-3").get_by_role("button", name="Add group").count() == 0
        await editor.get_by_role("button", name="Edit as JSON").click()
        shown = json.loads(await editor.get_by_label("Rule as JSON").input_value())
        assert {k: shown[k] for k in ("trigger", "conditions", "actions")} == \
            {k: everything[k] for k in ("trigger", "conditions", "actions")}
        await editor.get_by_role("button", name="Back to the builder").click()
        await editor.get_by_role("button", name="Save rule").click()
        await page.locator("#toasts").get_by_text("Nothing changed").wait_for()
        assert (await api(h, ctx.admin, "GET", f"/api/v1/automation/rules/{everything['id']}"))["version"] == 1

        assert errors.dialogs == []
        # The one refusal provoked above (the 422) is the only failed load; no CSP or script error.
        assert [e for e in errors.errors if not e.startswith("Failed to load resource")] == [], errors.errors
        assert len(errors.errors) == 1, errors.errors
