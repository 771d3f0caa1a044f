"""The outbox's "does a listener want this" look-ups: every listener's probe is asked in one
statement per account and commit, and each one's answer decides whether the commit writes an
events.dispatch job (an account with nothing listening pays for no job)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select

from swarmdesk.jobs.models import Job
from tests.support import AccountCtx, Harness, inbound_payload


async def dispatched(h: Harness, ctx: AccountCtx) -> list[str]:
    """The event types of the account's events.dispatch jobs."""
    async with h.runtime.uow() as uow:
        payloads = (await uow.session.scalars(select(Job.payload).where(
            Job.kind == "events.dispatch", Job.account_id == ctx.account_id))).all()
    return sorted(e["type"] for p in payloads for e in p["events"])


async def clear_jobs(h: Harness) -> None:
    async with h.runtime.uow() as uow:
        await uow.session.execute(Job.__table__.delete().where(Job.kind == "events.dispatch"))
        await uow.commit()


async def deliver(h: Harness, inbox: Any, message_id: str) -> None:
    r = await h.deliver(inbox, inbound_payload(message_id=message_id))
    assert r.status_code == 200, r.text


async def test_probes_are_one_statement_per_commit_and_each_decides_the_outbox(h: Harness) -> None:
    acme, other = await h.make_account("Acme"), await h.make_account("Other")
    inbox, other_inbox = await h.make_api_inbox(acme), await h.make_api_inbox(other)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(h.runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        await deliver(h, inbox, "m-1")
    finally:
        event.remove(h.runtime.engine.sync_engine, "before_cursor_execute", record)
    # Nothing listens in Acme: no job, and the three listeners' look-ups were one statement.
    assert await dispatched(h, acme) == []
    asked = [s for s in statements if "webhook_subscriptions" in s or "automation_rules" in s or "sla_policies" in s]
    assert len(asked) == 1 and "UNION ALL" in asked[0].upper(), asked

    # A webhook subscription in another account changes nothing for Acme; one in Acme does.
    r = await h.client.post("/api/v1/webhooks", headers=other.admin.headers,
                            json={"url": "https://crm.example.com/hook", "event_types": ["message.created"]})
    assert r.status_code == 201, r.text
    await deliver(h, inbox, "m-2")
    assert await dispatched(h, acme) == []
    await deliver(h, other_inbox, "o-1")
    assert "message.created" in await dispatched(h, other)

    r = await h.client.post("/api/v1/webhooks", headers=acme.admin.headers,
                            json={"url": "https://crm.example.com/hook", "event_types": ["conversation.status_changed"]})
    assert r.status_code == 201, r.text
    await deliver(h, inbox, "m-3")
    assert await dispatched(h, acme) == [], "a subscription to another event type wants no message"
    r = await h.client.patch(f"/api/v1/webhooks/{r.json()['id']}", headers=acme.admin.headers,
                             json={"event_types": ["message.created"]})
    assert r.status_code == 200, r.text
    await deliver(h, inbox, "m-4")
    assert await dispatched(h, acme) == ["message.created"]
    r = await h.client.delete(f"/api/v1/webhooks/{r.json()['id']}", headers=acme.admin.headers)
    assert r.status_code in (200, 204), r.text
    await clear_jobs(h)

    # An enabled rule reacting to new messages.
    r = await h.client.post("/api/v1/automation/rules", headers=acme.admin.headers, json={
        "name": "Tag new messages", "trigger": {"type": "event", "events": ["message_received"]},
        "actions": [{"type": "add_tags", "tags": ["seen"]}]})
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    await deliver(h, inbox, "m-5")
    assert await dispatched(h, acme) == ["message.created"]
    r = await h.client.delete(f"/api/v1/automation/rules/{rule_id}", headers=acme.admin.headers)
    assert r.status_code in (200, 204), r.text
    await clear_jobs(h)
    await deliver(h, inbox, "m-6")
    assert await dispatched(h, acme) == []

    # An SLA policy: the clock follows every public message.
    r = await h.client.post("/api/v1/sla/policies", headers=acme.admin.headers,
                            json={"name": "Default", "first_response_minutes": 60})
    assert r.status_code == 201, r.text
    await clear_jobs(h)
    await deliver(h, inbox, "m-7")
    assert await dispatched(h, acme) == ["message.created"]
