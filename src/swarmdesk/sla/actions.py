"""Every observable change the SLA layer makes. The only module here that publishes.

``sync_clock`` recomputes a conversation's clock from what happened in it (messages, status
history) under the policy that applies now, and schedules a ``sla.deadline`` job for every
warning and due instant that changed. The job (and the safety sweep) runs ``evaluate``: it
re-syncs, and for every warning or breach that is due it inserts the alert's unique row; only the
transaction that inserted it publishes the event, records the activity and notifies. A stale job
(the deadline moved, or the target was met) finds nothing due; a duplicate finds the row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from swarmdesk.accounts import service as accounts_service
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.channels.registry import channels as channel_registry
from swarmdesk.conversations import audience
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, SenderType
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import Conflict, ValidationFailed
from swarmdesk.jobs import service as jobs_service
from swarmdesk.jobs.models import Job, JobStatus
from swarmdesk.notifications import actions as notifications_actions
from swarmdesk.notifications.models import NotificationKind
from swarmdesk.sla import deadlines, service
from swarmdesk.sla.business_time import BusinessCalendar as Calendar
from swarmdesk.sla.business_time import NeverOpen
from swarmdesk.sla.events import SlaBreached, SlaUpdated, SlaWarning
from swarmdesk.sla.models import AlertKind, BusinessCalendar, ClockPhase, SlaClock, SlaPolicy, SlaTarget
from swarmdesk.sla.schemas import CalendarCreate, CalendarUpdate, SlaPolicyCreate, SlaPolicyUpdate

log = logging.getLogger(__name__)

DEADLINE_JOB = "sla.deadline"
SWEEP_JOB = "sla.sweep"
REEVALUATE_JOB = "sla.reevaluate"
SWEEP_INTERVAL = timedelta(minutes=5)
SWEEP_GRACE = timedelta(minutes=1)  # the deadline jobs normally act first; the sweep catches what they missed
LABELS = {SlaTarget.first_response: "First response", SlaTarget.next_response: "Next response",
          SlaTarget.resolution: "Resolution"}


# --- clocks --------------------------------------------------------------------------------------

@dataclass(slots=True)
class Synced:
    clock: SlaClock | None
    policy: SlaPolicy | None
    calendar: Calendar | None
    computed: deadlines.Computed | None
    recorded: set[tuple[str, int, str]] = field(default_factory=set)  # alerts of this conversation


def _visible(clock: SlaClock) -> tuple[Any, ...]:
    return (clock.policy_id, clock.phase, clock.paused_at, clock.next_due_at, clock.next_warn_at,
            clock.next_response_cycle,
            *(getattr(clock, c) for t in service.TARGETS for c in service.target_columns(t)))


def _instants(clock: SlaClock) -> dict[tuple[SlaTarget, str], tuple[int, datetime | None]]:
    out = {}
    for target in service.TARGETS:
        cycle = (clock.next_response_cycle or 0) if target == SlaTarget.next_response else 0
        out[(target, AlertKind.warning.value)] = (cycle, getattr(clock, f"{target.value}_warn_at"))
        out[(target, AlertKind.breach.value)] = (cycle, getattr(clock, f"{target.value}_due_at"))
    return out


def _apply(clock: SlaClock, policy: SlaPolicy | None, computed: deadlines.Computed | None) -> None:
    clock.policy_id = policy.id if policy is not None else None
    targets = computed.targets if computed is not None else {}
    for target in service.TARGETS:
        t = targets.get(target)
        started, due, warn, met = service.target_columns(target)
        setattr(clock, started, t.started_at if t else None)
        setattr(clock, due, t.due_at if t else None)
        setattr(clock, warn, t.warn_at if t else None)
        setattr(clock, met, t.met_at if t else None)
    nr = targets.get(SlaTarget.next_response)
    clock.next_response_cycle = nr.cycle if nr else None
    clock.phase = computed.phase if computed is not None else ClockPhase.none
    clock.paused_at = computed.paused_at if computed is not None else None
    clock.next_due_at = computed.next_due_at if computed is not None else None
    clock.next_warn_at = computed.next_warn_at if computed is not None else None


def _pending_alerts(computed: deadlines.Computed | None,
                    recorded: set[tuple[str, int, str]]) -> list[tuple[SlaTarget, int, AlertKind, datetime]]:
    """Warnings and breaches of running targets not recorded yet, with their instants."""
    found = []
    for target, t in (computed.targets.items() if computed is not None else ()):
        if not t.running:
            continue
        for kind, at in ((AlertKind.warning, t.warn_at), (AlertKind.breach, t.due_at)):
            if at is not None and (target.value, t.cycle, kind.value) not in recorded:
                found.append((target, t.cycle, kind, at))
    return found


async def sync_clock(uow: UnitOfWork, conversation: Conversation, *,
                     policies: list[SlaPolicy] | None = None) -> Synced:
    """Bring the conversation's clock in line with what happened in it. Runs in the caller's
    transaction; idempotent, and the same whatever order the events came in."""
    session, now = uow.session, utcnow()
    if policies is None:
        policies = await service.list_policies(session, conversation.account_id)
    policy = await service.matching_policy(session, conversation, policies)
    clock = await service.lock_clock(session, conversation.id, create_for=conversation if policy else None, now=now)
    if clock is None:
        return Synced(None, None, None, None)
    before, old_instants = _visible(clock), _instants(clock)
    calendar = computed = None
    if policy is not None:
        calendar = await service.calendar_for(session, policy)
        facts = await service.facts_for(session, conversation)
        previous = ((clock.next_response_cycle, clock.next_response_started_at)
                    if clock.next_response_cycle is not None and clock.next_response_started_at is not None else None)
        try:
            computed = deadlines.compute(service.terms_of(policy), calendar, facts, previous)
        except NeverOpen:
            log.warning("SLA calendar never opens", extra={"policy_id": policy.id, "conversation_id": conversation.id})
    _apply(clock, policy if computed is not None else None, computed)
    recorded = await service.recorded_alerts(session, conversation.id) if computed is not None else set()
    pending = _pending_alerts(computed, recorded)
    clock.next_alert_at = min((at for *_, at in pending), default=None)
    for target, cycle, kind, at in pending:
        if old_instants[(target, kind.value)] != (cycle, at):
            jobs_service.enqueue(session, DEADLINE_JOB, {"conversation_id": conversation.id, "target": target.value,
                                                         "cycle": cycle, "kind": kind.value, "at": at.isoformat()},
                                 account_id=conversation.account_id, run_at=max(at, now))
    if _visible(clock) != before:
        clock.updated_at = now
        uow.publish(SlaUpdated(account_id=conversation.account_id, audience=audience.conversation_staff(conversation),
                               conversation_id=conversation.id,
                               sla=service.state_out(conversation.id, clock, policy, now)))
    return Synced(clock, policy if computed is not None else None, calendar, computed, recorded)


async def do_sync_sla(uow: UnitOfWork, account_id: int, conversation_id: int) -> None:
    """A conversation event arrived (the durable listener): re-sync its clock."""
    conversation = await conversations_service.get_by_id(uow.session, account_id, conversation_id)
    if conversation is None:
        return
    await sync_clock(uow, conversation)
    await uow.commit()


# --- warnings and breaches -----------------------------------------------------------------------

async def evaluate(uow: UnitOfWork, conversation: Conversation, *,
                   policies: list[SlaPolicy] | None = None) -> list[tuple[SlaTarget, AlertKind]]:
    """Re-sync the clock, then act on every warning and breach that is due and not yet recorded.
    In the caller's transaction. Exactly once: the alert's unique row decides who acts."""
    synced = await sync_clock(uow, conversation, policies=policies)
    clock, computed = synced.clock, synced.computed
    if clock is None or computed is None or synced.policy is None:
        return []
    session, now = uow.session, utcnow()
    due = [(target, cycle, kind, at) for target, cycle, kind, at in _pending_alerts(computed, synced.recorded)
           if at <= now]
    if not due:
        return []
    fired: list[tuple[SlaTarget, AlertKind, deadlines.TargetClock]] = []
    breached = {(target, cycle) for target, cycle, kind, _ in due if kind == AlertKind.breach}
    for target, cycle, kind, _ in due:
        t = computed.targets[target]
        assert t.due_at is not None
        # A warning that comes due only with (or after) its deadline gives way to the breach.
        suppressed = kind == AlertKind.warning and (target, cycle) in breached
        if await service.record_alert(session, clock, target, cycle, kind, t.due_at, now, suppressed=suppressed):
            synced.recorded.add((target.value, cycle, kind.value))
            if not suppressed:
                fired.append((target, kind, t))
    clock.next_alert_at = min((at for *_, at in _pending_alerts(computed, synced.recorded)), default=None)
    if fired:
        await _effects(uow, conversation, synced, fired, now)
    return [(target, kind) for target, kind, _ in fired]


async def _effects(uow: UnitOfWork, conversation: Conversation, synced: Synced,
                   fired: list[tuple[SlaTarget, AlertKind, deadlines.TargetClock]], now: datetime) -> None:
    session, policy, calendar = uow.session, synced.policy, synced.calendar
    assert policy is not None and calendar is not None and synced.clock is not None
    (conv_out,) = await conversations_service.conversations_out(session, [conversation])
    staff = audience.conversation_staff(conversation)
    state = service.state_out(conversation.id, synced.clock, policy, now)
    for target, kind, t in fired:
        assert t.due_at is not None
        if kind == AlertKind.breach:
            conversations_service.add_activity(session, conversation, SenderType.system, None, "sla_breached", {
                "target": target.value, "due_at": t.due_at.isoformat(), "policy_id": policy.id,
                "policy_name": policy.name})
            uow.publish(SlaBreached(account_id=conversation.account_id, audience=staff, conversation=conv_out,
                                    policy_id=policy.id, policy_name=policy.name, target=target, due_at=t.due_at,
                                    sla=state))
            continue
        minutes_left = max(0, round(calendar.between(now, t.due_at)))
        uow.publish(SlaWarning(account_id=conversation.account_id, audience=staff, conversation=conv_out,
                               policy_id=policy.id, policy_name=policy.name, target=target, due_at=t.due_at,
                               minutes_left=minutes_left, sla=state))
        if conversation.assignee_id is not None:
            await notifications_actions.notify(
                uow, conversation, [conversation.assignee_id], NotificationKind.sla_warning, actor_name=policy.name,
                text=f"{LABELS[target]} due in {minutes_left} min")


async def do_evaluate_sla(uow: UnitOfWork, conversation_id: int) -> list[tuple[SlaTarget, AlertKind]]:
    """A deadline job came due: act on whatever is due for the conversation now."""
    conversation = await uow.session.get(Conversation, conversation_id)
    if conversation is None:
        return []
    fired = await evaluate(uow, conversation)
    await uow.commit()
    return fired


async def do_sweep_sla(uow: UnitOfWork, limit: int = 200, grace: timedelta = SWEEP_GRACE) -> int:
    """The safety net: clocks whose earliest unrecorded alert is past (a deadline job lost, a
    worker down for long) are evaluated like a deadline job would. Returns how many were."""
    session = uow.session
    ids = await service.clocks_with_alerts_due(session, utcnow(), limit, grace)
    conversations = {c.id: c for c in (await session.scalars(
        select(Conversation).where(Conversation.id.in_(ids)))).all()} if ids else {}
    policies: dict[int, list[SlaPolicy]] = {}
    for cid in sorted(ids):  # clock locks in id order, as the re-evaluation takes them: no deadlock
        conversation = conversations.get(cid)
        if conversation is None:
            continue
        if conversation.account_id not in policies:
            policies[conversation.account_id] = await service.list_policies(session, conversation.account_id)
        await evaluate(uow, conversation, policies=policies[conversation.account_id])
    await uow.commit()
    return len(ids)


async def ensure_sweep_scheduled(uow: UnitOfWork, at: datetime | None = None) -> None:
    """One queued sweep at a time: each sweep schedules the next unless one is queued already
    (two racing chains find each other's job and one of them ends)."""
    queued = await uow.session.scalar(select(Job.id).where(Job.kind == SWEEP_JOB, Job.status == JobStatus.queued)
                                      .limit(1))
    if queued is None:
        jobs_service.enqueue(uow.session, SWEEP_JOB, {}, run_at=at or utcnow() + SWEEP_INTERVAL)


async def do_reevaluate_account(uow: UnitOfWork, account_id: int, after_id: int, limit: int = 100) -> int | None:
    """A policy or calendar changed: re-sync the clocks of the account's unresolved
    conversations, a chunk per transaction. Returns the id to continue after, or None when done."""
    session = uow.session
    ids = await service.conversations_to_reevaluate(session, account_id, after_id, limit)
    if not ids:
        return None
    policies = await service.list_policies(session, account_id)
    for conversation in (await session.scalars(select(Conversation).where(Conversation.id.in_(ids))
                                               .order_by(Conversation.id))).all():
        await sync_clock(uow, conversation, policies=policies)
    if len(ids) == limit:
        jobs_service.enqueue(session, REEVALUATE_JOB, {"account_id": account_id, "after_id": ids[-1]},
                             account_id=account_id)
    await uow.commit()
    return ids[-1] if len(ids) == limit else None


def _reevaluate_later(uow: UnitOfWork, account_id: int) -> None:
    jobs_service.enqueue(uow.session, REEVALUATE_JOB, {"account_id": account_id, "after_id": 0}, account_id=account_id)


# --- calendars -----------------------------------------------------------------------------------

def _name_taken(name: str, what: str = "calendar") -> Conflict:
    return Conflict(f"a {what} named {name!r} already exists")


async def _commit_named(uow: UnitOfWork, name: str, what: str) -> None:
    try:
        await uow.commit()
    except IntegrityError as exc:  # the same name saved at the same moment
        raise _name_taken(name, what) from exc


def _hours_json(payload: CalendarCreate | CalendarUpdate) -> dict[str, Any]:
    assert payload.hours is not None
    return payload.hours.model_dump(mode="json")


def _holidays_json(payload: CalendarCreate | CalendarUpdate) -> list[dict[str, Any]]:
    return sorted((h.model_dump(mode="json") for h in payload.holidays or []), key=lambda h: h["date"])


async def do_create_calendar(uow: UnitOfWork, principal: StaffPrincipal, payload: CalendarCreate) -> BusinessCalendar:
    session, now = uow.session, utcnow()
    if await service.count_calendars(session, principal.account_id) >= service.MAX_CALENDARS:
        raise Conflict(f"an account has at most {service.MAX_CALENDARS} calendars")
    if await service.calendar_name_taken(session, principal.account_id, payload.name):
        raise _name_taken(payload.name)
    calendar = BusinessCalendar(account_id=principal.account_id, name=payload.name, time_zone=payload.time_zone,
                                hours=_hours_json(payload), holidays=_holidays_json(payload), created_at=now,
                                updated_at=now)
    session.add(calendar)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise _name_taken(payload.name) from exc
    accounts_service.audit(session, principal.account_id, principal.user_id, "sla_calendar.created", "sla_calendar",
                           calendar.id, {"name": calendar.name})
    await _commit_named(uow, payload.name, "calendar")
    return calendar


async def do_update_calendar(uow: UnitOfWork, principal: StaffPrincipal, calendar: BusinessCalendar,
                             payload: CalendarUpdate) -> BusinessCalendar:
    session = uow.session
    fields = payload.model_fields_set
    for name in ("name", "time_zone", "hours", "holidays"):
        if name in fields and getattr(payload, name) is None:
            raise ValidationFailed(f"{name} cannot be null")
    values: dict[str, Any] = {}
    if "name" in fields:
        values["name"] = payload.name
    if "time_zone" in fields:
        values["time_zone"] = payload.time_zone
    if "hours" in fields:
        values["hours"] = _hours_json(payload)
    if "holidays" in fields:
        values["holidays"] = _holidays_json(payload)
    changed = {k: v for k, v in values.items() if getattr(calendar, k) != v}
    if not changed:
        return calendar
    if "name" in changed and await service.calendar_name_taken(session, calendar.account_id, changed["name"],
                                                                except_id=calendar.id):
        raise _name_taken(changed["name"])
    for name, value in changed.items():
        setattr(calendar, name, value)
    calendar.updated_at = utcnow()
    accounts_service.audit(session, calendar.account_id, principal.user_id, "sla_calendar.updated", "sla_calendar",
                           calendar.id, {"changed": sorted(changed)})
    if set(changed) - {"name"} and await service.policies_using_calendar(session, calendar.id):
        _reevaluate_later(uow, calendar.account_id)
    await _commit_named(uow, calendar.name, "calendar")
    return calendar


async def do_delete_calendar(uow: UnitOfWork, principal: StaffPrincipal, calendar: BusinessCalendar) -> None:
    users = await service.policies_using_calendar(uow.session, calendar.id)
    if users:
        raise Conflict(f"calendar {calendar.name!r} is used by {', '.join(repr(u) for u in users)}; "
                       "give those policies another calendar first", extra={"policies": users})
    accounts_service.audit(uow.session, calendar.account_id, principal.user_id, "sla_calendar.deleted",
                           "sla_calendar", calendar.id, {"name": calendar.name})
    await uow.session.delete(calendar)
    await uow.commit()


# --- policies ------------------------------------------------------------------------------------

async def _check_policy_refs(uow: UnitOfWork, account_id: int, calendar_id: int | None,
                             conditions: dict[str, Any] | None) -> None:
    session = uow.session
    if calendar_id is not None and await service.get_calendar(session, account_id, calendar_id) is None:
        raise ValidationFailed(f"calendar {calendar_id} does not exist in this account")
    if conditions is None:
        return
    unknown_channels = [c for c in conditions.get("channels", []) if c not in channel_registry.kinds]
    if unknown_channels:
        raise ValidationFailed(f"conditions.channels: unknown channel kind {unknown_channels[0]!r}; known: "
                               f"{', '.join(sorted(channel_registry.kinds))}")
    inbox_ids = conditions.get("inbox_ids", [])
    missing = set(inbox_ids) - await service.existing_inbox_ids(session, account_id, inbox_ids)
    if missing:
        raise ValidationFailed(f"conditions.inbox_ids: inbox {min(missing)} does not exist in this account")


async def do_create_policy(uow: UnitOfWork, principal: StaffPrincipal, payload: SlaPolicyCreate) -> SlaPolicy:
    session, now = uow.session, utcnow()
    if await service.count_policies(session, principal.account_id) >= service.MAX_POLICIES:
        raise Conflict(f"an account has at most {service.MAX_POLICIES} SLA policies")
    conditions = payload.conditions.model_dump(mode="json")
    await _check_policy_refs(uow, principal.account_id, payload.calendar_id, conditions)
    position = payload.position if payload.position is not None else \
        await service.next_position(session, principal.account_id)
    policy = SlaPolicy(account_id=principal.account_id, name=payload.name, position=position,
                       enabled=payload.enabled, calendar_id=payload.calendar_id,
                       first_response_minutes=payload.first_response_minutes,
                       next_response_minutes=payload.next_response_minutes,
                       resolution_minutes=payload.resolution_minutes, warn_percent=payload.warn_percent,
                       warn_before_minutes=payload.warn_before_minutes, conditions=conditions, created_at=now,
                       updated_at=now)
    session.add(policy)
    await session.flush()
    accounts_service.audit(session, principal.account_id, principal.user_id, "sla_policy.created", "sla_policy",
                           policy.id, {"name": policy.name})
    _reevaluate_later(uow, principal.account_id)
    await ensure_sweep_scheduled(uow)
    await uow.commit()
    return policy


async def do_order_policies(uow: UnitOfWork, principal: StaffPrincipal, policy_ids: list[int]) -> list[SlaPolicy]:
    """Every policy's place in one change (positions 10, 20, …): a reorder is never half done, and
    two admins reordering at once take turns (the account's policies are locked)."""
    policies = await service.list_policies(uow.session, principal.account_id, lock=True)
    known = {p.id: p for p in policies}
    missing, unknown = sorted(set(known) - set(policy_ids)), sorted(set(policy_ids) - set(known))
    if missing or unknown:
        raise ValidationFailed("list every SLA policy of the account exactly once"
                               + (f"; missing: {missing}" if missing else "") + (f"; unknown: {unknown}" if unknown else ""))
    moved = False
    for index, policy_id in enumerate(policy_ids):
        policy = known[policy_id]
        if policy.position != (index + 1) * 10:
            policy.position, policy.updated_at, moved = (index + 1) * 10, utcnow(), True
    if moved:
        accounts_service.audit(uow.session, principal.account_id, principal.user_id, "sla_policy.reordered",
                               "sla_policy", None, {"order": policy_ids})
        _reevaluate_later(uow, principal.account_id)
    await uow.commit()
    return [known[i] for i in policy_ids]


_POLICY_FIELDS = ("name", "position", "enabled", "calendar_id", "first_response_minutes", "next_response_minutes",
                  "resolution_minutes", "warn_percent", "warn_before_minutes", "conditions")


async def do_update_policy(uow: UnitOfWork, principal: StaffPrincipal, policy: SlaPolicy,
                           payload: SlaPolicyUpdate) -> SlaPolicy:
    fields = payload.model_fields_set
    values: dict[str, Any] = {name: getattr(payload, name) for name in _POLICY_FIELDS if name in fields}
    if "conditions" in values:
        values["conditions"] = payload.conditions.model_dump(mode="json") if payload.conditions else {}
    # One way of warning at a time: setting one clears the other.
    if values.get("warn_percent") is not None:
        values["warn_before_minutes"] = None
    if values.get("warn_before_minutes") is not None:
        values["warn_percent"] = None
    targets = [values.get(n, getattr(policy, n)) for n in
               ("first_response_minutes", "next_response_minutes", "resolution_minutes")]
    if all(t is None for t in targets):
        raise ValidationFailed("a policy needs at least one target: first_response_minutes, next_response_minutes "
                               "or resolution_minutes")
    changed = {k: v for k, v in values.items() if getattr(policy, k) != v}
    if not changed:
        return policy
    await _check_policy_refs(uow, policy.account_id, changed.get("calendar_id"), changed.get("conditions"))
    for name, value in changed.items():
        setattr(policy, name, value)
    policy.updated_at = utcnow()
    accounts_service.audit(uow.session, policy.account_id, principal.user_id, "sla_policy.updated", "sla_policy",
                           policy.id, {"changed": sorted(changed)})
    if set(changed) != {"name"}:
        _reevaluate_later(uow, policy.account_id)
    await uow.commit()
    return policy


async def do_delete_policy(uow: UnitOfWork, principal: StaffPrincipal, policy: SlaPolicy) -> None:
    accounts_service.audit(uow.session, policy.account_id, principal.user_id, "sla_policy.deleted", "sla_policy",
                           policy.id, {"name": policy.name})
    await uow.session.delete(policy)
    _reevaluate_later(uow, policy.account_id)
    await uow.commit()
