"""Routing tables: skills, agents' presence and capacity, queues, and each conversation's place in
routing. Other domains read ``Skill``, ``AgentSkill`` and ``AgentPresence`` (swarming ranks experts
with them); only routing writes them."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from swarmdesk.core.models import AccountScoped, Base, BigId, IdMixin, JsonType, Timestamps


class PresenceStatus(enum.StrEnum):
    online = "online"  # takes new conversations
    away = "away"  # keeps what they have, gets nothing new
    offline = "offline"  # gone: their open conversations are routed again


class Strategy(enum.StrEnum):
    balanced = "balanced"  # fewest open conversations, then longest idle
    round_robin = "round_robin"  # in turn, by a cursor kept on the queue row
    sticky = "sticky"  # the customer's previous agent if available within the window, else balanced
    manual = "manual"  # never assigned automatically


class RoutingState(enum.StrEnum):
    waiting = "waiting"  # in a queue, nobody assigned yet
    assigned = "assigned"  # routing (or a person) gave it an owner
    manual = "manual"  # its queue never assigns automatically
    unqueued = "unqueued"  # no queue takes it


def _enum(e: type[enum.Enum]) -> Enum:
    return Enum(e, native_enum=False, length=20)


class Skill(IdMixin, AccountScoped, Timestamps, Base):
    """Something an agent can be good at (a product, a language, a channel). A conversation
    requires the skill when its inbox, one of its tags or its language matches, or when automation
    says so; ``min_proficiency`` is what it requires then."""

    __tablename__ = "skills"
    __table_args__ = (UniqueConstraint("account_id", "name"),
                      CheckConstraint("min_proficiency BETWEEN 1 AND 5", name="min_proficiency_range"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(2000), default="")
    min_proficiency: Mapped[int] = mapped_column(default=1)
    inbox_ids: Mapped[list[int]] = mapped_column(default=list)
    tags: Mapped[list[str]] = mapped_column(default=list)
    languages: Mapped[list[str]] = mapped_column(default=list)  # primary subtags: "es", "pt"
    revision: Mapped[int] = mapped_column(default=0)  # bumped by each change (see routing/snapshot.py)


class AgentSkill(Base):
    """How good one agent is at one skill: 1 (can help) to 5 (the expert)."""

    __tablename__ = "agent_skills"
    __table_args__ = (Index("ix_agent_skills_skill_proficiency", "skill_id", "proficiency"),
                      CheckConstraint("proficiency BETWEEN 1 AND 5", name="proficiency_range"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    skill_id: Mapped[int] = mapped_column(BigId, ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    proficiency: Mapped[int] = mapped_column()


class AgentPresence(Base):
    """One row per staff member routing knows about (made on first use; no row means offline with
    the default capacity).

    ``status`` is what routing acts on; ``chosen`` is what the agent last set by hand (a socket
    coming back makes an automatically-offline agent online again, but never overrides "away" or
    "offline" they chose). ``connections`` counts live real-time connections across processes.
    ``capacity`` is per channel kind, with a ``default`` for the others."""

    __tablename__ = "agent_presence"
    __table_args__ = (Index("ix_agent_presence_account_status", "account_id", "status"),
                      Index("ix_agent_presence_account_revision", "account_id", "revision"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    status: Mapped[PresenceStatus] = mapped_column(_enum(PresenceStatus), default=PresenceStatus.offline)
    chosen: Mapped[PresenceStatus | None] = mapped_column(_enum(PresenceStatus), default=None)
    connections: Mapped[int] = mapped_column(default=0)
    disconnected_at: Mapped[datetime | None] = mapped_column(default=None)  # when the last one closed
    capacity: Mapped[dict[str, Any]] = mapped_column(default=dict)
    changed_at: Mapped[datetime] = mapped_column()
    last_assigned_at: Mapped[datetime | None] = mapped_column(default=None)  # "longest idle"
    # Bumped by every change routing's agent snapshot depends on (status, capacity, skills): the
    # snapshot cached per process is rebuilt when the account's sum of revisions moves.
    revision: Mapped[int] = mapped_column(default=0)


class PresenceConnection(Base):
    """How many real-time connections one process holds for one user (``AgentPresence.connections``
    is their sum). Each process touches ``seen_at`` of its rows every ``CONNECTION_HEARTBEAT_SECONDS``; rows of
    a process that stopped touching them (killed, its machine gone) are reaped by any other process,
    which takes their count off the agent's, so a crash never leaves an agent online for good."""

    __tablename__ = "presence_connections"
    __table_args__ = (Index("ix_presence_connections_seen_at", "seen_at"),)
    process_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    count: Mapped[int] = mapped_column(default=0)
    seen_at: Mapped[datetime] = mapped_column()


class RoutingQueue(IdMixin, AccountScoped, Timestamps, Base):
    """Where conversations wait for an agent: fed by inboxes and/or tags (first matching queue by
    ``position`` wins; one with neither takes everything), served by the agents of ``team_id``
    (every agent when None) with a strategy, relaxing skill requirements step by step."""

    __tablename__ = "routing_queues"
    __table_args__ = (UniqueConstraint("account_id", "name"),
                      Index("ix_routing_queues_account_position", "account_id", "position", "id"))
    name: Mapped[str] = mapped_column(String(200))
    team_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("teams.id", ondelete="SET NULL"), default=None)
    inbox_ids: Mapped[list[int]] = mapped_column(default=list)
    tags: Mapped[list[str]] = mapped_column(default=list)
    position: Mapped[int] = mapped_column(default=0)
    strategy: Mapped[Strategy] = mapped_column(_enum(Strategy), default=Strategy.balanced)
    # [{"after_seconds": 60, "min_proficiency": 2}, {"after_seconds": 300, "any_agent_on_team": true}]
    relaxation: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    sticky_window_seconds: Mapped[int] = mapped_column(default=7 * 86400)
    # Points a waiting conversation gains: {"urgent": 100, "high": 50, "vip": 40, "sla": 80}.
    lifts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    vip_attribute: Mapped[str] = mapped_column(String(100), default="tier")
    vip_values: Mapped[list[str]] = mapped_column(default=list)
    rr_cursor: Mapped[int] = mapped_column(BigId, default=0)  # the user id round-robin gave the last one to
    revision: Mapped[int] = mapped_column(default=0)  # bumped by each settings change (not by the cursor)


class ConversationRouting(Base):
    """A conversation's place in routing: its queue, how long it has waited, its lift, what
    automation requires of its agent, and the last decision with its explanation."""

    __tablename__ = "conversation_routing"
    __table_args__ = (
        # Capacity freed or an agent online: the queue's waiting list, highest lift, longest waiting.
        Index("ix_conversation_routing_queue_waiting", "queue_id", "state", "lift", "waiting_since"),
    )
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    queue_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("routing_queues.id", ondelete="SET NULL"), default=None)
    state: Mapped[RoutingState] = mapped_column(_enum(RoutingState), default=RoutingState.unqueued)
    waiting_since: Mapped[datetime | None] = mapped_column(default=None)  # relaxation counts from here
    lift: Mapped[int] = mapped_column(default=0)
    # Set by automation (do_set_required_skills): [{"skill_id": 3, "min_proficiency": 4}]
    required_skills: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)  # the delayed job's run_at
    attempts: Mapped[int] = mapped_column(default=0)
    # The last decision: {"to", "explanation", "strategy", "step", "queue_id", "reason", "lift", "at"}
    decision: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column()
