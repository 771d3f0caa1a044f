"""The caller's notifications, and collision presence on conversations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from swarmdesk.auth.dependencies import ConversationsReader, Uow
from swarmdesk.conversations.dependencies import ReadableConversation
from swarmdesk.conversations.schemas import MAX_ID
from swarmdesk.core.errors import BadRequest
from swarmdesk.core.pagination import decode_cursor, encode_cursor
from swarmdesk.core.schemas import Page
from swarmdesk.notifications import actions, service
from swarmdesk.notifications.dependencies import refuse_null_body
from swarmdesk.notifications.schemas import (
    NotificationOut,
    NotificationsRead,
    NotificationsReadOut,
    UnreadCountOut,
    ViewingUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["notifications"])

Limit = Annotated[int, Query(ge=1, le=200)]


def _before_id(cursor: str | None) -> int | None:
    if not cursor:
        return None
    (last_id,) = decode_cursor(cursor, 1)
    if type(last_id) is not int or not 1 <= last_id <= MAX_ID:
        raise BadRequest("cursor is not valid; use the next_cursor a previous page returned")
    return last_id


@router.get("/notifications", response_model=Page[NotificationOut], summary="My notifications, newest first")
async def list_notifications(principal: ConversationsReader, uow: Uow,
                             unread: Annotated[bool, Query(description="only the unread ones")] = False,
                             cursor: str | None = None, limit: Limit = 50) -> Page[NotificationOut]:
    rows = await service.list_for_user(uow.session, principal.account_id, principal.user_id, unread_only=unread,
                                       before_id=_before_id(cursor), limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return Page(items=[service.notification_out(n) for n in page],
                next_cursor=encode_cursor([page[-1].id]) if more else None)


@router.get("/notifications/unread-count", response_model=UnreadCountOut, summary="How many are unread")
async def unread_count(principal: ConversationsReader, uow: Uow) -> UnreadCountOut:
    return UnreadCountOut(count=await service.unread_count(uow.session, principal.account_id, principal.user_id))


@router.post("/notifications/read", response_model=NotificationsReadOut,
             summary="Mark notifications read: some by id, or all; the caller's other tabs are told")
async def mark_read(principal: ConversationsReader, uow: Uow, payload: NotificationsRead) -> NotificationsReadOut:
    return await actions.do_mark_notifications_read(uow, principal, payload)


@router.post("/conversations/{conversation_id}/viewing", status_code=204, tags=["conversations"],
             dependencies=[Depends(refuse_null_body)],
             summary="I have this conversation open (heartbeat every ~20 s; colleagues forget a viewer 45 s "
                     "after its last heartbeat)")
async def viewing(principal: ConversationsReader, conversation: ReadableConversation, uow: Uow,
                  payload: ViewingUpdate | None = None) -> Response:
    composing = payload.composing if payload is not None else None
    await actions.do_report_viewing(uow, principal, conversation, "viewing", composing)
    return Response(status_code=204)


@router.delete("/conversations/{conversation_id}/viewing", status_code=204, tags=["conversations"],
               summary="I left this conversation (colleagues drop me at once instead of after 45 s)")
async def stopped_viewing(principal: ConversationsReader, conversation: ReadableConversation, uow: Uow) -> Response:
    await actions.do_report_viewing(uow, principal, conversation, "left", None)
    return Response(status_code=204)
