from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from swarmdesk.core.models import AccountScoped, Base, BigId, IdMixin, Timestamps


class CannedResponse(IdMixin, AccountScoped, Timestamps, Base):
    """A saved reply agents insert by short code; placeholders are filled by ``service.render``."""

    __tablename__ = "canned_responses"
    __table_args__ = (UniqueConstraint("account_id", "short_code"),)
    short_code: Mapped[str] = mapped_column(String(50))  # stored lower-case
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"), default=None)
