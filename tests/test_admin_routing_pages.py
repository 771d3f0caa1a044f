"""The routing admin pages: skills and agents (/app/admin/skills) and queues (/app/admin/queues) list
what the API made, render names as text, are for admins only; and in a real browser an admin sets
up a skill, an agent's skills and capacity and a queue with relaxation steps, checked through the API."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx

from swarmdesk.accounts.models import Role
from tests.browser import ConsoleErrors, chromium_page, screenshots_dir, sign_in
from tests.support import PASSWORD, Harness
from tests.test_admin_pages import HOSTILE, UNLABELLED, assert_page, session_for
from tests.test_routing_support import add_agent, add_queue, add_skill, call, chat, make_desk

PAGES = ("/app/admin/skills", "/app/admin/queues")


def page_json(text: str, node_id: str) -> Any:
    match = re.search(rf'<script type="application/json" id="{node_id}">(.*?)</script>', text, re.S)
    assert match, node_id
    return json.loads(match.group(1))


def block(text: str, element_id: str, end: str) -> str:
    """The HTML from the element with this id up to the first ``end`` after it."""
    start = text.index(f'id="{element_id}"')
    return text[start:text.index(end, start)]


def row(text: str, element_id: str) -> str:
    return block(text, element_id, "</tr>")


def card(text: str, queue_id: int) -> str:
    """One queue's card: up to the next card or the end of the list."""
    start = text.index(f'id="queue-{queue_id}"')
    ends = [i for i in (text.find('<li class="panel queue"', start), text.find("</ol>\n{% else", start),
                        text.find('<template id="step-template">', start)) if i != -1]
    return text[start:min(ends)]


async def test_the_skills_page_lists_skills_and_every_agents_presence_load_and_skills(
        h: Harness, browser_client: httpx.AsyncClient) -> None:
    d = await make_desk(h)
    billing = await add_skill(h, d, "Billing", description="Invoices and refunds", min_proficiency=3,
                              inbox_ids=[d.inbox_id], tags=["refund"], languages=["pt-BR"])
    await add_skill(h, d, "Spanish", languages=["es"])
    ana = await add_agent(h, d, "ana", skills={"Billing": 4, "Spanish": 5}, capacity={"webchat": 1, "default": 7})
    bob = await add_agent(h, d, "bob", online=False)
    expert = await h.make_user(d.ctx, "eve", Role.expert)
    await add_queue(h, d)  # an account that routes: the chats below are assigned
    await chat(h, d, "v1")
    await chat(h, d, "v2")  # ana is full (1 webchat): this one waits
    await session_for(browser_client, d.ctx.admin.email)

    r = await browser_client.get("/app/admin/skills")
    assert r.status_code == 200, r.text[:500]
    assert_page(r)
    text = r.text
    assert 'aria-current="page">Skills &amp; capacity</a>' in text
    # The skills, what requires them and how many agents have them.
    skill = row(text, f"skill-{billing}")
    assert "Billing" in skill and "Invoices and refunds" in skill and "#refund" in skill
    assert "<code>pt</code>" in skill and ">Chat</span>" in skill
    assert re.search(r'data-label="Minimum">3</td>', skill) and re.search(r'data-label="Agents">1</td>', skill)
    # Its edit form holds exactly what the API stored.
    assert 'value="Billing"' in skill and f'value="{d.inbox_id}" data-type="int-list" checked' in skill
    assert f'data-method="DELETE" data-path="/api/v1/routing/skills/{billing}"' in skill
    assert '<option value="3" selected>' in skill and ">refund</textarea>" in skill and ">pt</textarea>" in skill

    # Agents: presence as text, load against capacity per channel, skills with proficiency.
    ana_row = row(text, f"agent-{ana.user_id}")
    assert "presence-online" in ana_row and ">Online</span>" in ana_row
    assert "<code>webchat</code> 1/1" in ana_row and "other channels ≤ 7" in ana_row
    assert "Billing <strong>4</strong>" in ana_row and "Spanish <strong>5</strong>" in ana_row
    bob_row = row(text, f"agent-{bob.user_id}")
    assert ">Offline</span>" in bob_row and "every channel ≤ 5" in bob_row
    assert "never routed" in row(text, f"agent-{expert.user_id}")
    # The editors are built from the page's data when a row opens.
    agents = {a["user_id"]: a for a in page_json(text, "agent-data")}
    assert agents[ana.user_id]["capacity"] == {"webchat": 1, "default": 7}
    assert agents[ana.user_id]["skills"] == {str(billing): 4, str(d.skills["Spanish"]): 5}
    assert agents[expert.user_id]["routed"] is False and agents[bob.user_id]["routed"] is True
    assert [s["name"] for s in page_json(text, "skill-data")] == ["Billing", "Spanish"]
    assert {"kind": "webchat", "title": "Web chat widget"} in page_json(text, "kind-data")


async def test_the_queues_page_lists_queues_in_position_order_with_what_waits(
        h: Harness, browser_client: httpx.AsyncClient) -> None:
    d = await make_desk(h)
    late = await add_queue(h, d, name="Overflow", position=50, inbox_ids=[], team_id=None, strategy="round_robin")
    first = await add_queue(h, d, name="Chats", position=10, strategy="sticky", sticky_window_seconds=86400,
                            relaxation=[{"after_seconds": 60, "min_proficiency": 2},
                                        {"after_seconds": 300, "any_agent_on_team": True}],
                            lifts={"urgent": 90, "vip": 0}, vip_attribute="plan", vip_values=["Gold", "gold-plus"],
                            tags=["billing"])
    by_hand = await add_queue(h, d, name="By hand", position=60, inbox_ids=[], strategy="manual")
    await chat(h, d, "v1", content="nobody is online")  # no tag: Chats does not take it, Overflow does
    await session_for(browser_client, d.ctx.admin.email)

    r = await browser_client.get("/app/admin/queues")
    assert r.status_code == 200, r.text[:500]
    assert_page(r)
    text = r.text
    assert text.index(f'id="queue-{first["id"]}"') < text.index(f'id="queue-{late["id"]}"')
    chats, overflow = card(text, first["id"]), card(text, late["id"])
    assert 'data-waiting="0">0 waiting' in chats and 'data-waiting="1">1 waiting' in overflow
    # The API counts what waits for routing; a manual queue's conversations wait for a person instead.
    assert "assigned by hand" in card(text, by_hand["id"]) and "data-waiting" not in card(text, by_hand["id"])
    assert "Sticky</span>" in chats and "Round-robin</span>" in overflow
    assert ">Support</dd>" in chats and "every agent" in overflow and "everything" in overflow
    assert "<li>after 1 min: proficiency ≥ 2</li>" in chats and "<li>after 5 min: any agent on the team</li>" in chats
    assert "1 day" in chats and "#billing" in chats and "<code>plan</code>" in chats
    assert "urgent 90</span>" in chats and "vip 0</span>" in chats and "sla 80</span>" in chats  # sla: the default
    # The edit form holds the stored values, steps included.
    assert 'name="relaxation.0.after_seconds" data-field="after_seconds"\n           value="60"' in chats
    assert '<option value="2" selected>' in chats
    assert re.search(r'name="relaxation\.1\.any_agent_on_team" data-field="any_agent_on_team" checked', chats)
    assert re.search(r'name="strategy" value="sticky" checked', chats)
    assert f'<option value="{d.team}" selected>Support</option>' in chats
    assert 'name="lifts.urgent" data-type="int"\n                 value="90"' in chats
    assert ">Gold\ngold-plus</textarea>" in chats
    assert '<template id="step-template">' in text


async def test_names_are_text_on_the_routing_pages(h: Harness, browser_client: httpx.AsyncClient) -> None:
    ctx = await h.make_account("Acme")
    team = await h.make_team(ctx, HOSTILE)
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                            json={"name": HOSTILE, "channel_kind": "webchat", "config": {}})
    inbox_id = r.json()["id"]
    agent = await h.make_user(ctx, "agent", Role.agent)
    await h.client.patch(f"/api/v1/users/{agent.user_id}", headers=ctx.admin.headers, json={"name": HOSTILE})
    skill = await call(h, ctx.admin, "POST", "/api/v1/routing/skills", 201,
                       json={"name": HOSTILE, "description": HOSTILE, "inbox_ids": [inbox_id]})
    await call(h, ctx.admin, "PUT", f"/api/v1/routing/agents/{agent.user_id}/skills",
               json={"skills": [{"skill_id": skill["id"], "proficiency": 2}]})
    await call(h, ctx.admin, "POST", "/api/v1/routing/queues", 201,
               json={"name": HOSTILE, "team_id": team, "inbox_ids": [inbox_id], "vip_values": [HOSTILE]})
    await session_for(browser_client, ctx.admin.email)
    for path in PAGES:
        text = (await browser_client.get(path)).text
        assert HOSTILE not in text, path
        assert html.escape(HOSTILE, quote=False) in text, path
    # In the page's data too: JSON inside a script element cannot close it.
    skills_page = (await browser_client.get("/app/admin/skills")).text
    names = [a["name"] for a in page_json(skills_page, "agent-data")]
    assert HOSTILE in names and "<img" not in skills_page.split('id="agent-data">', 1)[1].split("</script>")[0]


async def test_the_routing_pages_are_for_admins_and_supervisors(h: Harness, browser_client: httpx.AsyncClient) -> None:
    ctx = await h.make_account("Acme")
    await call(h, ctx.admin, "POST", "/api/v1/routing/skills", 201, json={"name": "Billing"})
    for path in PAGES:
        r = await browser_client.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=" + path.replace("/", "%2F")
    supervisor = await h.make_user(ctx, "supervisor", Role.supervisor)
    await session_for(browser_client, supervisor.email)
    for path in PAGES:  # the API lets supervisors change skills, capacity and queues: so do the pages
        r = await browser_client.get(path)
        assert r.status_code == 200 and "Routing queues</a>" in r.text and "Inboxes</a>" not in r.text, path
    assert "Billing" in (await browser_client.get("/app/admin/skills")).text
    for role in (Role.agent, Role.expert):
        user = await h.make_user(ctx, str(role), role)
        await session_for(browser_client, user.email)
        for path in PAGES:
            r = await browser_client.get(path)
            assert r.status_code == 403, (role, path)
            assert "Admins only" in r.text and "Billing" not in r.text


# --- in the browser -------------------------------------------------------------------------------

async def test_an_admin_sets_up_skills_an_agent_and_a_queue(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme")
    team = await h.make_team(ctx, "Billing team")
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                            json={"name": "Billing chat", "channel_kind": "webchat", "config": {}})
    inbox_id = r.json()["id"]
    ana = await h.make_user(ctx, "ana", Role.agent, teams=(team,))
    for i in range(12):  # a longer table, found by the filter
        await h.make_user(ctx, f"agent{i:02}", Role.agent)
    api = h.client

    async def get(path: str) -> Any:
        response = await api.get(path, headers=ctx.admin.headers)
        assert response.status_code == 200, response.text
        return response.json()

    async with chromium_page() as page:
        await page.set_viewport_size({"width": 1200, "height": 900})
        errors = ConsoleErrors(page)
        await sign_in(page, live.url, ctx.admin.email, PASSWORD, then="/app/admin/skills")
        await page.get_by_role("heading", name="Skills & capacity", exact=True).wait_for()

        # A skill required by an inbox (ticked by name) and a tag.
        form = page.locator("#new-skill-form")
        await form.get_by_label("Name").fill("Billing")
        await form.get_by_label("Minimum proficiency").select_option("3")
        await form.get_by_role("checkbox", name="Billing chat").check()
        await form.get_by_label("Tags that require it").fill("invoice\nrefund")
        await form.get_by_role("button", name="Create skill").click()
        await page.locator("tbody .skill-name", has_text="Billing").wait_for()
        (skill,) = await get("/api/v1/routing/skills")
        assert (skill["name"], skill["min_proficiency"], skill["inbox_ids"], skill["tags"], skill["languages"]) == \
            ("Billing", 3, [inbox_id], ["invoice", "refund"], [])
        # The same name again: the API's 409, next to the form.
        await form.get_by_label("Name").fill("Billing")
        await form.get_by_role("button", name="Create skill").click()
        await form.locator("[data-error]").get_by_text("a skill named 'Billing' already exists").wait_for()

        # Ana: found among many, Billing 4 and three web chats at once.
        await page.get_by_label("Find").fill("ana")
        assert await page.locator("#agents-table tbody tr:not([hidden])").count() == 1
        agent_row = page.locator(f"#agent-{ana.user_id}")
        await agent_row.locator("summary").click()
        editor = agent_row.locator(".agent-editor")
        await editor.get_by_label("Billing").select_option("4")
        await editor.get_by_role("button", name="Save Ana's skills").click()
        await agent_row.get_by_text("Billing 4").wait_for()
        editor = page.locator(f"#agent-{ana.user_id} .agent-editor")  # rebuilt, still open
        await editor.get_by_label("Web chat widget").fill("3")
        await editor.get_by_role("button", name="Save Ana's capacity").click()
        await page.locator(f"#agent-{ana.user_id}").get_by_text("webchat 0/3").wait_for()
        assert await page.get_by_label("Find").input_value() == "ana"  # the filter survives the refresh
        assert await page.locator("#agents-table tbody tr:not([hidden])").count() == 1
        assert await page.evaluate(UNLABELLED) == []
        agent = next(a for a in await get("/api/v1/routing/agents") if a["user_id"] == ana.user_id)
        assert [(s["name"], s["proficiency"]) for s in agent["skills"]] == [("Billing", 4)]
        assert agent["capacity"] == {"default": 5, "webchat": 3}

        # A round-robin queue with two relaxation steps.
        await page.get_by_role("navigation", name="Admin").get_by_role("link", name="Routing queues").click()
        await page.get_by_role("heading", name="Routing queues", exact=True).wait_for()
        form = page.locator("#new-queue-form")
        await form.get_by_label("Name").fill("Billing")
        await form.get_by_label(re.compile(r"^Team")).select_option(label="Billing team")
        await form.get_by_role("checkbox", name="Billing chat").check()
        await form.get_by_label("Position").fill("10")
        await form.get_by_role("radio", name=re.compile("^Round-robin")).check()
        await form.get_by_role("button", name="Add step").click()
        await form.get_by_label("After (seconds waited)").fill("60")
        await form.get_by_label("Accept proficiency").select_option("2")
        await form.get_by_role("button", name="Add step").click()
        step2 = form.locator("[data-step]").nth(1)
        await step2.get_by_label("After (seconds waited)").fill("300")
        await step2.get_by_label("Any agent on the team").check()
        await form.get_by_label("Urgent priority").fill("120")
        await form.get_by_role("button", name="Create queue").click()
        card = page.locator("li.queue", has_text="Billing")
        await card.get_by_text("after 5 min: any agent on the team").wait_for()
        (queue,) = await get("/api/v1/routing/queues")
        assert (queue["name"], queue["team_id"], queue["inbox_ids"], queue["position"], queue["strategy"]) == \
            ("Billing", team, [inbox_id], 10, "round_robin")
        assert [{k: v for k, v in s.items() if v not in (None, False)} for s in queue["relaxation"]] == \
            [{"after_seconds": 60, "min_proficiency": 2}, {"after_seconds": 300, "any_agent_on_team": True}]
        assert queue["lifts"] == {"urgent": 120, "high": 50, "vip": 40, "sla": 80}

        # Editing a step: a negative wait is refused by the API, shown next to the form, field marked.
        await card.locator("summary").click()
        edit = page.locator(f"#queue-{queue['id']}-form")
        first_after = edit.locator("[data-step]").first.get_by_label("After (seconds waited)")
        await first_after.fill("-30")
        await edit.get_by_role("button", name="Save queue").click()
        await edit.locator("[data-error]").get_by_text("relaxation.0.after_seconds").wait_for()
        assert "greater than or equal to 1" in await edit.locator("[data-error]").text_content()
        assert await first_after.get_attribute("aria-invalid") == "true"
        await first_after.fill("90")
        await edit.locator("[data-step]").nth(1).get_by_role("button", name="Remove step 2").click()
        await edit.get_by_role("button", name="Add step").click()
        await edit.locator("[data-step]").nth(1).get_by_label("After (seconds waited)").fill("600")
        await edit.locator("[data-step]").nth(1).get_by_label("Accept proficiency").select_option("1")
        await edit.get_by_label(re.compile(r"^Team")).select_option(label="Every agent (no team)")
        await edit.get_by_role("button", name="Save queue").click()
        await page.locator("li.queue").get_by_text("after 10 min: proficiency ≥ 1").wait_for()
        (queue,) = await get("/api/v1/routing/queues")
        assert [{k: v for k, v in s.items() if v not in (None, False)} for s in queue["relaxation"]] == \
            [{"after_seconds": 90, "min_proficiency": 2}, {"after_seconds": 600, "min_proficiency": 1}]
        assert (queue["team_id"], queue["strategy"], queue["lifts"]["urgent"]) == (None, "round_robin", 120)
        assert await page.evaluate(UNLABELLED) == []
        await page.locator("#new-queue > summary").click()  # folded: the queue and its editor in view
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(screenshots_dir() / "admin-routing.png"))

        # Chrome logs each refused request as "Failed to load resource": only the two provoked above.
        assert errors.dialogs == []
        assert [e for e in errors.errors if not e.startswith("Failed to load resource")] == [], errors.errors
        assert len(errors.errors) == 2, errors.errors
