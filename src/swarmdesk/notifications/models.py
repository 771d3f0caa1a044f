from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from swarmdesk.core.models import AccountScoped, Base, BigId, IdMixin


class NotificationKind(enum.StrEnum):
    assigned = "assigned"  # someone else made you the conversation's assignee
    mentioned = "mentioned"  # @mentioned in an internal note
    customer_replied = "customer_replied"  # the customer wrote in a conversation assigned to you
    sla_warning = "sla_warning"  # reserved for the SLA layer
    swarm_invite = "swarm_invite"  # invited to help in a conversation's swarm room


# The customer_replied notifications that collapse: one unread per user and conversation. The
# partial unique index is also the ON CONFLICT target of the intake's one-statement upsert.
UNREAD_REPLY = "kind = 'customer_replied' AND read_at IS NULL"


class Notification(IdMixin, AccountScoped, Base):
    """Something a staff member should look at. Created explicitly by the action that causes it,
    in its transaction."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_id", "user_id", "id"),
        Index("ix_notifications_unread_reply", "user_id", "conversation_id", unique=True,
              sqlite_where=text(UNREAD_REPLY), postgresql_where=text(UNREAD_REPLY)),
    )
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[NotificationKind] = mapped_column(Enum(NotificationKind, native_enum=False, length=20))
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"),
                                                 index=True)
    # No foreign key: the conversation's cascade removes the notification together with its
    # messages, and a key here would make every message delete scan this table.
    message_id: Mapped[int | None] = mapped_column(BigId, default=None)
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    snippet: Mapped[str] = mapped_column(String(200), default="")
    read_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column()
