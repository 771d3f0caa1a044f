"""What the inbox keeps per user: how far they have read each conversation, and their saved views."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from swarmdesk.core.models import AccountScoped, Base, BigId, IdMixin, Timestamps


class ConversationRead(Base):
    """A conversation is unread for a user when the customer wrote after ``read_at`` (or the user
    never opened it and the customer wrote at all)."""

    __tablename__ = "conversation_reads"
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    # Indexed for the cascade when a conversation is deleted (a contact's erasure).
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True, index=True)
    last_read_message_id: Mapped[int | None] = mapped_column(BigId, default=None)
    read_at: Mapped[datetime] = mapped_column()


class SavedView(IdMixin, AccountScoped, Timestamps, Base):
    """A named set of inbox filters (validated by ``inbox.schemas.InboxFilters``) and a sort.
    Shared views are listed for the whole account; only their owner or an admin changes them."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sort: Mapped[str | None] = mapped_column(String(20), default=None)
    shared: Mapped[bool] = mapped_column(default=False)
