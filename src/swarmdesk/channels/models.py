from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from swarmdesk.core.models import AccountScoped, Base, BigId, IdMixin, Timestamps


class Inbox(IdMixin, AccountScoped, Timestamps, Base):
    """One channel instance (an email address, a widget, a phone number, an API integration)."""

    __tablename__ = "inboxes"
    name: Mapped[str] = mapped_column(String(200))
    channel_kind: Mapped[str] = mapped_column(String(40))
    # Public, unguessable identifier used in webhook and widget URLs (never the numeric id).
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    # The adapter's config, encrypted with SecretBox; secrets never leave the server.
    config_encrypted: Mapped[str] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_active: Mapped[bool] = mapped_column(default=True)


class InboundReceipt(IdMixin, AccountScoped, Base):
    """What a channel delivered to us, recorded in the same transaction as its effect.

    ``delivery_id`` is the vendor's delivery id (Standard Webhooks ``webhook-id``); a replay of the
    same delivery with different content is refused, a retry of the same content is answered with
    the original result.
    """

    __tablename__ = "inbound_receipts"
    __table_args__ = (UniqueConstraint("inbox_id", "delivery_id"),)
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    delivery_id: Mapped[str] = mapped_column(String(200))
    body_sha256: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[int | None] = mapped_column(BigId, default=None)
    received_at: Mapped[datetime] = mapped_column()


class InboundQuarantine(IdMixin, AccountScoped, Base):
    """What a channel delivered that could not become a message (an unparseable mail, a bounce for
    a message we do not know): kept with its raw bytes and a reason an admin can read, never dropped."""

    __tablename__ = "inbound_quarantine"
    __table_args__ = (Index("ix_inbound_quarantine_inbox", "inbox_id", "id"),
                      UniqueConstraint("inbox_id", "content_sha256"))
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(1000))
    source: Mapped[str] = mapped_column(String(40))  # imap, lmtp, upload
    # The raw bytes in the attachment store, under a server-generated key.
    storage_key: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column()
    # Idempotency: the same bytes quarantined twice (an IMAP re-fetch after a crash) are one record.
    content_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    released_at: Mapped[datetime | None] = mapped_column(default=None)
