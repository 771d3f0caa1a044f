from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from swarmdesk.core.models import AccountScoped, Base, BigId, IdMixin, Timestamps


class IdentityKind(enum.StrEnum):
    email = "email"
    phone = "phone"  # E.164
    handle = "handle"  # a channel's own user id, scoped to the inbox that saw it


class Organization(IdMixin, AccountScoped, Timestamps, Base):
    __tablename__ = "organizations"
    __table_args__ = (UniqueConstraint("account_id", "name"),)
    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str | None] = mapped_column(String(255), default=None)
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Contact(IdMixin, AccountScoped, Timestamps, Base):
    __tablename__ = "contacts"
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320), default=None, index=True)
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    organization_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("organizations.id", ondelete="SET NULL"), default=None, index=True)
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    # Set when an agent merged this contact into another (the survivor); undoing the merge clears it.
    merged_into_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("contacts.id", ondelete="SET NULL"), default=None, index=True)


class ContactIdentity(IdMixin, AccountScoped, Base):
    __tablename__ = "contact_identities"
    # scope is "" for email and phone, "inbox:<id>" for channel handles.
    __table_args__ = (UniqueConstraint("account_id", "kind", "scope", "value"),)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[IdentityKind] = mapped_column(Enum(IdentityKind, native_enum=False, length=20))
    scope: Mapped[str] = mapped_column(String(64), default="")
    value: Mapped[str] = mapped_column(String(320))
    verified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column()


class CustomerSession(IdMixin, AccountScoped, Base):
    """A customer's credential for the widget or the portal: it can only reach its own contact.

    A widget or API session is bound to the inbox it was opened on. A portal session (signed in
    by a magic link) has no inbox: it sees the contact's conversations on every channel, travels
    in an HttpOnly cookie and carries the CSRF token its pages echo."""

    __tablename__ = "customer_sessions"
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    inbox_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("inboxes.id", ondelete="CASCADE"), default=None)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()


class SuggestionStatus(enum.StrEnum):
    open = "open"
    accepted = "accepted"  # an agent merged the two contacts
    dismissed = "dismissed"  # an agent said they are different people (or one was merged elsewhere)


class ContactMergeSuggestion(IdMixin, AccountScoped, Base):
    """Two contacts that are probably one person, on evidence too weak to join them automatically.

    One row per pair, whichever contact the evidence was found from: ``contact_id`` is the newer
    contact, ``candidate_id`` the older one (the default survivor when an agent accepts)."""

    __tablename__ = "contact_merge_suggestions"
    __table_args__ = (
        UniqueConstraint("contact_id", "candidate_id"),
        Index("ix_contact_merge_suggestions_queue", "account_id", "status", "score", "id"),
    )
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    candidate_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    score: Mapped[float] = mapped_column()  # 0..1, combined from the reasons' weights
    reasons: Mapped[list[str]] = mapped_column(default=list)
    status: Mapped[SuggestionStatus] = mapped_column(Enum(SuggestionStatus, native_enum=False, length=20),
                                                     default=SuggestionStatus.open)
    created_at: Mapped[datetime] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_by_user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL"), default=None)


class ContactMerge(IdMixin, AccountScoped, Base):
    """One merge of ``merged`` into ``survivor``, with exactly what it moved and changed, so that it
    can be undone without touching what happened to either contact since."""

    __tablename__ = "contact_merges"
    survivor_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    merged_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    actor_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"),
                                                      default=None)
    # identity_ids, conversation_ids, survivor_before / survivor_filled (profile fields the merge
    # filled in, before and after), attributes_added, dismissed_suggestion_ids.
    moved: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column()
    undone_at: Mapped[datetime | None] = mapped_column(default=None)
    undone_by_user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL"), default=None)


class ContactNote(IdMixin, AccountScoped, Base):
    """What the team knows about a customer beyond any one conversation (shown in the profile)."""

    __tablename__ = "contact_notes"
    __table_args__ = (Index("ix_contact_notes_contact_id", "contact_id", "id"),)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"), default=None)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
