"""The deadlines a policy sets, from what happened in a conversation. Pure: the facts come from
``sla.service.facts_for``, the calendar from ``sla.business_time``; nothing here reads a clock.

The rules (docs/sla.md):

* First response and resolution start with the customer's first message (an automatic one, such
  as an out-of-office reply, does not count). A first response is a person's public reply
  (``conversations.first_response_at``: replies Swarmdesk sends by itself do not count); a
  resolution is the first time the conversation is resolved or closed, which also fulfils a
  response still owed.
* Next response starts with the first customer message after the last answer (a person's public
  reply, or resolving the conversation), once the first response is met (or at once when the policy
  has no first-response target). Each such wait is a cycle, named by the id of the message that
  started it.
* While the conversation is pending (waiting on the customer) every running target is paused:
  deadlines move by the business time spent pending. A deadline already passed before the pause
  stays passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from swarmdesk.sla.business_time import BusinessCalendar
from swarmdesk.sla.models import ClockPhase, SlaTarget


@dataclass(slots=True, frozen=True)
class Terms:
    """What the computation needs of a policy."""

    policy_id: int
    first_response: int | None
    next_response: int | None
    resolution: int | None
    warn_percent: int | None
    warn_before: int | None

    def minutes(self, target: SlaTarget) -> int | None:
        if target == SlaTarget.first_response:
            return self.first_response
        if target == SlaTarget.next_response:
            return self.next_response
        return self.resolution

    def warn_after(self, minutes: int) -> float | None:
        """Business minutes into a target at which it warns."""
        if self.warn_percent is not None:
            return minutes * self.warn_percent / 100
        if self.warn_before is not None:
            return float(max(0, minutes - self.warn_before))
        return None


@dataclass(slots=True)
class Facts:
    """What happened in a conversation, as far as SLAs care."""

    first_customer_at: datetime | None  # the customer's first (non-automatic) message
    first_response_at: datetime | None  # a person's first public reply after it
    wait_id: int | None  # the first customer message not answered yet (id, time)
    wait_at: datetime | None
    last_answer_at: datetime | None  # the latest public reply by a person, or resolve
    pending: list[tuple[datetime, datetime | None]] = field(default_factory=list)  # end None: still pending
    resolves: list[datetime] = field(default_factory=list)  # became resolved or closed

    @property
    def paused_since(self) -> datetime | None:
        return self.pending[-1][0] if self.pending and self.pending[-1][1] is None else None

    def first_resolve_from(self, start: datetime) -> datetime | None:
        return next((at for at in self.resolves if at >= start), None)


@dataclass(slots=True)
class TargetClock:
    started_at: datetime
    cycle: int = 0
    due_at: datetime | None = None  # null: paused before reaching it
    warn_at: datetime | None = None
    met_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.met_at is None


@dataclass(slots=True)
class Computed:
    phase: ClockPhase
    paused_at: datetime | None
    targets: dict[SlaTarget, TargetClock]
    next_due_at: datetime | None
    next_warn_at: datetime | None


def reached(calendar: BusinessCalendar, start: datetime, minutes: float,
            pending: list[tuple[datetime, datetime | None]], until: datetime | None = None) -> datetime | None:
    """The instant at which ``minutes`` of business time have run since ``start``, not counting
    time pending; None if the conversation is pending now and was before that instant. With
    ``until`` (the target was met then), pending time after ``until`` does not count: the result
    is the deadline as it stood when the target was met."""
    t, left = start, minutes
    for paused_from, paused_to in pending:
        if until is not None:
            if paused_from >= until:
                break
            paused_to = until if paused_to is None else min(paused_to, until)
        if paused_to is not None and paused_to <= t:
            continue
        if paused_from > t:
            available = calendar.between(t, paused_from)
            if available >= left:
                return calendar.add(t, left)
            left -= available
        if paused_to is None:
            return None
        t = paused_to
    return calendar.add(t, left)


def _target(calendar: BusinessCalendar, terms: Terms, target: SlaTarget, start: datetime,
            met_at: datetime | None, facts: Facts, cycle: int = 0) -> TargetClock:
    minutes = terms.minutes(target)
    assert minutes is not None
    clock = TargetClock(started_at=start, cycle=cycle, met_at=met_at)
    clock.due_at = reached(calendar, start, minutes, facts.pending, until=met_at)
    warn_after = terms.warn_after(minutes)
    if met_at is None and warn_after is not None:
        clock.warn_at = reached(calendar, start, warn_after, facts.pending)
    return clock


def compute(terms: Terms, calendar: BusinessCalendar, facts: Facts,
            previous_cycle: tuple[int, datetime] | None = None) -> Computed:
    """Every target of the policy that has started, and the clock's phase. ``previous_cycle``
    (id, start) is the next-response wait the stored clock knew, shown as met once answered."""
    targets: dict[SlaTarget, TargetClock] = {}
    first = facts.first_customer_at
    first_met: datetime | None = None
    if first is not None:
        resolved = facts.first_resolve_from(first)
        answered = [at for at in (facts.first_response_at, resolved) if at is not None]
        first_met = min(answered) if answered else None
        if terms.first_response is not None:
            targets[SlaTarget.first_response] = _target(calendar, terms, SlaTarget.first_response, first, first_met,
                                                        facts)
        if terms.resolution is not None:
            targets[SlaTarget.resolution] = _target(calendar, terms, SlaTarget.resolution, first, resolved, facts)
    if terms.next_response is not None and (terms.first_response is None or first_met is not None):
        if facts.wait_id is not None and facts.wait_at is not None:
            targets[SlaTarget.next_response] = _target(calendar, terms, SlaTarget.next_response, facts.wait_at,
                                                       None, facts, cycle=facts.wait_id)
        elif previous_cycle is not None and facts.last_answer_at is not None \
                and facts.last_answer_at >= previous_cycle[1]:
            targets[SlaTarget.next_response] = _target(calendar, terms, SlaTarget.next_response, previous_cycle[1],
                                                       facts.last_answer_at, facts, cycle=previous_cycle[0])
    running = [t for t in targets.values() if t.running]
    paused_at = facts.paused_since
    if running:
        phase = ClockPhase.paused if paused_at is not None else ClockPhase.running
    else:
        phase = ClockPhase.met if targets else ClockPhase.none
    dues = [t.due_at for t in running if t.due_at is not None]
    warns = [t.warn_at for t in running if t.warn_at is not None]
    return Computed(phase=phase, paused_at=paused_at if phase == ClockPhase.paused else None, targets=targets,
                    next_due_at=min(dues) if dues and phase == ClockPhase.running else None,
                    next_warn_at=min(warns) if warns and phase == ClockPhase.running else None)
