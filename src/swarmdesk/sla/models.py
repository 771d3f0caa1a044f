from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Enum, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from swarmdesk.core.models import AccountScoped, Base, BigId, IdMixin, JsonType, Timestamps


class SlaTarget(enum.StrEnum):
    first_response = "first_response"
    next_response = "next_response"
    resolution = "resolution"


class AlertKind(enum.StrEnum):
    warning = "warning"
    breach = "breach"


class ClockPhase(enum.StrEnum):
    """What a clock is doing, independent of the time of day (the time-dependent states ok,
    warning and breached are read from ``next_warn_at`` and ``next_due_at`` against now)."""

    none = "none"  # no policy applies, or nothing has started (no customer message yet)
    running = "running"
    paused = "paused"  # the conversation is pending (waiting on the customer)
    met = "met"  # every target that started is met


def _enum(e: type[enum.Enum]) -> Enum:
    return Enum(e, native_enum=False, length=20)


class BusinessCalendar(IdMixin, AccountScoped, Timestamps, Base):
    """Opening hours in one IANA time zone, and holidays. ``hours`` maps mon..sun to a list of
    {"start": "HH:MM", "end": "HH:MM"}; ``holidays`` is a list of {"date", "name", "start", "end"}
    (start/end null: the whole day is closed)."""

    __tablename__ = "sla_calendars"
    __table_args__ = (UniqueConstraint("account_id", "name"),)
    name: Mapped[str] = mapped_column(String(100))
    time_zone: Mapped[str] = mapped_column(String(64))
    hours: Mapped[dict[str, Any]] = mapped_column(default=dict)
    holidays: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)


class SlaPolicy(IdMixin, AccountScoped, Timestamps, Base):
    """Targets in business minutes (each optional) and the conditions a conversation must meet.
    Policies are tried by (position, id); the first enabled match applies."""

    __tablename__ = "sla_policies"
    __table_args__ = (Index("ix_sla_policies_account_position", "account_id", "position", "id"),)
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # None: 24/7. A calendar in use cannot be deleted.
    calendar_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("sla_calendars.id", ondelete="RESTRICT"), default=None, index=True)
    first_response_minutes: Mapped[int | None] = mapped_column(Integer, default=None)
    next_response_minutes: Mapped[int | None] = mapped_column(Integer, default=None)
    resolution_minutes: Mapped[int | None] = mapped_column(Integer, default=None)
    # At most one of the two: warn at this share of the target, or this many minutes before it.
    warn_percent: Mapped[int | None] = mapped_column(Integer, default=None)
    warn_before_minutes: Mapped[int | None] = mapped_column(Integer, default=None)
    # {"priorities": [...], "channels": [...], "inbox_ids": [...], "tiers": [...]}; empty: any.
    conditions: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SlaClock(AccountScoped, Base):
    """A conversation's SLA deadlines under the policy that applies to it. Recomputed from the
    conversation's messages and status history by ``sla.actions.sync_clock`` (so replays and
    out-of-order events converge on the same row); the deadline jobs and the inbox read it.

    Per target: ``started_at`` (the customer began waiting), ``due_at`` and ``warn_at`` (null while
    paused or once met), ``met_at``. ``next_response_cycle`` is the id of the customer message
    that started the current wait for a next response."""

    __tablename__ = "sla_clocks"
    __table_args__ = (
        Index("ix_sla_clocks_account_phase_due", "account_id", "phase", "next_due_at"),
        Index("ix_sla_clocks_next_alert_at", "next_alert_at"),
    )
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    policy_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("sla_policies.id", ondelete="SET NULL"), default=None, index=True)
    phase: Mapped[ClockPhase] = mapped_column(_enum(ClockPhase), default=ClockPhase.none)
    paused_at: Mapped[datetime | None] = mapped_column(default=None)
    # The earliest due and warning instants of the running targets (the inbox's sla_state), and
    # the earliest warning or breach not yet recorded (the safety sweep).
    next_due_at: Mapped[datetime | None] = mapped_column(default=None)
    next_warn_at: Mapped[datetime | None] = mapped_column(default=None)
    next_alert_at: Mapped[datetime | None] = mapped_column(default=None)

    first_response_started_at: Mapped[datetime | None] = mapped_column(default=None)
    first_response_due_at: Mapped[datetime | None] = mapped_column(default=None)
    first_response_warn_at: Mapped[datetime | None] = mapped_column(default=None)
    first_response_met_at: Mapped[datetime | None] = mapped_column(default=None)

    next_response_cycle: Mapped[int | None] = mapped_column(BigInteger, default=None)
    next_response_started_at: Mapped[datetime | None] = mapped_column(default=None)
    next_response_due_at: Mapped[datetime | None] = mapped_column(default=None)
    next_response_warn_at: Mapped[datetime | None] = mapped_column(default=None)
    next_response_met_at: Mapped[datetime | None] = mapped_column(default=None)

    resolution_started_at: Mapped[datetime | None] = mapped_column(default=None)
    resolution_due_at: Mapped[datetime | None] = mapped_column(default=None)
    resolution_warn_at: Mapped[datetime | None] = mapped_column(default=None)
    resolution_met_at: Mapped[datetime | None] = mapped_column(default=None)

    updated_at: Mapped[datetime] = mapped_column()


class SlaAlert(IdMixin, AccountScoped, Base):
    """A warning or breach that happened. The unique key is the exactly-once guarantee: whoever
    inserts the row (in the transaction that publishes the event, records the activity and
    notifies) is the only one who acts; a duplicate job, a second worker or a replay inserts
    nothing and does nothing. ``cycle`` is 0 for first response and resolution, and the
    next-response cycle (a message id) otherwise. A warning that comes due only after its
    breach is recorded as ``suppressed`` (no effects)."""

    __tablename__ = "sla_alerts"
    __table_args__ = (UniqueConstraint("conversation_id", "target", "cycle", "kind"),)
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"))
    target: Mapped[SlaTarget] = mapped_column(_enum(SlaTarget))
    cycle: Mapped[int] = mapped_column(BigInteger, default=0)
    kind: Mapped[AlertKind] = mapped_column(_enum(AlertKind))
    policy_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("sla_policies.id", ondelete="SET NULL"), default=None, index=True)
    due_at: Mapped[datetime] = mapped_column()
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column()
