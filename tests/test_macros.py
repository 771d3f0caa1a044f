"""Macros: named bundles of actions an agent applies in one click, as that agent (their
permissions), all or nothing, logged like rule executions, with a ``macro_applied`` activity."""

from __future__ import annotations

from typing import Any

from swarmdesk.accounts.models import Role
from swarmdesk.conversations.models import Message
from tests.support import AccountCtx, Harness, Staff
from tests.test_automation import (
    PROBLEM,
    activity,
    canned,
    conversation,
    count,
    executions,
    make_rule,
    messages,
    on,
    patch,
    say,
    settle,
    setup,
    staff,
)


async def make_macro(h: Harness, who: Staff, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    r = await h.client.post("/api/v1/macros", headers=who.headers, json=body)
    assert r.status_code == status, r.text
    if status >= 400:
        assert r.headers["content-type"].split(";")[0] == PROBLEM
    return r.json()


async def apply(h: Harness, who: Staff, cid: int, macro_id: int, status: int = 200) -> dict[str, Any]:
    r = await h.client.post(f"/api/v1/conversations/{cid}/macros/{macro_id}/apply", headers=who.headers)
    assert r.status_code == status, r.text
    return r.json()


async def macro_names(h: Harness, who: Staff) -> list[str]:
    r = await h.client.get("/api/v1/macros", headers=who.headers)
    assert r.status_code == 200, r.text
    return [m["name"] for m in r.json()]


async def world(h: Harness) -> tuple[AccountCtx, Any, int, Staff]:
    ctx, inbox = await setup(h)
    team = await h.make_team(ctx, "Support")
    agent = await h.make_user(ctx, "agent", teams=(team,))
    cid = (await say(h, inbox, "My invoice is wrong"))["conversation_id"]
    await patch(h, ctx.admin, cid, {"team_id": team})
    return ctx, inbox, cid, agent


async def test_an_agent_applies_a_macro_in_one_click(h: Harness) -> None:
    ctx, _, cid, agent = await world(h)
    thanks = await canned(h, ctx, "Thanks {{contact.name}}, {{agent.name}} here: it is fixed.")
    macro = await make_macro(h, ctx.admin, {"name": "Fixed billing", "description": "Reply, tag, resolve", "actions": [
        {"type": "assign", "user_id": agent.user_id}, {"type": "add_tags", "tags": ["billing"]},
        {"type": "set_priority", "priority": "low"}, {"type": "reply_template", "canned_response_id": thanks},
        {"type": "add_note", "content": "Closed with the billing macro"}, {"type": "resolve"}]})
    assert (macro["personal"], macro["owner_id"]) == (False, None)
    assert await macro_names(h, agent) == ["Fixed billing"]

    with h.capture_events() as events:
        body = await apply(h, agent, cid, macro["id"])
    c = body["conversation"]
    assert (c["assignee_id"], c["tags"], c["priority"], c["status"]) == (agent.user_id, ["billing"], "low", "resolved")
    assert c["first_response_at"] is not None  # a person answered
    execution = body["execution"]
    reply_id = execution["actions"][3]["result"]["message_id"]
    assert execution == {
        "id": execution["id"], "kind": "macro", "rule_id": None, "rule_version": None, "macro_id": macro["id"],
        "name": "Fixed billing", "conversation_id": cid, "trigger_event_uid": None, "trigger_event_type": None,
        "trigger_key": execution["trigger_key"], "outcome": "applied", "reason": None, "conditions": {},
        "actions": [
            {"type": "assign", "ok": True, "result": {"assignee_id": agent.user_id, "changed": True}},
            {"type": "add_tags", "ok": True, "result": {"tags": ["billing"], "changed": True}},
            {"type": "set_priority", "ok": True, "result": {"priority": "low", "changed": True}},
            {"type": "reply_template", "ok": True, "result": {"message_id": reply_id, "canned_response_id": thanks}},
            {"type": "add_note", "ok": True, "result": {"message_id": reply_id + 1}},
            {"type": "resolve", "ok": True, "result": {"status": "resolved", "changed": True}}],
        "cause": None, "actor_user_id": agent.user_id, "created_at": execution["created_at"]}
    assert await executions(h, ctx.admin, macro_id=macro["id"]) == [execution]
    sent = [m for m in await messages(h, ctx, cid) if m["direction"] == "outgoing"]
    assert [(m["sender"]["type"], m["sender"]["id"], m["content"], m["private"]) for m in sent] == [
        ("user", agent.user_id, "Thanks Ana Lima, Agent here: it is fixed.", False),
        ("user", agent.user_id, "Closed with the billing macro", True)]
    verbs = [(a["verb"], a["actor_type"], a["actor_id"]) for a in await activity(h, ctx, cid)]
    assert verbs[-5:] == [("assigned", "user", agent.user_id), ("tags_changed", "user", agent.user_id),
                          ("priority_changed", "user", agent.user_id), ("status_changed", "user", agent.user_id),
                          ("macro_applied", "user", agent.user_id)]
    applied = [a for a in await activity(h, ctx, cid) if a["verb"] == "macro_applied"]
    assert [(a["actor_id"], a["data"]) for a in applied] == [(agent.user_id, {
        "macro_id": macro["id"], "macro_name": "Fixed billing", "execution_id": execution["id"],
        "actions": ["assign", "add_tags", "set_priority", "reply_template", "add_note", "resolve"]})]

    # One transaction: the events of every action, then macro_applied, each naming the macro.
    types = [e.type for e in events]
    assert types == ["conversation.assigned", "conversation.updated", "conversation.updated", "message.created",
                     "customer.message_created", "message.created", "conversation.status_changed",
                     "customer.conversation_updated", "automation.macro_applied"]
    cause = {"kind": "macro", "rule_ids": [], "macro_id": macro["id"], "execution_id": execution["id"]}
    assert {str(e.cause) for e in events} == {str(cause)}
    event = events[-1]
    team = c["team_id"]
    assert event.audience == staff(team=team, users=(agent.user_id,))
    assert event.body() | {"uid": None, "occurred_at": None} == {
        "type": "automation.macro_applied", "uid": None, "occurred_at": None, "account_id": ctx.account_id,
        "conversation_id": cid, "execution_id": execution["id"], "macro_id": macro["id"],
        "macro_name": "Fixed billing", "user_id": agent.user_id,
        "actions": [{"type": t, "ok": True} for t in
                    ("assign", "add_tags", "set_priority", "reply_template", "add_note", "resolve")]}


async def test_an_expert_cannot_resolve_with_a_macro_and_nothing_changes(h: Harness) -> None:
    ctx, _, cid, agent = await world(h)
    expert = await h.make_user(ctx, "expert", Role.expert)
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=agent.headers,
                            json={"content": "@expert please look", "private": True, "mention_ids": [expert.user_id]})
    assert r.status_code == 201, r.text  # the expert now takes part in the conversation
    wrap = await make_macro(h, ctx.admin, {"name": "Wrap up", "actions": [
        {"type": "add_tags", "tags": ["done"]}, {"type": "add_note", "content": "wrapping up"}, {"type": "resolve"}]})
    advise = await make_macro(h, ctx.admin, {"name": "Advise", "actions": [
        {"type": "add_note", "content": "Expert advice: check the ledger"}]})
    assert await macro_names(h, expert) == ["Advise"]  # what an expert may use
    assert await macro_names(h, agent) == ["Advise", "Wrap up"]
    before = await conversation(h, ctx, cid)
    messages_before = await count(h, Message)
    with h.capture_events() as events:
        problem = await apply(h, expert, cid, wrap["id"], status=403)
    assert problem["detail"] == ("experts cannot add tags: a macro of theirs may only add notes and notify "
                                 "colleagues")
    assert events == []
    assert await conversation(h, ctx, cid) == before
    assert await count(h, Message) == messages_before
    (failed,) = await executions(h, ctx.admin, macro_id=wrap["id"])
    assert (failed["outcome"], failed["actor_user_id"]) == ("failed", expert.user_id)
    assert failed["reason"] == ("action 1 (add_tags) was refused: experts cannot add tags: a macro of theirs may "
                                "only add notes and notify colleagues; nothing was changed")
    assert [(a["type"], a["ok"], a.get("error")) for a in failed["actions"]] == [
        ("add_tags", False, "experts cannot add tags: a macro of theirs may only add notes and notify colleagues"),
        ("add_note", False, "not run"), ("resolve", False, "not run")]
    # A later refusal undoes the earlier actions too (an agent on a closed conversation).
    await patch(h, ctx.admin, cid, {"status": "closed"})
    problem = await apply(h, agent, cid, wrap["id"], status=409)
    assert problem["detail"] == "a closed conversation is final; start a new one"
    assert (await conversation(h, ctx, cid))["tags"] == []
    last = (await executions(h, ctx.admin, macro_id=wrap["id"]))[-1]
    assert [(a["type"], a["ok"], a.get("rolled_back")) for a in last["actions"]] == [
        ("add_tags", True, True), ("add_note", True, True), ("resolve", False, None)]
    assert [m["content"] for m in await messages(h, ctx, cid) if m["private"]] == ["@expert please look"]

    body = await apply(h, expert, cid, advise["id"])
    assert body["execution"]["outcome"] == "applied"
    assert [m["content"] for m in await messages(h, ctx, cid) if m["private"]][-1] == "Expert advice: check the ledger"


async def test_shared_and_personal_macros(h: Harness) -> None:
    ctx, _, cid, agent = await world(h)
    other = await h.make_user(ctx, "other")
    supervisor = await h.make_user(ctx, "super", Role.supervisor)
    body = {"name": "Tag it", "actions": [{"type": "add_tags", "tags": ["x"]}]}
    problem = await make_macro(h, agent, body, status=403)
    assert problem["detail"] == ("shared macros are managed by admins and supervisors; create a personal macro "
                                 "instead")
    shared = await make_macro(h, supervisor, body)
    mine = await make_macro(h, agent, {**body, "name": "my own", "personal": True})
    assert (mine["personal"], mine["owner_id"]) == (True, agent.user_id)
    assert await macro_names(h, agent) == ["my own", "Tag it"]
    assert await macro_names(h, other) == ["Tag it"]
    for method, path in (("GET", f"/api/v1/macros/{mine['id']}"), ("PATCH", f"/api/v1/macros/{mine['id']}"),
                         ("DELETE", f"/api/v1/macros/{mine['id']}"),
                         ("POST", f"/api/v1/conversations/{cid}/macros/{mine['id']}/apply")):
        r = await h.client.request(method, path, headers=other.headers, json={"name": "x"} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
    r = await h.client.patch(f"/api/v1/macros/{shared['id']}", headers=agent.headers, json={"name": "mine now"})
    assert r.status_code == 403
    assert (await h.client.delete(f"/api/v1/macros/{shared['id']}", headers=agent.headers)).status_code == 403
    r = await h.client.patch(f"/api/v1/macros/{mine['id']}", headers=agent.headers, json={
        "name": "my own 2", "actions": [{"type": "add_tags", "tags": ["y"]}]})
    assert (r.status_code, r.json()["name"], r.json()["actions"]) == (200, "my own 2",
                                                                       [{"type": "add_tags", "tags": ["y"]}])
    r = await h.client.patch(f"/api/v1/macros/{shared['id']}", headers=supervisor.headers, json={"description": "d"})
    assert (r.status_code, r.json()["description"]) == (200, "d")
    assert (await h.client.delete(f"/api/v1/macros/{mine['id']}", headers=agent.headers)).status_code == 204
    assert await macro_names(h, agent) == ["Tag it"]
    # Another account's macro does not exist.
    stranger = await h.make_account("Other")
    r = await h.client.post(f"/api/v1/conversations/{cid}/macros/{shared['id']}/apply",
                            headers=stranger.admin.headers)
    assert r.status_code == 404
    assert await macro_names(h, stranger.admin) == []


async def test_bad_macros_and_hidden_conversations(h: Harness) -> None:
    ctx, inbox, cid, agent = await world(h)
    for body, message in (
            ({"name": "x", "actions": [{"type": "teleport"}]}, "Input tag 'teleport' found using 'type'"),
            ({"name": "x", "actions": []}, "List should have at least 1 item"),
            ({"name": "", "actions": [{"type": "resolve"}]}, "String should have at least 1 character"),
            ({"name": "x", "actions": [{"type": "assign", "user_id": 424242}]}, "not in this account: active user 424242"),
            ({"name": "x", "actions": [{"type": "resolve"}], "shared": True}, "Extra inputs are not permitted")):
        problem = await make_macro(h, ctx.admin, body, status=422)
        assert message in problem["detail"], (body, problem)
    macro = await make_macro(h, ctx.admin, {"name": "Resolve", "actions": [{"type": "resolve"}]})
    # A conversation of another team: the agent cannot see it, so it does not exist for them.
    elsewhere = await h.make_team(ctx, "Elsewhere")
    hidden = (await say(h, inbox, "private matter", source_id="c9"))["conversation_id"]
    await patch(h, ctx.admin, hidden, {"team_id": elsewhere})
    await apply(h, agent, hidden, macro["id"], status=404)
    assert (await conversation(h, ctx, hidden))["status"] == "open"
    await apply(h, agent, cid, 999999, status=404)
    r = await h.client.post(f"/api/v1/conversations/{cid}/macros/0/apply", headers=agent.headers)
    assert r.status_code == 422


async def test_rules_react_to_what_a_macro_did(h: Harness) -> None:
    """A macro is a person's change: rules fire on its events (their chain starts empty)."""
    ctx, _, cid, agent = await world(h)
    await make_rule(h, ctx, on("tags_changed", name="VIP note", conditions={"all": [{"type": "tag", "tags": ["vip"]}]},
                               actions=[{"type": "add_note", "content": "VIP: handle with care"}]))
    macro = await make_macro(h, ctx.admin, {"name": "VIP", "actions": [{"type": "add_tags", "tags": ["vip"]}]})
    await apply(h, agent, cid, macro["id"])
    await settle(h)
    (run,) = [e for e in await executions(h, ctx.admin) if e["kind"] == "rule"]
    assert (run["outcome"], run["cause"]["kind"], run["cause"]["rule_ids"]) == ("applied", "macro", [])
    assert [m["content"] for m in await messages(h, ctx, cid) if m["private"]] == ["VIP: handle with care"]
