"""Canned responses: saved replies agents insert in the reply box, with placeholders filled in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from swarmdesk.auth.dependencies import ConversationsReader, Uow
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.canned_responses import actions, service
from swarmdesk.canned_responses.dependencies import CannedEditor
from swarmdesk.canned_responses.models import CannedResponse
from swarmdesk.canned_responses.schemas import (
    CannedResponseCreate,
    CannedResponseOut,
    CannedResponseUpdate,
    RenderedOut,
)
from swarmdesk.conversations import service as conversations_service
from swarmdesk.core.errors import BadRequest, NotFound
from swarmdesk.core.pagination import decode_cursor, encode_cursor
from swarmdesk.core.schemas import Page

router = APIRouter(prefix="/api/v1", tags=["canned_responses"])

BIG = 2**63 - 1
CannedId = Annotated[int, Path(ge=1, le=BIG)]


async def _canned(principal: StaffPrincipal, uow: Uow, canned_id: int) -> CannedResponse:
    canned = await service.get(uow.session, principal.account_id, canned_id)
    if canned is None:
        raise NotFound(f"canned response {canned_id} not found")
    return canned


@router.get("/canned-responses", response_model=Page[CannedResponseOut],
            summary="Canned responses by short code; q matches a short-code prefix or the title or body")
async def list_canned_responses(principal: ConversationsReader, uow: Uow,
                                q: Annotated[str | None, Query(max_length=100)] = None,
                                cursor: Annotated[str | None, Query(max_length=200)] = None,
                                limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Page[CannedResponseOut]:
    after = None
    if cursor:
        (after,) = decode_cursor(cursor, 1)
        if not isinstance(after, str):
            raise BadRequest("cursor is not valid; use the next_cursor a previous page returned")
    rows = await service.search(uow.session, principal.account_id, q.strip() if q else None, after, limit + 1)
    page = rows[:limit]
    return Page(items=[CannedResponseOut.model_validate(c) for c in page],
                next_cursor=encode_cursor([page[-1].short_code]) if len(rows) > limit else None)


@router.post("/canned-responses", response_model=CannedResponseOut, status_code=201)
async def create_canned_response(principal: CannedEditor, uow: Uow,
                                 payload: CannedResponseCreate) -> CannedResponseOut:
    return CannedResponseOut.model_validate(await actions.do_create_canned_response(uow, principal, payload))


@router.get("/canned-responses/{canned_id}", response_model=CannedResponseOut)
async def get_canned_response(principal: ConversationsReader, uow: Uow, canned_id: CannedId) -> CannedResponseOut:
    return CannedResponseOut.model_validate(await _canned(principal, uow, canned_id))


@router.patch("/canned-responses/{canned_id}", response_model=CannedResponseOut)
async def update_canned_response(principal: CannedEditor, uow: Uow, canned_id: CannedId,
                                 payload: CannedResponseUpdate) -> CannedResponseOut:
    canned = await _canned(principal, uow, canned_id)
    return CannedResponseOut.model_validate(await actions.do_update_canned_response(uow, principal, canned, payload))


@router.delete("/canned-responses/{canned_id}", status_code=204, response_class=Response)
async def delete_canned_response(principal: CannedEditor, uow: Uow, canned_id: CannedId) -> Response:
    await actions.do_delete_canned_response(uow, principal, await _canned(principal, uow, canned_id))
    return Response(status_code=204)


@router.get("/canned-responses/{canned_id}/render", response_model=RenderedOut,
            summary="The text with the conversation's contact, the caller's name and the conversation id filled in")
async def render_canned_response(principal: ConversationsReader, uow: Uow, canned_id: CannedId,
                                 conversation_id: Annotated[int, Query(ge=1, le=BIG)]) -> RenderedOut:
    canned = await _canned(principal, uow, canned_id)
    conversation = await conversations_service.get_visible(uow.session, principal, conversation_id)
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} not found")
    values = await service.placeholder_values(uow.session, principal, conversation)
    return RenderedOut(canned_response_id=canned.id, conversation_id=conversation.id,
                       text=service.render(canned.body, values))

