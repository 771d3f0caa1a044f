"""Swarming tables: a swarm on a conversation, its members, and the messages of its room.

The room is its own table, never ``messages``: nothing written in a swarm can reach a customer,
a customer's API or a customer's events, whatever a later change to the conversation code does."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from swarmdesk.core.models import AccountScoped, Base, BigId, IdMixin


class SwarmStatus(enum.StrEnum):
    active = "active"
    ended = "ended"


class SwarmOutcome(enum.StrEnum):
    resolved = "resolved"  # the swarm found the answer
    workaround = "workaround"  # the customer is unblocked; the root cause stays open
    escalated = "escalated"  # handed on (engineering, a vendor …)
    unresolved = "unresolved"  # nobody could help this time


class MemberRole(enum.StrEnum):
    owner = "owner"  # the conversation's assignee: the customer's single point of contact
    starter = "starter"  # started it for someone else's conversation (a supervisor, say)
    expert = "expert"  # pulled in (invited) or joined to help: what the metrics count


class MemberState(enum.StrEnum):
    invited = "invited"
    joined = "joined"
    left = "left"


def _enum(e: type[enum.Enum]) -> Enum:
    return Enum(e, native_enum=False, length=20)


# One active swarm per conversation: the partial unique index decides a race between two starts.
ACTIVE = "status = 'active'"


class Swarm(IdMixin, AccountScoped, Base):
    """One swarm. Its metrics are kept on the row as they happen (counts, first expert joined,
    the conversation's resolution), so the supervisors' report reads one table."""

    __tablename__ = "swarms"
    __table_args__ = (
        Index("ix_swarms_conversation_active", "conversation_id", unique=True,
              sqlite_where=text(ACTIVE), postgresql_where=text(ACTIVE)),
        Index("ix_swarms_conversation_id", "conversation_id", "id"),
        Index("ix_swarms_account_started", "account_id", "started_at"),
    )
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"))
    status: Mapped[SwarmStatus] = mapped_column(_enum(SwarmStatus), default=SwarmStatus.active)
    # The conversation's assignee when it started (None: Swarmdesk started it on an unassigned one).
    owner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"), default=None)
    # None: Swarmdesk itself (automation).
    started_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"),
                                                      default=None)
    started_by_name: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(String(1000), default="")
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"), default=None)
    outcome: Mapped[SwarmOutcome | None] = mapped_column(_enum(SwarmOutcome), default=None)
    summary: Mapped[str] = mapped_column(Text, default="")
    # Metrics.
    first_joined_at: Mapped[datetime | None] = mapped_column(default=None)  # the first expert in the room
    experts_invited: Mapped[int] = mapped_column(default=0)
    experts_joined: Mapped[int] = mapped_column(default=0)
    message_count: Mapped[int] = mapped_column(default=0)
    # When the conversation was first resolved (or closed) after the swarm started.
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class SwarmMember(Base):
    __tablename__ = "swarm_members"
    __table_args__ = (Index("ix_swarm_members_user_id", "user_id", "swarm_id"),)
    swarm_id: Mapped[int] = mapped_column(BigId, ForeignKey("swarms.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    role: Mapped[MemberRole] = mapped_column(_enum(MemberRole))
    state: Mapped[MemberState] = mapped_column(_enum(MemberState))
    invited_by_id: Mapped[int | None] = mapped_column(BigId, default=None)  # None: Swarmdesk, or joined unasked
    invited_at: Mapped[datetime | None] = mapped_column(default=None)
    joined_at: Mapped[datetime | None] = mapped_column(default=None)  # the first time
    left_at: Mapped[datetime | None] = mapped_column(default=None)


class SwarmMessage(IdMixin, AccountScoped, Base):
    """A line in the swarm room: staff only, by construction."""

    __tablename__ = "swarm_messages"
    __table_args__ = (Index("ix_swarm_messages_swarm_id_id", "swarm_id", "id"),)
    swarm_id: Mapped[int] = mapped_column(BigId, ForeignKey("swarms.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"),
                                                 index=True)
    sender_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"),
                                                  default=None)
    sender_name: Mapped[str] = mapped_column(String(200), default="")
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
