from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from swarmdesk.core.models import AccountScoped, Base, BigId, IdMixin, JsonType


def _enum(e: type[enum.Enum]) -> Enum:
    return Enum(e, native_enum=False, length=20)


class AutomationRule(IdMixin, AccountScoped, Base):
    """A rule's identity and run state. What it does lives in its versions (immutable): every
    change to the definition adds one, and ``version`` names the one in force. Switching it on or
    off and moving it in the order are run state, not a new definition."""

    __tablename__ = "automation_rules"
    __table_args__ = (Index("ix_automation_rules_account_enabled", "account_id", "enabled", "position", "id"),)
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)  # rules run in (position, id) order
    version: Mapped[int] = mapped_column(default=1)
    current_version_id: Mapped[int | None] = mapped_column(BigId, default=None)
    # The event types the current version reacts to (its trigger's, or those that move a
    # conversation in and out of the state a time rule watches): the outbox asks this column.
    watch: Mapped[list[str]] = mapped_column(default=list)
    created_by: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)  # kept: executions name it


class AutomationRuleVersion(IdMixin, AccountScoped, Base):
    """One immutable definition of a rule: what executions reference."""

    __tablename__ = "automation_rule_versions"
    __table_args__ = (UniqueConstraint("rule_id", "version"),)
    rule_id: Mapped[int] = mapped_column(BigId, ForeignKey("automation_rules.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    trigger: Mapped[dict[str, Any]] = mapped_column(default=dict)
    conditions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    max_runs_per_hour: Mapped[int] = mapped_column(default=10)  # per conversation
    created_by: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column()


class Macro(IdMixin, AccountScoped, Base):
    """A named bundle of actions an agent applies in one click: shared (managed by admins and
    supervisors) or personal (``owner_id``: only its owner sees and uses it)."""

    __tablename__ = "macros"
    __table_args__ = (Index("ix_macros_account_owner", "account_id", "owner_id", "name"),)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    owner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), default=None)
    created_by: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class ExecutionOutcome(enum.StrEnum):
    applied = "applied"  # conditions held and every action succeeded
    partial = "partial"  # some actions failed (each one's error is logged)
    failed = "failed"  # every action failed, or (a macro) the whole change was refused
    not_matched = "not_matched"  # conditions did not hold: nothing was done
    skipped = "skipped"  # conditions held but a guard stopped it (loop, chain depth, rate cap, stale timer)


class AutomationExecution(IdMixin, AccountScoped, Base):
    """One evaluation of a rule (or application of a macro) on one conversation, with what each
    condition and action did. ``trigger_key`` (the event uid, or ``timer:<id>``) makes a rule
    version run at most once per conversation and trigger."""

    __tablename__ = "automation_executions"
    __table_args__ = (
        UniqueConstraint("rule_version_id", "conversation_id", "trigger_key", name="uq_automation_executions_trigger"),
        Index("ix_automation_executions_account_id_id", "account_id", "id"),
        Index("ix_automation_executions_rule_conversation", "rule_id", "conversation_id", "created_at"),
        Index("ix_automation_executions_conversation", "conversation_id", "id"),
        # A rule's log newest first, and its latest run of each outcome (the admin page's "last fired").
        Index("ix_automation_executions_rule_id", "rule_id", "id"),
        Index("ix_automation_executions_rule_outcome_id", "rule_id", "outcome", "id"),
    )
    kind: Mapped[str] = mapped_column(String(10))  # "rule" | "macro"
    rule_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("automation_rules.id", ondelete="CASCADE"),
                                                default=None)
    rule_version_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("automation_rule_versions.id", ondelete="CASCADE", name="fk_automation_executions_version"),
        default=None)
    rule_version: Mapped[int | None] = mapped_column(default=None)
    macro_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("macros.id", ondelete="SET NULL"), default=None,
                                                 index=True)
    name: Mapped[str] = mapped_column(String(200))  # the rule's or macro's name then
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"))
    trigger_key: Mapped[str] = mapped_column(String(100))
    trigger_event_uid: Mapped[str | None] = mapped_column(String(64), default=None)
    trigger_event_type: Mapped[str | None] = mapped_column(String(100), default=None)
    outcome: Mapped[ExecutionOutcome] = mapped_column(_enum(ExecutionOutcome))
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    conditions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    cause: Mapped[dict[str, Any] | None] = mapped_column(default=None)  # the trigger event's cause
    actor_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"),
                                                      default=None)
    created_at: Mapped[datetime] = mapped_column()


class TimerState(enum.StrEnum):
    scheduled = "scheduled"
    fired = "fired"  # ran (its execution says whether the conditions held): never again
    cancelled = "cancelled"  # the conversation left the state, or the rule changed or was switched off


class AutomationTimer(IdMixin, AccountScoped, Base):
    """A time rule's appointment with one conversation: "pending since entry E, due at T". Its job
    (``run_at`` = ``due_at``) re-checks the state and the conditions then; the unique key is what
    makes a rule version act at most once per entry into the state, across restarts."""

    __tablename__ = "automation_timers"
    __table_args__ = (
        UniqueConstraint("rule_version_id", "conversation_id", "entry_key", name="uq_automation_timers_entry"),
        Index("ix_automation_timers_conversation_state", "conversation_id", "state"),
    )
    rule_id: Mapped[int] = mapped_column(BigId, ForeignKey("automation_rules.id", ondelete="CASCADE"))
    rule_version_id: Mapped[int] = mapped_column(BigId, ForeignKey("automation_rule_versions.id",
                                                                   ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"))
    entry_key: Mapped[str] = mapped_column(String(100))
    entered_at: Mapped[datetime] = mapped_column()
    due_at: Mapped[datetime] = mapped_column()
    state: Mapped[TimerState] = mapped_column(_enum(TimerState), default=TimerState.scheduled)
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
