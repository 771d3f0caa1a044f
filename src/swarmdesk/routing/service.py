"""Data access for routing: skills, presence, queues, candidates. Never publishes.

Also the registry of lift providers: other domains (SLAs) register a predicate that lifts a waiting
conversation ("its SLA is about to breach"); routing never imports them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts.models import Role, TeamMember, User
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts.models import Contact, Organization
from swarmdesk.conversations.models import Conversation, ConversationStatus, Priority
from swarmdesk.core.clock import utcnow
from swarmdesk.routing.decision import Requirement
from swarmdesk.routing.models import (
    AgentPresence,
    AgentSkill,
    ConversationRouting,
    PresenceConnection,
    PresenceStatus,
    RoutingQueue,
    RoutingState,
    Skill,
)
from swarmdesk.routing.schemas import (
    DEFAULT_LIFTS,
    AgentOut,
    AgentSkillOut,
    ConversationRoutingOut,
    PresenceOut,
    QueueOut,
    RequirementOut,
    language_tag,
)

# How long after a user's last real-time connection closes they are taken offline: a page reload
# or a server restart reconnects well within it.
PRESENCE_GRACE_SECONDS = 30
# Each process touches its presence-connection rows this often; rows untouched for the stale period
# belong to a process that died, and any process reaps them.
CONNECTION_HEARTBEAT_SECONDS = 30
CONNECTION_STALE_SECONDS = 120
# What an agent takes on a channel kind when neither it nor "default" is in their capacity.
DEFAULT_CAPACITY = 5
# Who routing assigns to (experts are pulled into cases, never routed them).
ROUTABLE_ROLES = (Role.admin, Role.supervisor, Role.agent)
# Capacity counts open conversations: pending (waiting on the customer), snoozed, resolved and
# closed ones do not; a customer reply reopens a conversation and it counts again.
COUNTED_STATUSES = (ConversationStatus.open,)

LiftProvider = Callable[[AsyncSession, Conversation, datetime], Awaitable[bool]]


class LiftProviders:
    """``lift_providers.register("sla", fn)``: ``fn(session, conversation, now)`` says whether the
    conversation earns the queue's ``sla`` lift (points set per queue, 80 by default)."""

    def __init__(self) -> None:
        self._providers: dict[str, LiftProvider] = {}

    def register(self, key: str, provider: LiftProvider) -> LiftProvider:
        if key in ("urgent", "high", "vip"):
            raise ValueError(f"lift {key!r} is built in")
        self._providers[key] = provider
        return provider

    def unregister(self, key: str) -> None:
        self._providers.pop(key, None)

    def keys(self) -> list[str]:
        return sorted(self._providers)

    def items(self) -> list[tuple[str, LiftProvider]]:
        return sorted(self._providers.items())


lift_providers = LiftProviders()


def capacity_for(capacity: dict[str, Any] | None, channel_kind: str) -> int:
    capacity = capacity or {}
    value = capacity.get(channel_kind, capacity.get("default", DEFAULT_CAPACITY))
    return int(value)


def _insert(session: AsyncSession, model: type) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(model)


# --- presence --------------------------------------------------------------------------------------

async def get_presence(session: AsyncSession, account_id: int, user_id: int, *,
                       lock: bool = False) -> AgentPresence | None:
    stmt = select(AgentPresence).where(AgentPresence.user_id == user_id, AgentPresence.account_id == account_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def ensure_presence(session: AsyncSession, account_id: int, user_id: int) -> AgentPresence:
    """The user's row, locked (made offline on first use; concurrent first uses make one)."""
    await session.execute(_insert(session, AgentPresence).values(
        user_id=user_id, account_id=account_id, status=PresenceStatus.offline, chosen=None, connections=0,
        capacity={}, changed_at=utcnow()).on_conflict_do_nothing(index_elements=["user_id"]))
    presence = await get_presence(session, account_id, user_id, lock=True)
    assert presence is not None
    return presence


async def recount(session: AsyncSession, presence: AgentPresence) -> None:
    """The agent's connection count is the sum of the processes' shares: never moved by a delta, so
    a share reaped while its process still lived, or counted twice, cannot push it off."""
    await session.flush()
    presence.connections = int(await session.scalar(
        select(func.coalesce(func.sum(PresenceConnection.count), 0))
        .where(PresenceConnection.user_id == presence.user_id)) or 0)


async def set_share(session: AsyncSession, presence: AgentPresence, process_id: str, count: int) -> None:
    """This process holds ``count`` connections of the agent (whose presence row the caller locked)."""
    share = await session.get(PresenceConnection, (process_id, presence.user_id), with_for_update=True)
    if count > 0 and share is None:
        session.add(PresenceConnection(process_id=process_id, user_id=presence.user_id,
                                       account_id=presence.account_id, count=count, seen_at=utcnow()))
    elif count > 0:
        share.count, share.seen_at = count, utcnow()
    elif share is not None:
        await session.delete(share)
    await recount(session, presence)


async def add_connections(session: AsyncSession, account_id: int, user_id: int, delta: int,
                          process_id: str) -> AgentPresence:
    """This process's share of the agent's connections moved by ``delta``; the presence row is
    locked first (as everywhere shares change), so one user's changes take turns."""
    presence = await ensure_presence(session, account_id, user_id)
    share = await session.get(PresenceConnection, (process_id, user_id))
    await set_share(session, presence, process_id, max(0, (share.count if share is not None else 0) + delta))
    return presence


async def own_shares(session: AsyncSession, process_id: str) -> dict[tuple[int, int], int]:
    rows = await session.execute(select(PresenceConnection.account_id, PresenceConnection.user_id,
                                        PresenceConnection.count).where(PresenceConnection.process_id == process_id))
    return {(int(a), int(u)): int(c) for a, u, c in rows}


async def touch_connections(session: AsyncSession, process_id: str) -> None:
    await session.execute(update(PresenceConnection).where(PresenceConnection.process_id == process_id)
                          .values(seen_at=utcnow()))


async def users_with_stale_shares(session: AsyncSession, seen_before: datetime,
                                  limit: int = 500) -> list[tuple[int, int]]:
    """(account, user) of shares no process has touched since ``seen_before``, by user id."""
    rows = await session.execute(select(PresenceConnection.account_id, PresenceConnection.user_id)
                                 .where(PresenceConnection.seen_at < seen_before).distinct()
                                 .order_by(PresenceConnection.user_id).limit(limit))
    return [(int(a), int(u)) for a, u in rows]


async def drop_stale_shares(session: AsyncSession, user_id: int, seen_before: datetime) -> int:
    """Deletes the user's stale shares (the caller holds their presence lock); how many went."""
    result = await session.execute(delete(PresenceConnection).where(
        PresenceConnection.user_id == user_id, PresenceConnection.seen_at < seen_before))
    return int(result.rowcount or 0)


async def presences(session: AsyncSession, account_id: int) -> dict[int, AgentPresence]:
    rows = await session.scalars(select(AgentPresence).where(AgentPresence.account_id == account_id))
    return {p.user_id: p for p in rows}


_ANY_QUEUE = select(RoutingQueue.id).where(RoutingQueue.account_id == bindparam("account_id")).limit(1)


async def account_routes(session: AsyncSession, account_id: int) -> bool:
    """Whether the account routes at all (has a queue): socket activity drives presence only then.
    Asked on every commit that publishes a conversation change: the statement is built once."""
    return await session.scalar(_ANY_QUEUE, {"account_id": account_id}) is not None


async def get_user(session: AsyncSession, account_id: int, user_id: int) -> User | None:
    return await session.scalar(select(User).where(User.id == user_id, User.account_id == account_id))


# --- skills ----------------------------------------------------------------------------------------

async def list_skills(session: AsyncSession, account_id: int) -> list[Skill]:
    return list((await session.scalars(select(Skill).where(Skill.account_id == account_id)
                                       .order_by(Skill.name, Skill.id))).all())


async def get_skill(session: AsyncSession, account_id: int, skill_id: int) -> Skill | None:
    return await session.scalar(select(Skill).where(Skill.id == skill_id, Skill.account_id == account_id))


async def skill_by_name(session: AsyncSession, account_id: int, name: str) -> Skill | None:
    return await session.scalar(select(Skill).where(Skill.account_id == account_id, Skill.name == name))


async def agent_skills(session: AsyncSession, account_id: int,
                       user_ids: Sequence[int] | None = None) -> dict[int, list[tuple[AgentSkill, Skill]]]:
    stmt = (select(AgentSkill, Skill).join(Skill, Skill.id == AgentSkill.skill_id)
            .where(AgentSkill.account_id == account_id).order_by(Skill.name))
    if user_ids is not None:
        stmt = stmt.where(AgentSkill.user_id.in_(user_ids))
    result: dict[int, list[tuple[AgentSkill, Skill]]] = defaultdict(list)
    for agent_skill, skill in (await session.execute(stmt)).all():
        result[agent_skill.user_id].append((agent_skill, skill))
    return result


async def existing_ids(session: AsyncSession, model: type, account_id: int, ids: Sequence[int]) -> set[int]:
    if not ids:
        return set()
    return set((await session.scalars(select(model.id).where(model.id.in_(ids),  # type: ignore[attr-defined]
                                                             model.account_id == account_id))).all())  # type: ignore[attr-defined]


# --- queues ----------------------------------------------------------------------------------------

async def list_queues(session: AsyncSession, account_id: int) -> list[RoutingQueue]:
    return list((await session.scalars(select(RoutingQueue).where(RoutingQueue.account_id == account_id)
                                       .order_by(RoutingQueue.position, RoutingQueue.id))).all())


async def get_queue(session: AsyncSession, account_id: int, queue_id: int, *, lock: bool = False) -> RoutingQueue | None:
    stmt = select(RoutingQueue).where(RoutingQueue.id == queue_id, RoutingQueue.account_id == account_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(stmt)


def match_queue(queues: Sequence[RoutingQueue], conversation: Conversation) -> RoutingQueue | None:
    """The first queue (by position) whose inboxes and tags take the conversation: each list, when
    given, must match; a queue with neither takes everything."""
    tags = set(conversation.tag_names or ())
    for queue in queues:
        if queue.inbox_ids and conversation.inbox_id not in queue.inbox_ids:
            continue
        if queue.tags and not tags & set(queue.tags):
            continue
        return queue
    return None


async def waiting_counts(session: AsyncSession, account_id: int) -> dict[int, int]:
    rows = await session.execute(
        select(ConversationRouting.queue_id, func.count()).where(
            ConversationRouting.account_id == account_id, ConversationRouting.state == RoutingState.waiting)
        .group_by(ConversationRouting.queue_id))
    return {queue_id: n for queue_id, n in rows if queue_id is not None}


async def queues_served_by(session: AsyncSession, account_id: int, user_id: int) -> list[RoutingQueue]:
    teams = set((await session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == user_id))).all())
    return [q for q in await list_queues(session, account_id) if q.team_id is None or q.team_id in teams]


async def waiting_in(session: AsyncSession, queue_ids: Sequence[int], limit: int) -> list[int]:
    """Conversations waiting in these queues, served in order: highest lift, then longest waiting."""
    if not queue_ids:
        return []
    return list((await session.scalars(
        select(ConversationRouting.conversation_id)
        .where(ConversationRouting.queue_id.in_(queue_ids), ConversationRouting.state == RoutingState.waiting)
        .order_by(ConversationRouting.lift.desc(), ConversationRouting.waiting_since,
                  ConversationRouting.conversation_id).limit(limit))).all())


# --- one conversation ------------------------------------------------------------------------------

async def lock_conversation(session: AsyncSession, account_id: int, conversation_id: int) -> Conversation | None:
    """The conversation, locked until the transaction ends (PostgreSQL; SQLite transactions are
    serial anyway): two routing jobs never decide for one conversation at once."""
    return await session.scalar(
        select(Conversation).where(Conversation.id == conversation_id, Conversation.account_id == account_id)
        .with_for_update().execution_options(populate_existing=True))


async def routing_row(session: AsyncSession, conversation: Conversation) -> ConversationRouting:
    row = await session.get(ConversationRouting, conversation.id)
    if row is None:
        row = ConversationRouting(conversation_id=conversation.id, account_id=conversation.account_id,
                                  state=RoutingState.unqueued, lift=0, required_skills=[], attempts=0, decision={},
                                  updated_at=utcnow())
        session.add(row)
    return row


_SOURCE_ORDER = {"inbox": 0, "tag": 1, "rule": 2, "language": 3}


@dataclass(slots=True)
class Needed:
    requirement: Requirement
    source: str


async def requirements_for(session: AsyncSession, conversation: Conversation, contact: Contact | None,
                           explicit: Sequence[dict[str, Any]], skills: Sequence[Skill] | None = None) -> list[Needed]:
    """What the conversation requires of its agent: skills its inbox, tags or language bring (at the
    skill's minimum), and those a rule set (at the rule's minimum). The highest minimum wins."""
    if skills is None:
        skills = await list_skills(session, conversation.account_id)
    by_id = {s.id: s for s in skills}
    language = (conversation.custom_attributes or {}).get("language") or \
        ((contact.custom_attributes or {}).get("language") if contact is not None else None)
    lang = language_tag(language) if isinstance(language, str) and language.strip() else None
    tags = set(conversation.tag_names or ())
    found: dict[int, Needed] = {}

    def need(skill: Skill, minimum: int, source: str) -> None:
        current = found.get(skill.id)
        if current is None or minimum > current.requirement.min_proficiency:
            found[skill.id] = Needed(Requirement(skill.id, skill.name, minimum), source)

    for skill in skills:
        if conversation.inbox_id in (skill.inbox_ids or ()):
            need(skill, skill.min_proficiency, "inbox")
        elif tags & set(skill.tags or ()):
            need(skill, skill.min_proficiency, "tag")
        elif lang is not None and lang in (skill.languages or ()):
            need(skill, skill.min_proficiency, "language")
    for item in explicit:
        skill = by_id.get(int(item["skill_id"]))
        if skill is not None:
            need(skill, int(item["min_proficiency"]), "rule")
    # Explained in this order: what the case is about (inbox, tags, rules), then the language.
    return sorted(found.values(), key=lambda n: (_SOURCE_ORDER[n.source], n.requirement.name.lower(),
                                                 n.requirement.skill_id))


async def lift_for(session: AsyncSession, queue: RoutingQueue, conversation: Conversation, contact: Contact | None,
                   now: datetime) -> tuple[int, list[str]]:
    """Points that move a waiting conversation up its queue, and why."""
    lifts = {**DEFAULT_LIFTS, **(queue.lifts or {})}
    reasons: list[str] = []
    if conversation.priority == Priority.urgent:
        reasons.append("urgent")
    elif conversation.priority == Priority.high:
        reasons.append("high")
    if contact is not None and contact.organization_id is not None and queue.vip_values:
        org = await session.get(Organization, contact.organization_id)
        value = (org.custom_attributes or {}).get(queue.vip_attribute) if org is not None else None
        if value is not None and str(value).lower() in {v.lower() for v in queue.vip_values}:
            reasons.append("vip")
    for key, provider in lift_providers.items():
        if lifts.get(key, 0) and await provider(session, conversation, now):
            reasons.append(key)
    return sum(int(lifts.get(r, 0)) for r in reasons), reasons


async def previous_agent(session: AsyncSession, conversation: Conversation, window_seconds: int,
                         now: datetime) -> int | None:
    """The agent of the customer's latest other conversation active within the window."""
    if window_seconds <= 0:
        return None
    return await session.scalar(
        select(Conversation.assignee_id).where(
            Conversation.contact_id == conversation.contact_id, Conversation.id != conversation.id,
            Conversation.assignee_id.is_not(None),
            Conversation.last_activity_at >= now - timedelta(seconds=window_seconds))
        .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()).limit(1))


async def channel_kind_of(session: AsyncSession, inbox_id: int) -> str:
    return await session.scalar(select(Inbox.channel_kind).where(Inbox.id == inbox_id)) or ""


# --- candidates and load -----------------------------------------------------------------------------

async def _inbox_kinds(session: AsyncSession, account_id: int) -> dict[int, str]:
    return dict((await session.execute(select(Inbox.id, Inbox.channel_kind)
                                       .where(Inbox.account_id == account_id))).all())


async def load_by_agent(session: AsyncSession, account_id: int, user_ids: Sequence[int] | None = None,
                        *, online_only: bool = False) -> dict[int, dict[str, int]]:
    """Open conversations assigned to each agent, per channel kind. One grouped query that seeks the
    (account, assignee, status) index per agent."""
    stmt = select(Conversation.assignee_id, Conversation.inbox_id, func.count()).where(
        Conversation.account_id == account_id, Conversation.status.in_(COUNTED_STATUSES))
    if user_ids is not None:
        stmt = stmt.where(Conversation.assignee_id.in_(user_ids))
    elif online_only:
        stmt = stmt.where(Conversation.assignee_id.in_(
            select(AgentPresence.user_id).where(AgentPresence.account_id == account_id,
                                                AgentPresence.status == PresenceStatus.online)))
    else:
        stmt = stmt.where(Conversation.assignee_id.is_not(None))
    rows = (await session.execute(stmt.group_by(Conversation.assignee_id, Conversation.inbox_id))).all()
    kinds = await _inbox_kinds(session, account_id) if rows else {}
    load: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for user_id, inbox_id, n in rows:
        load[user_id][kinds.get(inbox_id, "")] += n
    return load


async def agent_with_room(session: AsyncSession, account_id: int, user_id: int,
                          channel_kind: str) -> AgentPresence | None:
    """The agent's presence row, locked, if they are still online with room on the channel. Checked
    under the lock just before assigning: two workers that chose the same agent for different
    conversations take turns here, and the second counts the first's assignment."""
    presence = await get_presence(session, account_id, user_id, lock=True)
    if presence is None or presence.status != PresenceStatus.online:
        return None
    user = await session.get(User, user_id)
    if user is None or not user.is_active or user.role not in ROUTABLE_ROLES:
        return None
    load = (await load_by_agent(session, account_id, [user_id])).get(user_id, {})
    return presence if load.get(channel_kind, 0) < capacity_for(presence.capacity, channel_kind) else None


async def open_assigned_to(session: AsyncSession, account_id: int, user_id: int) -> list[int]:
    return list((await session.scalars(select(Conversation.id).where(
        Conversation.account_id == account_id, Conversation.assignee_id == user_id,
        Conversation.status.in_(COUNTED_STATUSES)).order_by(Conversation.id))).all())


# --- output shapes -----------------------------------------------------------------------------------

async def agents_out(session: AsyncSession, account_id: int) -> list[AgentOut]:
    # Experts too: they are never routed conversations, but swarming ranks them by these skills.
    users = (await session.scalars(select(User).where(User.account_id == account_id, User.is_active.is_(True))
                                   .order_by(User.name, User.id))).all()
    teams: dict[int, list[int]] = defaultdict(list)
    for team_id, user_id in await session.execute(
            select(TeamMember.team_id, TeamMember.user_id).join(User, User.id == TeamMember.user_id)
            .where(User.account_id == account_id).order_by(TeamMember.team_id)):
        teams[user_id].append(team_id)
    present = await presences(session, account_id)
    skills = await agent_skills(session, account_id)
    load = await load_by_agent(session, account_id)
    out = []
    for user in users:
        presence = present.get(user.id)
        out.append(AgentOut(
            user_id=user.id, name=user.name, role=str(user.role), team_ids=teams.get(user.id, []),
            status=presence.status if presence else PresenceStatus.offline,
            capacity={"default": DEFAULT_CAPACITY, **(presence.capacity if presence else {})},
            load=dict(load.get(user.id, {})), last_assigned_at=presence.last_assigned_at if presence else None,
            skills=[AgentSkillOut(skill_id=s.id, name=s.name, proficiency=a.proficiency)
                    for a, s in skills.get(user.id, [])]))
    return out


def presence_out(presence: AgentPresence | None, user_id: int) -> PresenceOut:
    if presence is None:
        return PresenceOut(user_id=user_id, status=PresenceStatus.offline, chosen=None, connections=0,
                           changed_at=None)
    return PresenceOut.model_validate(presence)


async def queues_out(session: AsyncSession, account_id: int, queues: Sequence[RoutingQueue]) -> list[QueueOut]:
    waiting = await waiting_counts(session, account_id)
    return [QueueOut.model_validate(q).model_copy(update={"waiting": waiting.get(q.id, 0)}) for q in queues]


async def conversation_routing_out(session: AsyncSession, conversation: Conversation) -> ConversationRoutingOut:
    row = await session.get(ConversationRouting, conversation.id, populate_existing=True)
    contact = await session.get(Contact, conversation.contact_id)
    needed = await requirements_for(session, conversation, contact, row.required_skills if row else [])
    queue = await get_queue(session, conversation.account_id, row.queue_id) if row and row.queue_id else None
    return ConversationRoutingOut(
        conversation_id=conversation.id, state=row.state if row else RoutingState.unqueued,
        queue_id=queue.id if queue else None, queue_name=queue.name if queue else None,
        waiting_since=row.waiting_since if row else None, lift=row.lift if row else 0,
        requirements=[RequirementOut(skill_id=n.requirement.skill_id, name=n.requirement.name,
                                     min_proficiency=n.requirement.min_proficiency, source=n.source) for n in needed],
        next_attempt_at=row.next_attempt_at if row else None, decision=row.decision if row else {})
