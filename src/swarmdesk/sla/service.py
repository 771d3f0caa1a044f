"""Data access for SLAs: calendars, policies and which one applies, the facts a clock is computed
from, clock and alert rows, SLA states (one conversation or a batch, and the inbox's filter), and
what is due soon (routing's lift). Never publishes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Insert, and_, bindparam, false, func, null, or_, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts.models import Contact, Organization
from swarmdesk.conversations.models import Activity, Conversation, ConversationStatus, Message, SenderType
from swarmdesk.core.clock import utcnow
from swarmdesk.core.models import JsonType
from swarmdesk.sla import deadlines
from swarmdesk.sla.business_time import MINUTES_PER_DAY, WEEKDAYS, parse_hhmm
from swarmdesk.sla.business_time import BusinessCalendar as Calendar
from swarmdesk.sla.models import AlertKind, BusinessCalendar, ClockPhase, SlaAlert, SlaClock, SlaPolicy, SlaTarget
from swarmdesk.sla.schemas import SlaState, SlaStateOut, SlaTargetOut

MAX_CALENDARS = 100
MAX_POLICIES = 100
TARGETS = (SlaTarget.first_response, SlaTarget.next_response, SlaTarget.resolution)
RESOLVED = (ConversationStatus.resolved.value, ConversationStatus.closed.value)
PENDING = ConversationStatus.pending.value


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


# --- calendars -----------------------------------------------------------------------------------

async def list_calendars(session: AsyncSession, account_id: int) -> list[BusinessCalendar]:
    return list((await session.scalars(select(BusinessCalendar).where(BusinessCalendar.account_id == account_id)
                                       .order_by(BusinessCalendar.name, BusinessCalendar.id))).all())


async def get_calendar(session: AsyncSession, account_id: int, calendar_id: int) -> BusinessCalendar | None:
    return await session.scalar(select(BusinessCalendar).where(BusinessCalendar.id == calendar_id,
                                                               BusinessCalendar.account_id == account_id))


async def calendar_name_taken(session: AsyncSession, account_id: int, name: str, except_id: int | None = None) -> bool:
    stmt = select(BusinessCalendar.id).where(BusinessCalendar.account_id == account_id, BusinessCalendar.name == name)
    if except_id is not None:
        stmt = stmt.where(BusinessCalendar.id != except_id)
    return await session.scalar(stmt) is not None


async def count_calendars(session: AsyncSession, account_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(BusinessCalendar)
                                .where(BusinessCalendar.account_id == account_id)) or 0


async def policies_using_calendar(session: AsyncSession, calendar_id: int) -> list[str]:
    return list((await session.scalars(select(SlaPolicy.name).where(SlaPolicy.calendar_id == calendar_id)
                                       .order_by(SlaPolicy.position, SlaPolicy.id))).all())


# Compiled calendars by (id, updated_at): a change makes a new key, so no process serves stale hours.
_COMPILED: dict[tuple[int, datetime], Calendar] = {}
ALWAYS = Calendar.always()


def compile_calendar(row: BusinessCalendar) -> Calendar:
    key = (row.id, row.updated_at)
    compiled = _COMPILED.get(key)
    if compiled is None:
        weekly = [[(parse_hhmm(r["start"]), parse_hhmm(r["end"])) for r in (row.hours or {}).get(day, [])]
                  for day in WEEKDAYS]
        holidays = {date.fromisoformat(h["date"]): [(parse_hhmm(h["start"]), parse_hhmm(h["end"]))]
                    if h.get("start") else [(0, MINUTES_PER_DAY)] for h in row.holidays or []}
        compiled = Calendar(row.time_zone, weekly, holidays)
        if len(_COMPILED) >= 256:
            _COMPILED.clear()
        _COMPILED[key] = compiled
    return compiled


# --- policies ------------------------------------------------------------------------------------

# Statements the clock's sync and the deadline jobs run for every conversation are built once with
# bind parameters, and those that load no entities run on the connection (no ORM layer): building
# and wrapping a statement costs more than running it.
_POLICIES = (select(SlaPolicy).where(SlaPolicy.account_id == bindparam("account_id"))
             .order_by(SlaPolicy.position, SlaPolicy.id))


async def list_policies(session: AsyncSession, account_id: int, *, lock: bool = False) -> list[SlaPolicy]:
    """In the order they are tried (``lock``: their rows locked, for a change to the order)."""
    stmt = _POLICIES.with_for_update().execution_options(populate_existing=True) if lock else _POLICIES
    return list((await session.scalars(stmt, {"account_id": account_id})).all())


async def get_policy(session: AsyncSession, account_id: int, policy_id: int) -> SlaPolicy | None:
    return await session.scalar(select(SlaPolicy).where(SlaPolicy.id == policy_id, SlaPolicy.account_id == account_id))


async def count_policies(session: AsyncSession, account_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(SlaPolicy)
                                .where(SlaPolicy.account_id == account_id)) or 0


async def next_position(session: AsyncSession, account_id: int) -> int:
    last = await session.scalar(select(func.max(SlaPolicy.position)).where(SlaPolicy.account_id == account_id))
    return 0 if last is None else last + 1


# One row when the account has a policy (its value typed as the other listener probes', JSON).
ANY_POLICY = select(type_coerce(null(), JsonType)).where(
    select(SlaPolicy.id).where(SlaPolicy.account_id == bindparam("account_id")).exists())


def account_has_policies(rows: list[Any]) -> bool:
    """From ANY_POLICY's rows (asked on every commit that publishes: the clock's outbox filter,
    see sla.listeners)."""
    return bool(rows)


async def existing_inbox_ids(session: AsyncSession, account_id: int, inbox_ids: Sequence[int]) -> set[int]:
    if not inbox_ids:
        return set()
    return set((await session.scalars(select(Inbox.id).where(Inbox.account_id == account_id,
                                                             Inbox.id.in_(inbox_ids)))).all())


async def organization_tier(session: AsyncSession, contact_id: int) -> str | None:
    """The contact's organization's custom attribute ``tier``, without case."""
    attrs = await session.scalar(select(Organization.custom_attributes)
                                 .join(Contact, Contact.organization_id == Organization.id)
                                 .where(Contact.id == contact_id))
    value = (attrs or {}).get("tier")
    return None if value is None else str(value).strip().casefold()


_UNKNOWN: Any = object()


async def matching_policy(session: AsyncSession, conversation: Conversation,
                          policies: Sequence[SlaPolicy]) -> SlaPolicy | None:
    """The first enabled policy whose conditions the conversation meets (channel and tier are
    looked up only if a policy asks)."""
    channel = tier = _UNKNOWN
    for policy in policies:
        if not policy.enabled:
            continue
        conditions = policy.conditions or {}
        if conditions.get("priorities") and str(conversation.priority) not in conditions["priorities"]:
            continue
        if conditions.get("inbox_ids") and conversation.inbox_id not in conditions["inbox_ids"]:
            continue
        if conditions.get("channels"):
            if channel is _UNKNOWN:
                channel = await session.scalar(select(Inbox.channel_kind).where(Inbox.id == conversation.inbox_id))
            if channel not in conditions["channels"]:
                continue
        if conditions.get("tiers"):
            if tier is _UNKNOWN:
                tier = await organization_tier(session, conversation.contact_id)
            if tier not in conditions["tiers"]:
                continue
        return policy
    return None


def terms_of(policy: SlaPolicy) -> deadlines.Terms:
    return deadlines.Terms(policy_id=policy.id, first_response=policy.first_response_minutes,
                           next_response=policy.next_response_minutes, resolution=policy.resolution_minutes,
                           warn_percent=policy.warn_percent, warn_before=policy.warn_before_minutes)


async def calendar_for(session: AsyncSession, policy: SlaPolicy) -> Calendar:
    if policy.calendar_id is None:
        return ALWAYS
    row = await session.get(BusinessCalendar, policy.calendar_id)
    return compile_calendar(row) if row is not None else ALWAYS


# --- facts ---------------------------------------------------------------------------------------

_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS_HISTORY = (select(Activity.created_at, Activity.data)
                   .where(Activity.conversation_id == bindparam("cid"), Activity.verb == "status_changed")
                   .order_by(Activity.id))
_LAST_REPLY = (select(Message.id, Message.created_at)
               .where(Message.conversation_id == bindparam("cid"), Message.sender_type == SenderType.user,
                      Message.private.is_(False))
               .order_by(Message.id.desc()).limit(1))
_CUSTOMER_MESSAGES = (select(Message.id, Message.created_at, Message.meta)
                      .where(Message.conversation_id == bindparam("cid"), Message.id > bindparam("after_id"),
                             Message.sender_type == SenderType.contact, Message.created_at > bindparam("after_at"))
                      .order_by(Message.id).limit(20))


async def _first_customer_message(session: AsyncSession, conversation_id: int, after_id: int,
                                  after_at: datetime | None) -> tuple[int, datetime] | None:
    """The first message a person on the customer's side wrote after ``after_id`` (and after
    ``after_at``); automatic ones (out-of-office replies) are skipped."""
    conn = await session.connection()
    while True:
        rows = (await conn.execute(_CUSTOMER_MESSAGES, {"cid": conversation_id, "after_id": after_id,
                                                        "after_at": after_at or _BEGINNING})).all()
        for message_id, created_at, meta in rows:
            if not (meta or {}).get("automatic"):
                return message_id, created_at
        if len(rows) < 20:
            return None
        after_id = rows[-1][0]


async def facts_for(session: AsyncSession, conversation: Conversation) -> deadlines.Facts:
    """What happened in the conversation, read from its messages and its status history (the
    activity log), so the clock converges whatever order the events were processed in."""
    cid = conversation.id
    pending: list[tuple[datetime, datetime | None]] = []
    resolves: list[datetime] = []
    history = await (await session.connection()).execute(_STATUS_HISTORY, {"cid": cid})
    for at, data in history:
        before, after = (data or {}).get("from"), (data or {}).get("to")
        if before == PENDING and pending and pending[-1][1] is None:
            pending[-1] = (pending[-1][0], at)
        if after == PENDING and not (pending and pending[-1][1] is None):
            pending.append((at, None))
        if after in RESOLVED:
            resolves.append(at)
    is_pending = conversation.status == ConversationStatus.pending
    if is_pending and not (pending and pending[-1][1] is None):
        pending.append((conversation.updated_at, None))
    elif not is_pending and pending and pending[-1][1] is None:
        pending[-1] = (pending[-1][0], max(pending[-1][0], conversation.updated_at))

    first = await _first_customer_message(session, cid, 0, None)
    reply = (await (await session.connection()).execute(_LAST_REPLY, {"cid": cid})).first()
    last_resolve = resolves[-1] if resolves else None
    if reply is None and last_resolve is None:
        wait = first
    else:
        wait = await _first_customer_message(session, cid, reply[0] if reply else 0, last_resolve)
    answers = [at for at in (reply[1] if reply else None, last_resolve) if at is not None]
    return deadlines.Facts(first_customer_at=first[1] if first else None,
                           first_response_at=conversation.first_response_at,
                           wait_id=wait[0] if wait else None, wait_at=wait[1] if wait else None,
                           last_answer_at=max(answers) if answers else None, pending=pending, resolves=resolves)


# --- clocks and alerts ---------------------------------------------------------------------------

def _insert(session: AsyncSession, table: Any) -> Insert:
    return (postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert)(table)


_LOCK = select(SlaClock).where(SlaClock.conversation_id == bindparam("cid")).execution_options(populate_existing=True)
_LOCK_PG = _LOCK.with_for_update()
_RECORDED = select(SlaAlert.target, SlaAlert.cycle, SlaAlert.kind).where(SlaAlert.conversation_id == bindparam("cid"))
_ALERT_INSERTS = {
    name: insert(SlaAlert).on_conflict_do_nothing(index_elements=["conversation_id", "target", "cycle", "kind"])
    .returning(SlaAlert.id) for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))}


async def lock_clock(session: AsyncSession, conversation_id: int, *, create_for: Conversation | None = None,
                     now: datetime | None = None) -> SlaClock | None:
    """The conversation's clock row, locked for this transaction (PostgreSQL; SQLite transactions
    are serial anyway) so syncs and deadline jobs of one conversation take turns. With
    ``create_for``, an empty row is made first if there is none."""
    stmt = _LOCK_PG if _dialect(session) == "postgresql" else _LOCK
    clock = await session.scalar(stmt, {"cid": conversation_id})
    if clock is None and create_for is not None:
        # Two first syncs at once both get here; the second insert does nothing and both lock the one row.
        await session.execute(_insert(session, SlaClock).values(
            conversation_id=create_for.id, account_id=create_for.account_id, phase=ClockPhase.none,
            updated_at=now or utcnow()).on_conflict_do_nothing(index_elements=["conversation_id"]))
        clock = await session.scalar(stmt, {"cid": conversation_id})
    return clock


async def recorded_alerts(session: AsyncSession, conversation_id: int) -> set[tuple[str, int, str]]:
    rows = await (await session.connection()).execute(_RECORDED, {"cid": conversation_id})
    return {(str(t), c, str(k)) for t, c, k in rows}


async def record_alert(session: AsyncSession, clock: SlaClock, target: SlaTarget, cycle: int, kind: AlertKind,
                       due_at: datetime, now: datetime, *, suppressed: bool = False) -> bool:
    """Insert the alert unless it exists: True for the one caller that inserted it. Concurrent
    inserts of the same key wait for each other on the unique index; only one gets a row back."""
    values = {"account_id": clock.account_id, "conversation_id": clock.conversation_id, "target": target,
              "cycle": cycle, "kind": kind, "policy_id": clock.policy_id, "due_at": due_at, "suppressed": suppressed,
              "created_at": now}
    conn = await session.connection()
    return (await conn.execute(_ALERT_INSERTS[conn.dialect.name], values)).first() is not None


async def alerts_for(session: AsyncSession, conversation_id: int) -> list[SlaAlert]:
    return list((await session.scalars(select(SlaAlert).where(SlaAlert.conversation_id == conversation_id)
                                       .order_by(SlaAlert.id))).all())


async def clocks_with_alerts_due(session: AsyncSession, now: datetime, limit: int,
                                 grace: timedelta = timedelta()) -> list[int]:
    """Conversations whose earliest unrecorded warning or breach is past (the safety sweep)."""
    return list((await session.scalars(select(SlaClock.conversation_id)
                                       .where(SlaClock.next_alert_at <= now - grace)
                                       .order_by(SlaClock.next_alert_at).limit(limit))).all())


async def conversations_to_reevaluate(session: AsyncSession, account_id: int, after_id: int, limit: int) -> list[int]:
    """Conversations whose SLA a policy or calendar change may move: those not resolved or closed."""
    return list((await session.scalars(select(Conversation.id).where(
        Conversation.account_id == account_id, Conversation.id > after_id,
        Conversation.status.in_((ConversationStatus.open, ConversationStatus.pending, ConversationStatus.snoozed)))
        .order_by(Conversation.id).limit(limit))).all())


# --- states --------------------------------------------------------------------------------------

def target_columns(target: SlaTarget) -> tuple[str, str, str, str]:
    return (f"{target.value}_started_at", f"{target.value}_due_at", f"{target.value}_warn_at",
            f"{target.value}_met_at")


def clock_state(clock: SlaClock | None, now: datetime) -> SlaState:
    if clock is None or clock.policy_id is None or clock.phase == ClockPhase.none:
        return SlaState.none
    if clock.phase == ClockPhase.paused:
        return SlaState.paused
    if clock.phase == ClockPhase.met:
        return SlaState.met
    if clock.next_due_at is not None and clock.next_due_at <= now:
        return SlaState.breached
    if clock.next_warn_at is not None and clock.next_warn_at <= now:
        return SlaState.warning
    return SlaState.ok


def state_out(conversation_id: int, clock: SlaClock | None, policy: SlaPolicy | None, now: datetime) -> SlaStateOut:
    if clock is None or policy is None:
        return SlaStateOut(conversation_id=conversation_id, state=SlaState.none, policy_id=None, policy_name=None,
                           next_due_at=None, paused_since=None, targets=[])
    state = clock_state(clock, now)
    targets = []
    terms = terms_of(policy)
    for target in TARGETS:
        started, due, warn, met = (getattr(clock, c) for c in target_columns(target))
        minutes = terms.minutes(target)
        if started is None or minutes is None:
            continue
        if met is not None:
            target_state = SlaState.met
        elif clock.phase == ClockPhase.paused:
            target_state = SlaState.paused
        elif due is not None and due <= now:
            target_state = SlaState.breached
        elif warn is not None and warn <= now:
            target_state = SlaState.warning
        else:
            target_state = SlaState.ok
        late = due is not None and (met > due if met is not None else due <= now)
        targets.append(SlaTargetOut(target=target, state=target_state, minutes=minutes, started_at=started,
                                    due_at=due, warn_at=warn, met_at=met, breached=late))
    return SlaStateOut(conversation_id=conversation_id, state=state, policy_id=policy.id, policy_name=policy.name,
                       next_due_at=clock.next_due_at, paused_since=clock.paused_at, targets=targets)


async def state_for(session: AsyncSession, conversation_id: int) -> SlaStateOut:
    return (await states_for(session, [conversation_id]))[conversation_id]


async def states_for(session: AsyncSession, conversation_ids: Sequence[int]) -> dict[int, SlaStateOut]:
    """The SLA state of each conversation (inbox rows, the conversation view): two statements
    however many. Callers pass ids the user may see."""
    if not conversation_ids:
        return {}
    clocks = {c.conversation_id: c for c in (await session.scalars(
        select(SlaClock).where(SlaClock.conversation_id.in_(conversation_ids)))).all()}
    policy_ids = {c.policy_id for c in clocks.values() if c.policy_id is not None}
    policies = {p.id: p for p in (await session.scalars(select(SlaPolicy).where(SlaPolicy.id.in_(policy_ids)))).all()} \
        if policy_ids else {}
    now = utcnow()
    result = {}
    for cid in conversation_ids:
        clock = clocks.get(cid)
        result[cid] = state_out(cid, clock, policies.get(clock.policy_id) if clock and clock.policy_id else None, now)
    return result


def _state_clause(state: SlaState, now: datetime) -> ColumnElement[bool]:
    running = SlaClock.phase == ClockPhase.running
    if state == SlaState.paused:
        return SlaClock.phase == ClockPhase.paused
    if state == SlaState.met:
        return SlaClock.phase == ClockPhase.met
    if state == SlaState.breached:
        return and_(running, SlaClock.next_due_at <= now)
    not_due = or_(SlaClock.next_due_at.is_(None), SlaClock.next_due_at > now)
    if state == SlaState.warning:
        return and_(running, not_due, SlaClock.next_warn_at <= now)
    return and_(running, not_due, or_(SlaClock.next_warn_at.is_(None), SlaClock.next_warn_at > now))  # ok


def state_condition(states: Sequence[SlaState], principal: StaffPrincipal) -> ColumnElement[bool]:
    """The inbox's ``sla_state`` filter: conversations in any of these states now. Each state is
    one range of the (account_id, phase, next_due_at) index."""
    now = utcnow()
    timed = [_state_clause(s, now) for s in states if s != SlaState.none]
    condition: ColumnElement[bool] = false()
    if timed:
        condition = Conversation.id.in_(select(SlaClock.conversation_id).where(
            SlaClock.account_id == principal.account_id, SlaClock.policy_id.is_not(None), or_(*timed)))
    if SlaState.none in states:
        with_sla = select(SlaClock.conversation_id).where(SlaClock.account_id == principal.account_id,
                                                          SlaClock.policy_id.is_not(None),
                                                          SlaClock.phase != ClockPhase.none)
        condition = or_(condition, Conversation.id.not_in(with_sla))
    return condition


async def due_soon(session: AsyncSession, conversation_ids: Sequence[int], within: timedelta,
                   now: datetime | None = None) -> dict[int, datetime]:
    """Of these conversations, those whose next deadline (of a running, unpaused target) is within
    ``within`` of now, or already past: id -> that deadline."""
    if not conversation_ids:
        return {}
    limit = (now or utcnow()) + within
    rows = await session.execute(select(SlaClock.conversation_id, SlaClock.next_due_at).where(
        SlaClock.conversation_id.in_(conversation_ids), SlaClock.phase == ClockPhase.running,
        SlaClock.policy_id.is_not(None), SlaClock.next_due_at <= limit))
    return {cid: due for cid, due in rows}
