"""Every observable change routing makes. The only module here that publishes.

Routing assigns through the conversation actions as Swarmdesk itself (``StaffPrincipal.system``),
so an assignment made by routing has the same events, activity and notifications as one made by a
person; routing adds its own ``routed`` activity and ``conversation.routed`` event with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts.models import Role, Team
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations import actions as conversations_actions
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, ConversationStatus, SenderType
from swarmdesk.conversations.schemas import ConversationUpdate
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from swarmdesk.jobs import service as jobs_service
from swarmdesk.routing import audience, service, snapshot
from swarmdesk.routing.decision import Decision, current_step, decide, next_step, steps_from
from swarmdesk.routing.events import ConversationQueued, ConversationRouted, PresenceChanged
from swarmdesk.routing.models import (
    AgentPresence,
    AgentSkill,
    ConversationRouting,
    PresenceStatus,
    RoutingQueue,
    RoutingState,
    Skill,
)
from swarmdesk.routing.schemas import (
    BUILTIN_LIFTS,
    DEFAULT_LIFTS,
    AgentSkillsIn,
    CapacityIn,
    QueueIn,
    QueueUpdate,
    RequiredSkillIn,
    SkillIn,
    SkillUpdate,
)

ROUTE_JOB = "routing.route"
DRAIN_JOB = "routing.drain"
PRESENCE_GRACE_JOB = "routing.presence_grace"
REROUTE_JOB = "routing.reroute"
SYSTEM_NAME = "Swarmdesk routing"
# Reasons meaning some agent's load just went down: the cached snapshot would not show it.
FRESH_REASONS = {"unassigned", "requested"}
# A decision that picked an agent who filled up meanwhile is retried without them this many times.
MAX_PICKS = 5


def system(account_id: int) -> StaffPrincipal:
    return StaffPrincipal.system(account_id, SYSTEM_NAME)


def enqueue_route(session: AsyncSession, account_id: int, conversation_id: int, reason: str, *,
                  run_at: datetime | None = None, from_user_id: int | None = None) -> None:
    payload: dict[str, Any] = {"account_id": account_id, "conversation_id": conversation_id, "reason": reason}
    if from_user_id is not None:
        payload["from_user_id"] = from_user_id
    jobs_service.enqueue(session, ROUTE_JOB, payload, account_id=account_id, run_at=run_at)


def enqueue_drain(session: AsyncSession, account_id: int, reason: str, *, user_id: int | None = None,
                  queue_ids: list[int] | None = None) -> None:
    """Serve the longest-waiting conversations of an agent's queues (capacity freed, agent online)
    or of given queues (their settings changed)."""
    jobs_service.enqueue(session, DRAIN_JOB, {"account_id": account_id, "reason": reason, "user_id": user_id,
                                              "queue_ids": queue_ids}, account_id=account_id)


# --- presence --------------------------------------------------------------------------------------

async def _change_presence(uow: UnitOfWork, presence: AgentPresence, status: PresenceStatus, reason: str) -> bool:
    previous = presence.status
    if previous == status:
        return False
    now = utcnow()
    presence.status = status
    presence.changed_at = now
    presence.revision += 1
    snapshot.changed(uow, presence.account_id)
    uow.publish(PresenceChanged(account_id=presence.account_id, audience=audience.account_staff(),
                                user_id=presence.user_id, status=str(status), previous_status=str(previous),
                                reason=reason, changed_at=now))
    session = uow.session
    if status == PresenceStatus.offline:
        # Their open conversations go back through routing, one job taking them oldest first (it
        # checks, for each, that they are still gone).
        jobs_service.enqueue(session, REROUTE_JOB, {"account_id": presence.account_id, "user_id": presence.user_id},
                             account_id=presence.account_id)
    elif status == PresenceStatus.online:
        enqueue_drain(session, presence.account_id, "agent_online", user_id=presence.user_id)
    return True


async def do_set_presence(uow: UnitOfWork, principal: StaffPrincipal, status: PresenceStatus) -> AgentPresence:
    """The agent's own choice; it sticks (a socket connecting never overrides away or offline)."""
    presence = await service.ensure_presence(uow.session, principal.account_id, principal.user_id)
    presence.chosen = status
    await _change_presence(uow, presence, status, "manual")
    await uow.commit()
    return presence


async def do_record_connection(uow: UnitOfWork, account_id: int, user_id: int, process_id: str) -> None:
    """A real-time connection opened in process ``process_id``."""
    presence = await service.add_connections(uow.session, account_id, user_id, +1, process_id)
    await _after_connect(uow, presence)
    await uow.commit()


async def _after_connect(uow: UnitOfWork, presence: AgentPresence) -> None:
    """In an account that routes, an agent who is offline without having chosen it comes online (or
    away, if that is what they chose) once they have a connection."""
    if presence.connections > 0 and presence.status == PresenceStatus.offline \
            and presence.chosen != PresenceStatus.offline \
            and await service.account_routes(uow.session, presence.account_id):
        target = PresenceStatus.away if presence.chosen == PresenceStatus.away else PresenceStatus.online
        await _change_presence(uow, presence, target, "connected")


async def do_record_disconnection(uow: UnitOfWork, account_id: int, user_id: int, process_id: str) -> None:
    """A real-time connection closed; after the last one, a grace period, then offline (a job)."""
    presence = await service.add_connections(uow.session, account_id, user_id, -1, process_id)
    _after_disconnect(uow, presence)
    await uow.commit()


def _after_disconnect(uow: UnitOfWork, presence: AgentPresence) -> None:
    session, account_id, user_id = uow.session, presence.account_id, presence.user_id
    if presence.connections == 0:
        presence.disconnected_at = utcnow()
    if presence.connections == 0 and presence.status != PresenceStatus.offline:
        jobs_service.enqueue(session, PRESENCE_GRACE_JOB, {"account_id": account_id, "user_id": user_id},
                             account_id=account_id,
                             run_at=utcnow() + timedelta(seconds=service.PRESENCE_GRACE_SECONDS))


async def do_sync_connections(uow: UnitOfWork, process_id: str, live: dict[tuple[int, int], int]) -> None:
    """This process's heartbeat: its shares are set to the streams it really holds (``live``, per
    account and user) — a share reaped while the process was alive (stalled past the stale period)
    comes back, one a hook missed is corrected — and touched, so nobody reaps them. With ``live``
    empty, the process releases every share (a clean stop)."""
    session = uow.session
    own = await service.own_shares(session, process_id)
    for account_id, user_id in sorted(own.keys() | live.keys(), key=lambda k: k[1]):  # one lock order
        if own.get((account_id, user_id), 0) == live.get((account_id, user_id), 0):
            continue
        presence = await service.ensure_presence(session, account_id, user_id)
        await service.set_share(session, presence, process_id, live.get((account_id, user_id), 0))
        if presence.connections:
            await _after_connect(uow, presence)
        else:
            _after_disconnect(uow, presence)
    await service.touch_connections(session, process_id)
    await uow.commit()


async def do_reap_connections(uow: UnitOfWork) -> int:
    """Shares of processes that died without closing them (``kill -9``, a lost machine) go: each
    agent's count is the sum of what is left, and one left with none gets the grace period, then
    offline and their conversations re-routed, as after a clean close. Presence rows are locked
    before shares change, in user order, as everywhere; two reapers take turns per agent and the
    second finds nothing. Returns how many shares it took."""
    session = uow.session
    cutoff = utcnow() - timedelta(seconds=service.CONNECTION_STALE_SECONDS)
    reaped = 0
    for account_id, user_id in await service.users_with_stale_shares(session, cutoff):
        presence = await service.get_presence(session, account_id, user_id, lock=True)
        taken = await service.drop_stale_shares(session, user_id, cutoff)
        if presence is None or not taken:
            continue
        reaped += taken
        await service.recount(session, presence)
        _after_disconnect(uow, presence)
    await uow.commit()
    return reaped


async def do_expire_presence(uow: UnitOfWork, account_id: int, user_id: int) -> None:
    """The grace period after the last connection closed is over: still no connection (and none
    came and went meanwhile, which would have started a later grace period), offline."""
    presence = await service.get_presence(uow.session, account_id, user_id, lock=True)
    grace = timedelta(seconds=service.PRESENCE_GRACE_SECONDS)
    if presence is not None and presence.connections == 0 and \
            (presence.disconnected_at is None or presence.disconnected_at + grace <= utcnow()):
        await _change_presence(uow, presence, PresenceStatus.offline, "disconnected")
    await uow.commit()


async def do_retire_presence(uow: UnitOfWork, account_id: int, user_id: int) -> None:
    """A user was deactivated (or lost the roles routing serves): offline, conversations re-routed."""
    user = await service.get_user(uow.session, account_id, user_id)
    presence = await service.get_presence(uow.session, account_id, user_id, lock=True)
    if user is not None and presence is not None and not user.is_active:
        await _change_presence(uow, presence, PresenceStatus.offline, "deactivated")
    await uow.commit()


# --- configuration ---------------------------------------------------------------------------------

def _require_manager(principal: StaffPrincipal) -> None:
    if principal.role not in (Role.admin, Role.supervisor):
        raise Forbidden("only admins and supervisors change routing")


async def _check_inboxes(uow: UnitOfWork, account_id: int, inbox_ids: list[int]) -> None:
    unknown = sorted(set(inbox_ids) - await service.existing_ids(uow.session, Inbox, account_id, inbox_ids))
    if unknown:
        raise ValidationFailed(f"inbox_ids: {', '.join(map(str, unknown))} not in this account",
                               extra={"unknown_ids": unknown})


async def _commit_unique(uow: UnitOfWork, what: str, name: str) -> None:
    try:
        await uow.commit()
    except IntegrityError as exc:
        await uow.rollback()
        raise Conflict(f"a {what} named {name!r} already exists") from exc


async def _serve_all_queues(uow: UnitOfWork, account_id: int, reason: str) -> None:
    queue_ids = [q.id for q in await service.list_queues(uow.session, account_id)]
    if queue_ids:
        enqueue_drain(uow.session, account_id, reason, queue_ids=queue_ids)


async def do_create_skill(uow: UnitOfWork, principal: StaffPrincipal, payload: SkillIn) -> Skill:
    _require_manager(principal)
    await _check_inboxes(uow, principal.account_id, payload.inbox_ids)
    if await service.skill_by_name(uow.session, principal.account_id, payload.name) is not None:
        raise Conflict(f"a skill named {payload.name!r} already exists")
    skill = Skill(account_id=principal.account_id, revision=0, **payload.model_dump())
    uow.session.add(skill)
    snapshot.changed(uow, principal.account_id)
    await _commit_unique(uow, "skill", payload.name)
    return skill


async def do_update_skill(uow: UnitOfWork, principal: StaffPrincipal, skill: Skill, payload: SkillUpdate) -> Skill:
    _require_manager(principal)
    fields = payload.model_dump(exclude_unset=True)
    if fields.get("name") is None:
        fields.pop("name", None)
    await _check_inboxes(uow, principal.account_id, fields.get("inbox_ids", []))
    if "name" in fields and fields["name"] != skill.name and \
            await service.skill_by_name(uow.session, principal.account_id, fields["name"]) is not None:
        raise Conflict(f"a skill named {fields['name']!r} already exists")
    for key, value in fields.items():
        setattr(skill, key, value)
    skill.updated_at = utcnow()
    skill.revision += 1
    snapshot.changed(uow, principal.account_id)
    await _serve_all_queues(uow, principal.account_id, "skill_changed")  # requirements may be lower now
    await _commit_unique(uow, "skill", skill.name)
    return skill


async def do_delete_skill(uow: UnitOfWork, principal: StaffPrincipal, skill: Skill) -> None:
    _require_manager(principal)
    await uow.session.delete(skill)
    snapshot.changed(uow, principal.account_id)
    await _serve_all_queues(uow, principal.account_id, "skill_changed")
    await uow.commit()


async def _agent(uow: UnitOfWork, principal: StaffPrincipal, user_id: int) -> None:
    user = await service.get_user(uow.session, principal.account_id, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")


async def do_set_agent_skills(uow: UnitOfWork, principal: StaffPrincipal, user_id: int,
                              payload: AgentSkillsIn) -> None:
    _require_manager(principal)
    await _agent(uow, principal, user_id)
    session = uow.session
    ids = [s.skill_id for s in payload.skills]
    unknown = sorted(set(ids) - await service.existing_ids(session, Skill, principal.account_id, ids))
    if unknown:
        raise ValidationFailed(f"skill_id: {', '.join(map(str, unknown))} not in this account",
                               extra={"unknown_ids": unknown})
    await session.execute(delete(AgentSkill).where(AgentSkill.user_id == user_id))
    (await service.ensure_presence(session, principal.account_id, user_id)).revision += 1
    snapshot.changed(uow, principal.account_id)
    for item in payload.skills:
        session.add(AgentSkill(user_id=user_id, skill_id=item.skill_id, account_id=principal.account_id,
                               proficiency=item.proficiency))
    enqueue_drain(session, principal.account_id, "agent_changed", user_id=user_id)
    await uow.commit()


async def do_set_agent_capacity(uow: UnitOfWork, principal: StaffPrincipal, user_id: int,
                                payload: CapacityIn) -> AgentPresence:
    _require_manager(principal)
    await _agent(uow, principal, user_id)
    presence = await service.ensure_presence(uow.session, principal.account_id, user_id)
    presence.capacity = dict(payload.capacity)
    presence.revision += 1
    snapshot.changed(uow, principal.account_id)
    enqueue_drain(uow.session, principal.account_id, "agent_changed", user_id=user_id)
    await uow.commit()
    return presence


async def _check_queue(uow: UnitOfWork, account_id: int, fields: dict[str, Any]) -> None:
    if fields.get("team_id") is not None and \
            not await service.existing_ids(uow.session, Team, account_id, [fields["team_id"]]):
        raise ValidationFailed(f"team {fields['team_id']} does not exist in this account")
    await _check_inboxes(uow, account_id, fields.get("inbox_ids") or [])
    known = set(BUILTIN_LIFTS) | set(DEFAULT_LIFTS) | set(service.lift_providers.keys())
    unknown = sorted(set(fields.get("lifts") or {}) - known)
    if unknown:
        raise ValidationFailed(f"lifts: unknown {', '.join(unknown)} (known: {', '.join(sorted(known))})")


async def do_create_queue(uow: UnitOfWork, principal: StaffPrincipal, payload: QueueIn) -> RoutingQueue:
    _require_manager(principal)
    fields = payload.model_dump()
    await _check_queue(uow, principal.account_id, fields)
    if any(q.name == payload.name for q in await service.list_queues(uow.session, principal.account_id)):
        raise Conflict(f"a queue named {payload.name!r} already exists")
    queue = RoutingQueue(account_id=principal.account_id, rr_cursor=0, revision=0, **fields)
    uow.session.add(queue)
    snapshot.changed(uow, principal.account_id)
    await _commit_unique(uow, "queue", payload.name)
    return queue


async def do_update_queue(uow: UnitOfWork, principal: StaffPrincipal, queue: RoutingQueue,
                          payload: QueueUpdate) -> RoutingQueue:
    _require_manager(principal)
    fields = payload.model_dump(exclude_unset=True)
    for key in ("name", "inbox_ids", "tags", "position", "strategy", "relaxation", "sticky_window_seconds",
                "lifts", "vip_attribute", "vip_values"):
        if key in fields and fields[key] is None:
            raise ValidationFailed(f"{key} cannot be null")
    await _check_queue(uow, principal.account_id, fields)
    if "name" in fields and fields["name"] != queue.name and any(
            q.name == fields["name"] for q in await service.list_queues(uow.session, principal.account_id)):
        raise Conflict(f"a queue named {fields['name']!r} already exists")
    for key, value in fields.items():
        setattr(queue, key, value)
    queue.updated_at = utcnow()
    queue.revision += 1
    snapshot.changed(uow, principal.account_id)
    # Looser settings may let waiting conversations through now.
    enqueue_drain(uow.session, principal.account_id, "queue_changed", queue_ids=[queue.id])
    await _commit_unique(uow, "queue", queue.name)
    return queue


async def do_delete_queue(uow: UnitOfWork, principal: StaffPrincipal, queue: RoutingQueue) -> None:
    _require_manager(principal)
    await uow.session.delete(queue)
    snapshot.changed(uow, principal.account_id)
    await uow.commit()


async def do_set_required_skills(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation,
                                 skills: Sequence[RequiredSkillIn | dict[str, Any]]) -> list[dict[str, int]]:
    """Skills the conversation's agent must have beyond what its inbox, tags and language bring
    (automation rules call this with ``StaffPrincipal.system``, items as models or plain
    ``{"skill_id", "min_proficiency"}`` dicts; so may a supervisor). Replaces the previous set; an
    unassigned open conversation is routed again with it. Commits."""
    if principal.role not in (Role.admin, Role.supervisor, Role.agent):
        raise Forbidden("experts cannot change routing")
    try:
        skills = [s if isinstance(s, RequiredSkillIn) else RequiredSkillIn.model_validate(s) for s in skills]
    except PydanticValidationError as exc:
        raise ValidationFailed(f"required skills: {exc.errors()[0]['msg']}") from exc
    session = uow.session
    ids = [s.skill_id for s in skills]
    unknown = sorted(set(ids) - await service.existing_ids(session, Skill, conversation.account_id, ids))
    if unknown:
        raise ValidationFailed(f"skill_id: {', '.join(map(str, unknown))} not in this account",
                               extra={"unknown_ids": unknown})
    wanted = sorted({s.skill_id: s.min_proficiency for s in skills}.items())
    required = [{"skill_id": k, "min_proficiency": v} for k, v in wanted]
    # The same lock routing takes first: the routing row is never made twice at once.
    conversation = await service.lock_conversation(session, conversation.account_id, conversation.id) or conversation
    routing = await service.routing_row(session, conversation)
    if routing.required_skills == required:
        return required
    routing.required_skills = required
    routing.updated_at = utcnow()
    conversations_service.add_activity(session, conversation, *conversations_actions.actor_of(principal),
                                       "required_skills_changed", {"skills": required})
    if conversation.status == ConversationStatus.open and conversation.assignee_id is None:
        enqueue_route(session, conversation.account_id, conversation.id, "requirements_changed")
    await uow.commit()
    return required


async def note_left_queue(uow: UnitOfWork, conversation: Conversation) -> None:
    """Someone assigned the conversation, or it is no longer open: it stops waiting (so the queue's
    waiting list holds only what routing can still serve). Commits only if something changed."""
    routing = await uow.session.get(ConversationRouting, conversation.id)
    if routing is None or routing.state not in (RoutingState.waiting, RoutingState.manual):
        return
    routing.state = RoutingState.assigned if conversation.assignee_id is not None else RoutingState.unqueued
    routing.next_attempt_at, routing.updated_at = None, utcnow()
    await uow.commit()


# --- routing one conversation ----------------------------------------------------------------------

@dataclass(slots=True)
class RouteResult:
    state: str  # assigned, waiting, manual, unqueued, skipped
    assignee_id: int | None = None
    decision: dict[str, Any] = field(default_factory=dict)
    why: str = ""  # for "skipped" and nobody-found decisions
    no_capacity: bool = False  # nobody in the queue had room: serving more of it is pointless now


async def do_route_conversation(uow: UnitOfWork, account_id: int, conversation_id: int, *, reason: str,
                                from_user_id: int | None = None, fresh: bool = False) -> RouteResult:
    """Decide who gets one conversation, and assign it, or leave it waiting with the next attempt
    scheduled at the next relaxation step. Idempotent and race-safe: the conversation's row is
    locked and re-read, and the chosen agent's load is counted again under their row's lock."""
    session, now = uow.session, utcnow()
    conversation = await service.lock_conversation(session, account_id, conversation_id)
    if conversation is None:
        return RouteResult("skipped", why="no such conversation")
    rerouting = from_user_id is not None and conversation.assignee_id == from_user_id
    if rerouting:
        gone = await service.get_presence(session, account_id, from_user_id)  # type: ignore[arg-type]
        if gone is not None and gone.status == PresenceStatus.online:
            return RouteResult("skipped", why="the agent is back online")
    if conversation.status != ConversationStatus.open or (conversation.assignee_id is not None and not rerouting):
        await note_left_queue(uow, conversation)
        why = "already assigned" if conversation.status == ConversationStatus.open \
            else f"the conversation is {conversation.status}"
        return RouteResult("skipped", assignee_id=conversation.assignee_id, why=why)
    routing = await service.routing_row(session, conversation)
    # Someone's load went down (or a supervisor asks): decide on fresh numbers, not the cached ones.
    snap_rebuilt = fresh or reason in FRESH_REASONS
    snap = await snapshot.snapshot(session, account_id, fresh=snap_rebuilt)

    queue = service.match_queue(snap.queues, conversation)
    if queue is None:
        if routing.state != RoutingState.unqueued or routing.queue_id is not None:
            routing.state, routing.queue_id, routing.updated_at = RoutingState.unqueued, None, now
            await uow.commit()
        return RouteResult("unqueued", why="no queue takes this conversation")
    entering = routing.state not in (RoutingState.waiting, RoutingState.manual) or routing.queue_id != queue.id \
        or rerouting
    if entering:
        routing.queue_id, routing.waiting_since, routing.next_attempt_at = queue.id, now, None
    routing.updated_at = now
    if queue.strategy == "manual":
        routing.state = RoutingState.manual
        await uow.commit()
        return RouteResult("manual", why="this queue is assigned by hand")
    routing.state = RoutingState.waiting
    routing.attempts += 1

    contact = await session.get(Contact, conversation.contact_id)
    needed = await service.requirements_for(session, conversation, contact, routing.required_skills or [],
                                            snap.skills)
    requirements = [n.requirement for n in needed]
    routing.lift, lift_reasons = await service.lift_for(session, queue, conversation, contact, now)
    assert routing.waiting_since is not None
    waited = (now - routing.waiting_since).total_seconds()
    steps = steps_from(queue.relaxation or [])
    step = current_step(steps, waited)
    kind = await snapshot.channel_kind(session, snap, conversation.inbox_id)
    if queue.strategy == "round_robin":
        # The cursor is read and moved under the queue's lock: round-robin turns are serial per queue.
        queue = await service.get_queue(session, account_id, queue.id, lock=True) or queue
    sticky_user = await service.previous_agent(session, conversation, queue.sticky_window_seconds, now) \
        if queue.strategy == "sticky" else None
    pool = snap.candidates(queue.team_id, kind)
    exclude: set[int] = {from_user_id} if rerouting and from_user_id is not None else set()
    decision: Decision | None = None
    presence = None
    for _ in range(MAX_PICKS):
        decision = decide(pool, requirements, step, strategy=str(queue.strategy), channel_kind=kind,
                          rr_cursor=queue.rr_cursor, sticky_user_id=sticky_user, exclude=exclude)
        if decision.user_id is None:
            break
        presence = await service.agent_with_room(session, account_id, decision.user_id, kind)
        if presence is not None:
            break
        exclude.add(decision.user_id)
        decision = None
        if not snap_rebuilt:  # the cached numbers were stale: decide again on fresh ones
            snap, snap_rebuilt = await snapshot.snapshot(session, account_id, fresh=True), True
            pool = snap.candidates(queue.team_id, kind)
            exclude = {from_user_id} if rerouting and from_user_id is not None else set()
    if decision is None:  # every pick filled up while we decided: the next trigger serves it
        decision = Decision(None, "the agents chosen filled up meanwhile", str(queue.strategy), step.index,
                            reason="at_capacity")
    record: dict[str, Any] = {"to": decision.user_id, "explanation": decision.explanation,
                              "strategy": decision.strategy, "step": decision.step, "queue_id": queue.id,
                              "reason": reason, "lift": routing.lift, "lifts": lift_reasons,
                              "at": now.isoformat()}
    if decision.user_id is None:
        return await _leave_waiting(uow, conversation, routing, queue, record, decision, steps, waited,
                                    entering=entering, rerouting=rerouting, from_user_id=from_user_id)

    assert presence is not None
    if rerouting:
        left = await service.get_user(session, account_id, from_user_id)  # type: ignore[arg-type]
        record["explanation"] += f"; rerouted: {left.name if left else 'the agent'} went offline"
    if decision.strategy == "round_robin":
        queue.rr_cursor = decision.user_id
    presence.last_assigned_at = now
    routing.state, routing.next_attempt_at, routing.decision = RoutingState.assigned, None, record
    previous = conversation.assignee_id
    conversations_service.add_activity(session, conversation, SenderType.system, None, "routed", record)
    team_id = queue.team_id if conversation.team_id is None else None
    uow.publish(ConversationRouted(
        account_id=account_id, audience=audience.conversation_routing(conversation, decision.user_id, previous,
                                                                      team_id=team_id),
        conversation_id=conversation.id, assignee_id=decision.user_id, previous_assignee_id=previous,
        queue_id=queue.id, strategy=decision.strategy, step=decision.step, lift=routing.lift, reason=reason,
        explanation=record["explanation"]))
    update = ConversationUpdate(assignee_id=decision.user_id, team_id=team_id) if team_id is not None \
        else ConversationUpdate(assignee_id=decision.user_id)
    # Commits the whole unit of work: the decision, the activity and the assignment together.
    await conversations_actions.do_update_conversation(uow, system(account_id), conversation, update)
    snap.set_load(decision.user_id, kind, decision.load_after, assigned_at=now.timestamp())
    return RouteResult("assigned", assignee_id=decision.user_id, decision=record)


async def _leave_waiting(uow: UnitOfWork, conversation: Conversation, routing: ConversationRouting, queue: RoutingQueue,
                         record: dict[str, Any], decision: Decision, steps: list, waited: float, *,
                         entering: bool, rerouting: bool, from_user_id: int | None) -> RouteResult:
    """Nobody qualifies: wait, with a job at the next relaxation step's time (if there is one; an
    agent coming online or a capacity freed serves the queue in the meantime)."""
    session = uow.session
    upcoming = next_step(steps, waited)
    run_at = routing.waiting_since + timedelta(seconds=upcoming.after_seconds) if upcoming else None
    if run_at is not None and routing.next_attempt_at != run_at:
        enqueue_route(session, conversation.account_id, conversation.id, "relaxation", run_at=run_at)
    routing.next_attempt_at = run_at
    routing.decision = record
    if entering:
        data = {"queue_id": queue.id, "queue": queue.name, "why": decision.explanation}
        conversations_service.add_activity(session, conversation, SenderType.system, None, "queued", data)
        uow.publish(ConversationQueued(
            account_id=conversation.account_id,
            audience=audience.conversation_routing(conversation, from_user_id if rerouting else None),
            conversation_id=conversation.id, queue_id=queue.id, queue_name=queue.name, lift=routing.lift,
            why=decision.explanation, next_attempt_at=run_at))
    result = RouteResult("waiting", decision=record, why=decision.explanation,
                         no_capacity=decision.reason in ("nobody_online", "at_capacity"))
    if rerouting:
        # Nobody can take it over yet: it waits unassigned, visible to the team, rather than with
        # someone who is gone. Commits the unit of work.
        await conversations_actions.do_update_conversation(uow, system(conversation.account_id), conversation,
                                                           ConversationUpdate(assignee_id=None))
    else:
        await uow.commit()
    return result
