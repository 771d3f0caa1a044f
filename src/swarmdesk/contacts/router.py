from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from swarmdesk.auth.dependencies import ContactsReader, ContactsWriter, Uow
from swarmdesk.contacts import actions, service
from swarmdesk.contacts.models import Contact, ContactMergeSuggestion, SuggestionStatus
from swarmdesk.contacts.schemas import (
    ContactCreate,
    ContactDetailOut,
    ContactMergeCreate,
    ContactMergeOut,
    ContactNoteCreate,
    ContactNoteOut,
    ContactOut,
    ContactUpdate,
    IdentityOut,
    MergeSuggestionOut,
    OrganizationCreate,
    OrganizationOut,
    SuggestionAccept,
)
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import BadRequest, NotFound
from swarmdesk.core.pagination import decode_cursor, encode_cursor
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


# --- merges ---------------------------------------------------------------------------------------

async def _contact(uow: UnitOfWork, account_id: int, contact_id: int) -> Contact:
    contact = await service.get_contact(uow.session, account_id, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} not found")
    return contact


def _score_cursor(cursor: str | None) -> tuple[float, int] | None:
    if cursor is None:
        return None
    score, last_id = decode_cursor(cursor, 2)
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not isinstance(last_id, int):
        raise BadRequest("cursor is not valid; use the next_cursor a previous page returned")
    return float(score), last_id


async def _suggestion_page(uow: UnitOfWork, account_id: int, *, status: SuggestionStatus | None,
                           contact_id: int | None, cursor: str | None, limit: int) -> Page[MergeSuggestionOut]:
    rows = await service.list_suggestions(uow.session, account_id, status=status, contact_id=contact_id,
                                          after=_score_cursor(cursor), limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return Page(items=await service.suggestions_out(uow.session, page),
                next_cursor=encode_cursor([page[-1].score, page[-1].id]) if more else None)


@router.get("/merge-suggestions", response_model=Page[MergeSuggestionOut])
async def list_merge_suggestions(principal: ContactsReader, uow: Uow,
                                 status: SuggestionStatus | None = SuggestionStatus.open, cursor: str | None = None,
                                 limit: Limit = 50) -> Page[MergeSuggestionOut]:
    """The account's queue of probable duplicates, most confident first."""
    return await _suggestion_page(uow, principal.account_id, status=status, contact_id=None, cursor=cursor,
                                  limit=limit)


@router.get("/contacts/{contact_id}/merge-suggestions", response_model=Page[MergeSuggestionOut])
async def list_contact_merge_suggestions(principal: ContactsReader, uow: Uow, contact_id: int,
                                         status: SuggestionStatus | None = None, cursor: str | None = None,
                                         limit: Limit = 50) -> Page[MergeSuggestionOut]:
    await _contact(uow, principal.account_id, contact_id)
    return await _suggestion_page(uow, principal.account_id, status=status, contact_id=contact_id, cursor=cursor,
                                  limit=limit)


async def _suggestion(uow: UnitOfWork, account_id: int, suggestion_id: int) -> ContactMergeSuggestion:
    suggestion = await service.get_suggestion(uow.session, account_id, suggestion_id)
    if suggestion is None:
        raise NotFound(f"merge suggestion {suggestion_id} not found")
    return suggestion


@router.post("/merge-suggestions/{suggestion_id}/accept", response_model=ContactMergeOut, status_code=201)
async def accept_merge_suggestion(principal: ContactsWriter, uow: Uow, suggestion_id: int,
                                  payload: SuggestionAccept) -> ContactMergeOut:
    """Merge the two contacts: into the older one (send ``{}``) unless ``survivor_id`` picks the other.
    The body is required so that a JSON ``null`` is refused like any other wrong type."""
    suggestion = await _suggestion(uow, principal.account_id, suggestion_id)
    merge = await actions.do_accept_suggestion(uow, principal, suggestion, payload.survivor_id)
    return ContactMergeOut.model_validate(merge)


@router.post("/merge-suggestions/{suggestion_id}/dismiss", response_model=MergeSuggestionOut)
async def dismiss_merge_suggestion(principal: ContactsWriter, uow: Uow, suggestion_id: int) -> MergeSuggestionOut:
    suggestion = await _suggestion(uow, principal.account_id, suggestion_id)
    suggestion = await actions.do_dismiss_suggestion(uow, principal, suggestion)
    return (await service.suggestions_out(uow.session, [suggestion]))[0]


@router.post("/contacts/{contact_id}/merge", response_model=ContactMergeOut, status_code=201)
async def merge_contacts(principal: ContactsWriter, uow: Uow, contact_id: int,
                         payload: ContactMergeCreate) -> ContactMergeOut:
    """Merge ``other_contact_id`` into this contact (this one survives)."""
    survivor = await _contact(uow, principal.account_id, contact_id)
    merged = await _contact(uow, principal.account_id, payload.other_contact_id)
    return ContactMergeOut.model_validate(await actions.do_merge_contacts(uow, principal, survivor, merged))


@router.get("/contacts/{contact_id}/merges", response_model=Page[ContactMergeOut])
async def list_contact_merges(principal: ContactsReader, uow: Uow, contact_id: int, cursor: str | None = None,
                              limit: Limit = 50) -> Page[ContactMergeOut]:
    """Merges this contact took part in, as survivor or as the merged one; newest first."""
    await _contact(uow, principal.account_id, contact_id)
    rows = await service.list_merges(uow.session, principal.account_id, contact_id, _after(cursor), limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return Page(items=[ContactMergeOut.model_validate(m) for m in page],
                next_cursor=str(page[-1].id) if more else None)


@router.post("/contact-merges/{merge_id}/undo", response_model=ContactMergeOut)
async def undo_contact_merge(principal: ContactsWriter, uow: Uow, merge_id: int) -> ContactMergeOut:
    merge = await service.get_merge(uow.session, principal.account_id, merge_id)
    if merge is None:
        raise NotFound(f"contact merge {merge_id} not found")
    return ContactMergeOut.model_validate(await actions.do_undo_merge(uow, principal, merge))


@router.get("/contacts/{contact_id}/notes", response_model=list[ContactNoteOut], summary="Notes about the customer, newest first")
async def list_contact_notes(principal: ContactsReader, uow: Uow, contact_id: int) -> list[ContactNoteOut]:
    contact = await service.get_contact(uow.session, principal.account_id, contact_id)
    if contact is None:
        raise NotFound("contact not found")
    return await service.notes_out(uow.session, await service.notes_of(uow.session, contact.id))


@router.post("/contacts/{contact_id}/notes", response_model=ContactNoteOut, status_code=201)
async def add_contact_note(principal: ContactsWriter, uow: Uow, contact_id: int,
                           payload: ContactNoteCreate) -> ContactNoteOut:
    contact = await service.get_contact(uow.session, principal.account_id, contact_id)
    if contact is None:
        raise NotFound("contact not found")
    note = await actions.do_add_contact_note(uow, principal, contact, payload)
    return (await service.notes_out(uow.session, [note]))[0]
