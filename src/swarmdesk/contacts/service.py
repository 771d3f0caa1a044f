from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from sqlalchemy import Select, and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.contacts.identity import IdentityClaim
from swarmdesk.contacts.models import Contact, ContactIdentity, IdentityKind, Organization
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


@lru_cache(maxsize=8)
def _by_claims_statement(n: int) -> Select:
    """One statement per number of claims, built once (building it costs more than running it)."""
    conditions = [and_(ContactIdentity.kind == bindparam(f"k{i}"), ContactIdentity.scope == bindparam(f"s{i}"),
                       ContactIdentity.value == bindparam(f"v{i}")) for i in range(n)]
    return (select(Contact, ContactIdentity.kind, ContactIdentity.scope, ContactIdentity.value)
            .join(ContactIdentity, Contact.id == ContactIdentity.contact_id)
            .where(ContactIdentity.account_id == bindparam("account_id"), or_(*conditions)))


async def contacts_by_claims(session: AsyncSession, account_id: int,
                             claims: Sequence[IdentityClaim]) -> list[tuple[tuple[str, str, str], Contact]]:
    """``((kind, scope, value), contact)`` for each identity matching the claims, in one statement."""
    if not claims:
        return []
    params: dict[str, object] = {"account_id": account_id}
    for i, c in enumerate(claims):
        params.update({f"k{i}": c.kind, f"s{i}": c.scope, f"v{i}": c.value})
    rows = await session.execute(_by_claims_statement(len(claims)), params)
    return [((str(kind), scope, value), contact) for contact, kind, scope, value in rows]


def add_identity(session: AsyncSession, contact: Contact, claim: IdentityClaim) -> ContactIdentity:
    identity = ContactIdentity(account_id=contact.account_id, contact_id=contact.id, kind=claim.kind,
                               scope=claim.scope, value=claim.value, verified=claim.verified, created_at=utcnow())
    session.add(identity)
    return identity


async def list_contacts(session: AsyncSession, account_id: int, *, q: str | None, organization_id: int | None,
                        after_id: int | None, limit: int) -> list[Contact]:
    stmt = select(Contact).where(Contact.account_id == account_id).order_by(Contact.id.desc()).limit(limit)
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
