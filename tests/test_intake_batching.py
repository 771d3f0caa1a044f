"""Group commit: deliveries that arrive together are stored together, and what a batch has in
common (a new sender, a retried delivery) still ends up exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from sqlalchemy import event, func, select

from swarmdesk.channels.base import InboundRequest
from swarmdesk.channels.inbound import Delivery, do_ingest_batch, prepare
from swarmdesk.contacts.models import Contact, ContactIdentity
from swarmdesk.conversations.models import Conversation, Message
from swarmdesk.core.clock import clock
from swarmdesk.jobs.models import Job
from tests.support import AccountCtx, ApiInbox, Harness, inbound_payload, sign


async def test_a_burst_from_one_new_sender_makes_one_contact_and_one_conversation(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    payloads = [inbound_payload(message_id=f"burst-{i}", source_id="new-sender", content=f"part {i}")
                for i in range(20)]
    # A retry of the first delivery rides in the same burst.
    bodies = [orjson.dumps(p) for p in payloads]
    requests = [(b, sign(inbox.secret, b)) for b in bodies] + [(bodies[0], sign(inbox.secret, bodies[0]))]
    responses = await asyncio.gather(*(h.client.post(inbox.webhook_path, content=b, headers=hd)
                                       for b, hd in requests))
    assert [r.status_code for r in responses] == [200] * 21
    assert sum(r.json()["duplicate"] for r in responses) == 1
    assert len({r.json()["conversation_id"] for r in responses}) == 1
    assert len({r.json()["contact_id"] for r in responses}) == 1
    async with h.runtime.uow() as uow:
        s = uow.session
        assert await s.scalar(select(func.count()).select_from(Contact)) == 1
        assert await s.scalar(select(func.count()).select_from(Conversation)) == 1
        assert await s.scalar(select(func.count()).select_from(Message)) == 20
        assert await s.scalar(select(Conversation.message_count)) == 20


async def test_stop_finishes_accepted_deliveries(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    active = await h.runtime.channels.active(h.runtime.sessionmaker, inbox.public_key)
    assert active is not None
    deliveries = []
    for i in range(10):
        body = orjson.dumps(inbound_payload(message_id=f"s-{i}", source_id=f"c-{i}"))
        deliveries.append(prepare(active.inbox, active.adapter, InboundRequest(sign(inbox.secret, body), body)))
    accepted = [asyncio.create_task(h.runtime.intake.submit(d)) for d in deliveries]
    await asyncio.sleep(0)  # all ten are queued; the writer has taken the first batch
    # Shutting down must store them, not cancel the batch in hand (on PostgreSQL the store awaits
    # the database mid-batch, which is where a cancelling stop would lose it).
    await h.runtime.intake.stop()
    assert all(t.done() and not t.cancelled() for t in accepted)
    assert sorted(t.result()[0].message_id for t in accepted) == list(range(1, 11))
    async with h.runtime.uow() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(Message)) == 10


async def test_a_batch_asks_for_its_senders_and_their_conversations_once_and_joins_like_one_by_one(
        h: Harness) -> None:
    ctx = await h.make_account()
    x, y = await h.make_api_inbox(ctx, trust=True), await h.make_api_inbox(ctx, trust=True)

    async def first(inbox: ApiInbox, source: str, email: str, **extra: Any) -> dict[str, Any]:
        r = await h.deliver(inbox, inbound_payload(source_id=source, contact={"source_id": source, "name": source,
                                                                             "email": email}, **extra))
        assert r.status_code == 200, r.text
        return r.json()

    ana = await first(x, "ana", "ana@example.com")  # her conversation on X is then resolved
    r = await h.client.patch(f"/api/v1/conversations/{ana['conversation_id']}", headers=ctx.admin.headers,
                             json={"status": "resolved"})
    assert r.status_code == 200, r.text
    await first(x, "carl", "carl@example.com", conversation_key="order-1")  # two open on X: the
    carl = await first(x, "carl", "carl@example.com", conversation_key="order-2")  # latest is joined
    dora = await first(y, "dora", "dora@example.com")  # open on Y only

    active = await h.runtime.channels.active(h.runtime.sessionmaker, x.public_key)
    assert active is not None

    def delivery(source: str, email: str | None, content: str) -> Delivery:
        contact: dict[str, Any] = {"source_id": source, "name": source}
        if email:
            contact["email"] = email
        body = orjson.dumps(inbound_payload(contact=contact, content=content))
        return prepare(active.inbox, active.adapter, InboundRequest(sign(x.secret, body), body))

    batch = [
        delivery("ana", "ana.new@example.com", "a1"),  # Ana, with an address she has not used before
        delivery("bea", "bea@example.com", "b1"),  # a new customer
        delivery("ana-laptop", "ana.new@example.com", "a2"),  # found by the address message 1 added
        delivery("bea", None, "b2"),  # found: created by message 2
        delivery("carl", None, "c1"),
        delivery("dora-x", "dora@example.com", "d1"),  # Dora on X: joins her open conversation on Y
        delivery("dora-x", None, "d2"),
    ]
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(h.runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        results = [r[0] for r in await do_ingest_batch(h.runtime, batch)]
    finally:
        event.remove(h.runtime.engine.sync_engine, "before_cursor_execute", record)

    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len([s for s in selects if "contact_identities" in s]) == 1, selects
    assert len([s for s in selects if "row_number" in s.lower()]) == 1, selects
    assert not [s for s in selects if "conversations.contact_id = " in s and "conversations.inbox_id = " in s], selects

    a1, b1, a2, b2, c1, d1, d2 = results
    assert a1.contact_id == a2.contact_id == ana["contact_id"]
    assert a1.conversation_id == a2.conversation_id == ana["conversation_id"]  # reopened, then joined
    assert b1.contact_id == b2.contact_id not in {ana["contact_id"], carl["contact_id"], dora["contact_id"]}
    assert b1.conversation_id == b2.conversation_id
    assert (c1.contact_id, c1.conversation_id) == (carl["contact_id"], carl["conversation_id"])
    assert d1.contact_id == d2.contact_id == dora["contact_id"]
    assert d1.conversation_id == d2.conversation_id == dora["conversation_id"]
    async with h.runtime.uow() as uow:
        s = uow.session
        assert await s.scalar(select(func.count()).select_from(Contact)) == 4
        assert await s.scalar(select(func.count()).select_from(Conversation)) == 5
        reopened = await s.get(Conversation, ana["conversation_id"])
        assert reopened is not None
        assert (reopened.status, reopened.reopen_count, reopened.message_count) == ("open", 1, 3)
        links = dict((await s.execute(select(Message.content, Message.meta["link"]["reason"].as_string())
                                      .where(Message.content.in_(["a1", "a2", "b1", "b2", "d1", "d2"])))).all())
        assert links == {"a1": "same_channel", "a2": "same_channel", "b1": "new", "b2": "same_channel",
                         "d1": "open_conversation", "d2": "open_conversation"}
        identities = (await s.scalars(select(ContactIdentity.value).where(
            ContactIdentity.contact_id == ana["contact_id"]))).all()
        assert sorted(identities) == ["ana", "ana-laptop", "ana.new@example.com", "ana@example.com"]


async def dispatched_events(h: Harness) -> list[tuple[int, dict[str, Any]]]:
    """(job's account, event) for every events.dispatch job, oldest first."""
    async with h.runtime.uow() as uow:
        jobs = (await uow.session.scalars(select(Job).where(Job.kind == "events.dispatch").order_by(Job.id))).all()
    return [(job.account_id, e) for job in jobs for e in job.payload["events"]]


def api_delivery(active: Any, secret: str, source: str, content: str, **contact: Any) -> Delivery:
    body = orjson.dumps(inbound_payload(contact={"source_id": source, **contact}, content=content))
    return prepare(active.inbox, active.adapter, InboundRequest(sign(secret, body), body))


async def subscribe(h: Harness, ctx: AccountCtx) -> None:
    r = await h.client.post("/api/v1/webhooks", headers=ctx.admin.headers, json={
        "url": "https://crm.example.com/hook", "event_types": ["message.created", "conversation.created"]})
    assert r.status_code == 201, r.text


async def test_each_message_of_a_batch_sees_the_sender_as_it_was_at_its_turn(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    await subscribe(h, ctx)
    active = await h.runtime.channels.active(h.runtime.sessionmaker, inbox.public_key)
    assert active is not None
    # A new sender whose first message carries no name and whose second names her.
    await do_ingest_batch(h.runtime, [api_delivery(active, inbox.secret, "nora", "n1"),
                                      api_delivery(active, inbox.secret, "nora", "n2", name="Nora")])
    names = [(e["message"]["content"], e["message"]["sender"]["name"]) for _, e in await dispatched_events(h)
             if e["type"] == "message.created"]
    assert names == [("n1", "contact"), ("n2", "Nora")]  # a nameless sender is shown as "contact"
    created = [e["conversation"]["contact"]["name"] for _, e in await dispatched_events(h)
               if e["type"] == "conversation.created"]
    assert created == [""]


async def test_a_batch_from_two_accounts_keeps_their_senders_and_their_events_apart(h: Harness) -> None:
    acme, other = await h.make_account("Acme"), await h.make_account("Other")
    a_inbox, o_inbox = await h.make_api_inbox(acme, trust=True), await h.make_api_inbox(other, trust=True)
    await subscribe(h, acme)
    await subscribe(h, other)
    a_active = await h.runtime.channels.active(h.runtime.sessionmaker, a_inbox.public_key)
    o_active = await h.runtime.channels.active(h.runtime.sessionmaker, o_inbox.public_key)
    assert a_active is not None and o_active is not None
    # The same person writes to both companies in the same instant: two customers, one per account.
    results = [r[0] for r in await do_ingest_batch(h.runtime, [
        api_delivery(a_active, a_inbox.secret, "sam", "to acme", email="sam@example.com"),
        api_delivery(o_active, o_inbox.secret, "sam", "to other, private", email="sam@example.com"),
        api_delivery(a_active, a_inbox.secret, "sam-2", "acme again", email="sam@example.com"),
    ])]
    assert results[0].contact_id == results[2].contact_id != results[1].contact_id
    assert results[0].conversation_id == results[2].conversation_id != results[1].conversation_id

    events = await dispatched_events(h)
    assert {account for account, _ in events} == {acme.account_id, other.account_id}
    assert all(e["account_id"] == account for account, e in events), events
    r = await h.client.get("/api/v1/jobs", headers=acme.admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["items"] and "to other, private" not in r.text and "acme again" in r.text


async def test_a_batch_breaks_activity_ties_as_the_database_does(h: Harness) -> None:
    clock.freeze(clock.now())  # every conversation is active at the same instant
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    first = []
    for key in ("order-1", "order-2"):
        r = await h.deliver(inbox, inbound_payload(source_id="carl", conversation_key=key))
        assert r.status_code == 200, r.text
        first.append(r.json()["conversation_id"])
    active = await h.runtime.channels.active(h.runtime.sessionmaker, inbox.public_key)
    assert active is not None

    def keyed(content: str, key: str | None = None) -> Delivery:
        extra = {"conversation_key": key} if key else {}
        body = orjson.dumps(inbound_payload(source_id="carl", content=content, **extra))
        return prepare(active.inbox, active.adapter, InboundRequest(sign(inbox.secret, body), body))

    # order-1 is written to by key; on a tie of activity the higher id, order-2, stays the latest.
    results = [r[0] for r in await do_ingest_batch(h.runtime, [keyed("by key", "order-1"), keyed("plain")])]
    assert [r.conversation_id for r in results] == first
