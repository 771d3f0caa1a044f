"""Swarming in a real browser (Debian's chromium driven by Playwright), the issue's "done when":
agent A opens a conversation a web chat customer started and starts a swarm; expert B, online and
outside the service team, is suggested and notified live; B opens the conversation and joins;
both type in the swarm room and each sees the other's typing and messages live; the customer sees
none of it; A replies to the customer and the customer sees that reply."""

from __future__ import annotations

import re

from playwright.async_api import Page

from swarmdesk.accounts.models import Role
from tests.browser import ConsoleErrors, HostSite, sign_in
from tests.support import PASSWORD, AccountCtx, Harness, Staff
from tests.test_swarming import give_skills, presence, resolved_with_swarm, skill
from tests.test_workspace_browser import CONTRAST, SCREENSHOTS, UNLABELLED, browser, host, make_widget, new_page

__all__ = ["host"]  # the customer's site (a fixture)

SECRET = "Stripe shows the first charge was refunded on Tuesday"
PROBLEM = "Hi! I was charged twice for order #4417. Can you refund the duplicate charge?"


async def named(h: Harness, ctx: AccountCtx, key: str, name: str, role: Role, teams: tuple[int, ...] = ()) -> Staff:
    user = await h.make_user(ctx, key, role, teams=teams)
    r = await h.client.patch(f"/api/v1/users/{user.user_id}", headers=ctx.admin.headers, json={"name": name})
    assert r.status_code == 200, r.text
    return user


async def type_in_room(page: Page, text: str) -> None:
    await page.get_by_role("textbox", name="Write to the swarm").press_sequentially(text, delay=15)


async def test_an_agent_swarms_with_an_expert_while_the_customer_sees_only_the_reply(
        h: Harness, live, host: HostSite) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme Shoes")
    support = await h.make_team(ctx, "Support")
    maya = await named(h, ctx, "maya", "Maya Lopez", Role.agent, (support,))
    ben = await named(h, ctx, "ben", "Ben Okafor", Role.agent, (support,))
    cy = await named(h, ctx, "cy", "Cy Rahman", Role.expert)  # finance: outside the service team
    await skill(h, ctx, "billing", tags=["refund", "invoice"])
    await skill(h, ctx, "payments")
    await give_skills(h, ctx, cy, billing=5, payments=4)
    await give_skills(h, ctx, ben, billing=2)
    # Cy helped on a similar case before.
    past_inbox = await h.make_api_inbox(ctx)
    await resolved_with_swarm(h, past_inbox, maya, [cy], "Charged twice for one order",
                              "My card was charged twice for the same order, please refund one.", ["refund"], 1)
    r = await h.client.post("/api/v1/notifications/read", headers=cy.headers, json={"all": True})
    assert r.status_code == 200, r.text
    await presence(h, cy, "online")  # through routing's API, as Cy would
    await presence(h, ben, "away")
    await presence(h, maya, "online")
    widget = await make_widget(h, ctx)
    host.embed(f"{live.url}/widget/{widget['public_key']}.js")

    async with browser() as b:
        # The customer writes in the web chat widget on the shop's site.
        site = await new_page(b, 1000, 760)
        site_errors = ConsoleErrors(site)
        await site.goto(host.url)
        await site.locator("#swarmdesk-chat button.launcher").click()
        chat = site.frame_locator("#swarmdesk-chat iframe")
        await chat.locator("input[name=name]").fill("Ana Lima")
        await chat.locator("input[name=email]").fill("ana@example.org")
        await chat.get_by_role("button", name="Start chat").click()
        await chat.get_by_label("Message").fill(PROBLEM)
        await chat.get_by_label("Message").press("Enter")

        # Expert B is at their desk (the inbox), with nothing in the bell.
        expert = await new_page(b)
        expert_errors = ConsoleErrors(expert)
        await sign_in(expert, live.url, cy.email, PASSWORD, then="/app?view=all")
        await expert.wait_for_load_state("networkidle")
        assert await expert.locator("#bell-count").is_hidden()

        # Agent A opens the conversation from the inbox.
        desk = await new_page(b)
        desk_errors = ConsoleErrors(desk)
        await sign_in(desk, live.url, maya.email, PASSWORD, then="/app?view=all")
        await desk.locator(".conversation-row", has_text="Ana Lima").locator("a.open").click()
        await desk.wait_for_url("**/app/conversations/*")
        cid = int(desk.url.rsplit("/", 1)[1])
        r = await h.client.post(f"/api/v1/conversations/{cid}/tags", headers=maya.headers, json={"add": ["refund"]})
        assert r.status_code == 200
        await desk.locator(".msg.incoming", has_text="#4417").wait_for()

        # A starts a swarm: B is suggested first, with the reasons.
        room = desk.locator("#swarm")
        await room.get_by_role("button", name="Start a swarm").click()
        first = room.locator(".swarm-suggestion").first
        await first.wait_for()
        assert await first.get_attribute("data-user-id") == str(cy.user_id)
        assert re.sub(r"\s+", " ", await first.locator(".why").inner_text()) == \
            "billing 5 · online · resolved 1 similar (tags: refund)"
        names = [n.strip() for n in await room.locator(".swarm-suggestion strong").all_inner_texts()]
        assert names == ["Cy Rahman", "Ben Okafor"]
        await room.get_by_label(re.compile("Cy Rahman")).check()
        await room.get_by_label("What do you need help with?").fill("Was the first charge already refunded?")
        await room.get_by_role("button", name="Start swarm").click()
        await room.locator(".swarm-title", has_text="Swarm room").wait_for()
        await room.locator("#swarm-members li", has_text="Cy Rahman").filter(has_text="invited").wait_for()
        # Starting it made A the owner (the customer's single point of contact).
        await desk.locator("#assignee").filter(has=desk.locator("option:checked", has_text="Maya Lopez")).wait_for()

        # B is notified live, opens the conversation from the bell, and joins.
        await expert.locator("#bell-count", has_text="1").wait_for()
        await expert.locator("#bell").click()
        await expert.locator(".notification", has_text="Was the first charge already refunded?").click()
        await expert.wait_for_url(f"**/app/conversations/{cid}")
        broom = expert.locator("#swarm")
        await broom.get_by_text("You were invited to help.").wait_for()
        await broom.get_by_role("button", name="Join the swarm").click()
        await room.locator("#swarm-members li", has_text="Cy Rahman").filter(has_text="in the room").wait_for()
        await room.locator(f'[data-here-for="{cy.user_id}"]').wait_for()  # B has the room open

        # Both type: each sees the other typing, then the message, live.
        await type_in_room(expert, SECRET)
        await room.locator("#swarm-typing", has_text="Cy Rahman is typing…").wait_for()
        await expert.get_by_role("textbox", name="Write to the swarm").press("Enter")
        await room.locator(".swarm-msg", has_text=SECRET).wait_for()
        await room.locator("#swarm-typing", has_text="Cy Rahman is typing…").wait_for(state="hidden")
        await type_in_room(desk, "Great, so I only need to tell her it's on its way?")
        await broom.locator("#swarm-typing", has_text="Maya Lopez is typing…").wait_for()
        await desk.get_by_role("button", name="Post to swarm").click()
        await broom.locator(".swarm-msg", has_text="tell her it's on its way").wait_for()
        await type_in_room(expert, "Yes — 3 to 5 business days, reference RF-20931.")
        await expert.get_by_role("textbox", name="Write to the swarm").press("Enter")
        await room.locator(".swarm-msg", has_text="RF-20931").wait_for()
        await type_in_room(expert, "I'll add a note to the")
        await room.locator("#swarm-typing", has_text="Cy Rahman is typing…").wait_for()
        await desk.screenshot(path=str(SCREENSHOTS / "swarm.png"))
        assert (await desk.evaluate("[innerWidth, innerHeight]")) == [1280, 800]

        # The room is readable and labelled in both colour schemes.
        for scheme in ("light", "dark"):
            await desk.emulate_media(color_scheme=scheme)
            measured = await desk.evaluate(CONTRAST, [".swarm .hint", ".swarm .badge", ".swarm-msg .text",
                                                      ".swarm-msg .byline", ".swarm-typing", ".swarm-members .name",
                                                      ".swarm .btn", ".swarm-title"])
            assert len({s for s, _ in measured}) == 8, measured
            assert [(s, ratio) for s, ratio in measured if ratio < 4.5] == [], scheme
            assert await desk.evaluate(UNLABELLED) == [], scheme

        # A answers the customer in the conversation; the customer sees the reply and nothing of the swarm.
        await desk.get_by_role("tab", name="Reply").click()
        await desk.get_by_label("Message", exact=True).fill(
            "Hi Ana, the duplicate charge is already refunded — it reaches your card in 3 to 5 business days "
            "(reference RF-20931).")
        await desk.get_by_role("button", name="Send", exact=True).click()
        await chat.locator(".msg.theirs .text", has_text="already refunded").wait_for()
        texts = await chat.locator(".msg:not(.greeting) .text").all_inner_texts()
        assert texts == [PROBLEM, "Hi Ana, the duplicate charge is already refunded — it reaches your card in 3 to 5 "
                                  "business days (reference RF-20931)."]
        frame_text = await chat.locator("body").inner_text()
        for secret in (SECRET, "tell her", "Cy Rahman", "swarm", "Swarm"):
            assert secret not in frame_text, secret

        # A ends the swarm: the outcome lands on the conversation as an internal note; B's room closes.
        await room.locator("#swarm-end summary").click()
        await room.get_by_label("Outcome").select_option("resolved")
        await room.get_by_label(re.compile("^Summary")).fill("First charge was refunded on Tuesday (RF-20931).")
        await room.get_by_role("button", name="End swarm").click()
        await desk.locator(".msg.note", has_text="Swarm ended — resolved with Cy Rahman").wait_for()
        await broom.get_by_text("Last swarm resolved").wait_for()
        await site.wait_for_timeout(300)
        frame_text = await chat.locator("body").inner_text()
        assert "refunded on Tuesday" not in frame_text and "Swarm ended" not in frame_text
        r = await h.client.get(f"/api/v1/conversations/{cid}/swarms", headers=maya.headers)
        (swarm,) = r.json()["items"]
        assert (swarm["status"], swarm["outcome"], swarm["experts_joined"], swarm["message_count"]) == (
            "ended", "resolved", 1, 3)
        assert desk_errors.errors == [] and expert_errors.errors == [] and site_errors.errors == []
        assert desk_errors.dialogs == [] and expert_errors.dialogs == [] and site_errors.dialogs == []


async def test_the_room_by_keyboard_on_a_phone_in_light_and_dark(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account("Acme Shoes")
    maya = await named(h, ctx, "maya", "Maya Lopez", Role.agent)
    cy = await named(h, ctx, "cy", "Cy Rahman", Role.expert)
    await skill(h, ctx, "billing", tags=["refund"])
    await give_skills(h, ctx, cy, billing=5)
    await presence(h, cy, "online")
    inbox = await h.make_api_inbox(ctx)
    r = await h.deliver(inbox, {"message_id": "m1", "contact": {"source_id": "ana", "name": "Ana Lima"},
                                "subject": "Refund for order #4417", "content": PROBLEM})
    cid = r.json()["conversation_id"]
    r = await h.client.post(f"/api/v1/conversations/{cid}/tags", headers=maya.headers, json={"add": ["refund"]})
    assert r.status_code == 200
    async with browser() as b:
        for scheme in ("light", "dark"):
            context = await b.new_context(viewport={"width": 375, "height": 740}, color_scheme=scheme)
            page = await context.new_page()
            page.set_default_timeout(10_000)
            errors = ConsoleErrors(page)
            await sign_in(page, live.url, maya.email, PASSWORD, then=f"/app/conversations/{cid}")
            room = page.locator("#swarm")
            if scheme == "light":
                # Keyboard only: open the form, tick the first suggestion, write a note, start.
                await room.get_by_role("button", name="Start a swarm").focus()
                await page.keyboard.press("Enter")
                await room.locator("input[name=invite]:focus").wait_for()
                await page.keyboard.press("Space")
                assert await room.get_by_label(re.compile("Cy Rahman")).is_checked()
                await page.keyboard.press("Tab")
                await page.keyboard.type("Card closed?")
                await page.keyboard.press("Tab")
                await page.keyboard.press("Enter")
                await room.get_by_role("textbox", name="Write to the swarm").wait_for()
                await room.get_by_role("textbox", name="Write to the swarm").focus()
                await page.keyboard.type("Cy, can you check the processor?")
                await page.keyboard.press("Enter")
                await room.locator(".swarm-msg", has_text="check the processor").wait_for()
                assert await room.locator(".swarm-msg .text").all_inner_texts() == ["Cy, can you check the processor?"]
                assert await room.get_by_role("textbox", name="Write to the swarm").input_value() == ""
            await room.locator(".swarm-msg").first.wait_for()
            await page.wait_for_load_state("networkidle")
            measured = await page.evaluate(CONTRAST, [".swarm .hint", ".swarm .badge", ".swarm-msg .text",
                                                      ".swarm-msg .byline", ".swarm-members .name", ".swarm .btn"])
            assert len({s for s, _ in measured}) == 6, measured
            assert [(s, ratio) for s, ratio in measured if ratio < 4.5] == [], scheme
            assert await page.evaluate(UNLABELLED) == [], scheme
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, (scheme, overflow)
            html = await room.inner_html()
            assert not re.search(r"<[^>]+\son[a-z]+\s*=", html) and "<script" not in html and "style=" not in html
            assert errors.errors == [] and errors.dialogs == [], errors.errors
            await context.close()
    r = await h.client.get(f"/api/v1/conversations/{cid}/swarms", headers=maya.headers)
    (swarm,) = r.json()["items"]
    assert (swarm["note"], [m["name"] for m in swarm["members"]]) == ("Card closed?", ["Maya Lopez", "Cy Rahman"])
