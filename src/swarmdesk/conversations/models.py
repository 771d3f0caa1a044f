from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from swarmdesk.core.models import AccountScoped, Base, BigId, IdMixin, Timestamps


class ConversationStatus(enum.StrEnum):
    open = "open"
    pending = "pending"  # waiting on the customer
    snoozed = "snoozed"
    resolved = "resolved"  # a customer reply reopens it
    closed = "closed"  # final: a customer reply starts a new conversation


class Priority(enum.StrEnum):
    none = "none"
    low = "low"
    medium = "medium"
    high = "high"
    urgent = "urgent"


class Direction(enum.StrEnum):
    incoming = "incoming"
    outgoing = "outgoing"


class SenderType(enum.StrEnum):
    contact = "contact"
    user = "user"
    system = "system"


class DeliveryStatus(enum.StrEnum):
    received = "received"  # incoming
    pending = "pending"
    sent = "sent"
    delivered = "delivered"  # the vendor reports it reached the customer's device
    read = "read"
    failed = "failed"
    not_sent = "not_sent"  # internal notes


def _enum(e: type[enum.Enum]) -> Enum:
    return Enum(e, native_enum=False, length=20)


class Conversation(IdMixin, AccountScoped, Timestamps, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_account_activity", "account_id", "last_activity_at", "id"),
        Index("ix_conversations_account_status_activity", "account_id", "status", "last_activity_at", "id"),
        # The inbox (inbox/service.py): each sort and each narrowing view reads one index range.
        Index("ix_conversations_account_status_waiting", "account_id", "status", "waiting_since", "id"),
        Index("ix_conversations_account_status_priority",
              "account_id", "status", "priority", "last_activity_at", "id"),
        Index("ix_conversations_account_assignee_status_activity",
              "account_id", "assignee_id", "status", "last_activity_at", "id"),
        Index("ix_conversations_account_team_status_activity",
              "account_id", "team_id", "status", "last_activity_at", "id"),
        Index("ix_conversations_contact_inbox_status", "contact_id", "inbox_id", "status"),
        UniqueConstraint("inbox_id", "external_key"),
    )
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    # The channel's own thread key when it has one (an API client's conversation id).
    external_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # Unguessable, for channels that address a conversation (an email reply-to of support+<token>@…);
    # created when the first reply goes out on such a channel.
    reply_token: Mapped[str | None] = mapped_column(String(64), default=None, unique=True, index=True)
    subject: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[ConversationStatus] = mapped_column(_enum(ConversationStatus), default=ConversationStatus.open)
    priority: Mapped[Priority] = mapped_column(_enum(Priority), default=Priority.none)
    assignee_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True)
    team_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("teams.id", ondelete="SET NULL"), default=None, index=True)
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    snoozed_until: Mapped[datetime | None] = mapped_column(default=None)
    # Clocks the metrics and SLA layers read.
    last_activity_at: Mapped[datetime] = mapped_column()
    first_response_at: Mapped[datetime | None] = mapped_column(default=None)
    last_customer_message_at: Mapped[datetime | None] = mapped_column(default=None)
    last_agent_message_at: Mapped[datetime | None] = mapped_column(default=None)
    waiting_since: Mapped[datetime | None] = mapped_column(default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    reopen_count: Mapped[int] = mapped_column(default=0)
    message_count: Mapped[int] = mapped_column(default=0)
    # Read on every message (events carry them), so kept on the row as well as in their tables
    # (which filtering uses); only the actions that change the tables write these.
    tag_names: Mapped[list[str]] = mapped_column(default=list)
    participant_ids: Mapped[list[int]] = mapped_column(default=list)


class ConversationTag(Base):
    __tablename__ = "conversation_tags"
    __table_args__ = (Index("ix_conversation_tags_account_name", "account_id", "name"),)
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))


class ConversationParticipant(Base):
    """Staff pulled into a conversation besides its assignee (experts in a swarm, watchers)."""

    __tablename__ = "conversation_participants"
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True,
                                         index=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20), default="participant")
    created_at: Mapped[datetime] = mapped_column()


class ConversationMention(IdMixin, AccountScoped, Base):
    """A user @mentioned in an internal note: the "mentions" inbox view and its notification."""

    __tablename__ = "conversation_mentions"
    __table_args__ = (Index("ix_conversation_mentions_user_id", "user_id", "id"),
                      UniqueConstraint("message_id", "user_id"))
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column()


class Message(IdMixin, AccountScoped, Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("inbox_id", "external_id"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
    )
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"))
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    direction: Mapped[Direction] = mapped_column(_enum(Direction))
    private: Mapped[bool] = mapped_column(default=False)
    channel: Mapped[str] = mapped_column(String(40))
    sender_type: Mapped[SenderType] = mapped_column(_enum(SenderType))
    sender_id: Mapped[int | None] = mapped_column(BigId, default=None)
    content: Mapped[str] = mapped_column(Text, default="")
    content_html: Mapped[str | None] = mapped_column(Text, default=None)
    external_id: Mapped[str | None] = mapped_column(String(300), default=None)
    delivery_status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus))
    delivery_error: Mapped[str | None] = mapped_column(String(1000), default=None)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column()


class Attachment(IdMixin, AccountScoped, Base):
    __tablename__ = "attachments"
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column()
    # Server-generated; the customer's filename never touches the filesystem.
    storage_key: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column()


class Activity(IdMixin, AccountScoped, Base):
    """Every change to a conversation: who, what, when."""

    __tablename__ = "conversation_activities"
    __table_args__ = (Index("ix_conversation_activities_conversation", "conversation_id", "id"),)
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"))
    actor_type: Mapped[SenderType] = mapped_column(_enum(SenderType))
    actor_id: Mapped[int | None] = mapped_column(BigId, default=None)
    verb: Mapped[str] = mapped_column(String(50))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column()


class EarlyStatusReport(IdMixin, AccountScoped, Base):
    """A vendor's report on a message we sent that arrived before we recorded the id the vendor gave
    it (the vendor answered the send, and called back, before the delivery job wrote the answer).
    Applied, then deleted, when the id is recorded; reports for ids never recorded expire."""

    __tablename__ = "early_status_reports"
    __table_args__ = (UniqueConstraint("inbox_id", "external_id", "status"),
                      Index("ix_early_status_reports_inbox_received", "inbox_id", "received_at"))
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(String(1000), default=None)
    received_at: Mapped[datetime] = mapped_column()
