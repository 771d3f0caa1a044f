"""The customer portal's sign-in links."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from swarmdesk.core.models import AccountScoped, Base, BigId, IdMixin


class PortalMagicLink(IdMixin, AccountScoped, Base):
    """One mailed sign-in link: single use, short-lived.

    Only a digest of the token is kept for look-ups. The token itself is derived from ``seed``
    with the server's secret key (see ``service.link_token``), so the mail job can build it
    without the token ever being stored or put in a job's payload; the seed is cleared once
    the link is used."""

    __tablename__ = "portal_magic_links"
    # Rate limit: links sent to one address of an account within the last hour.
    __table_args__ = (Index("ix_portal_magic_links_email", "account_id", "email", "created_at"),)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    seed: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
