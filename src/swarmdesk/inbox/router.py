"""The agent workspace's inbox: views and filters, unread state and counts, saved views, bulk changes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from swarmdesk.auth.dependencies import ConversationsReader, ConversationsWriter, Uow
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.dependencies import ReadableConversation
from swarmdesk.conversations.schemas import ConversationOut
from swarmdesk.core.errors import NotFound
from swarmdesk.core.schemas import Page
from swarmdesk.inbox import actions, service
from swarmdesk.inbox.models import SavedView
from swarmdesk.inbox.schemas import (
    BulkUpdate,
    InboxCountsOut,
    InboxQuery,
    InboxRowOut,
    ReadStateOut,
    SavedViewCreate,
    SavedViewOut,
    SavedViewUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["inbox"])


@router.get("/inbox/conversations", response_model=Page[InboxRowOut],
            summary="A view of the inbox: filtered, sorted, a page at a time, with unread state")
async def list_inbox(principal: ConversationsReader, uow: Uow,
                     query: Annotated[InboxQuery, Query()]) -> Page[InboxRowOut]:
    filters, sort, _ = await service.resolve(uow.session, principal, query)
    page = await service.list_page(uow.session, principal, filters, sort, query.cursor, query.limit)
    return Page(items=page.rows, next_cursor=page.next_cursor)


@router.get("/inbox/counts", response_model=InboxCountsOut,
            summary="Open and unread conversations in each view, counted up to a cap")
async def inbox_counts(principal: ConversationsReader, uow: Uow) -> InboxCountsOut:
    return await service.counts(uow.session, principal)


@router.post("/conversations/{conversation_id}/read", response_model=ReadStateOut,
             summary="Mark the conversation read (for the caller) up to its newest message")
async def mark_read(principal: ConversationsReader, conversation: ReadableConversation, uow: Uow) -> ReadStateOut:
    read = await actions.do_mark_conversation_read(uow, principal, conversation)
    return ReadStateOut(conversation_id=conversation.id, last_read_message_id=read.last_read_message_id,
                        read_at=read.read_at, unread=service.is_unread(conversation, read.read_at))


@router.post("/inbox/bulk", response_model=list[ConversationOut],
             summary="Assign, move, change status or tags of up to 100 conversations at once (all or nothing)")
async def bulk_update(principal: ConversationsWriter, uow: Uow, payload: BulkUpdate) -> list[ConversationOut]:
    conversations = await actions.do_bulk_update_conversations(uow, principal, payload)
    return await conversations_service.conversations_out(uow.session, conversations)


# --- saved views ---------------------------------------------------------------------------------

SavedViewId = Annotated[int, Path(ge=1, le=2**63 - 1)]


async def _saved_view(principal: StaffPrincipal, uow: Uow, view_id: int) -> SavedView:
    view = await service.get_saved_view(uow.session, principal, view_id)
    if view is None:
        raise NotFound(f"saved view {view_id} not found")
    return view


@router.get("/inbox/saved-views", response_model=list[SavedViewOut],
            summary="My saved views, then those shared with the account")
async def list_saved_views(principal: ConversationsReader, uow: Uow) -> list[SavedViewOut]:
    return [service.saved_view_out(v, principal) for v in await service.saved_views_for(uow.session, principal)]


@router.post("/inbox/saved-views", response_model=SavedViewOut, status_code=201)
async def create_saved_view(principal: ConversationsReader, uow: Uow, payload: SavedViewCreate) -> SavedViewOut:
    view = await actions.do_create_saved_view(uow, principal, payload)
    return service.saved_view_out(view, principal)


@router.get("/inbox/saved-views/{view_id}", response_model=SavedViewOut)
async def get_saved_view(principal: ConversationsReader, uow: Uow, view_id: SavedViewId) -> SavedViewOut:
    return service.saved_view_out(await _saved_view(principal, uow, view_id), principal)


@router.patch("/inbox/saved-views/{view_id}", response_model=SavedViewOut,
              summary="Change a saved view (its owner; an admin too if it is shared)")
async def update_saved_view(principal: ConversationsReader, uow: Uow, view_id: SavedViewId,
                            payload: SavedViewUpdate) -> SavedViewOut:
    view = await actions.do_update_saved_view(uow, principal, await _saved_view(principal, uow, view_id), payload)
    return service.saved_view_out(view, principal)


@router.delete("/inbox/saved-views/{view_id}", status_code=204, response_class=Response)
async def delete_saved_view(principal: ConversationsReader, uow: Uow, view_id: SavedViewId) -> Response:
    await actions.do_delete_saved_view(uow, principal, await _saved_view(principal, uow, view_id))
    return Response(status_code=204)
