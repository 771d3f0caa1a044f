"""Canned responses: who may read and write them, search, and rendering placeholders as plain text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from swarmdesk.accounts.models import Role
from swarmdesk.core.clock import clock
from swarmdesk.core.pagination import encode_cursor
from tests.support import AccountCtx, Harness, Staff, inbound_payload

BASE = "/api/v1/canned-responses"


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def setup(h: Harness) -> tuple[AccountCtx, Staff, Staff, Staff]:
    clock.freeze(datetime.now(UTC).replace(microsecond=0))
    ctx = await h.make_account()
    supervisor = await h.make_user(ctx, "supervisor", role=Role.supervisor)
    agent = await h.make_user(ctx, "agent")
    expert = await h.make_user(ctx, "expert", role=Role.expert)
    return ctx, supervisor, agent, expert


async def create(h: Harness, who: Staff, body: dict, status: int = 201) -> dict:
    r = await h.client.post(BASE, headers=who.headers, json=body)
    assert r.status_code == status, r.text
    return r.json()


async def listed(h: Harness, who: Staff, **params: Any) -> list[str]:
    r = await h.client.get(BASE, headers=who.headers, params=params)
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    return [c["short_code"] for c in r.json()["items"]]


async def test_admins_and_supervisors_write_everyone_reads(h: Harness) -> None:
    ctx, supervisor, agent, expert = await setup(h)
    admin = ctx.admin
    body = await create(h, admin, {"short_code": " Refund ", "title": "Refund policy",
                                   "body": "Hi {{contact.name}}, refunds take 5 days."})
    assert body == {"id": body["id"], "short_code": "refund", "title": "Refund policy",
                    "body": "Hi {{contact.name}}, refunds take 5 days.", "created_by": admin.user_id,
                    "created_at": iso(clock.now()), "updated_at": iso(clock.now())}
    by_supervisor = await create(h, supervisor, {"short_code": "thanks", "title": "Thanks", "body": "Thank you!"})
    assert by_supervisor["created_by"] == supervisor.user_id

    # Agents (and experts) read; only admins and supervisors write.
    for who in (agent, expert):
        assert await listed(h, who) == ["refund", "thanks"]
        r = await h.client.get(f"{BASE}/{body['id']}", headers=who.headers)
        assert (r.status_code, r.json()["short_code"]) == (200, "refund")
        r = await h.client.post(BASE, headers=who.headers, json={"short_code": "x", "title": "x", "body": "x"})
        assert (r.status_code, r.json()["detail"]) == (403, "requires the admin or supervisor role")
        r = await h.client.patch(f"{BASE}/{body['id']}", headers=who.headers, json={"title": "Mine"})
        assert r.status_code == 403
        r = await h.client.delete(f"{BASE}/{body['id']}", headers=who.headers)
        assert r.status_code == 403
    assert await listed(h, agent) == ["refund", "thanks"]
    assert (await h.client.get(f"{BASE}/{body['id']}", headers=agent.headers)).json()["title"] == "Refund policy"

    # A token without the write scope cannot write either, whatever the role.
    read_only = await h.make_user(ctx, "reader", role=Role.supervisor, scopes=["conversations:read"])
    r = await h.client.post(BASE, headers=read_only.headers, json={"short_code": "x", "title": "x", "body": "x"})
    assert (r.status_code, r.json()["detail"]) == (403, "this API token lacks the 'conversations:write' scope")
    assert await listed(h, read_only) == ["refund", "thanks"]

    # Short codes are unique per account, ignoring case; another account may reuse them.
    r = await h.client.post(BASE, headers=supervisor.headers, json={"short_code": "REFUND", "title": "t", "body": "b"})
    assert (r.status_code, r.json()["detail"]) == (409, "a canned response with short code 'refund' already exists")
    other = await h.make_account("Other")
    theirs = await create(h, other.admin, {"short_code": "refund", "title": "Theirs", "body": "b"})
    assert await listed(h, other.admin) == ["refund"]
    for path in (f"{BASE}/{theirs['id']}", f"{BASE}/{10**9}"):
        for method in ("GET", "PATCH", "DELETE"):
            r = await h.client.request(method, path, headers=admin.headers, **({"json": {}} if method == "PATCH" else {}))
            assert r.status_code == 404, (method, path)

    # Changes: only the fields given; a code taken by another response is a conflict.
    created = clock.now()
    clock.advance(timedelta(minutes=1))
    r = await h.client.patch(f"{BASE}/{body['id']}", headers=supervisor.headers, json={"title": "Refunds"})
    assert {k: r.json()[k] for k in ("title", "body", "short_code", "created_by", "created_at", "updated_at")} == {
        "title": "Refunds", "body": "Hi {{contact.name}}, refunds take 5 days.", "short_code": "refund",
        "created_by": admin.user_id, "created_at": iso(created), "updated_at": iso(clock.now())}
    r = await h.client.patch(f"{BASE}/{body['id']}", headers=supervisor.headers, json={"title": "Refunds"})
    assert r.status_code == 200  # no change: nothing recorded
    r = await h.client.patch(f"{BASE}/{body['id']}", headers=admin.headers, json={"short_code": "Thanks"})
    assert (r.status_code, r.json()["detail"]) == (409, "a canned response with short code 'thanks' already exists")
    r = await h.client.patch(f"{BASE}/{body['id']}", headers=admin.headers, json={"short_code": "refund-2"})
    assert (r.status_code, r.json()["short_code"]) == (200, "refund-2")
    r = await h.client.delete(f"{BASE}/{by_supervisor['id']}", headers=supervisor.headers)
    assert r.status_code == 204
    assert await listed(h, agent) == ["refund-2"]

    r = await h.client.get("/api/v1/audit-log", headers=admin.headers)
    assert [(e["action"], e["subject_id"], e["data"], e["actor_user_id"]) for e in r.json()["items"]
            if e["subject_type"] == "canned_response"] == [
        ("canned_response.deleted", by_supervisor["id"], {"short_code": "thanks"}, supervisor.user_id),
        ("canned_response.updated", body["id"], {"changed": ["short_code"]}, admin.user_id),
        ("canned_response.updated", body["id"], {"changed": ["title"]}, supervisor.user_id),
        ("canned_response.created", by_supervisor["id"], {"short_code": "thanks"}, supervisor.user_id),
        ("canned_response.created", body["id"], {"short_code": "refund"}, admin.user_id)]


async def test_bad_input_is_refused(h: Harness) -> None:
    ctx, _, _, _ = await setup(h)
    admin = ctx.admin
    good = {"short_code": "ok", "title": "t", "body": "b"}
    for body, loc in (({**good, "short_code": "has space"}, ["body", "short_code"]),
                      ({**good, "short_code": "-dash"}, ["body", "short_code"]),
                      ({**good, "short_code": "x" * 51}, ["body", "short_code"]),
                      ({**good, "short_code": ""}, ["body", "short_code"]),
                      ({**good, "title": ""}, ["body", "title"]),
                      ({**good, "title": "t" * 201}, ["body", "title"]),
                      ({**good, "body": ""}, ["body", "body"]),
                      ({**good, "body": "b" * 10_001}, ["body", "body"]),
                      ({**good, "body": "nul\x00"}, ["body"]),
                      ({**good, "html": "<b>"}, ["body", "html"]),
                      ({"title": "t", "body": "b"}, ["body", "short_code"])):
        r = await h.client.post(BASE, headers=admin.headers, json=body)
        assert (r.status_code, r.headers["content-type"]) == (422, "application/problem+json"), body
        assert r.json()["errors"][0]["loc"] == loc, body
    assert (await create(h, admin, {**good, "body": "b" * 10_000}))["body"] == "b" * 10_000
    canned = await create(h, admin, {**good, "short_code": "ok2"})
    for patch in ({"title": None}, {"short_code": None}, {"body": "x" * 10_001}, {"created_by": 5}):
        r = await h.client.patch(f"{BASE}/{canned['id']}", headers=admin.headers, json=patch)
        assert r.status_code == 422, patch
    for params in ({"q": "x" * 101}, {"limit": 0}, {"limit": 201}):
        r = await h.client.get(BASE, headers=admin.headers, params=params)
        assert r.status_code == 422, params
    for cursor in ("not-a-cursor", encode_cursor([5]), encode_cursor(["a", "b"])):
        r = await h.client.get(BASE, headers=admin.headers, params={"cursor": cursor})
        assert (r.status_code, r.json()["detail"]) == (
            400, "cursor is not valid; use the next_cursor a previous page returned"), cursor
    r = await h.client.get(f"{BASE}/{2**64}", headers=admin.headers)
    assert r.status_code == 422


async def test_search_by_code_prefix_or_text(h: Harness) -> None:
    ctx, _, agent, _ = await setup(h)
    for code, title, body in (("ship-late", "Shipping delayed", "Your parcel is late, sorry."),
                              ("ship-lost", "Lost parcel", "We are opening an investigation."),
                              ("refund", "Refund policy", "Refunds take 5 days; 100% guaranteed."),
                              ("hello", "Greeting", "Hi {{contact.name}}!"),
                              ("under_score", "Codes with _", "Plain.")):
        await create(h, ctx.admin, {"short_code": code, "title": title, "body": body})
    assert await listed(h, agent) == ["hello", "refund", "ship-late", "ship-lost", "under_score"]
    assert await listed(h, agent, q="ship") == ["ship-late", "ship-lost"]  # short-code prefix
    assert await listed(h, agent, q="SHIP-L") == ["ship-late", "ship-lost"]
    assert await listed(h, agent, q="hip") == ["ship-late"]  # "hip" only in a title ("Shipping")
    assert await listed(h, agent, q="PARCEL") == ["ship-late", "ship-lost"]  # body, title
    assert await listed(h, agent, q="investigation") == ["ship-lost"]
    assert await listed(h, agent, q="lo") == ["ship-lost"]  # a title; "hello" has "lo" but codes match by prefix
    assert await listed(h, agent, q="%") == ["refund"]  # a literal percent sign, not a wildcard
    assert await listed(h, agent, q="_") == ["under_score"]
    assert await listed(h, agent, q="{{contact") == ["hello"]
    assert await listed(h, agent, q="nothing like it") == []
    assert await listed(h, agent, q="  ") == ["hello", "refund", "ship-late", "ship-lost", "under_score"]

    pages, cursor = [], None
    while True:
        r = await h.client.get(BASE, headers=agent.headers, params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        pages.append([c["short_code"] for c in r.json()["items"]])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == [["hello", "refund"], ["ship-late", "ship-lost"], ["under_score"]]


async def test_render_fills_placeholders_as_plain_text(h: Harness) -> None:
    ctx, _, agent, _ = await setup(h)
    billing = await h.make_team(ctx, "Billing")
    inbox = await h.make_api_inbox(ctx)
    r = await h.deliver(inbox, inbound_payload(source_id="c1"))
    cid = r.json()["conversation_id"]
    r = await h.deliver(inbox, {**inbound_payload(source_id="c2"),
                                "contact": {"source_id": "c2", "name": "{{agent.name}} <script>", "email": "tricky@example.com"}})
    assert r.status_code == 200, r.text
    tricky = r.json()["conversation_id"]
    r = await h.client.patch(f"/api/v1/conversations/{tricky}", headers=ctx.admin.headers, json={"team_id": billing})
    assert r.status_code == 200
    body = ("Hi {{contact.name}} ({{ contact.email }}), this is {{agent.name}} about #{{conversation.id}}. "
            "{{contact.phone}} {{ unknown }} {{contact.name {{agent.name}}} {{{{agent.name}}}} ${7*7} {% raw %}")
    canned = await create(h, ctx.admin, {"short_code": "hi", "title": "Hi", "body": body})

    r = await h.client.get(f"{BASE}/{canned['id']}/render", headers=agent.headers, params={"conversation_id": cid})
    assert r.status_code == 200, r.text
    assert r.json() == {"canned_response_id": canned["id"], "conversation_id": cid, "text": (
        f"Hi Ana Lima (), this is Agent about #{cid}. "
        "{{contact.phone}} {{ unknown }} {{contact.name Agent} {{Agent}} ${7*7} {% raw %}")}
    # A value that looks like a placeholder is inserted as it is, never expanded again.
    r = await h.client.get(f"{BASE}/{canned['id']}/render", headers=ctx.admin.headers,
                           params={"conversation_id": tricky})
    assert r.json()["text"].startswith("Hi {{agent.name}} <script> (tricky@example.com), this is Acme Admin about ")

    # The conversation must be one the caller may see; the response one of the caller's account.
    r = await h.client.get(f"{BASE}/{canned['id']}/render", headers=agent.headers, params={"conversation_id": tricky})
    assert (r.status_code, r.json()["detail"]) == (404, f"conversation {tricky} not found")
    other = await h.make_account("Other")
    r = await h.client.get(f"{BASE}/{canned['id']}/render", headers=other.admin.headers,
                           params={"conversation_id": cid})
    assert (r.status_code, r.json()["detail"]) == (404, f"canned response {canned['id']} not found")
    for params in ({}, {"conversation_id": "x"}, {"conversation_id": 0}):
        r = await h.client.get(f"{BASE}/{canned['id']}/render", headers=agent.headers, params=params)
        assert r.status_code == 422, params
