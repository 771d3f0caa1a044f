"""Data access for swarms: queries and output shapes. Never publishes."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts.models import Role, User
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.conversations.models import Conversation
from swarmdesk.routing.models import AgentPresence
from swarmdesk.swarming.models import (
    MemberRole,
    MemberState,
    Swarm,
    SwarmMember,
    SwarmMessage,
    SwarmOutcome,
    SwarmStatus,
)
from swarmdesk.swarming.schemas import (
    ExpertMetricsOut,
    OutcomeCount,
    SwarmMemberOut,
    SwarmMessageOut,
    SwarmMetricsOut,
    SwarmOut,
)


async def get_swarm(session: AsyncSession, conversation: Conversation, swarm_id: int) -> Swarm | None:
    """A swarm of this conversation (a swarm of another conversation or account is not found)."""
    return await session.scalar(select(Swarm).where(
        Swarm.id == swarm_id, Swarm.conversation_id == conversation.id, Swarm.account_id == conversation.account_id))


async def active_swarm(session: AsyncSession, conversation_id: int) -> Swarm | None:
    return await session.scalar(select(Swarm).where(Swarm.conversation_id == conversation_id,
                                                    Swarm.status == SwarmStatus.active))


async def list_swarms(session: AsyncSession, conversation_id: int, limit: int = 50) -> list[Swarm]:
    """Newest first."""
    return list((await session.scalars(select(Swarm).where(Swarm.conversation_id == conversation_id)
                                       .order_by(Swarm.id.desc()).limit(limit))).all())


async def members_of(session: AsyncSession, swarm_id: int) -> list[SwarmMember]:
    return list((await session.scalars(select(SwarmMember).where(SwarmMember.swarm_id == swarm_id))).all())


async def member(session: AsyncSession, swarm_id: int, user_id: int) -> SwarmMember | None:
    return await session.get(SwarmMember, (swarm_id, user_id))


def can_manage(principal: StaffPrincipal, swarm: Swarm, conversation: Conversation) -> bool:
    """Who invites and ends: the owner, the conversation's current assignee (it may have changed
    hands since), supervisors and admins, and Swarmdesk itself. Never an expert."""
    if principal.is_system or principal.sees_all_conversations:
        return True
    if principal.role == Role.expert:
        return False
    return principal.user_id in (swarm.owner_id, conversation.assignee_id)


async def presence_of(session: AsyncSession, account_id: int, user_ids: Sequence[int] | None = None) -> dict[int, str]:
    """Routing presence by user (no row: offline)."""
    stmt = select(AgentPresence.user_id, AgentPresence.status).where(AgentPresence.account_id == account_id)
    if user_ids is not None:
        if not user_ids:
            return {}
        stmt = stmt.where(AgentPresence.user_id.in_(user_ids))
    return {uid: str(status) for uid, status in await session.execute(stmt)}


async def users_by_id(session: AsyncSession, account_id: int, user_ids: Sequence[int]) -> dict[int, User]:
    if not user_ids:
        return {}
    rows = await session.scalars(select(User).where(User.account_id == account_id, User.id.in_(set(user_ids))))
    return {u.id: u for u in rows}


_ROLE_ORDER = {MemberRole.owner: 0, MemberRole.starter: 1, MemberRole.expert: 2}
_STATE_ORDER = {MemberState.joined: 0, MemberState.invited: 1, MemberState.left: 2}


async def members_out(session: AsyncSession, account_id: int, members: Sequence[SwarmMember]) -> list[SwarmMemberOut]:
    """Owner first, then the joined, the invited and those who left; by name within each."""
    ids = [m.user_id for m in members]
    users = await users_by_id(session, account_id, ids)
    presence = await presence_of(session, account_id, ids)
    out = []
    for m in members:
        user = users.get(m.user_id)
        out.append(SwarmMemberOut(
            user_id=m.user_id, name=user.name if user else "", account_role=str(user.role) if user else "",
            role=m.role, state=m.state, presence=presence.get(m.user_id, "offline"),  # type: ignore[arg-type]
            invited_at=m.invited_at, joined_at=m.joined_at, left_at=m.left_at))
    out.sort(key=lambda o: (_ROLE_ORDER[o.role], _STATE_ORDER[o.state], o.name.lower(), o.user_id))
    return out


def swarm_out_with(swarm: Swarm, members: list[SwarmMemberOut]) -> SwarmOut:
    return SwarmOut(
        id=swarm.id, conversation_id=swarm.conversation_id, status=swarm.status, owner_id=swarm.owner_id,
        started_by_id=swarm.started_by_id, started_by_name=swarm.started_by_name, note=swarm.note,
        started_at=swarm.started_at, ended_at=swarm.ended_at, ended_by_id=swarm.ended_by_id, outcome=swarm.outcome,
        summary=swarm.summary, first_joined_at=swarm.first_joined_at, experts_invited=swarm.experts_invited,
        experts_joined=swarm.experts_joined, message_count=swarm.message_count, resolved_at=swarm.resolved_at,
        members=members)


async def swarm_out(session: AsyncSession, swarm: Swarm) -> SwarmOut:
    members = await members_of(session, swarm.id)
    return swarm_out_with(swarm, await members_out(session, swarm.account_id, members))


async def list_messages(session: AsyncSession, swarm_id: int, *, after_id: int | None, limit: int) -> list[SwarmMessage]:
    """Oldest first: the newest ``limit`` when ``after_id`` is None, else those after it."""
    stmt = select(SwarmMessage).where(SwarmMessage.swarm_id == swarm_id)
    if after_id is not None:
        return list((await session.scalars(stmt.where(SwarmMessage.id > after_id)
                                           .order_by(SwarmMessage.id).limit(limit))).all())
    rows = list((await session.scalars(stmt.order_by(SwarmMessage.id.desc()).limit(limit))).all())
    rows.reverse()
    return rows


def message_out(message: SwarmMessage) -> SwarmMessageOut:
    return SwarmMessageOut.model_validate(message)


async def unresolved_swarm_ids(session: AsyncSession, conversation_id: int) -> list[int]:
    """Swarms of the conversation still waiting for its resolution (the status listener's work)."""
    return list((await session.scalars(select(Swarm.id).where(
        Swarm.conversation_id == conversation_id, Swarm.resolved_at.is_(None)))).all())


# --- metrics ---------------------------------------------------------------------------------------

def _avg(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def _median(values: Sequence[float]) -> float | None:
    return round(float(statistics.median(values)), 1) if values else None


METRICS_MAX_SWARMS = 20_000


async def metrics(session: AsyncSession, account_id: int, since: datetime, until: datetime) -> SwarmMetricsOut:
    """Swarms started in [since, until): counts, outcomes, time to the first expert, experts invited
    and joined, messages, duration and resolution, and who helped most. Computed in Python over
    the window's rows (the same on SQLite and PostgreSQL)."""
    swarms = list((await session.scalars(select(Swarm).where(
        Swarm.account_id == account_id, Swarm.started_at >= since, Swarm.started_at < until)
        .order_by(Swarm.started_at).limit(METRICS_MAX_SWARMS))).all())
    ended = [s for s in swarms if s.status == SwarmStatus.ended]
    first = [(s.first_joined_at - s.started_at).total_seconds() for s in swarms if s.first_joined_at]
    durations = [(s.ended_at - s.started_at).total_seconds() for s in ended if s.ended_at]
    resolved = [s for s in swarms if s.resolved_at is not None]
    outcomes = Counter(s.outcome for s in ended if s.outcome is not None)
    experts: dict[int, list[int]] = {}
    if swarms:
        by_id = {s.id: s for s in swarms}
        rows = await session.execute(select(SwarmMember.swarm_id, SwarmMember.user_id).where(
            SwarmMember.swarm_id.in_(by_id), SwarmMember.role == MemberRole.expert,
            SwarmMember.joined_at.is_not(None)))
        for swarm_id, user_id in rows:
            counts = experts.setdefault(user_id, [0, 0])
            counts[0] += 1
            counts[1] += by_id[swarm_id].resolved_at is not None
    top = sorted(experts.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:10]
    names = await users_by_id(session, account_id, [uid for uid, _ in top])
    return SwarmMetricsOut(
        since=since, until=until, started=len(swarms), active=len(swarms) - len(ended), ended=len(ended),
        outcomes=[OutcomeCount(outcome=o, count=outcomes[o]) for o in SwarmOutcome if outcomes[o]],
        with_expert=len(first),
        time_to_first_expert_seconds_avg=_avg(first), time_to_first_expert_seconds_median=_median(first),
        experts_invited_avg=_avg([s.experts_invited for s in swarms]),
        experts_joined_avg=_avg([s.experts_joined for s in swarms]),
        messages_avg=_avg([s.message_count for s in swarms]),
        duration_seconds_avg=_avg(durations), duration_seconds_median=_median(durations),
        resolved=len(resolved), resolution_rate=round(len(resolved) / len(swarms), 3) if swarms else None,
        time_to_resolution_seconds_median=_median([(s.resolved_at - s.started_at).total_seconds()
                                                   for s in resolved if s.resolved_at]),
        top_experts=[ExpertMetricsOut(user_id=uid, name=names[uid].name if uid in names else "", joined=c[0],
                                      resolved=c[1]) for uid, c in top])
