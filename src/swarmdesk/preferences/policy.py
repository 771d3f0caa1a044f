"""The one policy every outbound path that is not a direct answer consults.

``decide(session, contact, purpose=..., inbox=... | channel_kind=..., now=...)`` says whether a
message may go out now (send), later (defer, until when), on another channel (move, to which), or
not at all (refuse), with a sentence the agent can read. ``evaluate`` is the same decision as a
pure function of the rules, the clock and what the customer can be reached on; it is what the
policy tests drive.

Precedence, first match wins for refusals, and a move and a deferral can combine:

1. A direct answer (``Purpose.reply``: an agent answering in a conversation where the customer
   wrote) is not subject to the rules: send.
2. No rules: send.
3. Cap: the customer was already contacted ``cap_count`` times within the last ``cap_days``
   days: refuse (with when the next contact becomes possible).
4. Channel: a channel the customer never wants is replaced by their preferred channel, else by
   the first other channel they can be reached on (refuse if there is none); a channel that is
   not their preferred one is replaced by the preferred one when they can be reached there.
5. Quiet hours, in the customer's time zone: defer to the end of the quiet period (on the
   channel step 4 chose). A wall-clock end that a DST change skips is the first instant after
   the gap; one that happens twice is the first of the two.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.channels.models import Inbox
from swarmdesk.channels.registry import channels
from swarmdesk.contacts.models import Contact
from swarmdesk.core.clock import utcnow
from swarmdesk.core.time_zones import known_time_zones
from swarmdesk.preferences import service
from swarmdesk.preferences.models import ContactRules


class Purpose(enum.StrEnum):
    reply = "reply"  # a direct answer in a conversation where the customer wrote: never subject
    outreach = "outreach"  # an agent starts a conversation with a customer
    reminder = "reminder"  # automation (e.g. "pending 48 h -> remind")
    survey = "survey"  # satisfaction surveys, later
    notification = "notification"  # anything else Swarmdesk sends on its own


class Outcome(enum.StrEnum):
    send = "send"
    defer = "defer"
    move = "move"
    refuse = "refuse"


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time
    zone: str  # an IANA time zone

    @property
    def text(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M} ({self.zone})"


@dataclass(frozen=True, slots=True)
class Cap:
    count: int
    days: int


@dataclass(frozen=True, slots=True)
class Rules:
    preferred_channel: str | None = None
    never_channels: frozenset[str] = frozenset()
    quiet: QuietHours | None = None
    cap: Cap | None = None

    @property
    def empty(self) -> bool:
        return not (self.preferred_channel or self.never_channels or self.quiet or self.cap)


@dataclass(frozen=True, slots=True)
class Channel:
    """Somewhere a message can go: a channel kind, and the inbox of that kind when there is one."""

    kind: str
    inbox_id: int | None = None

    @property
    def label(self) -> str:
        return channel_label(self.kind)


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    explanation: str
    channel: Channel  # where the message goes (after a move)
    requested: Channel
    send_at: datetime | None = None  # defer: when it may go; refuse because of the cap: when it could
    reasons: tuple[str, ...] = field(default=())  # not_subject, quiet_hours, never_channel, preferred_channel, cap

    @property
    def moved(self) -> bool:
        return self.channel != self.requested

    @property
    def allowed(self) -> bool:
        return self.outcome != Outcome.refuse


# --- the pure decision ------------------------------------------------------------------------

def channel_label(kind: str) -> str:
    """What a customer calls a channel: the adapter's title without the vendor ("SMS (Twilio)" -> "SMS")."""
    title = channels.kinds[kind].title if kind in channels.kinds else kind
    return re.sub(r"\s*\([^)]*\)$", "", title) or title


def given_name(name: str) -> str:
    """How the explanations name the customer ("Ana Lima" -> "Ana")."""
    return name.split()[0] if name and name.split() else "The customer"


def _possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def _times(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def _resolve_wall(local: datetime, zone: ZoneInfo) -> datetime:
    """The first instant at which the clocks of ``zone`` show ``local`` (naive) or later, in UTC."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == local:
        return first  # exists (for a time that happens twice, fold=0 is the earlier)
    # Skipped by a DST change: the gap's end is the first instant whose wall time is past it.
    instant = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    while instant.astimezone(zone).replace(tzinfo=None) < local:
        instant += timedelta(minutes=1)
    return instant


def quiet_until(quiet: QuietHours, now: datetime) -> datetime | None:
    """When the quiet period ``now`` is in ends (UTC), or None outside quiet hours."""
    zone = ZoneInfo(quiet.zone)
    local = now.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    start, end = quiet.start, quiet.end
    if start < end:  # within one day, e.g. 12:00-14:00
        if not start <= wall < end:
            return None
        day = local.date()
    else:  # over midnight, e.g. 21:00-08:00
        if not (wall >= start or wall < end):
            return None
        day = local.date() + timedelta(days=1) if wall >= start else local.date()
    until = _resolve_wall(datetime.combine(day, end), zone)
    if until <= now:  # in the repeated hour after a DST change the end's first pass is behind us
        until = datetime.combine(day, end).replace(tzinfo=zone, fold=1).astimezone(UTC)
    return until


def evaluate(rules: Rules | None, *, name: str, purpose: Purpose, requested: Channel, now: datetime,
             reachable: Sequence[Channel] = (), contacted: Sequence[datetime] = ()) -> Decision:
    """The decision, from the rules, the time and facts the caller looked up: ``reachable`` are
    the places the customer can be reached on now (in the order to prefer them), ``contacted``
    the times of proactive contacts that count toward the cap."""
    if purpose == Purpose.reply:
        return Decision(Outcome.send, "A direct answer to the customer: their contact rules do not apply",
                        requested, requested, reasons=("not_subject",))
    if rules is None or rules.empty:
        return Decision(Outcome.send, f"{name} has set no contact rules", requested, requested)
    who = name
    if rules.cap is not None:
        since = now - timedelta(days=rules.cap.days)
        recent = sorted(at for at in contacted if at > since)
        if len(recent) >= rules.cap.count:
            # The next contact is possible once enough of these fall out of the window.
            possible = recent[len(recent) - rules.cap.count] + timedelta(days=rules.cap.days)
            when = _local_text(possible, rules.quiet.zone if rules.quiet else "UTC")
            return Decision(Outcome.refuse, f"{who} was contacted {_times(len(recent), 'time')} in the last "
                                            f"{_times(rules.cap.days, 'day')} (their limit); the next contact is "
                                            f"possible from {when}",
                            requested, requested, send_at=possible, reasons=("cap",))

    target, notes, reasons = requested, [], []
    if requested.kind in rules.never_channels:
        allowed = [c for c in reachable if c.kind not in rules.never_channels]
        preferred = [c for c in allowed if c.kind == rules.preferred_channel]
        if not allowed:
            return Decision(Outcome.refuse, f"{who} asked not to be contacted by {requested.label}, and cannot be "
                                            "reached on any channel they allow", requested, requested,
                            reasons=("never_channel",))
        target = (preferred or allowed)[0]
        notes.append(f"{who} asked not to be contacted by {requested.label}: moved to {target.label}")
        reasons.append("never_channel")
    elif rules.preferred_channel and requested.kind != rules.preferred_channel:
        preferred = [c for c in reachable if c.kind == rules.preferred_channel]
        if preferred:
            target = preferred[0]
            notes.append(f"{who} prefers {target.label}: moved from {requested.label} to {target.label}")
            reasons.append("preferred_channel")

    if rules.quiet is not None:
        until = quiet_until(rules.quiet, now)
        if until is not None:
            notes.append(f"{_possessive(who)} quiet hours are {rules.quiet.text}: deferred to "
                         f"{until.astimezone(ZoneInfo(rules.quiet.zone)):%H:%M}")
            reasons.append("quiet_hours")
            return Decision(Outcome.defer, ". ".join(notes), target, requested, send_at=until, reasons=tuple(reasons))
    if target != requested:
        return Decision(Outcome.move, ". ".join(notes), target, requested, reasons=tuple(reasons))
    return Decision(Outcome.send, f"Within {_possessive(who)} contact rules", requested, requested)


def _local_text(at: datetime, zone: str) -> str:
    local = at.astimezone(ZoneInfo(zone))
    return f"{local.day} {local:%b %Y, %H:%M} ({zone})"


# --- time zones and the rules as stored -----------------------------------------------------------

def parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def rules_of(row: ContactRules | None) -> Rules | None:
    if row is None:
        return None
    quiet = None
    if row.quiet_start and row.quiet_end and row.time_zone and row.time_zone in known_time_zones():
        quiet = QuietHours(parse_hhmm(row.quiet_start), parse_hhmm(row.quiet_end), row.time_zone)
    cap = Cap(row.cap_count, row.cap_days) if row.cap_count and row.cap_days else None
    return Rules(preferred_channel=row.preferred_channel, never_channels=frozenset(row.never_channels or ()),
                 quiet=quiet, cap=cap)


# --- the decision with what the database knows -----------------------------------------------------

async def reachable_channels(session: AsyncSession, contact: Contact, *, chars: int = 0) -> list[Channel]:
    """Where the customer can be reached now, in inbox order (see ``service.reachable_inboxes``)."""
    return [Channel(inbox.channel_kind, inbox.id) for inbox in await service.reachable_inboxes(session, contact,
                                                                                                 chars=chars)]


async def decide(session: AsyncSession, contact: Contact, *, purpose: Purpose, channel_kind: str | None = None,
                 inbox: Inbox | None = None, now: datetime | None = None, chars: int = 0) -> Decision:
    """May a message for ``purpose`` go to ``contact`` on ``inbox`` (or a channel kind) at ``now``?

    A merged contact is decided by its survivor's rules (which are the survivor's own), and the
    cap counts the proactive contacts of the survivor and of everyone merged into it."""
    if inbox is None and channel_kind is None:
        raise ValueError("decide needs an inbox or a channel kind")
    requested = Channel(inbox.channel_kind, inbox.id) if inbox is not None else Channel(channel_kind or "")
    now = now or utcnow()
    person = await service.survivor_of(session, contact)
    name = given_name(person.name)
    if purpose == Purpose.reply:
        return evaluate(None, name=name, purpose=purpose, requested=requested, now=now)
    rules = rules_of(await service.rules_row(session, person.id))
    if rules is None or rules.empty:
        return evaluate(rules, name=name, purpose=purpose, requested=requested, now=now)
    reachable: list[Channel] = []
    if rules.never_channels or rules.preferred_channel:
        reachable = await reachable_channels(session, person, chars=chars)
        if inbox is None:  # a kind was asked for: it goes to the first inbox of that kind, if any
            requested = next((c for c in reachable if c.kind == requested.kind), requested)
    contacted: list[datetime] = []
    if rules.cap is not None:
        contacted = await service.contacted_since(session, person.id, now - timedelta(days=rules.cap.days))
    return evaluate(rules, name=name, purpose=purpose, requested=requested, now=now, reachable=reachable,
                    contacted=contacted)
