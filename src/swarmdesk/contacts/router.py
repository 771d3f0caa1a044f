from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from swarmdesk.auth.dependencies import ContactsReader, ContactsWriter, Uow
from swarmdesk.contacts import actions, service
from swarmdesk.contacts.schemas import (
    ContactCreate,
    ContactDetailOut,
    ContactOut,
    ContactUpdate,
    IdentityOut,
    OrganizationCreate,
    OrganizationOut,
)
from swarmdesk.core.errors import BadRequest, NotFound
from swarmdesk.core.schemas import Page

router = APIRouter(prefix="/api/v1", tags=["contacts"])

Limit = Annotated[int, Query(ge=1, le=200)]


def _after(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not (cursor.isascii() and cursor.isdigit()):  # "²".isdigit() is True; int("²") fails
        raise BadRequest("cursor is not valid; use the next_cursor a previous page returned")
    return int(cursor)


@router.get("/contacts", response_model=Page[ContactOut])
async def list_contacts(principal: ContactsReader, uow: Uow,
                        q: Annotated[str | None, Query(max_length=200, description="name, email, phone or handle")] = None,
                        organization_id: int | None = None, cursor: str | None = None,
                        limit: Limit = 50) -> Page[ContactOut]:
    rows = await service.list_contacts(uow.session, principal.account_id, q=q, organization_id=organization_id,
                                       after_id=_after(cursor), limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return Page(items=[ContactOut.model_validate(c) for c in page],
                next_cursor=str(page[-1].id) if more else None)


@router.post("/contacts", response_model=ContactDetailOut, status_code=201)
async def create_contact(principal: ContactsWriter, uow: Uow, payload: ContactCreate) -> ContactDetailOut:
    contact = await actions.do_create_contact(uow, principal, payload)
    identities = await service.identities_of(uow.session, contact.id)
    return ContactDetailOut(**ContactOut.model_validate(contact).model_dump(),
                            identities=[IdentityOut.model_validate(i) for i in identities])


@router.get("/contacts/{contact_id}", response_model=ContactDetailOut)
async def get_contact(principal: ContactsReader, uow: Uow, contact_id: int) -> ContactDetailOut:
    contact = await service.get_contact(uow.session, principal.account_id, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} not found")
    identities = await service.identities_of(uow.session, contact.id)
    return ContactDetailOut(**ContactOut.model_validate(contact).model_dump(),
                            identities=[IdentityOut.model_validate(i) for i in identities])


@router.patch("/contacts/{contact_id}", response_model=ContactOut)
async def update_contact(principal: ContactsWriter, uow: Uow, contact_id: int, payload: ContactUpdate) -> ContactOut:
    contact = await service.get_contact(uow.session, principal.account_id, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} not found")
    return ContactOut.model_validate(await actions.do_update_contact(uow, principal, contact, payload))


@router.get("/organizations", response_model=Page[OrganizationOut])
async def list_organizations(principal: ContactsReader, uow: Uow, cursor: str | None = None,
                             limit: Limit = 50) -> Page[OrganizationOut]:
    rows = await service.list_organizations(uow.session, principal.account_id, _after(cursor), limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return Page(items=[OrganizationOut.model_validate(o) for o in page],
                next_cursor=str(page[-1].id) if more else None)


@router.post("/organizations", response_model=OrganizationOut, status_code=201)
async def create_organization(principal: ContactsWriter, uow: Uow, payload: OrganizationCreate) -> OrganizationOut:
    return OrganizationOut.model_validate(await actions.do_create_organization(uow, principal, payload))


@router.get("/organizations/{organization_id}", response_model=OrganizationOut)
async def get_organization(principal: ContactsReader, uow: Uow, organization_id: int) -> OrganizationOut:
    org = await service.get_organization(uow.session, principal.account_id, organization_id)
    if org is None:
        raise NotFound(f"organization {organization_id} not found")
    return OrganizationOut.model_validate(org)
