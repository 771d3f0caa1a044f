"""Tables of the customer-set contact rules: the rules themselves, the proactive contacts that
count toward a cap, and messages held back until the rules allow them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from swarmdesk.core.models import AccountScoped, Base, BigId, IdMixin


class ContactRules(IdMixin, AccountScoped, Base):
    """What one customer asked of us, set by them in the customer portal. One row per contact (no
    row: no rules). Merging contacts moves nothing: the survivor keeps its own rules, and the
    merged contact's row stays with it, so undoing the merge gives them back unchanged."""

    __tablename__ = "contact_rules"
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"), unique=True)
    preferred_channel: Mapped[str | None] = mapped_column(String(40), default=None)  # a channel kind
    never_channels: Mapped[list[str]] = mapped_column(default=list)  # channel kinds
    # Quiet hours, wall-clock "HH:MM" in ``time_zone``; an end before the start spans midnight.
    quiet_start: Mapped[str | None] = mapped_column(String(5), default=None)
    quiet_end: Mapped[str | None] = mapped_column(String(5), default=None)
    time_zone: Mapped[str | None] = mapped_column(String(64), default=None)  # IANA name
    # At most cap_count proactive contacts within any cap_days days.
    cap_count: Mapped[int | None] = mapped_column(default=None)
    cap_days: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class ContactTouch(IdMixin, AccountScoped, Base):
    """One proactive message that actually went out to a customer (what a cap counts). Unique per
    message, so a message is counted once however often the code that sends it runs."""

    __tablename__ = "contact_touches"
    __table_args__ = (Index("ix_contact_touches_contact_sent", "contact_id", "sent_at"),)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="SET NULL"), default=None, index=True)
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="SET NULL"), default=None, unique=True)
    purpose: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(40))
    sent_at: Mapped[datetime] = mapped_column()


class DeferredStatus(enum.StrEnum):
    scheduled = "scheduled"  # waiting for its job (at send_at)
    sent = "sent"  # the message exists (message_id)
    refused = "refused"  # the rules said no when it was due (e.g. the cap was reached meanwhile)
    failed = "failed"  # the channel refused it when it was due (e.g. the inbox was disabled)
    cancelled = "cancelled"  # an agent withdrew it


class DeferredSend(IdMixin, AccountScoped, Base):
    """A proactive message the customer's rules held back (quiet hours). A delayed job
    (``preferences.send_deferred``) sends it at ``send_at`` after checking the rules again; the
    row's status moves once, in the same transaction as the message it creates, which is what
    makes the send exactly-once."""

    __tablename__ = "deferred_sends"
    __table_args__ = (Index("ix_deferred_sends_conversation", "conversation_id", "id"),)
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"), default=None)
    # The inbox the decision chose; the send re-decides from it (the default inbox if it is gone).
    inbox_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="SET NULL"), default=None)
    purpose: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[DeferredStatus] = mapped_column(Enum(DeferredStatus, native_enum=False, length=20),
                                                   default=DeferredStatus.scheduled)
    send_at: Mapped[datetime] = mapped_column()
    explanation: Mapped[str] = mapped_column(Text, default="")  # the latest decision's, for the agent
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
