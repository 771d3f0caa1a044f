"""Durable reactions to events (webhooks now; automation, routing and insight later).

Events that some listener wants are written to the job outbox in the same transaction as the
change, so a reaction is never lost to a crash; live clients get the same events from the bus.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import CompoundSelect, Select, literal, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.events.base import BaseEvent
from swarmdesk.jobs import service as jobs_service
from swarmdesk.jobs.registry import JobContext, jobs

if TYPE_CHECKING:
    from swarmdesk.events.bus import EventBus
    from swarmdesk.runtime import Runtime

Listener = Callable[["Runtime", dict[str, Any]], Awaitable[None]]
# Asked inside the committing transaction whether the listener has anything to do for an event;
# the dict memoizes look-ups for the rest of that commit. Saves an outbox job per message when,
# say, an account has no webhook subscriptions.
Wants = Callable[[AsyncSession, BaseEvent, dict[Any, Any]], Awaitable[bool]]

DISPATCH_JOB = "events.dispatch"


class Probe(NamedTuple):
    """A look-up a Wants makes, asked ahead for every account of a commit's events: ``values``
    selects one column of the account's rows (bind parameter ``account_id``; the column's type is
    the same for every probe, JSON) and ``fold`` turns them into what the Wants finds in the memo
    under ``(key, account_id)``."""
    key: str
    values: Select[Any]
    fold: Callable[[list[Any]], Any]


class ListenerRegistry:
    def __init__(self) -> None:
        self._by_type: dict[str, list[tuple[Listener, Wants | None]]] = defaultdict(list)
        self._probes: dict[str, Probe] = {}
        self._probe_statement: CompoundSelect | None = None

    def probe(self, key: str, values: Select[Any], fold: Callable[[list[Any]], Any]) -> None:
        """Register a look-up that durable() asks, with all the others, in one statement per
        account and commit (rather than a round trip per listener)."""
        self._probes[key] = Probe(key, values, fold)
        self._probe_statement = None

    async def _prefetch(self, session: AsyncSession, account_id: int, memo: dict[Any, Any]) -> None:
        if self._probe_statement is None:
            self._probe_statement = union_all(*(
                p.values.add_columns(literal(p.key).label("probe")) for p in self._probes.values()))
        found: dict[str, list[Any]] = {key: [] for key in self._probes}
        for value, key in await session.execute(self._probe_statement, {"account_id": account_id}):
            found[key].append(value)
        for key, values in found.items():
            memo[(key, account_id)] = self._probes[key].fold(values)

    def on(self, *event_types: str, wants: Wants | None = None) -> Callable[[Listener], Listener]:
        def register(fn: Listener) -> Listener:
            for event_type in event_types:
                self._by_type[event_type].append((fn, wants))
            return fn
        return register

    async def durable(self, session: AsyncSession, events: list[BaseEvent]) -> list[BaseEvent]:
        """The events some listener has work for."""
        memo: dict[Any, Any] = {}
        if self._probes:
            asking = {e.account_id for e in events if any(w is not None for _, w in self._by_type.get(e.type, ()))}
            for account_id in sorted(asking):
                await self._prefetch(session, account_id, memo)
        chosen = []
        for event in events:
            for _, wants in self._by_type.get(event.type, ()):
                if wants is None or await wants(session, event, memo):
                    chosen.append(event)
                    break
        return chosen

    def for_type(self, event_type: str) -> list[Listener]:
        return [fn for fn, _ in self._by_type.get(event_type, ())]


listeners = ListenerRegistry()


class EventCommitHooks:
    """The unit of work's bridge to the outbox, the bus and the workers."""

    def __init__(self, bus: EventBus, registry: ListenerRegistry, wake_workers: Callable[[], Awaitable[None]]):
        self.bus = bus
        self.registry = registry
        self._wake_workers = wake_workers

    async def before_commit(self, session: AsyncSession, events: list[BaseEvent]) -> None:
        durable = await self.registry.durable(session, events) if events else []
        # One job per account (a group commit may hold several): a job is shown to, and retried
        # by, its account's admins, so it must carry nothing of another account's.
        by_account: dict[int, list[BaseEvent]] = {}
        for event in durable:
            by_account.setdefault(event.account_id, []).append(event)
        for account_id, of_account in by_account.items():
            jobs_service.enqueue(session, DISPATCH_JOB, {"events": [e.model_dump(mode="json") for e in of_account]},
                                 account_id=account_id)

    async def after_commit(self, session: AsyncSession, events: list[BaseEvent]) -> None:
        if events:
            await self.bus.publish(events)
        if session.info.pop("jobs_enqueued", False):
            await self._wake_workers()


@jobs.handler(DISPATCH_JOB)
async def dispatch_events(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    # Listeners are idempotent by event uid, so running the whole batch again after a partial
    # failure is safe.
    for event in payload["events"]:
        for listener in runtime.listeners.for_type(event["type"]):
            await listener(runtime, event)
