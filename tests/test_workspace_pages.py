"""The workspace's pages over HTTP: sign-in, page access, the security headers, and that what
customers write is escaped in the conversation view (the browser tests show the rest)."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from swarmdesk.accounts.models import Role
from swarmdesk.web.templating import static_url
from tests.support import PASSWORD, AccountCtx, Harness, Staff, inbound_payload

ORIGIN = {"origin": "http://testserver"}
HOSTILE = '<img src=x onerror="window.__pwned=1">'


@asynccontextmanager
async def signed_in(h: Harness, staff: Staff) -> AsyncIterator[httpx.AsyncClient]:
    """A second client on the same app with the browser session cookie, as a browser would have."""
    async with httpx.AsyncClient(transport=h.client._transport, base_url="http://testserver") as client:
        r = await client.post("/login", data={"email": staff.email, "password": PASSWORD, "next": "/app"},
                              headers=ORIGIN)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/app"
        yield client


async def conversation_with(h: Harness, ctx: AccountCtx, **contact: str) -> dict:
    inbox = await h.make_api_inbox(ctx)
    payload = inbound_payload(content=contact.pop("content", "Hello"), source_id=contact.pop("source_id", "c1"))
    payload["contact"].update(contact)
    r = await h.deliver(inbox, payload)
    assert r.status_code == 200, r.text
    return r.json()


async def test_sign_in_form(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    r = await h.client.get("/login?next=/app/conversations/5")
    assert r.status_code == 200
    assert 'name="next" value="/app/conversations/5"' in r.text
    # Wrong password: the form again with a message, no cookie.
    r = await h.client.post("/login", data={"email": ctx.admin.email, "password": "nope", "next": "/app"}, headers=ORIGIN)
    assert r.status_code == 401 and "Email or password is wrong." in r.text
    assert "sd_session" not in r.headers.get("set-cookie", "")
    # A form posted from another site (login CSRF) is refused, even with the right password.
    r = await h.client.post("/login", data={"email": ctx.admin.email, "password": PASSWORD},
                            headers={"origin": "https://evil.example"})
    assert r.status_code == 403 and "sd_session" not in r.headers.get("set-cookie", "")
    r = await h.client.post("/login", data={"email": ctx.admin.email, "password": PASSWORD})
    assert r.status_code == 403
    # "next" never leaves the site.
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        r = await h.client.post("/login", data={"email": ctx.admin.email, "password": PASSWORD, "next": target},
                                headers=ORIGIN)
        assert r.status_code == 303 and r.headers["location"] == "/app", target
    r = await h.client.post("/login", data={"email": ctx.admin.email, "password": PASSWORD,
                                            "next": "/app/conversations/7"}, headers=ORIGIN)
    assert r.headers["location"] == "/app/conversations/7"
    cookies = r.headers.get_list("set-cookie")
    assert any(c.startswith("sd_session=") and "HttpOnly" in c and "SameSite=lax" in c for c in cookies)
    assert any(c.startswith("sd_csrf=") and "HttpOnly" not in c for c in cookies)


async def test_pages_need_a_session_and_carry_a_strict_csp(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    r = await h.client.get("/app?view=all")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fapp%3Fview%3Dall"
    r = await h.client.get("/app/conversations/1")
    assert r.status_code == 303
    # An API token is not a page session.
    r = await h.client.get("/app", headers=ctx.admin.headers)
    assert r.status_code == 303
    for path in ("/app/conversations/1/timeline", "/app/conversations/1/sidebar", "/app/inbox/rows"):
        assert (await h.client.get(path)).status_code == 401, path
    async with signed_in(h, ctx.admin) as browser:
        r = await browser.get("/app")
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "style-src 'self';" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
        assert "<script>" not in r.text  # no inline scripts: every script has a src
        r = await browser.get("/login")
        assert r.status_code == 303 and r.headers["location"] == "/app"


async def test_static_files(h: Harness) -> None:
    # Asked for by its content hash (as pages link it): cached for good.
    r = await h.client.get(static_url("js/app.js"))
    assert r.status_code == 200 and r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "immutable" in r.headers["cache-control"]
    # Imported by another module (no hash) or by an old hash: revalidated, so an upgrade reaches it.
    for url in ("/static/js/api.js", "/static/js/api.js?v=0123456789ab"):
        r = await h.client.get(url)
        assert r.status_code == 200 and r.headers["cache-control"] == "no-cache", url
        etag = r.headers["etag"]
        again = await h.client.get(url, headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
        assert (await h.client.get(url, headers={"if-none-match": '"stale"'})).status_code == 200
    r = await h.client.get("/static/css/app.css")
    assert r.status_code == 200 and r.headers["content-type"] == "text/css; charset=utf-8"
    for path in ("/static/../pages.py", "/static/%2e%2e/pages.py", "/static/js/../../pages.py", "/static/nope.js"):
        r = await h.client.get(path)
        assert r.status_code == 404, path


async def test_conversation_view_escapes_what_customers_write(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    created = await conversation_with(h, ctx, name=f"Ana {HOSTILE}", content=f"My order {HOSTILE}")
    cid = created["conversation_id"]
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=ctx.admin.headers,
                            json={"content": "", "content_html": f"<p>Hi</p>{HOSTILE}<script>window.__pwned=2</script>",
                                  "private": True})
    assert r.status_code == 201, r.text
    async with signed_in(h, ctx.admin) as browser:
        r = await browser.get(f"/app/conversations/{cid}")
        assert r.status_code == 200, r.text
        assert HOSTILE not in r.text and "<script>window" not in r.text
        assert "My order &lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;" in r.text
        assert "Ana &lt;img" in r.text
        r = await browser.get(f"/app/conversations/{cid}/timeline", params={"after_id": 0})
        assert r.status_code == 200 and HOSTILE not in r.text and "My order &lt;img" in r.text


async def test_invisible_conversations_are_not_found(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    sales = await h.make_team(ctx, "Sales")
    support = await h.make_team(ctx, "Support")
    agent = await h.make_user(ctx, "agent", Role.agent, teams=(support,))
    created = await conversation_with(h, ctx)
    cid = created["conversation_id"]
    r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=ctx.admin.headers, json={"team_id": sales})
    assert r.status_code == 200
    other = await h.make_account("Other")
    async with signed_in(h, agent) as browser:
        r = await browser.get(f"/app/conversations/{cid}")
        assert r.status_code == 404 and "not shared with you" in r.text
        for suffix in ("timeline", "sidebar"):
            assert (await browser.get(f"/app/conversations/{cid}/{suffix}")).status_code == 404
    async with signed_in(h, other.admin) as browser:
        assert (await browser.get(f"/app/conversations/{cid}")).status_code == 404


async def test_experts_get_the_note_box_only(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    expert = await h.make_user(ctx, "expert", Role.expert)
    created = await conversation_with(h, ctx)
    cid = created["conversation_id"]
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=ctx.admin.headers,
                            json={"content": "Can you look at this?", "private": True, "mention_ids": [expert.user_id]})
    assert r.status_code == 201, r.text
    async with signed_in(h, expert) as browser:
        r = await browser.get(f"/app/conversations/{cid}")
        assert r.status_code == 200
        assert 'data-can-reply="false"' in r.text and 'id="tab-reply" aria-selected="false" disabled' in r.text
        assert "Possibly the same person" not in r.text


async def test_contact_notes_move_with_a_merge_and_back_with_its_undo(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    a = (await h.client.post("/api/v1/contacts", headers=ctx.admin.headers, json={"name": "Ana", "email": "ana@example.org"})).json()
    b = (await h.client.post("/api/v1/contacts", headers=ctx.admin.headers, json={"name": "Ana L"})).json()
    r = await h.client.post(f"/api/v1/contacts/{b['id']}/notes", headers=ctx.admin.headers,
                            json={"body": "  Prefers phone calls after 5pm  "})
    assert r.status_code == 201, r.text
    note = r.json()
    assert (note["body"], note["author_id"], note["author_name"]) == ("Prefers phone calls after 5pm", ctx.admin.user_id, "Acme Admin")
    for bad in ({"body": "   "}, {"body": ""}, {"body": "x" * 5001}, {"body": "ok", "extra": 1}, {}):
        r = await h.client.post(f"/api/v1/contacts/{b['id']}/notes", headers=ctx.admin.headers, json=bad)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", bad
    other = await h.make_account("Other")
    assert (await h.client.post(f"/api/v1/contacts/{b['id']}/notes", headers=other.admin.headers,
                                json={"body": "x"})).status_code == 404
    assert (await h.client.get(f"/api/v1/contacts/{b['id']}/notes", headers=other.admin.headers)).status_code == 404
    r = await h.client.post(f"/api/v1/contacts/{a['id']}/merge", headers=ctx.admin.headers, json={"other_contact_id": b["id"]})
    assert r.status_code == 201, r.text
    merge_id = r.json()["id"]
    notes = (await h.client.get(f"/api/v1/contacts/{a['id']}/notes", headers=ctx.admin.headers)).json()
    assert [n["id"] for n in notes] == [note["id"]]
    assert (await h.client.get(f"/api/v1/contacts/{b['id']}/notes", headers=ctx.admin.headers)).json() == []
    r = await h.client.post(f"/api/v1/contact-merges/{merge_id}/undo", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    assert [n["id"] for n in (await h.client.get(f"/api/v1/contacts/{b['id']}/notes", headers=ctx.admin.headers)).json()] == [note["id"]]
    assert (await h.client.get(f"/api/v1/contacts/{a['id']}/notes", headers=ctx.admin.headers)).json() == []


async def test_the_timeline_says_why_a_message_from_another_channel_joined(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    chat = await h.make_api_inbox(ctx, trust=True)
    shop = await h.make_api_inbox(ctx, trust=True)
    first = inbound_payload(source_id="chat-ana", content="Is the blue jacket back in stock?")
    first["contact"]["email"] = "ana@example.com"
    second = inbound_payload(source_id="shop-77", content="Any news on the jacket?")
    second["contact"]["email"] = "Ana@Example.com"
    cid = (await h.deliver(chat, first)).json()["conversation_id"]
    assert (await h.deliver(shop, second)).json()["conversation_id"] == cid
    r = await h.client.get(f"/api/v1/conversations/{cid}/messages", headers=ctx.admin.headers)
    detail = r.json()["items"][1]["link"]["detail"]
    async with signed_in(h, ctx.admin) as browser:
        r = await browser.get(f"/app/conversations/{cid}")
    assert r.status_code == 200
    assert r.text.count('class="link-reason"') == 1  # the first message started the conversation
    assert f"Linked because {html.escape(detail, quote=True)}" in r.text
    # Both channels can take the reply, and the one the customer wrote on last is preselected.
    options = re.findall(r'<option value="(\d+)"( selected)?>', r.text.split('id="reply-channel"')[1].split("</select>")[0])
    assert options == [(str(chat.id), ""), (str(shop.id), " selected")]


async def test_sla_state_shows_in_the_inbox_and_the_conversation_and_filters_the_list(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    r = await h.client.post("/api/v1/sla/policies", headers=ctx.admin.headers,
                            json={"name": "Standard", "first_response_minutes": 60})
    assert r.status_code == 201, r.text
    cid = (await conversation_with(h, ctx, content="Where is my parcel?"))["conversation_id"]
    await h.run_jobs()  # the SLA listener starts the clock
    async with signed_in(h, ctx.admin) as browser:
        r = await browser.get("/app", params={"view": "all"})
        assert r.status_code == 200
        row = r.text.split(f'data-id="{cid}"')[1].split("</li>")[0]
        assert re.search(r'class="badge sla-ok"[^>]*>SLA ok · in (59|60)m<', row), row
        for state, shown in (("ok", True), ("breached", False), ("warning", False)):
            r = await browser.get("/app", params={"view": "all", "sla_state": state})
            assert (f'data-id="{cid}"' in r.text) is shown, state
            assert f'<option value="{state}" selected>' in r.text
        r = await browser.get(f"/app/conversations/{cid}")
        assert 'id="sla-state"' in r.text and "Standard" in r.text and "first response: ok" in r.text
