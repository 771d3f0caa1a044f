from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
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
