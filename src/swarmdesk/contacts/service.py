from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, bindparam, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts.models import User
from swarmdesk.contacts.identity import IdentityClaim
from swarmdesk.contacts.models import (
    Contact,
    ContactIdentity,
    ContactMerge,
    ContactMergeSuggestion,
    ContactNote,
    IdentityKind,
    Organization,
    SuggestionStatus,
)
from swarmdesk.contacts.schemas import ContactNoteOut, ContactSummary, MergeSuggestionOut
from swarmdesk.conversations.models import Conversation
from swarmdesk.core.clock import utcnow


async def get_contact(session: AsyncSession, account_id: int, contact_id: int) -> Contact | None:
    return await session.scalar(select(Contact).where(Contact.id == contact_id, Contact.account_id == account_id))


async def get_organization(session: AsyncSession, account_id: int, org_id: int) -> Organization | None:
    return await session.scalar(
        select(Organization).where(Organization.id == org_id, Organization.account_id == account_id))


async def identities_of(session: AsyncSession, contact_id: int) -> list[ContactIdentity]:
    return list((await session.scalars(
        select(ContactIdentity).where(ContactIdentity.contact_id == contact_id).order_by(ContactIdentity.id))).all())


async def find_by_claims(session: AsyncSession, account_id: int,
                         claims: Sequence[IdentityClaim]) -> list[ContactIdentity]:
    if not claims:
        return []
    conditions = [and_(ContactIdentity.kind == c.kind, ContactIdentity.scope == c.scope,
                       ContactIdentity.value == c.value) for c in claims]
    return list((await session.scalars(
        select(ContactIdentity).where(ContactIdentity.account_id == account_id, or_(*conditions)))).all())


_CLAIM_KEY = tuple_(ContactIdentity.kind, ContactIdentity.scope, ContactIdentity.value)
# Built once: constructing a statement costs more than running it on the intake hot path.
_BY_CLAIM_KEYS = (
    select(Contact, ContactIdentity.kind, ContactIdentity.scope, ContactIdentity.value)
    .join(ContactIdentity, Contact.id == ContactIdentity.contact_id)
    .where(ContactIdentity.account_id == bindparam("account_id"),
           _CLAIM_KEY.in_(bindparam("keys", expanding=True, type_=_CLAIM_KEY.type))))

ClaimKey = tuple[str, str, str]  # (kind, scope, value): what an identity is unique on within an account


def claim_key(claim: IdentityClaim) -> ClaimKey:
    return (str(claim.kind), claim.scope, claim.value)


async def contacts_by_claims(session: AsyncSession, account_id: int,
                             claims: Sequence[IdentityClaim]) -> list[tuple[ClaimKey, Contact]]:
    """``((kind, scope, value), contact)`` for each identity matching the claims, in one statement
    however many claims (a whole group commit's senders are asked together)."""
    if not claims:
        return []
    keys = list(dict.fromkeys((c.kind, c.scope, c.value) for c in claims))
    rows = await session.execute(_BY_CLAIM_KEYS, {"account_id": account_id, "keys": keys})
    return [((str(kind), scope, value), contact) for contact, kind, scope, value in rows]


def add_identity(session: AsyncSession, contact: Contact, claim: IdentityClaim) -> ContactIdentity:
    identity = ContactIdentity(account_id=contact.account_id, contact_id=contact.id, kind=claim.kind,
                               scope=claim.scope, value=claim.value, verified=claim.verified, created_at=utcnow())
    session.add(identity)
    return identity


async def list_contacts(session: AsyncSession, account_id: int, *, q: str | None, organization_id: int | None,
                        after_id: int | None, limit: int) -> list[Contact]:
    # Merged contacts live on in their survivor; they are still found by id (GET shows merged_into_id).
    stmt = (select(Contact).where(Contact.account_id == account_id, Contact.merged_into_id.is_(None))
            .order_by(Contact.id.desc()).limit(limit))
    if after_id is not None:
        stmt = stmt.where(Contact.id < after_id)
    if organization_id is not None:
        stmt = stmt.where(Contact.organization_id == organization_id)
    if q:
        # Case-insensitive on both backends (PostgreSQL's LIKE is not); "%" and "_" match themselves.
        ident = select(ContactIdentity.contact_id).where(
            ContactIdentity.account_id == account_id, ContactIdentity.value.icontains(q, autoescape=True))
        stmt = stmt.where(or_(*(column.icontains(q, autoescape=True)
                                for column in (Contact.name, Contact.email, Contact.phone)),
                              Contact.id.in_(ident)))
    return list((await session.scalars(stmt)).all())


async def list_organizations(session: AsyncSession, account_id: int, after_id: int | None,
                             limit: int) -> list[Organization]:
    stmt = select(Organization).where(Organization.account_id == account_id).order_by(Organization.id.desc())
    if after_id is not None:
        stmt = stmt.where(Organization.id < after_id)
    return list((await session.scalars(stmt.limit(limit))).all())


def primary_of(claims: Sequence[IdentityClaim], kind: IdentityKind) -> str | None:
    return next((c.value for c in claims if c.kind == kind), None)


# --- merges ---------------------------------------------------------------------------------------

async def lock_contacts(session: AsyncSession, account_id: int, ids: Sequence[int]) -> dict[int, Contact]:
    """The account's contacts with these ids, re-read and locked for the rest of the transaction
    (PostgreSQL; SQLite's writers are serialized anyway), so two concurrent merges of the same
    contacts cannot both pass their checks."""
    rows = await session.scalars(
        select(Contact).where(Contact.account_id == account_id, Contact.id.in_(ids)).order_by(Contact.id)
        .with_for_update().execution_options(populate_existing=True))
    return {c.id: c for c in rows}


async def lock_merge(session: AsyncSession, merge: ContactMerge) -> ContactMerge:
    locked = await session.scalar(select(ContactMerge).where(ContactMerge.id == merge.id).with_for_update()
                                  .execution_options(populate_existing=True))
    assert locked is not None
    return locked


async def conversations_of(session: AsyncSession, account_id: int, contact_id: int) -> list[Conversation]:
    return list((await session.scalars(select(Conversation).where(
        Conversation.account_id == account_id, Conversation.contact_id == contact_id).order_by(Conversation.id))).all())


async def get_suggestion(session: AsyncSession, account_id: int, suggestion_id: int) -> ContactMergeSuggestion | None:
    return await session.scalar(select(ContactMergeSuggestion).where(
        ContactMergeSuggestion.id == suggestion_id, ContactMergeSuggestion.account_id == account_id))


async def suggestions_involving(session: AsyncSession, contact_id: int,
                                status: SuggestionStatus | None = None) -> list[ContactMergeSuggestion]:
    stmt = select(ContactMergeSuggestion).where(or_(ContactMergeSuggestion.contact_id == contact_id,
                                                    ContactMergeSuggestion.candidate_id == contact_id))
    if status is not None:
        stmt = stmt.where(ContactMergeSuggestion.status == status)
    return list((await session.scalars(stmt.order_by(ContactMergeSuggestion.id))).all())


async def get_pair_suggestion(session: AsyncSession, a: int, b: int) -> ContactMergeSuggestion | None:
    return await session.scalar(select(ContactMergeSuggestion).where(
        ContactMergeSuggestion.contact_id == max(a, b), ContactMergeSuggestion.candidate_id == min(a, b)))


async def list_suggestions(session: AsyncSession, account_id: int, *, status: SuggestionStatus | None,
                           contact_id: int | None, after: tuple[float, int] | None,
                           limit: int) -> list[ContactMergeSuggestion]:
    """Most confident first (then newest), keyset-paginated on (score, id)."""
    s = ContactMergeSuggestion
    stmt = select(s).where(s.account_id == account_id).order_by(s.score.desc(), s.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(s.status == status)
    if contact_id is not None:
        stmt = stmt.where(or_(s.contact_id == contact_id, s.candidate_id == contact_id))
    if after is not None:
        score, last_id = after
        stmt = stmt.where(or_(s.score < score, and_(s.score == score, s.id < last_id)))
    return list((await session.scalars(stmt)).all())


async def suggestions_out(session: AsyncSession, rows: Sequence[ContactMergeSuggestion]) -> list[MergeSuggestionOut]:
    if not rows:
        return []
    ids = {s.contact_id for s in rows} | {s.candidate_id for s in rows}
    contacts = {c.id: c for c in (await session.scalars(select(Contact).where(Contact.id.in_(ids)))).all()}
    return [MergeSuggestionOut(
        id=s.id, contact=ContactSummary.model_validate(contacts[s.contact_id]),
        candidate=ContactSummary.model_validate(contacts[s.candidate_id]), score=s.score, reasons=list(s.reasons),
        status=s.status, created_at=s.created_at, decided_at=s.decided_at, decided_by_user_id=s.decided_by_user_id)
        for s in rows]


async def get_merge(session: AsyncSession, account_id: int, merge_id: int) -> ContactMerge | None:
    return await session.scalar(select(ContactMerge).where(ContactMerge.id == merge_id,
                                                           ContactMerge.account_id == account_id))


async def list_merges(session: AsyncSession, account_id: int, contact_id: int, before_id: int | None,
                      limit: int) -> list[ContactMerge]:
    """Merges the contact took part in, as survivor or as the merged one; newest first."""
    stmt = (select(ContactMerge)
            .where(ContactMerge.account_id == account_id,
                   or_(ContactMerge.survivor_id == contact_id, ContactMerge.merged_id == contact_id))
            .order_by(ContactMerge.id.desc()).limit(limit))
    if before_id is not None:
        stmt = stmt.where(ContactMerge.id < before_id)
    return list((await session.scalars(stmt)).all())


async def notes_of(session: AsyncSession, contact_id: int, limit: int = 50) -> list[ContactNote]:
    """Newest first."""
    return list((await session.scalars(select(ContactNote).where(ContactNote.contact_id == contact_id)
                                       .order_by(ContactNote.id.desc()).limit(limit))).all())


async def notes_out(session: AsyncSession, notes: Sequence[ContactNote]) -> list[ContactNoteOut]:
    author_ids = {n.author_id for n in notes if n.author_id}
    names = dict((await session.execute(select(User.id, User.name).where(User.id.in_(author_ids)))).all()) \
        if author_ids else {}
    return [ContactNoteOut(id=n.id, contact_id=n.contact_id, author_id=n.author_id,
                           author_name=names.get(n.author_id) if n.author_id else None, body=n.body,
                           created_at=n.created_at) for n in notes]
