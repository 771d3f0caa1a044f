"""Group commit: deliveries that arrive together are stored together, and what a batch has in
common (a new sender, a retried delivery) still ends up exactly once."""

from __future__ import annotations

import asyncio

import orjson
from sqlalchemy import func, select

from swarmdesk.channels.base import InboundRequest
from swarmdesk.channels.inbound import prepare
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations.models import Conversation, Message
from tests.support import Harness, inbound_payload, sign


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
