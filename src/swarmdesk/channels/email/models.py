from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from swarmdesk.core.models import AccountScoped, Base, BigId


class MailboxState(AccountScoped, Base):
    """How far an IMAP folder has been ingested. Written in the same transaction as the mails it
    covers, so a crash re-fetches at most what was not committed (and Message-ID idempotency
    drops what was)."""

    __tablename__ = "email_mailbox_states"
    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True)
    folder: Mapped[str] = mapped_column(String(200), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
