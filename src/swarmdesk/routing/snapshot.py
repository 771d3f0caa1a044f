"""The snapshot routing decides on, cached per process and account: the candidate agents, and the
account's queues, skills and inboxes' channel kinds.

Building it reads every online agent with their skills, capacity and load (a few thousand rows for
1,000 agents): too much to do for each decision. So each process keeps one per account and checks
it with one small query per decision — counts and sums of ids and ``revision`` columns of
``agent_presence``, ``skills`` and ``routing_queues``, which every change of an agent's status,
capacity or skills and of a skill or a queue bumps — rebuilding it when that moved, when it is older
than ``MAX_AGE_SECONDS`` (team memberships, deactivations, other processes' assignments), or when
the caller asks (capacity was freed: a drain, an unassignment).

A snapshot checked less than ``CHECK_SECONDS`` ago is used without asking again: a burst of
decisions costs one version query per interval, not one each. This process's own changes to
presence, capacity, skills and queues drop its snapshot when they commit (``changed``), so only
other processes' changes wait up to that interval.

Staleness never breaks the rules, because the decision is only a proposal: the chosen agent's row is
locked and their load counted again before the assignment (``service.agent_with_room``). What
staleness can cost is a less even choice for up to ``MAX_AGE_SECONDS``; this process's own
assignments are applied to the snapshot as they commit.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts.models import TeamMember, User
from swarmdesk.channels.models import Inbox
from swarmdesk.core.db import UnitOfWork
from swarmdesk.routing.decision import Candidate
from swarmdesk.routing.models import AgentPresence, AgentSkill, PresenceStatus, RoutingQueue, Skill
from swarmdesk.routing.service import (
    ROUTABLE_ROLES,
    capacity_for,
    channel_kind_of,
    list_queues,
    list_skills,
    load_by_agent,
)

MAX_AGE_SECONDS = 5.0
CHECK_SECONDS = 0.25


@dataclass(slots=True)
class Agent:
    user_id: int
    name: str
    team_ids: frozenset[int]
    skills: dict[int, int]
    capacity: dict[str, Any]
    load: dict[str, int]
    last_assigned_at: float


@dataclass(slots=True)
class Snapshot:
    version: tuple[int, ...]
    built_at: float
    checked_at: float
    agents: dict[int, Agent]
    queues: list[RoutingQueue] = field(default_factory=list)  # by position; read-only (detached) rows
    skills: list[Skill] = field(default_factory=list)
    inbox_kinds: dict[int, str] = field(default_factory=dict)
    _lists: dict[tuple[int | None, str], dict[int, Candidate]] = field(default_factory=dict)

    def candidates(self, team_id: int | None, channel_kind: str) -> list[Candidate]:
        key = (team_id, channel_kind)
        found = self._lists.get(key)
        if found is None:
            found = {a.user_id: Candidate(user_id=a.user_id, name=a.name, skills=a.skills,
                                          load=a.load.get(channel_kind, 0),
                                          capacity=capacity_for(a.capacity, channel_kind),
                                          total_load=sum(a.load.values()), last_assigned_at=a.last_assigned_at)
                     for a in self.agents.values() if team_id is None or team_id in a.team_ids}
            self._lists[key] = found
        return list(found.values())

    def set_load(self, user_id: int, channel_kind: str, load: int, *, assigned_at: float | None = None) -> None:
        agent = self.agents.get(user_id)
        if agent is None:
            return
        agent.load[channel_kind] = load
        if assigned_at is not None:
            agent.last_assigned_at = assigned_at
        for (_, kind), by_user in self._lists.items():
            candidate = by_user.get(user_id)
            if candidate is not None:
                candidate.total_load = sum(agent.load.values())
                candidate.last_assigned_at = agent.last_assigned_at
                if kind == channel_kind:
                    candidate.load = load


_cache: weakref.WeakKeyDictionary[Any, dict[int, Snapshot]] = weakref.WeakKeyDictionary()
# Bumped by each local invalidation: a build that began before a change committed here is used
# once but not kept, so the change is never hidden behind the check interval.
_generations: weakref.WeakKeyDictionary[Any, dict[int, int]] = weakref.WeakKeyDictionary()


def _store(session: AsyncSession) -> dict[int, Snapshot]:
    engine = session.get_bind()  # one cache per database (tests run many)
    store = _cache.get(engine)
    if store is None:
        store = _cache[engine] = {}
    return store


def _generation(session: AsyncSession) -> dict[int, int]:
    engine = session.get_bind()
    found = _generations.get(engine)
    if found is None:
        found = _generations[engine] = {}
    return found


def _sums(model: type, *columns: Any) -> list[Any]:
    where = model.account_id == bindparam("account_id")  # type: ignore[attr-defined]
    return [select(func.count()).where(where).scalar_subquery()] + [
        select(func.coalesce(func.sum(c), 0)).where(where).scalar_subquery() for c in columns]


# Built once: constructing the statement costs more Python than running it.
_VERSION = select(*_sums(AgentPresence, AgentPresence.revision), *_sums(Skill, Skill.id, Skill.revision),
                  *_sums(RoutingQueue, RoutingQueue.id, RoutingQueue.revision))


async def _version(session: AsyncSession, account_id: int) -> tuple[int, ...]:
    row = (await session.execute(_VERSION, {"account_id": account_id})).one()
    return tuple(int(v) for v in row)


async def _build(session: AsyncSession, account_id: int, version: tuple[int, ...]) -> Snapshot:
    rows = (await session.execute(
        select(AgentPresence.user_id, User.name, AgentPresence.capacity, AgentPresence.last_assigned_at)
        .join(User, User.id == AgentPresence.user_id)
        .where(AgentPresence.account_id == account_id, AgentPresence.status == PresenceStatus.online,
               User.is_active.is_(True), User.role.in_(ROUTABLE_ROLES)))).all()
    agents = {user_id: Agent(user_id, name, frozenset(), {}, capacity or {}, {},
                             last.timestamp() if last else 0.0) for user_id, name, capacity, last in rows}
    if agents:
        teams: dict[int, set[int]] = {}
        for team_id, user_id in await session.execute(
                select(TeamMember.team_id, TeamMember.user_id)
                .join(AgentPresence, AgentPresence.user_id == TeamMember.user_id)
                .where(AgentPresence.account_id == account_id, AgentPresence.status == PresenceStatus.online)):
            teams.setdefault(user_id, set()).add(team_id)
        for user_id, skill_id, proficiency in await session.execute(
                select(AgentSkill.user_id, AgentSkill.skill_id, AgentSkill.proficiency)
                .where(AgentSkill.account_id == account_id)):
            agent = agents.get(user_id)
            if agent is not None:
                agent.skills[skill_id] = proficiency
        for user_id, load in (await load_by_agent(session, account_id, online_only=True)).items():
            if user_id in agents:
                agents[user_id].load = dict(load)
        for user_id, agent in agents.items():
            agent.team_ids = frozenset(teams.get(user_id, ()))
    queues, skills = await list_queues(session, account_id), await list_skills(session, account_id)
    for row in (*queues, *skills):
        # Out of the session: its rollback would expire them, and they outlive it.
        session.expunge(row)
    now = time.monotonic()
    return Snapshot(version=version, built_at=now, checked_at=now, agents=agents, queues=queues, skills=skills,
                    inbox_kinds=dict((await session.execute(select(Inbox.id, Inbox.channel_kind)
                                                            .where(Inbox.account_id == account_id))).all()))


async def snapshot(session: AsyncSession, account_id: int, *, fresh: bool = False) -> Snapshot:
    store = _store(session)
    current = store.get(account_id)
    now = time.monotonic()
    if not fresh and current is not None and now - current.checked_at < CHECK_SECONDS \
            and now - current.built_at <= MAX_AGE_SECONDS:
        return current
    generation = _generation(session).get(account_id, 0)
    version = await _version(session, account_id)
    if fresh or current is None or current.version != version or now - current.built_at > MAX_AGE_SECONDS:
        built = await _build(session, account_id, version)
        if _generation(session).get(account_id, 0) == generation:
            store[account_id] = built
        return built
    current.checked_at = now
    return current


async def channel_kind(session: AsyncSession, snap: Snapshot, inbox_id: int) -> str:
    """An inbox's channel kind never changes: known ones come from the snapshot."""
    kind = snap.inbox_kinds.get(inbox_id)
    if kind is None:
        kind = snap.inbox_kinds[inbox_id] = await channel_kind_of(session, inbox_id)
    return kind


def invalidate(session: AsyncSession, account_id: int) -> None:
    generations = _generation(session)
    generations[account_id] = generations.get(account_id, 0) + 1
    _store(session).pop(account_id, None)


def changed(uow: UnitOfWork, account_id: int) -> None:
    """Presence, capacity, skills or queues of the account change in this unit of work: this
    process's snapshot goes once it commits (other processes see the new version on their next check)."""
    session = uow.session

    async def drop() -> None:
        invalidate(session, account_id)

    uow.after_commit(drop)
