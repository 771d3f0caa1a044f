"""Changes to customers: creation, identity resolution, customer sessions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts import service
from swarmdesk.contacts.identity import IdentityClaim
from swarmdesk.contacts.models import Contact, CustomerSession, IdentityKind, Organization
from swarmdesk.contacts.schemas import (
    ContactCreate,
    ContactOut,
    ContactUpdate,
    CustomerSessionCreate,
    OrganizationCreate,
)
from swarmdesk.conversations import audience
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import Conflict, ValidationFailed
from swarmdesk.core.security import CUSTOMER_TOKEN_PREFIX, new_token, token_digest
from swarmdesk.events.types import ContactCreated, ContactUpdated


def _publish_created(uow: UnitOfWork, contact: Contact) -> None:
    uow.publish(ContactCreated(account_id=contact.account_id, audience=audience.account_staff(),
                               contact=ContactOut.model_validate(contact)))


@dataclass(slots=True)
class Sender:
    contact: Contact
    matched: IdentityClaim | None  # the verified identifier that found an existing contact
    created: bool


async def resolve_contact(uow: UnitOfWork, account_id: int, claims: Sequence[IdentityClaim], name: str) -> Contact:
    return (await resolve_sender(uow, account_id, claims, name)).contact


async def resolve_sender(uow: UnitOfWork, account_id: int, claims: Sequence[IdentityClaim], name: str) -> Sender:
    """The contact a sender is, by exact match on a verified identifier; a new contact otherwise.

    Only verified claims are matched and recorded as identities; unverified ones (an email typed into
    a widget) are kept on a new contact's profile and never join anyone else. Runs in the caller's
    transaction.
    """
    session = uow.session
    verified = [c for c in claims if c.verified]
    existing = await service.contacts_by_claims(session, account_id, verified)
    if existing:
        # Prefer the claim the channel listed first (its own handle), then the others.
        order = {(str(c.kind), c.scope, c.value): i for i, c in enumerate(verified)}
        existing.sort(key=lambda pair: order.get(pair[0], 99))
        contact = existing[0][1]
        matched = verified[order[existing[0][0]]] if existing[0][0] in order else None
        known = {key for key, _ in existing}
        for claim in verified:
            if (str(claim.kind), claim.scope, claim.value) not in known:
                service.add_identity(session, contact, claim)
                await session.flush()  # the next delivery in this batch must find it
        if name and not contact.name:
            contact.name = name[:200]
        return Sender(contact, matched, created=False)
    now = utcnow()
    contact = Contact(account_id=account_id, name=name[:200], email=service.primary_of(claims, IdentityKind.email),
                      phone=service.primary_of(claims, IdentityKind.phone), custom_attributes={}, created_at=now,
                      updated_at=now)
    session.add(contact)
    await session.flush()
    for claim in verified:
        service.add_identity(session, contact, claim)
    # Flushed now so a later delivery in the same group commit from this sender finds them.
    await session.flush()
    _publish_created(uow, contact)
    return Sender(contact, None, created=True)


async def _check_organization(uow: UnitOfWork, account_id: int, organization_id: int | None) -> None:
    if organization_id is not None and await service.get_organization(uow.session, account_id, organization_id) is None:
        raise ValidationFailed(f"organization {organization_id} does not exist in this account")


async def do_create_contact(uow: UnitOfWork, principal: StaffPrincipal, payload: ContactCreate) -> Contact:
    """An agent adds a customer. Identifiers an agent types are recorded as verified identities
    (the agent vouches for them); an identifier already owned by another contact is a conflict."""
    await _check_organization(uow, principal.account_id, payload.organization_id)
    claims = [IdentityClaim(IdentityKind.email, payload.email, verified=True)] if payload.email else []
    if payload.phone:
        claims.append(IdentityClaim(IdentityKind.phone, payload.phone, verified=True))
    taken = await service.find_by_claims(uow.session, principal.account_id, claims)
    if taken:
        raise Conflict(f"{taken[0].value} already belongs to contact {taken[0].contact_id}",
                       extra={"contact_id": taken[0].contact_id})
    now = utcnow()
    contact = Contact(account_id=principal.account_id, name=payload.name, email=payload.email, phone=payload.phone,
                      organization_id=payload.organization_id, custom_attributes=payload.custom_attributes,
                      created_at=now, updated_at=now)
    uow.session.add(contact)
    await uow.session.flush()
    for claim in claims:
        service.add_identity(uow.session, contact, claim)
    _publish_created(uow, contact)
    await uow.commit()
    return contact


async def do_update_contact(uow: UnitOfWork, principal: StaffPrincipal, contact: Contact,
                            payload: ContactUpdate) -> Contact:
    fields = payload.model_fields_set
    if "organization_id" in fields:
        await _check_organization(uow, principal.account_id, payload.organization_id)
    for name in ("name", "email", "phone", "organization_id"):
        if name in fields:
            setattr(contact, name, getattr(payload, name) if name != "name" else (payload.name or ""))
    if "custom_attributes" in fields and payload.custom_attributes is not None:
        contact.custom_attributes = {**(contact.custom_attributes or {}), **payload.custom_attributes}
    for kind, value in ((IdentityKind.email, payload.email), (IdentityKind.phone, payload.phone)):
        if value and kind.value in fields:
            claim = IdentityClaim(kind, value, verified=True)
            taken = await service.find_by_claims(uow.session, principal.account_id, [claim])
            if taken and taken[0].contact_id != contact.id:
                raise Conflict(f"{value} already belongs to contact {taken[0].contact_id}",
                               extra={"contact_id": taken[0].contact_id})
            if not taken:
                service.add_identity(uow.session, contact, claim)
    contact.updated_at = utcnow()
    uow.publish(ContactUpdated(account_id=contact.account_id, audience=audience.account_staff(),
                               contact=ContactOut.model_validate(contact)))
    await uow.commit()
    return contact


async def do_create_organization(uow: UnitOfWork, principal: StaffPrincipal, payload: OrganizationCreate) -> Organization:
    exists = await uow.session.scalar(select(Organization.id).where(
        Organization.account_id == principal.account_id, Organization.name == payload.name))
    if exists is not None:
        raise Conflict(f"an organization named {payload.name!r} already exists", extra={"organization_id": exists})
    org = Organization(account_id=principal.account_id, name=payload.name, domain=payload.domain,
                       custom_attributes=payload.custom_attributes)
    uow.session.add(org)
    await uow.commit()
    return org


async def do_start_customer_session(uow: UnitOfWork, inbox: Inbox, payload: CustomerSessionCreate,
                                    days: int) -> tuple[CustomerSession, str]:
    """An anonymous visitor (widget, API client) gets a contact of its own and a token for it.
    The email it gives is unverified and joins no existing contact."""
    claims = [IdentityClaim(IdentityKind.email, payload.email, verified=False)] if payload.email else []
    contact = await resolve_contact(uow, inbox.account_id, claims, payload.name)
    token = new_token(CUSTOMER_TOKEN_PREFIX)
    now = utcnow()
    cs = CustomerSession(account_id=inbox.account_id, contact_id=contact.id, inbox_id=inbox.id,
                         token_hash=token_digest(token), created_at=now, expires_at=now + timedelta(days=days))
    uow.session.add(cs)
    await uow.commit()
    return cs, token
