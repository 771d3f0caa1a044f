"""Race safety: routing jobs for the same conversations and the same agents running at once, from two
runtimes (two processes' worth of connection pools) — nobody is assigned twice, nobody is overfilled.
Meaningful on PostgreSQL (row locks); on SQLite transactions are serial and it must hold as well."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import event, func, select

from swarmdesk.conversations.models import Activity, Conversation
from swarmdesk.jobs.worker import Worker
from swarmdesk.routing import actions, service, snapshot
from swarmdesk.routing.models import PresenceStatus
from swarmdesk.runtime import Runtime, create_runtime
from tests.support import Harness
from tests.test_routing_support import add_agent, add_queue, chat, make_desk, set_presence


async def _state(h: Harness, account_id: int) -> tuple[Counter, Counter]:
    async with h.runtime.uow() as uow:
        routed = Counter(dict((await uow.session.execute(
            select(Activity.conversation_id, func.count()).where(Activity.account_id == account_id,
                                                                 Activity.verb == "routed")
            .group_by(Activity.conversation_id))).all()))
        load = Counter(dict((await uow.session.execute(
            select(Conversation.assignee_id, func.count()).where(Conversation.account_id == account_id,
                                                                 Conversation.assignee_id.is_not(None))
            .group_by(Conversation.assignee_id))).all()))
    return routed, load


async def test_concurrent_routing_never_assigns_twice_or_overfills(h: Harness) -> None:
    d = await make_desk(h)
    await add_queue(h, d)
    agents = [await add_agent(h, d, name, capacity={"webchat": 2}, online=False) for name in ("ana", "bob", "cy")]
    cids = [await chat(h, d, f"v{i}") for i in range(10)]  # nobody online: all wait
    for agent in agents:
        await set_presence(h, agent, "online")  # their drain jobs stay queued: we race by hand

    other: Runtime = create_runtime(h.runtime.settings)
    await other.start(with_worker=False)
    try:
        async def route(runtime: Runtime, cid: int) -> str:
            async with runtime.uow() as uow:
                return (await actions.do_route_conversation(uow, d.ctx.account_id, cid, reason="race")).state

        # Every conversation routed four times at once, from both runtimes, interleaved.
        results = await asyncio.gather(*(route(rt, cid) for cid in cids for rt in (h.runtime, other) * 2))
        # And the queued drain jobs by two workers at once.
        await asyncio.gather(Worker(h.runtime, h.runtime.jobs).drain(20), Worker(other, other.jobs).drain(20))
    finally:
        await other.stop()

    assert results.count("assigned") == 6
    routed, load = await _state(h, d.ctx.account_id)
    assert sum(routed.values()) == 6 and set(routed.values()) == {1}  # six conversations, each routed once
    assert load == {a.user_id: 2 for a in agents}  # each agent exactly at capacity
    async with h.runtime.uow() as uow:
        assigned = (await uow.session.scalars(select(Conversation.id).where(
            Conversation.id.in_(cids), Conversation.assignee_id.is_not(None)).order_by(Conversation.id))).all()
    assert list(assigned) == sorted(routed)


async def test_concurrent_routes_of_one_conversation_assign_it_once(h: Harness) -> None:
    d = await make_desk(h)
    await add_queue(h, d)
    agents = [await add_agent(h, d, name, capacity={"webchat": 5}, online=False) for name in ("ana", "bob")]
    cid = await chat(h, d)
    for agent in agents:
        await set_presence(h, agent, "online")

    async def route() -> str:
        async with h.runtime.uow() as uow:
            return (await actions.do_route_conversation(uow, d.ctx.account_id, cid, reason="race")).state

    results = await asyncio.gather(*(route() for _ in range(8)))
    assert sorted(results) == ["assigned"] + ["skipped"] * 7
    routed, load = await _state(h, d.ctx.account_id)
    assert routed == {cid: 1} and sum(load.values()) == 1


async def test_a_stale_snapshot_never_overfills(h: Harness) -> None:
    """Each process caches its agent snapshot; another process's assignment is not in it. The
    recount under the agent's lock catches that, and the decision is taken again on fresh numbers."""
    d = await make_desk(h)
    await add_queue(h, d)
    ana = await add_agent(h, d, "ana", capacity={"webchat": 1})
    bob = await add_agent(h, d, "bob", capacity={"webchat": 1})
    await add_agent(h, d, "cy", capacity={"webchat": 1}, online=False)
    first = await chat(h, d, "v1")  # this runtime: ana; its snapshot now says bob 0 of 1

    other: Runtime = create_runtime(h.runtime.settings)
    await other.start(with_worker=False)
    try:
        second = await chat(h, d, "v2", run=False)
        async with other.uow() as uow:
            assert (await actions.do_route_conversation(uow, d.ctx.account_id, second, reason="new")).assignee_id \
                == bob.user_id
    finally:
        await other.stop()
    third = await chat(h, d, "v3", run=False)
    async with h.runtime.uow() as uow:
        result = await actions.do_route_conversation(uow, d.ctx.account_id, third, reason="new")
    assert (result.state, result.why) == ("waiting", "everyone online is at capacity (2 online)")
    routed, load = await _state(h, d.ctx.account_id)
    assert load == {ana.user_id: 1, bob.user_id: 1} and routed == {first: 1, second: 1}


async def test_the_snapshot_is_checked_once_per_interval_and_dropped_by_this_processs_changes(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of decisions asks the database for the snapshot's version once per ``CHECK_SECONDS``;
    a change committed by this process drops it at once, another process's is seen after the interval."""
    d = await make_desk(h)
    await add_queue(h, d)
    ana = await add_agent(h, d, "ana", capacity={"webchat": 1})
    bob = await add_agent(h, d, "bob", capacity={"webchat": 1}, online=False)
    now = [1000.0]
    monkeypatch.setattr(snapshot.time, "monotonic", lambda: now[0])
    statements: list[str] = []
    engine = h.runtime.engine.sync_engine

    def count(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if "revision" in statement:  # the version query (not BEGIN or the like)
            statements.append(statement)

    async def current() -> snapshot.Snapshot:
        async with h.runtime.uow() as uow:
            return await snapshot.snapshot(uow.session, d.ctx.account_id)

    first = await current()
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert await current() is first and statements == []  # within the interval: no query at all
        now[0] += snapshot.CHECK_SECONDS
        assert await current() is first and len(statements) == 1  # checked: the version has not moved
        # This process's own change (bob goes online here): the next decision sees it, no interval.
        await set_presence(h, bob, "online")
        assert set((await current()).agents) == {ana.user_id, bob.user_id}
        # Another process's change (ana goes offline there): seen once the interval has passed.
        kept = await current()
        other: Runtime = create_runtime(h.runtime.settings)
        await other.start(with_worker=False)
        try:
            async with other.uow() as uow:
                presence = await service.get_presence(uow.session, d.ctx.account_id, ana.user_id, lock=True)
                assert presence is not None
                await actions._change_presence(uow, presence, PresenceStatus.offline, "manual")
                await uow.commit()
        finally:
            await other.stop()
        assert await current() is kept
        now[0] += snapshot.CHECK_SECONDS
        assert set((await current()).agents) == {bob.user_id}
    finally:
        event.remove(engine, "before_cursor_execute", count)
