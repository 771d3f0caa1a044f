"""Automation rules through the real path: a change commits -> the event outbox job -> the
automation listener -> the rule's actions through the other domains' actions -> the execution log,
the activity log and the events. Also: management (validation, versions, order), every condition
and action type, and loop protection."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from swarmdesk.accounts.models import Role
from swarmdesk.automation import executors
from swarmdesk.automation.engine import MAX_CHAIN_DEPTH
from swarmdesk.automation.models import AutomationExecution, AutomationRuleVersion
from swarmdesk.automation.patterns import PatternError, SafePattern
from swarmdesk.conversations.models import Conversation
from swarmdesk.core.clock import clock
from swarmdesk.core.errors import Conflict
from swarmdesk.events.base import Audience, BaseEvent
from swarmdesk.jobs import service as jobs_service
from swarmdesk.jobs.models import Job
from swarmdesk.jobs.worker import Worker
from tests.support import AccountCtx, ApiInbox, Harness, Receiver, Staff, inbound_payload, sign

PROBLEM = "application/problem+json"


# --- helpers (the other automation and macro tests import these) -----------------------------------

def staff(*, team: int | None = None, users: tuple[int, ...] = ()) -> Audience:
    if team is None:
        return Audience(roles=("admin", "supervisor"), all_agents=True, user_ids=users)
    return Audience(roles=("admin", "supervisor"), team_ids=(team,), user_ids=users)


async def setup(h: Harness, frozen: datetime | None = None) -> tuple[AccountCtx, ApiInbox]:
    clock.freeze(frozen or datetime.now(UTC).replace(microsecond=0))
    ctx = await h.make_account()
    return ctx, await h.make_api_inbox(ctx)


async def settle(h: Harness) -> None:
    """Run every runnable job, one at a time (so chains of rules happen in a fixed order)."""
    await Worker(h.runtime, h.runtime.jobs, concurrency=1).drain(30)


async def make_rule(h: Harness, ctx: AccountCtx, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    r = await h.client.post("/api/v1/automation/rules", headers=ctx.admin.headers, json=body)
    assert r.status_code == status, r.text
    if status >= 400:
        assert r.headers["content-type"].split(";")[0] == PROBLEM
    return r.json()


def on(*events: str, actions: list[dict[str, Any]], conditions: dict[str, Any] | None = None,
       name: str = "Rule", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "trigger": {"type": "event", "events": list(events)}, "actions": actions,
                            **extra}
    if conditions is not None:
        body["conditions"] = conditions
    return body


async def say(h: Harness, inbox: ApiInbox, content: str = "Hello", source_id: str = "cust-1",
              **extra: Any) -> dict[str, Any]:
    """A customer writes (signed at the test clock's now, which may be far from the real one)."""
    body = orjson.dumps(inbound_payload(content=content, source_id=source_id, **extra))
    r = await h.client.post(inbox.webhook_path, content=body, headers=sign(inbox.secret, body, at=clock.now()))
    assert r.status_code == 200, r.text
    return r.json()


async def canned(h: Harness, ctx: AccountCtx, body: str, code: str = "ack") -> int:
    r = await h.client.post("/api/v1/canned-responses", headers=ctx.admin.headers,
                            json={"short_code": code, "title": code.title(), "body": body})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def executions(h: Harness, who: Staff, **params: Any) -> list[dict[str, Any]]:
    r = await h.client.get("/api/v1/automation/executions", headers=who.headers,
                           params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["items"]))  # oldest first


async def conversation(h: Harness, ctx: AccountCtx, cid: int) -> dict[str, Any]:
    r = await h.client.get(f"/api/v1/conversations/{cid}", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def messages(h: Harness, ctx: AccountCtx, cid: int) -> list[dict[str, Any]]:
    r = await h.client.get(f"/api/v1/conversations/{cid}/messages", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def activity(h: Harness, ctx: AccountCtx, cid: int) -> list[dict[str, Any]]:
    r = await h.client.get(f"/api/v1/conversations/{cid}/activity", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def patch(h: Harness, who: Staff, cid: int, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=who.headers, json=body)
    assert r.status_code == status, r.text
    return r.json()


async def tag(h: Harness, who: Staff, cid: int, add: list[str] = (), remove: list[str] = ()) -> None:  # type: ignore[assignment]
    r = await h.client.post(f"/api/v1/conversations/{cid}/tags", headers=who.headers,
                            json={"add": list(add), "remove": list(remove)})
    assert r.status_code == 200, r.text


async def reply(h: Harness, who: Staff, cid: int, content: str, private: bool = False) -> dict[str, Any]:
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=who.headers,
                            json={"content": content, "private": private})
    assert r.status_code == 201, r.text
    return r.json()


def brief(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["name"], e["outcome"]) for e in items]


async def count(h: Harness, model: type, *where: Any) -> int:
    async with h.runtime.uow() as uow:
        return await uow.session.scalar(select(func.count()).select_from(model).where(*where))


# --- the path from an event to a logged execution ------------------------------------------------------

async def test_a_rule_runs_from_the_event_through_the_listener_job_and_is_logged(h: Harness) -> None:
    ctx, inbox = await setup(h)
    team = await h.make_team(ctx, "Billing")
    ack = await canned(h, ctx, "Hi {{contact.name}}, we are on it (#{{conversation.id}}).")
    rule = await make_rule(h, ctx, on("message_received", name="Refunds to billing", conditions={"all": [
        {"type": "text_contains", "any": ["refund", "chargeback"]}]}, actions=[
        {"type": "set_team", "team_id": team}, {"type": "set_priority", "priority": "high"},
        {"type": "add_tags", "tags": ["Refund"]}, {"type": "reply_template", "canned_response_id": ack}]))
    assert (rule["version"], rule["enabled"], rule["position"]) == (1, True, 0)

    body = await say(h, inbox, "I want a REFUND for order 42")
    cid = body["conversation_id"]
    assert (await conversation(h, ctx, cid))["priority"] == "none"  # nothing ran inside the intake
    # The outbox holds the event for the automation listener: one events.dispatch job.
    assert await count(h, Job, Job.kind == "events.dispatch", Job.status == "queued") == 1
    await settle(h)

    c = await conversation(h, ctx, cid)
    assert (c["team_id"], c["priority"], c["tags"]) == (team, "high", ["refund"])
    assert c["first_response_at"] is None  # Swarmdesk's reply is not a human's first response
    last = (await messages(h, ctx, cid))[-1]
    assert (last["direction"], last["sender"]["type"], last["content"]) == (
        "outgoing", "system", f"Hi Ana Lima, we are on it (#{cid}).")
    (run,) = await executions(h, ctx.admin)
    assert run == {
        "id": run["id"], "kind": "rule", "rule_id": rule["id"], "rule_version": 1, "macro_id": None,
        "name": "Refunds to billing", "conversation_id": cid, "trigger_event_uid": run["trigger_event_uid"],
        "trigger_event_type": "message.created", "trigger_key": run["trigger_event_uid"], "outcome": "applied",
        "reason": None, "conditions": {"matched": True, "results": [{"type": "text_contains", "result": True}]},
        "actions": [
            {"type": "set_team", "ok": True, "result": {"team_id": team, "changed": True}},
            {"type": "set_priority", "ok": True, "result": {"priority": "high", "changed": True}},
            {"type": "add_tags", "ok": True, "result": {"tags": ["refund"], "changed": True}},
            {"type": "reply_template", "ok": True, "result": {"message_id": last["id"], "canned_response_id": ack}}],
        "cause": None, "actor_user_id": None, "created_at": run["created_at"]}
    applied = [a for a in await activity(h, ctx, cid) if a["verb"] == "rule_applied"]
    assert [(a["actor_type"], a["actor_id"], a["data"]) for a in applied] == [("system", None, {
        "rule_id": rule["id"], "rule_version": 1, "rule_name": "Refunds to billing", "execution_id": run["id"],
        "outcome": "applied", "actions": [{"type": t, "ok": True} for t in
                                          ("set_team", "set_priority", "add_tags", "reply_template")]})]
    # The changes are the ordinary ones, by the system.
    verbs = [(a["verb"], a["actor_type"]) for a in await activity(h, ctx, cid)]
    assert verbs == [("created", "contact"), ("team_changed", "system"), ("priority_changed", "system"),
                     ("tags_changed", "system"), ("rule_applied", "system")]

    # Conditions that do not hold: logged as not matched, nothing done.
    other = await say(h, inbox, "Just saying thanks", source_id="cust-2")
    await settle(h)
    runs = await executions(h, ctx.admin, conversation_id=other["conversation_id"])
    assert [(e["outcome"], e["conditions"], e["actions"]) for e in runs] == [
        ("not_matched", {"matched": False, "results": [{"type": "text_contains", "result": False}]}, [])]
    assert (await conversation(h, ctx, other["conversation_id"]))["priority"] == "none"


async def test_rule_events_name_their_cause_and_rule_applied_reaches_the_conversation_staff(h: Harness) -> None:
    ctx, inbox = await setup(h)
    team = await h.make_team(ctx, "Billing")
    agent = await h.make_user(ctx, "agent", teams=(team,))
    rule = await make_rule(h, ctx, on("message_received", name="Route", actions=[
        {"type": "set_team", "team_id": team}, {"type": "assign", "user_id": agent.user_id}]))
    body = await say(h, inbox, "Hello")
    cid = body["conversation_id"]
    with h.capture_events() as events:
        await settle(h)
    (run,) = await executions(h, ctx.admin)
    assert [e.type for e in events] == ["conversation.assigned", "conversation.assigned", "notification.created",
                                        "automation.rule_applied"]
    cause = {"kind": "rule", "rule_ids": [rule["id"]], "execution_id": run["id"]}
    assert [e.cause for e in events] == [cause] * 4
    assert all("cause" not in e.body() for e in events)  # live clients do not get it
    applied = events[-1]
    assert applied.audience == staff(team=team, users=(agent.user_id,))
    assert applied.body() | {"uid": None, "occurred_at": None} == {
        "type": "automation.rule_applied", "uid": None, "account_id": ctx.account_id, "occurred_at": None,
        "conversation_id": cid, "execution_id": run["id"], "rule_id": rule["id"], "rule_version": 1,
        "rule_name": "Route", "outcome": "applied",
        "actions": [{"type": "set_team", "ok": True}, {"type": "assign", "ok": True}]}
    # Events people cause carry no cause.
    with h.capture_events() as events:
        await patch(h, ctx.admin, cid, {"priority": "low"})
    assert [(e.type, e.cause) for e in events] == [("conversation.updated", None)]


async def test_an_event_is_handled_once_even_when_the_outbox_job_runs_again(h: Harness) -> None:
    ctx, inbox = await setup(h)
    await make_rule(h, ctx, on("message_received", actions=[{"type": "add_note", "content": "seen"}]))
    await say(h, inbox)
    async with h.runtime.uow() as uow:
        (payload,) = (await uow.session.scalars(select(Job.payload).where(Job.kind == "events.dispatch"))).all()
    await settle(h)
    async with h.runtime.uow() as uow:  # as if the job had run again after a crash
        jobs_service.enqueue(uow.session, "events.dispatch", payload, account_id=ctx.account_id)
        await uow.commit()
    await settle(h)
    assert brief(await executions(h, ctx.admin)) == [("Rule", "applied")]
    assert [m["content"] for m in await messages(h, ctx, 1) if m["private"]] == ["seen"]


async def test_accounts_without_rules_queue_no_automation_work(h: Harness) -> None:
    ctx, inbox = await setup(h)
    other, _ = await h.make_account("Other"), None
    await make_rule(h, other, on("message_received", actions=[{"type": "add_tags", "tags": ["x"]}]))
    await say(h, inbox)
    assert await count(h, Job, Job.kind == "events.dispatch") == 0
    # A rule that reacts to tags does not make priority changes travel through the outbox.
    await make_rule(h, ctx, on("tags_changed", actions=[{"type": "add_note", "content": "tags!"}]))
    await patch(h, ctx.admin, 1, {"priority": "high"})
    assert await count(h, Job, Job.kind == "events.dispatch") == 0
    await tag(h, ctx.admin, 1, add=["vip"])
    assert await count(h, Job, Job.kind == "events.dispatch") == 1
    await settle(h)
    assert brief(await executions(h, other.admin)) == []


async def test_sla_events_trigger_rules(h: Harness) -> None:
    """The SLA domain publishes sla.warning / sla.breached with a conversation_id."""

    class SlaBreached(BaseEvent):
        type: Literal["sla.breached"] = "sla.breached"
        conversation_id: int

    ctx, inbox = await setup(h)
    lead = await h.make_user(ctx, "lead", Role.supervisor)
    await make_rule(h, ctx, on("sla_breached", name="Escalate", actions=[
        {"type": "set_priority", "priority": "urgent"},
        {"type": "notify", "user_ids": [lead.user_id], "text": "SLA breached on #{{conversation.id}}"}]))
    cid = (await say(h, inbox))["conversation_id"]
    async with h.runtime.uow() as uow:
        uow.publish(SlaBreached(account_id=ctx.account_id, audience=staff(), conversation_id=cid))
        await uow.commit()
    await settle(h)
    assert (await conversation(h, ctx, cid))["priority"] == "urgent"
    r = await h.client.get("/api/v1/notifications", headers=lead.headers)
    assert [(n["kind"], n["conversation_id"], n["snippet"]) for n in r.json()["items"]] == [
        ("mentioned", cid, f"SLA breached on #{cid}")]
    (run,) = await executions(h, ctx.admin)
    assert (run["trigger_event_type"], run["outcome"]) == ("sla.breached", "applied")


# --- management ---------------------------------------------------------------------------------------

async def test_bad_rules_are_refused_with_a_clear_422(h: Harness) -> None:
    ctx, _ = await setup(h)
    good_actions = [{"type": "add_tags", "tags": ["x"]}]
    cases: list[tuple[dict[str, Any], str]] = [
        (on("message_received", actions=[{"type": "explode"}]),
         "Input tag 'explode' found using 'type' does not match any of the expected tags"),
        (on("message_received", actions=good_actions, conditions={"all": [{"type": "weather", "is": "sunny"}]}),
         "unknown condition: expected a 'type' among channel, inbox"),
        (on("message_received", actions=good_actions, conditions={"all": [
            {"type": "text_matches", "pattern": "(a)\\1"}]}),
         "pattern '(a)\\\\1' is not a valid RE2 regular expression: invalid escape sequence: \\1"),
        (on("message_received", actions=good_actions, conditions={"all": [
            {"type": "text_matches", "pattern": "(?=lookahead)"}]}), "is not a valid RE2 regular expression"),
        (on("message_received", actions=good_actions, conditions={"all": [
            {"type": "text_matches", "pattern": "a" * 501}]}), "String should have at most 500 characters"),
        (on("message_received", actions=[{"type": "assign"}]), "actions.0.assign.user_id: Field required"),
        (on("message_received", actions=[]), "List should have at least 1 item"),
        (on("rain", actions=good_actions), "Input should be 'conversation_created'"),
        ({"name": "x", "trigger": {"type": "sometimes"}, "actions": good_actions}, "Input tag 'sometimes'"),
        (on("message_received", actions=good_actions, conditions={"all": [], "any": []}),
         "a condition group has exactly one of 'all' or 'any'"),
        (on("message_received", actions=good_actions, conditions={"all": [{"all": [{"all": [{"all": []}]}]}]}),
         "condition groups nest at most 3 deep"),
        (on("message_received", actions=good_actions, conditions={"all": [
            {"type": "time_of_day", "timezone": "Mars/Olympus"}]}), "unknown time zone 'Mars/Olympus'"),
        (on("message_received", actions=good_actions, conditions={"all": [
            {"type": "customer_attribute", "name": "plan", "op": "in", "value": "gold"}]}),
         "op 'in' needs a list of 1-100 values"),
        (on("message_received", actions=good_actions, conditions={"all": [{"type": "channel", "kinds": ["fax"]}]}),
         "unknown channel kinds ['fax']"),
        (on("message_received", actions=[{"type": "notify", "text": "hi"}]), "notify needs user_ids or notify_assignee"),
        (on("message_received", actions=[{"type": "snooze", "minutes": 0}]), "greater than or equal to 1"),
        (on("message_received", actions=good_actions, surprise=True), "surprise: Extra inputs are not permitted"),
    ]
    for body, message in cases:
        problem = await make_rule(h, ctx, body, status=422)
        assert message in problem["detail"], (body, problem["detail"])
    # What a definition names must be this account's.
    other = await h.make_account("Other")
    team = await h.make_team(other, "Theirs")
    problem = await make_rule(h, ctx, on("message_received", actions=[
        {"type": "set_team", "team_id": team}, {"type": "assign", "user_id": other.admin.user_id},
        {"type": "reply_template", "canned_response_id": 77}, {"type": "call_webhook", "subscription_id": 5}]),
        status=422)
    assert problem["detail"] == (f"not in this account: active user {other.admin.user_id}; team {team}; "
                                 "canned response 77; webhook subscription 5")
    assert problem["missing"] == {"user": [other.admin.user_id], "team": [team], "canned_response": [77],
                                  "webhook_subscription": [5]}
    r = await h.client.get("/api/v1/automation/rules", headers=ctx.admin.headers)
    assert r.json() == []


async def test_rules_are_admin_only_and_the_log_is_for_admins_and_supervisors(h: Harness) -> None:
    ctx, _ = await setup(h)
    agent = await h.make_user(ctx, "agent")
    supervisor = await h.make_user(ctx, "super", Role.supervisor)
    body = on("message_received", actions=[{"type": "add_tags", "tags": ["x"]}])
    for who in (agent, supervisor):
        r = await h.client.post("/api/v1/automation/rules", headers=who.headers, json=body)
        assert r.status_code == 403, r.text
        assert (await h.client.get("/api/v1/automation/rules", headers=who.headers)).status_code == 403
    assert (await h.client.get("/api/v1/automation/executions", headers=agent.headers)).status_code == 403
    assert (await h.client.get("/api/v1/automation/executions", headers=supervisor.headers)).status_code == 200
    rule = await make_rule(h, ctx, body)
    r = await h.client.patch(f"/api/v1/automation/rules/{rule['id']}", headers=agent.headers, json={"enabled": False})
    assert r.status_code == 403
    assert (await h.client.get(f"/api/v1/automation/rules/{rule['id']}", headers=ctx.admin.headers)).json() == rule
    # Another account's rule does not exist.
    other = await h.make_account("Other")
    for method in ("GET", "PATCH", "DELETE"):
        r = await h.client.request(method, f"/api/v1/automation/rules/{rule['id']}", headers=other.admin.headers,
                                   json={"enabled": False} if method == "PATCH" else None)
        assert r.status_code == 404, (method, r.text)
    assert (await h.client.get(f"/api/v1/automation/rules/{rule['id']}", headers=ctx.admin.headers)).json() == rule


async def test_every_change_is_a_new_immutable_version_and_executions_name_theirs(h: Harness) -> None:
    ctx, inbox = await setup(h)
    rule = await make_rule(h, ctx, on("message_received", name="Tagger", actions=[
        {"type": "add_tags", "tags": ["one"]}]))
    rid = rule["id"]
    cid = (await say(h, inbox, "first"))["conversation_id"]
    await settle(h)

    r = await h.client.patch(f"/api/v1/automation/rules/{rid}", headers=ctx.admin.headers, json={
        "name": "Tagger 2", "actions": [{"type": "add_tags", "tags": ["two"]}]})
    assert r.status_code == 200, r.text
    v2 = r.json()
    assert (v2["version"], v2["name"], v2["actions"], v2["trigger"]) == (
        2, "Tagger 2", [{"type": "add_tags", "tags": ["two"]}], rule["trigger"])
    await say(h, inbox, "second")
    await settle(h)
    assert (await conversation(h, ctx, cid))["tags"] == ["one", "two"]
    assert [(e["rule_version"], e["name"], e["actions"][0]["result"]["tags"])
            for e in await executions(h, ctx.admin, rule_id=rid)] == [(1, "Tagger", ["one"]),
                                                                      (2, "Tagger 2", ["one", "two"])]
    # Switching off and moving are not new versions; the same definition again is no change.
    for change in ({"enabled": False}, {"position": 50}, {"name": "Tagger 2"}):
        r = await h.client.patch(f"/api/v1/automation/rules/{rid}", headers=ctx.admin.headers, json=change)
        assert r.status_code == 200 and r.json()["version"] == 2, r.text
    assert (r.json()["enabled"], r.json()["position"]) == (False, 50)
    await say(h, inbox, "third")
    await settle(h)
    assert len(await executions(h, ctx.admin, rule_id=rid)) == 2  # a switched-off rule does not run
    r = await h.client.patch(f"/api/v1/automation/rules/{rid}", headers=ctx.admin.headers,
                             json={"enabled": None})
    assert r.status_code == 422 and "enabled cannot be null" in r.json()["detail"]

    r = await h.client.get(f"/api/v1/automation/rules/{rid}/versions", headers=ctx.admin.headers)
    assert [(v["version"], v["name"], v["actions"]) for v in r.json()] == [
        (2, "Tagger 2", [{"type": "add_tags", "tags": ["two"]}]), (1, "Tagger", [{"type": "add_tags", "tags": ["one"]}])]
    assert {v["created_by"] for v in r.json()} == {ctx.admin.user_id}
    r = await h.client.get(f"/api/v1/automation/rules/{rid}/versions/1", headers=ctx.admin.headers)
    assert (r.json()["version"], r.json()["name"]) == (1, "Tagger")
    assert (await h.client.get(f"/api/v1/automation/rules/{rid}/versions/3",
                               headers=ctx.admin.headers)).status_code == 404
    r = await h.client.get("/api/v1/audit-log", headers=ctx.admin.headers)
    assert [(e["action"], e["data"]) for e in r.json()["items"] if e["action"].startswith("automation_rule")] == [
        ("automation_rule.updated", {"position": 50}), ("automation_rule.updated", {"enabled": False}),
        ("automation_rule.updated", {"version": 2}),
        ("automation_rule.created", {"version": 1, "name": "Tagger", "enabled": True})]

    # Deleted: gone from the API, its history kept.
    assert (await h.client.delete(f"/api/v1/automation/rules/{rid}", headers=ctx.admin.headers)).status_code == 204
    assert (await h.client.get(f"/api/v1/automation/rules/{rid}", headers=ctx.admin.headers)).status_code == 404
    assert (await h.client.get("/api/v1/automation/rules", headers=ctx.admin.headers)).json() == []
    assert len(await executions(h, ctx.admin, rule_id=rid)) == 2


async def test_rules_run_in_order_and_each_sees_what_the_previous_did(h: Harness) -> None:
    ctx, inbox = await setup(h)
    second = await make_rule(h, ctx, on("message_received", name="Urgent note", conditions={"all": [
        {"type": "priority", "priorities": ["urgent"]}]}, actions=[{"type": "add_note", "content": "urgent!"}]))
    first = await make_rule(h, ctx, on("message_received", name="Outage", conditions={"all": [
        {"type": "text_contains", "any": ["down"]}]}, actions=[{"type": "set_priority", "priority": "urgent"}]))
    assert (second["position"], first["position"]) == (0, 10)
    r = await h.client.patch(f"/api/v1/automation/rules/{first['id']}", headers=ctx.admin.headers,
                             json={"position": 0})
    r = await h.client.patch(f"/api/v1/automation/rules/{second['id']}", headers=ctx.admin.headers,
                             json={"position": 5})
    r = await h.client.get("/api/v1/automation/rules", headers=ctx.admin.headers)
    assert [x["name"] for x in r.json()] == ["Outage", "Urgent note"]
    cid = (await say(h, inbox, "The site is down"))["conversation_id"]
    await settle(h)
    assert brief(await executions(h, ctx.admin)) == [("Outage", "applied"), ("Urgent note", "applied")]
    assert [m["content"] for m in await messages(h, ctx, cid) if m["private"]] == ["urgent!"]


async def test_execution_log_filters_and_pages(h: Harness) -> None:
    ctx, inbox = await setup(h)
    a = await make_rule(h, ctx, on("message_received", name="A", actions=[{"type": "add_tags", "tags": ["a"]}]))
    await make_rule(h, ctx, on("message_received", name="B", actions=[{"type": "add_tags", "tags": ["b"]}]))
    c1 = (await say(h, inbox, "one", source_id="c1"))["conversation_id"]
    c2 = (await say(h, inbox, "two", source_id="c2"))["conversation_id"]
    await settle(h)
    assert [(e["name"], e["conversation_id"]) for e in await executions(h, ctx.admin)] == [
        ("A", c1), ("B", c1), ("A", c2), ("B", c2)]
    assert [(e["name"], e["conversation_id"]) for e in await executions(h, ctx.admin, rule_id=a["id"])] == [
        ("A", c1), ("A", c2)]
    assert [e["name"] for e in await executions(h, ctx.admin, conversation_id=c2)] == ["A", "B"]
    assert await executions(h, ctx.admin, rule_id=a["id"], conversation_id=c2) == \
        (await executions(h, ctx.admin, conversation_id=c2))[:1]
    r = await h.client.get("/api/v1/automation/executions", headers=ctx.admin.headers, params={"limit": 3})
    page = r.json()
    assert len(page["items"]) == 3 and page["next_cursor"]
    r = await h.client.get("/api/v1/automation/executions", headers=ctx.admin.headers,
                           params={"limit": 3, "cursor": page["next_cursor"]})
    assert [e["conversation_id"] for e in r.json()["items"]] == [c1] and r.json()["next_cursor"] is None
    # By outcome ("what failed?"): every run here applied.
    assert len(await executions(h, ctx.admin, outcome="applied")) == 4
    assert await executions(h, ctx.admin, outcome=["failed", "partial"]) == []
    assert len(await executions(h, ctx.admin, outcome=["failed", "applied"], rule_id=a["id"])) == 2
    for bad in ({"cursor": "x"}, {"cursor": "-1"}, {"rule_id": "0"}, {"limit": "500"}, {"outcome": "nope"}):
        r = await h.client.get("/api/v1/automation/executions", headers=ctx.admin.headers, params=bad)
        assert r.status_code in (400, 422), (bad, r.text)
    other = await h.make_account("Other")
    assert await executions(h, other.admin) == []


# --- conditions -----------------------------------------------------------------------------------------

CONDITION_CASES: list[tuple[str, dict[str, Any], bool]] = [
    # (name, condition, expected result on the conversation built below)
    ("channel api", {"type": "channel", "kinds": ["api"]}, True),
    ("channel email", {"type": "channel", "kinds": ["email", "twilio_sms"]}, False),
    ("not channel email", {"type": "channel", "kinds": ["email"], "negate": True}, True),
    ("inbox", {"type": "inbox", "inbox_ids": ["INBOX"]}, True),
    ("contains", {"type": "text_contains", "any": ["INVOICE"]}, True),
    ("contains case", {"type": "text_contains", "any": ["INVOICE"], "case_sensitive": True}, False),
    ("contains subject", {"type": "text_contains", "field": "subject", "any": ["billing"]}, True),
    ("contains either", {"type": "text_contains", "field": "message_or_subject", "any": ["question"]}, True),
    ("contains subject only", {"type": "text_contains", "field": "subject", "any": ["invoice"]}, False),
    ("matches", {"type": "text_matches", "pattern": r"order #?\d{4,}"}, True),
    ("matches anchored", {"type": "text_matches", "pattern": r"^order"}, False),
    ("matches case", {"type": "text_matches", "pattern": "Order", "case_sensitive": True}, False),
    ("attr eq", {"type": "customer_attribute", "name": "plan", "op": "eq", "value": "GOLD"}, True),
    ("attr ne", {"type": "customer_attribute", "name": "plan", "op": "ne", "value": "gold"}, False),
    ("attr in", {"type": "customer_attribute", "name": "plan", "op": "in", "value": ["silver", "gold"]}, True),
    ("attr gt", {"type": "customer_attribute", "name": "seats", "op": "gt", "value": 10}, True),
    ("attr lte", {"type": "customer_attribute", "name": "seats", "op": "lte", "value": 10}, False),
    ("attr exists", {"type": "customer_attribute", "name": "plan", "op": "exists"}, True),
    ("attr missing", {"type": "customer_attribute", "name": "churned", "op": "not_exists"}, True),
    ("attr missing ne", {"type": "customer_attribute", "name": "churned", "op": "ne", "value": True}, True),
    ("attr contains", {"type": "customer_attribute", "name": "plan", "op": "contains", "value": "ol"}, True),
    ("attr bool is not 1", {"type": "customer_attribute", "name": "beta", "op": "eq", "value": 1}, False),
    ("org any", {"type": "organization"}, True),
    ("org id", {"type": "organization", "ids": ["ORG"]}, True),
    ("org attr", {"type": "organization", "attribute": {"name": "tier", "op": "eq", "value": "enterprise"}}, True),
    ("org attr no", {"type": "organization", "attribute": {"name": "tier", "op": "eq", "value": "free"}}, False),
    ("tag any", {"type": "tag", "tags": ["vip", "nope"]}, True),
    ("tag all", {"type": "tag", "tags": ["vip", "nope"], "match": "all"}, False),
    ("tag absent", {"type": "tag", "tags": ["spam"], "negate": True}, True),
    ("status", {"type": "status", "statuses": ["open"]}, True),
    ("status pending", {"type": "status", "statuses": ["pending", "snoozed"]}, False),
    ("priority", {"type": "priority", "priorities": ["high"]}, True),
    ("assignee set", {"type": "assignee", "op": "set"}, True),
    ("assignee unset", {"type": "assignee", "op": "unset"}, False),
    ("assignee in", {"type": "assignee", "op": "in", "user_ids": ["AGENT"]}, True),
    ("team unset", {"type": "team", "op": "unset"}, False),
    ("team in", {"type": "team", "op": "in", "team_ids": ["TEAM"]}, True),
    # 2026-03-04 (a Wednesday) 10:30 UTC is 10:30 in Lisbon and 19:30 in Tokyo.
    ("office hours", {"type": "time_of_day", "start": "09:00", "end": "17:00",
                      "weekdays": ["mon", "tue", "wed", "thu", "fri"], "timezone": "Europe/Lisbon"}, True),
    ("office hours tokyo", {"type": "time_of_day", "start": "09:00", "end": "17:00", "timezone": "Asia/Tokyo"},
     False),
    ("weekend", {"type": "time_of_day", "weekdays": ["sat", "sun"]}, False),
    ("night in tokyo", {"type": "time_of_day", "start": "19:00", "end": "07:00", "timezone": "Asia/Tokyo"}, True),
    ("account zone (UTC)", {"type": "time_of_day", "start": "10:00", "end": "11:00"}, True),
    ("any group", {"any": [{"type": "status", "statuses": ["resolved"]}, {"type": "tag", "tags": ["vip"]}]}, True),
    ("all group", {"all": [{"type": "status", "statuses": ["open"]}, {"type": "tag", "tags": ["nope"]}]}, False),
]


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return ids.get(value, value) if isinstance(value, str) else value


async def test_each_condition_type_with_exact_outcomes(h: Harness) -> None:
    ctx, inbox = await setup(h, frozen=datetime(2026, 3, 4, 10, 30, tzinfo=UTC))
    team = await h.make_team(ctx, "Billing")
    agent = await h.make_user(ctx, "agent", teams=(team,))
    r = await h.client.post("/api/v1/organizations", headers=ctx.admin.headers,
                            json={"name": "Initech", "custom_attributes": {"tier": "Enterprise"}})
    assert r.status_code == 201, r.text
    org = r.json()["id"]
    body = await say(h, inbox, "Question about my invoice for ORDER #12345", subject="Billing question")
    cid, contact = body["conversation_id"], body["contact_id"]
    r = await h.client.patch(f"/api/v1/contacts/{contact}", headers=ctx.admin.headers, json={
        "organization_id": org, "custom_attributes": {"plan": "Gold", "seats": 12, "beta": True}})
    assert r.status_code == 200, r.text
    await patch(h, ctx.admin, cid, {"priority": "high", "team_id": team, "assignee_id": agent.user_id})
    await tag(h, ctx.admin, cid, add=["vip"])
    await settle(h)
    ids = {"INBOX": inbox.id, "ORG": org, "AGENT": agent.user_id, "TEAM": team}
    names = []
    for name, condition, _ in CONDITION_CASES:
        await make_rule(h, ctx, on("message_received", name=name, conditions={"all": [_fill(condition, ids)]},
                                   actions=[{"type": "add_note", "content": name}]))
        names.append(name)
    await say(h, inbox, "Question about my invoice for ORDER #12345")  # the same message again, now with rules
    await settle(h)
    runs = {e["name"]: e for e in await executions(h, ctx.admin)}
    assert sorted(runs) == sorted(names)
    outcomes = {name: runs[name]["conditions"]["matched"] for name in names}
    assert outcomes == {name: expected for name, _, expected in CONDITION_CASES}
    assert {runs[n]["outcome"] for n, _, e in CONDITION_CASES if e} == {"applied"}
    assert {runs[n]["outcome"] for n, _, e in CONDITION_CASES if not e} == {"not_matched"}
    # Groups decide early: what was not evaluated is null.
    assert runs["any group"]["conditions"]["results"] == [{"type": "status", "result": False},
                                                          {"type": "tag", "result": True}]
    assert runs["all group"]["conditions"]["results"] == [{"type": "status", "result": True},
                                                          {"type": "tag", "result": False}]


async def test_short_circuit_and_account_time_zone(h: Harness) -> None:
    ctx, inbox = await setup(h, frozen=datetime(2026, 3, 4, 23, 30, tzinfo=UTC))  # Wed 23:30 UTC, Thu in Tokyo
    await make_rule(h, ctx, on("message_received", name="decided", conditions={"any": [
        {"type": "status", "statuses": ["open"]}, {"all": [{"type": "tag", "tags": ["a"]}, {"type": "tag", "tags": ["b"]}]},
        {"type": "priority", "priorities": ["low"]}]}, actions=[{"type": "add_tags", "tags": ["hit"]}]))
    await make_rule(h, ctx, on("message_received", name="thursday somewhere", conditions={"all": [
        {"type": "time_of_day", "weekdays": ["thu"], "timezone": "Asia/Tokyo"}]},
        actions=[{"type": "add_tags", "tags": ["thu"]}]))
    await make_rule(h, ctx, on("message_received", name="wednesday here", conditions={"all": [
        {"type": "time_of_day", "weekdays": ["wed"], "start": "23:00", "end": "01:00"}]},
        actions=[{"type": "add_tags", "tags": ["wed"]}]))
    cid = (await say(h, inbox))["conversation_id"]
    await settle(h)
    runs = {e["name"]: e for e in await executions(h, ctx.admin)}
    assert runs["decided"]["conditions"] == {"matched": True, "results": [
        {"type": "status", "result": True}, {"type": "tag", "result": None}, {"type": "tag", "result": None},
        {"type": "priority", "result": None}]}
    assert (await conversation(h, ctx, cid))["tags"] == ["hit", "thu", "wed"]


async def test_time_of_day_reads_the_accounts_time_zone_once_an_admin_sets_it(h: Harness) -> None:
    ctx, inbox = await setup(h, frozen=datetime(2026, 3, 4, 23, 30, tzinfo=UTC))  # Wed 23:30 UTC, Thu 08:30 in Tokyo
    r = await h.client.patch("/api/v1/account", headers=ctx.admin.headers, json={"settings": {"time_zone": "Mars/Olympus"}})
    assert r.status_code == 422 and "is not an IANA time zone" in r.text
    r = await h.client.patch("/api/v1/account", headers=ctx.admin.headers, json={"settings": {"time_zone": "Asia/Tokyo"}})
    assert r.status_code == 200 and r.json()["settings"]["time_zone"] == "Asia/Tokyo"
    await make_rule(h, ctx, on("message_received", name="thursday morning", conditions={"all": [
        {"type": "time_of_day", "weekdays": ["thu"], "start": "08:00", "end": "09:00"}]},
        actions=[{"type": "add_tags", "tags": ["thu-morning"]}]))
    cid = (await say(h, inbox))["conversation_id"]
    await settle(h)
    assert (await conversation(h, ctx, cid))["tags"] == ["thu-morning"]


# --- actions ------------------------------------------------------------------------------------------

async def test_assignment_team_priority_tags_note_snooze_and_resolve(h: Harness) -> None:
    ctx, inbox = await setup(h)
    team = await h.make_team(ctx, "Tier 2")
    agent = await h.make_user(ctx, "agent", teams=(team,))
    cid = (await say(h, inbox, "hello"))["conversation_id"]
    await tag(h, ctx.admin, cid, add=["old", "keep"])
    await make_rule(h, ctx, on("message_received", name="All of it", actions=[
        {"type": "set_team", "team_id": team}, {"type": "assign", "user_id": agent.user_id},
        {"type": "set_priority", "priority": "urgent"}, {"type": "add_tags", "tags": ["new", "keep"]},
        {"type": "remove_tags", "tags": ["old", "absent"]},
        {"type": "add_note", "content": "For {{contact.name}} in #{{conversation.id}} {{unknown}}"},
        {"type": "snooze", "minutes": 90}]))
    await say(h, inbox, "again")
    await settle(h)
    c = await conversation(h, ctx, cid)
    until = datetime.fromisoformat(c["snoozed_until"])
    assert (c["team_id"], c["assignee_id"], c["priority"], c["tags"], c["status"]) == (
        team, agent.user_id, "urgent", ["keep", "new"], "snoozed")
    assert (until - clock.now()).total_seconds() == 90 * 60
    note = [m for m in await messages(h, ctx, cid) if m["private"]][-1]
    assert (note["content"], note["sender"]["type"]) == (f"For Ana Lima in #{cid} {{{{unknown}}}}", "system")
    (run,) = await executions(h, ctx.admin)
    assert [(a["type"], a["result"]) for a in run["actions"]] == [
        ("set_team", {"team_id": team, "changed": True}), ("assign", {"assignee_id": agent.user_id, "changed": True}),
        ("set_priority", {"priority": "urgent", "changed": True}),
        ("add_tags", {"tags": ["keep", "new", "old"], "changed": True}),
        ("remove_tags", {"tags": ["keep", "new"], "changed": True}), ("add_note", {"message_id": note["id"]}),
        ("snooze", {"snoozed_until": until.isoformat()})]
    r = await h.client.get("/api/v1/notifications", headers=agent.headers)
    assert [(n["kind"], n["actor_name"]) for n in r.json()["items"]] == [("assigned", "Swarmdesk")]

    await make_rule(h, ctx, on("tags_changed", name="Done", conditions={"all": [{"type": "tag", "tags": ["done"]}]},
                               actions=[{"type": "resolve"}, {"type": "assign", "user_id": None}]))
    await tag(h, ctx.admin, cid, add=["done"])
    await settle(h)
    c = await conversation(h, ctx, cid)
    assert (c["status"], c["assignee_id"], c["resolved_at"] is not None) == ("resolved", None, True)


async def test_one_refused_action_is_undone_alone_and_logged(h: Harness) -> None:
    ctx, inbox = await setup(h)
    helper = await h.make_user(ctx, "helper")
    await make_rule(h, ctx, on("message_received", name="Mixed", actions=[
        {"type": "add_tags", "tags": ["first"]}, {"type": "assign", "user_id": helper.user_id},
        {"type": "set_priority", "priority": "high"}]))
    r = await h.client.patch(f"/api/v1/users/{helper.user_id}", headers=ctx.admin.headers, json={"is_active": False})
    assert r.status_code == 200, r.text
    cid = (await say(h, inbox))["conversation_id"]
    with h.capture_events() as events:
        await settle(h)
    c = await conversation(h, ctx, cid)
    assert (c["tags"], c["assignee_id"], c["priority"]) == (["first"], None, "high")
    (run,) = await executions(h, ctx.admin)
    assert (run["outcome"], run["reason"]) == ("partial", None)
    assert run["actions"][1] == {"type": "assign", "ok": False,
                                 "error": f"user {helper.user_id} is not an active user of this account"}
    assert [e.type for e in events] == ["conversation.updated", "conversation.updated", "automation.rule_applied"]
    assert events[-1].outcome == "partial"
    assert [a["ok"] for a in events[-1].actions] == [True, False, True]


async def test_an_action_failing_halfway_is_rolled_back_to_its_savepoint(h: Harness, monkeypatch: Any) -> None:
    async def half_done(run: Any, action: Any) -> dict[str, Any]:
        run.conversation.subject = "changed by a broken action"
        await run.uow.session.flush()
        raise Conflict("refused halfway")

    async def crashing(run: Any, action: Any) -> dict[str, Any]:
        run.conversation.priority = "low"
        await run.uow.session.flush()
        raise RuntimeError("a bug")

    monkeypatch.setitem(executors.EXECUTORS, "snooze", half_done)
    monkeypatch.setitem(executors.EXECUTORS, "resolve", crashing)
    ctx, inbox = await setup(h)
    await make_rule(h, ctx, on("message_received", name="Careful", actions=[
        {"type": "set_priority", "priority": "high"}, {"type": "snooze", "minutes": 5}, {"type": "resolve"},
        {"type": "add_tags", "tags": ["after"]}]))
    cid = (await say(h, inbox, "hi", subject="Original"))["conversation_id"]
    await settle(h)
    c = await conversation(h, ctx, cid)
    assert (c["subject"], c["priority"], c["tags"], c["status"]) == ("Original", "high", ["after"], "open")
    (run,) = await executions(h, ctx.admin)
    assert run["outcome"] == "partial"
    assert [(a["type"], a["ok"], a.get("error")) for a in run["actions"]] == [
        ("set_priority", True, None), ("snooze", False, "refused halfway"),
        ("resolve", False, "internal error (RuntimeError); it has been logged"), ("add_tags", True, None)]


async def test_every_action_failing_is_a_failed_execution(h: Harness) -> None:
    ctx, inbox = await setup(h)
    ack = await canned(h, ctx, "We got it")
    await make_rule(h, ctx, on("status_changed", name="Doomed", actions=[
        {"type": "reply_template", "canned_response_id": ack}, {"type": "resolve"}]))
    cid = (await say(h, inbox))["conversation_id"]
    await patch(h, ctx.admin, cid, {"status": "closed"})
    await settle(h)
    (run,) = await executions(h, ctx.admin)
    assert (run["outcome"], run["reason"]) == ("failed", "every action failed")
    assert [(a["ok"], a["error"]) for a in run["actions"]] == [
        (False, "the conversation is closed; start a new one to write to the customer"),
        (False, "a closed conversation is final; start a new one")]


async def test_notify_mentions_users_and_the_assignee(h: Harness) -> None:
    ctx, inbox = await setup(h)
    team = await h.make_team(ctx, "Ops")
    lead = await h.make_user(ctx, "lead", teams=(team,))
    owner = await h.make_user(ctx, "owner")
    cid = (await say(h, inbox, "first"))["conversation_id"]
    await patch(h, ctx.admin, cid, {"assignee_id": owner.user_id, "team_id": team})
    await make_rule(h, ctx, on("message_received", actions=[
        {"type": "notify", "user_ids": [lead.user_id], "notify_assignee": True,
         "text": "{{contact.name}} wrote again"}]))
    await say(h, inbox, "second")
    await settle(h)
    for who in (lead, owner):
        r = await h.client.get("/api/v1/notifications", headers=who.headers)
        assert ("mentioned", "Swarmdesk", "Ana Lima wrote again") in [
            (n["kind"], n["actor_name"], n["snippet"]) for n in r.json()["items"]]
    (run,) = await executions(h, ctx.admin)
    assert run["actions"][0]["result"]["notified"] == [lead.user_id, owner.user_id]


async def test_call_webhook_is_a_signed_delivery_with_retries(h: Harness) -> None:
    ctx, inbox = await setup(h)
    await h.allowlist_loopback(ctx)
    async with Receiver().running() as receiver:
        r = await h.client.post("/api/v1/webhooks", headers=ctx.admin.headers,
                                json={"url": receiver.url, "event_types": ["contact.updated"]})
        assert r.status_code == 201, r.text
        sub = r.json()
        rule = await make_rule(h, ctx, on("message_received", name="Tell the CRM", actions=[
            {"type": "call_webhook", "subscription_id": sub["id"]}]))
        receiver.script = [(503, {})]  # first attempt fails: the job retries
        cid = (await say(h, inbox, "hi"))["conversation_id"]
        await settle(h)
        for _ in range(50):
            if receiver.answered:
                break
            clock.advance(timedelta(seconds=5))
            await settle(h)
        assert len(receiver.requests) == 2 and len(receiver.answered) == 1
        first, second = receiver.requests
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        payload = Webhook(sub["secret"]).verify(second.body, second.headers)
        (run,) = await executions(h, ctx.admin)
        assert payload["type"] == "automation.webhook"
        assert payload["rule"] == {"id": rule["id"], "version": 1, "name": "Tell the CRM"}
        assert (payload["execution_id"], payload["conversation"]["id"]) == (run["id"], cid)
        assert payload["trigger"] == {"event_uid": run["trigger_event_uid"], "event_type": "message.created"}
        assert run["actions"][0]["result"]["webhook_id"] == second.headers["webhook-id"] == f"auto_{run['id']}_0"
        r = await h.client.get("/api/v1/webhooks/deliveries", headers=ctx.admin.headers)
        (delivery,) = r.json()["items"]
        assert (delivery["event_type"], delivery["status"], delivery["attempts"]) == (
            "automation.webhook", "succeeded", 2)


async def test_start_swarm_and_required_skills_go_through_their_domains(h: Harness) -> None:
    ctx, inbox = await setup(h)
    expert = await h.make_user(ctx, "expert", Role.expert)
    r = await h.client.post("/api/v1/routing/skills", headers=ctx.admin.headers, json={"name": "billing"})
    assert r.status_code == 201, r.text
    skill_id = r.json()["id"]
    await make_rule(h, ctx, on("message_received", name="Swarm", actions=[
        {"type": "start_swarm", "invite_user_ids": [expert.user_id], "note": "Needs billing eyes"},
        {"type": "set_required_skills", "skills": [{"skill_id": skill_id, "min_proficiency": 3}]}]))
    cid = (await say(h, inbox, "complicated"))["conversation_id"]
    await settle(h)
    (run,) = await executions(h, ctx.admin)
    assert run["outcome"] == "applied", run
    swarm_id = run["actions"][0]["result"]["swarm_id"]
    assert run["actions"][1]["result"] == {"skills": [{"skill_id": skill_id, "min_proficiency": 3}]}
    verbs = [(a["verb"], a["actor_type"]) for a in await activity(h, ctx, cid)]
    assert ("swarm_started", "system") in verbs and ("required_skills_changed", "system") in verbs
    r = await h.client.get(f"/api/v1/conversations/{cid}/swarms", headers=ctx.admin.headers)
    assert [(s["id"], s["status"]) for s in r.json()["items"]] == [(swarm_id, "active")]
    # The invited expert now takes part in the conversation.
    r = await h.client.get(f"/api/v1/conversations/{cid}", headers=expert.headers)
    assert r.status_code == 200


# --- loops ----------------------------------------------------------------------------------------------

async def test_two_rules_adding_and_removing_a_tag_do_not_ping_pong(h: Harness) -> None:
    ctx, inbox = await setup(h)
    a = await make_rule(h, ctx, on("tags_changed", name="A adds x", actions=[{"type": "add_tags", "tags": ["x"]}]))
    b = await make_rule(h, ctx, on("tags_changed", name="B removes x", actions=[{"type": "remove_tags", "tags": ["x"]}]))
    cid = (await say(h, inbox))["conversation_id"]
    await tag(h, ctx.admin, cid, add=["start"])
    await settle(h)  # terminates: nothing is runnable any more
    assert await count(h, Job, Job.status == "queued") == 0
    runs = await executions(h, ctx.admin)
    # E0 (a person tags): A adds x (E1, caused by [A]), B removes x (E2, caused by [B]).
    # E1: A is in its own cause chain (skipped); B has nothing left to remove (no event).
    # E2: A adds x again (E3, caused by [B, A]); B is in the chain (skipped).
    # E3: both are in the chain: skipped. End.
    assert [(e["name"], e["outcome"], e["cause"]["rule_ids"] if e["cause"] else None) for e in runs] == [
        ("A adds x", "applied", None), ("B removes x", "applied", None),
        ("A adds x", "skipped", [a["id"]]), ("B removes x", "applied", [a["id"]]),
        ("A adds x", "applied", [b["id"]]), ("B removes x", "skipped", [b["id"]]),
        ("A adds x", "skipped", [b["id"], a["id"]]), ("B removes x", "skipped", [b["id"], a["id"]])]
    assert runs[3]["actions"][0]["result"] == {"tags": ["start"], "changed": False}
    assert all(e["reason"].startswith("loop: this rule is already in the cause chain") for e in runs
               if e["outcome"] == "skipped")
    assert (await conversation(h, ctx, cid))["tags"] == ["start", "x"]


async def test_a_rule_that_replies_does_not_answer_its_own_reply(h: Harness) -> None:
    ctx, inbox = await setup(h)
    ack = await canned(h, ctx, "Thanks, we got your message.")
    echo = await canned(h, ctx, "(copy of our reply)", code="echo")
    await make_rule(h, ctx, on("message_received", name="Ack", actions=[
        {"type": "reply_template", "canned_response_id": ack}]))
    # A rule that answers every reply, its own included, if nothing stopped it.
    noisy = await make_rule(h, ctx, on("agent_replied", name="Echo", actions=[
        {"type": "reply_template", "canned_response_id": echo}]))
    cid = (await say(h, inbox, "Hi"))["conversation_id"]
    await settle(h)
    outgoing = [m["content"] for m in await messages(h, ctx, cid) if m["direction"] == "outgoing"]
    assert outgoing == ["Thanks, we got your message.", "(copy of our reply)"]
    runs = await executions(h, ctx.admin)
    assert [(e["name"], e["outcome"]) for e in runs] == [("Ack", "applied"), ("Echo", "applied"), ("Echo", "skipped")]
    assert runs[2]["cause"]["rule_ids"][-1] == noisy["id"]


async def test_two_rules_triggering_each_other_stop(h: Harness) -> None:
    ctx, inbox = await setup(h)
    pong = await canned(h, ctx, "pong", code="pong")
    ping = await canned(h, ctx, "ping", code="ping")
    a = await make_rule(h, ctx, on("agent_replied", name="Pong", conditions={"all": [
        {"type": "text_contains", "any": ["ping"]}]}, actions=[{"type": "reply_template", "canned_response_id": pong}]))
    b = await make_rule(h, ctx, on("agent_replied", name="Ping", conditions={"all": [
        {"type": "text_contains", "any": ["pong"]}]}, actions=[{"type": "reply_template", "canned_response_id": ping}]))
    cid = (await say(h, inbox, "hello"))["conversation_id"]
    await reply(h, ctx.admin, cid, "ping")
    await settle(h)
    outgoing = [m["content"] for m in await messages(h, ctx, cid) if m["direction"] == "outgoing"]
    assert outgoing == ["ping", "pong", "ping"]  # the person's, then one each
    matched = [(e["name"], e["outcome"], e["reason"]) for e in await executions(h, ctx.admin)
               if e["outcome"] != "not_matched"]
    assert matched == [
        ("Pong", "applied", None), ("Ping", "applied", None),
        ("Pong", "skipped", "loop: this rule is already in the cause chain of the trigger event "
                            f"(rules {[a['id'], b['id']]}); a rule never reacts to what it caused")]


async def test_a_chain_of_rules_stops_at_the_depth_limit(h: Harness) -> None:
    ctx, inbox = await setup(h)
    steps = MAX_CHAIN_DEPTH + 2
    for i in range(1, steps):
        template = await canned(h, ctx, f"step{i}", code=f"step{i}")
        await make_rule(h, ctx, on("agent_replied", name=f"R{i}", conditions={"all": [
            {"type": "text_contains", "any": [f"step{i - 1}"]}]},
            actions=[{"type": "reply_template", "canned_response_id": template}]))
    cid = (await say(h, inbox, "hello"))["conversation_id"]
    await reply(h, ctx.admin, cid, "step0")
    await settle(h)
    outgoing = [m["content"] for m in await messages(h, ctx, cid) if m["direction"] == "outgoing"]
    assert outgoing == [f"step{i}" for i in range(MAX_CHAIN_DEPTH + 1)]
    stopped = [e for e in await executions(h, ctx.admin) if e["outcome"] == "skipped"]
    assert [(e["name"], e["reason"]) for e in stopped] == [
        (f"R{MAX_CHAIN_DEPTH + 1}", f"chain depth limit: the trigger event was caused by a chain of {MAX_CHAIN_DEPTH} "
                                    f"rules {stopped[0]['cause']['rule_ids']}")]
    assert len(stopped[0]["cause"]["rule_ids"]) == MAX_CHAIN_DEPTH


async def test_a_rule_acts_at_most_max_runs_per_hour_on_one_conversation(h: Harness) -> None:
    ctx, inbox = await setup(h)
    await make_rule(h, ctx, on("message_received", name="Counter", max_runs_per_hour=3,
                               actions=[{"type": "add_note", "content": "again"}]))
    for i in range(4):
        cid = (await say(h, inbox, f"message {i}"))["conversation_id"]
    await settle(h)
    runs = await executions(h, ctx.admin)
    assert [e["outcome"] for e in runs] == ["applied", "applied", "applied", "skipped"]
    assert runs[-1]["reason"] == "rate cap: this rule already ran 3 times on this conversation in the last hour"
    other = (await say(h, inbox, "someone else", source_id="cust-9"))["conversation_id"]
    clock.advance(timedelta(minutes=61))
    await say(h, inbox, "an hour later")
    await settle(h)
    assert [e["outcome"] for e in await executions(h, ctx.admin, conversation_id=cid)][-1] == "applied"
    assert [e["outcome"] for e in await executions(h, ctx.admin, conversation_id=other)] == ["applied"]


# --- safe patterns -------------------------------------------------------------------------------------

async def test_a_catastrophic_pattern_cannot_stall_a_worker(h: Harness) -> None:
    ctx, inbox = await setup(h)
    await make_rule(h, ctx, on("message_received", name="Evil", conditions={"all": [
        {"type": "text_matches", "pattern": "(a+)+$"}, ]}, actions=[{"type": "add_tags", "tags": ["matched"]}]))
    await make_rule(h, ctx, on("message_received", name="Nested", conditions={"all": [
        {"type": "text_matches", "pattern": "^(([a-z])+.)+[A-Z]([a-z])+$"}]}, actions=[{"type": "add_tags", "tags": ["n"]}]))
    started = time.perf_counter()
    cid = (await say(h, inbox, "a" * 40_000 + "!"))["conversation_id"]
    await settle(h)
    assert time.perf_counter() - started < 5  # Python's re needs longer than the universe's age
    assert [(e["name"], e["outcome"]) for e in await executions(h, ctx.admin)] == [
        ("Evil", "not_matched"), ("Nested", "not_matched")]
    assert (await conversation(h, ctx, cid))["tags"] == []


def test_safe_pattern_is_linear() -> None:
    evil = SafePattern("(x+x+)+y", case_sensitive=True)
    started = time.perf_counter()
    assert evil.search("x" * 50_000) is False
    assert time.perf_counter() - started < 0.5
    assert SafePattern("refund", case_sensitive=False).search("REFUND please") is True
    for bad in ("(a)\\1", "(?<=a)b", "((a{1000}){1000}){1000}", "("):
        try:
            SafePattern(bad, case_sensitive=True)
        except PatternError:
            continue
        raise AssertionError(f"{bad!r} should be refused")


async def test_each_execution_row_is_unique_per_version_conversation_and_trigger(h: Harness) -> None:
    """The database refuses a second execution for the same trigger (the last line of defence)."""
    ctx, inbox = await setup(h)
    await make_rule(h, ctx, on("message_received", actions=[{"type": "add_tags", "tags": ["x"]}]))
    await say(h, inbox)
    await settle(h)
    async with h.runtime.uow() as uow:
        (row,) = (await uow.session.scalars(select(AutomationExecution))).all()
        uow.session.add(AutomationExecution(
            account_id=row.account_id, kind="rule", rule_id=row.rule_id, rule_version_id=row.rule_version_id,
            rule_version=1, name="dup", conversation_id=row.conversation_id, trigger_key=row.trigger_key,
            outcome="applied", conditions={}, actions=[], created_at=clock.now()))
        try:
            await uow.session.flush()
        except Exception as exc:  # IntegrityError
            assert "unique" in str(exc).lower()
        else:
            raise AssertionError("a duplicate execution was stored")
    assert await count(h, Conversation) == 1


async def test_a_stored_rule_that_no_longer_validates_is_skipped_not_fatal(h: Harness) -> None:
    """A definition can go bad after it was saved (a channel kind or time zone removed): that rule is
    skipped (and logged), the others run and the outbox job completes."""
    ctx, inbox = await setup(h)
    bad = await make_rule(h, ctx, on("message_received", name="Gone bad", actions=[{"type": "resolve"}]))
    await make_rule(h, ctx, on("message_received", name="Fine", actions=[{"type": "add_tags", "tags": ["ok"]}]))
    async with h.runtime.uow() as uow:
        version = await uow.session.scalar(select(AutomationRuleVersion).where(
            AutomationRuleVersion.rule_id == bad["id"]))
        version.conditions = {"all": [{"type": "channel", "kinds": ["carrier_pigeon"]}]}
        await uow.commit()
    cid = (await say(h, inbox))["conversation_id"]
    await settle(h)
    assert await count(h, Job, Job.kind == "events.dispatch", Job.status != "done") == 0
    assert brief(await executions(h, ctx.admin)) == [("Fine", "applied")]
    assert (await conversation(h, ctx, cid))["status"] == "open"
    r = await h.client.patch(f"/api/v1/automation/rules/{bad['id']}", headers=ctx.admin.headers,
                             json={"name": "Renamed"})
    assert r.status_code == 422 and "the rule's definition is not valid any more" in r.json()["detail"]
    r = await h.client.patch(f"/api/v1/automation/rules/{bad['id']}", headers=ctx.admin.headers,
                             json={"conditions": {"all": []}})
    assert (r.status_code, r.json()["version"]) == (200, 2)
