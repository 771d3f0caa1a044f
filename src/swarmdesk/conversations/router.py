from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse
from pydantic import AwareDatetime

from swarmdesk.auth.dependencies import ConversationsReader, ConversationsWriter, Customer, RuntimeDep, Uow
from swarmdesk.conversations import actions, reply, service
from swarmdesk.conversations.dependencies import CustomerConversation, ReadableConversation, WritableConversation
from swarmdesk.conversations.models import Attachment, ConversationStatus, Message
from swarmdesk.conversations.schemas import (
    ActivityOut,
    ConversationCreate,
    ConversationCreatedOut,
    ConversationOut,
    ConversationUpdate,
    CustomerConversationCreate,
    CustomerConversationOut,
    CustomerMessageCreate,
    CustomerMessageOut,
    MessageCreate,
    MessageOut,
    ReplyChannelOut,
    TagsUpdate,
)
from swarmdesk.core.errors import BadRequest, NotFound
from swarmdesk.core.pagination import decode_cursor, encode_cursor
from swarmdesk.core.schemas import Page
from swarmdesk.core.storage import ACTIVE_TYPES, INLINE_SAFE_TYPES, AttachmentStore
from swarmdesk.preferences import actions as preferences_actions

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])
customer_router = APIRouter(prefix="/api/v1/customer/conversations", tags=["customer"])

Limit = Annotated[int, Query(ge=1, le=200)]


def _store(runtime: RuntimeDep) -> AttachmentStore:
    return AttachmentStore(runtime.settings.attachments_dir)


@router.get("", response_model=Page[ConversationOut], summary="List conversations the caller may see")
async def list_conversations(
    principal: ConversationsReader, uow: Uow,
    status: Annotated[list[ConversationStatus] | None, Query()] = None,
    assignee_id: Annotated[str | None, Query(description="a user id, 'me' or 'none'")] = None,
    team_id: int | None = None, tag: str | None = None, inbox_id: int | None = None,
    contact_id: int | None = None,
    updated_since: Annotated[AwareDatetime | None, Query(description="with a UTC offset, e.g. ...Z")] = None,
    cursor: str | None = None, limit: Limit = 50,
) -> Page[ConversationOut]:
    filters = service.ConversationFilters(status=status, team_id=team_id, tag=tag.lower() if tag else None,
                                          inbox_id=inbox_id, contact_id=contact_id, updated_since=updated_since)
    if assignee_id == "me":
        filters.assignee_id = principal.user_id
    elif assignee_id == "none":
        filters.unassigned = True
    elif assignee_id is not None:
        if not (assignee_id.isascii() and assignee_id.isdigit()):  # not "²", which int() refuses
            raise BadRequest("assignee_id must be a user id, 'me' or 'none'")
        filters.assignee_id = int(assignee_id)
    after = None
    if cursor:
        at, last_id = decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(at), int(last_id))
        except (TypeError, ValueError) as exc:
            raise BadRequest("cursor is not valid; use the next_cursor a previous page returned") from exc
        if after[0].tzinfo is None:  # we only ever issue UTC cursors; a naive one was made by hand
            raise BadRequest("cursor is not valid; use the next_cursor a previous page returned")
    rows = await service.list_visible(uow.session, principal, filters, after, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor([page[-1].last_activity_at.isoformat(), page[-1].id]) if more else None
    return Page(items=await service.conversations_out(uow.session, page), next_cursor=next_cursor)


@router.post("", response_model=ConversationCreatedOut, status_code=201, summary="Start a conversation with a customer",
             description="The first message is proactive outreach: the customer's contact rules may send it on "
                         "another channel or hold it back until their quiet hours end (``first_message`` says "
                         "which, and why), or refuse it, and then nothing is created (409, with the explanation "
                         "and the decision). See docs/contact-rules.md.")
async def create_conversation(principal: ConversationsWriter, uow: Uow, runtime: RuntimeDep,
                              payload: ConversationCreate) -> ConversationCreatedOut:
    conversation, sent = await preferences_actions.do_start_conversation(
        uow, principal, payload, store=_store(runtime), max_attachment_bytes=runtime.settings.max_attachment_bytes)
    out = (await service.conversations_out(uow.session, [conversation]))[0]
    return ConversationCreatedOut(**out.model_dump(), first_message=sent.out() if sent is not None else None)


@router.get("/{conversation_id}", response_model=ConversationOut)
async def get_conversation(conversation: ReadableConversation, uow: Uow) -> ConversationOut:
    return (await service.conversations_out(uow.session, [conversation]))[0]


@router.patch("/{conversation_id}", response_model=ConversationOut,
              summary="Change status, priority, assignee, team, subject, snooze or custom attributes")
async def update_conversation(principal: ConversationsWriter, conversation: WritableConversation, uow: Uow,
                              payload: ConversationUpdate) -> ConversationOut:
    await actions.do_update_conversation(uow, principal, conversation, payload)
    return (await service.conversations_out(uow.session, [conversation]))[0]


@router.post("/{conversation_id}/tags", response_model=list[str], summary="Add and remove tags")
async def update_tags(principal: ConversationsWriter, conversation: WritableConversation, uow: Uow,
                      payload: TagsUpdate) -> list[str]:
    return await actions.do_update_tags(uow, principal, conversation, payload)


@router.get("/{conversation_id}/messages", response_model=Page[MessageOut])
async def list_messages(conversation: ReadableConversation, uow: Uow, after_id: int | None = None,
                        limit: Limit = 100) -> Page[MessageOut]:
    rows = await service.list_messages(uow.session, conversation.id, include_private=True, after_id=after_id,
                                       limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return Page(items=await service.messages_out(uow.session, page),
                next_cursor=str(page[-1].id) if more else None)


@router.get("/{conversation_id}/reply-channels", response_model=list[ReplyChannelOut],
            summary="The channels a reply can go out on, and why not where it cannot")
async def list_reply_channels(conversation: ReadableConversation, uow: Uow) -> list[ReplyChannelOut]:
    return [ReplyChannelOut(inbox_id=c.inbox.id, name=c.inbox.name, channel_kind=c.inbox.channel_kind,
                            available=c.available, reason=c.reason, default=c.default)
            for c in await reply.reply_channels(uow.session, conversation)]


@router.post("/{conversation_id}/messages", response_model=MessageOut, status_code=201,
             summary="Reply to the customer, or add an internal note with private=true")
async def send_message(principal: ConversationsWriter, conversation: WritableConversation, uow: Uow,
                       runtime: RuntimeDep, payload: MessageCreate) -> MessageOut:
    message = await actions.do_send_message(uow, principal, conversation, payload, store=_store(runtime),
                                            max_attachment_bytes=runtime.settings.max_attachment_bytes)
    return (await service.messages_out(uow.session, [message]))[0]


@router.get("/{conversation_id}/activity", response_model=Page[ActivityOut])
async def list_activity(conversation: ReadableConversation, uow: Uow, after_id: int | None = None,
                        limit: Limit = 100) -> Page[ActivityOut]:
    rows = await service.list_activity(uow.session, conversation.id, after_id, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return Page(items=service.activities_out(page), next_cursor=str(page[-1].id) if more else None)


async def _attachment_response(runtime: RuntimeDep, attachment: Attachment | None) -> Response:
    if attachment is None:
        raise NotFound("attachment not found")
    path = AttachmentStore(runtime.settings.attachments_dir).path_for(attachment.storage_key)
    inline = attachment.content_type in INLINE_SAFE_TYPES and attachment.content_type not in ACTIVE_TYPES
    disposition = "inline" if inline else "attachment"
    quoted = attachment.filename.encode("utf-8").hex()
    # RFC 5987 filename*, percent-encoded from the bytes: no quoting or header injection possible.
    encoded = "".join(f"%{quoted[i:i + 2]}" for i in range(0, len(quoted), 2))
    return FileResponse(path, media_type=attachment.content_type if inline else "application/octet-stream",
                    headers={"content-disposition": f"{disposition}; filename*=UTF-8''{encoded}",
                             "x-content-type-options": "nosniff",
                             "content-security-policy": "default-src 'none'; sandbox"})


@router.get("/{conversation_id}/attachments/{attachment_id}", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
async def get_attachment(conversation: ReadableConversation, attachment_id: int, uow: Uow,
                         runtime: RuntimeDep) -> Response:
    attachment = await service.get_attachment(uow.session, conversation.account_id, conversation.id, attachment_id)
    return await _attachment_response(runtime, attachment)


# --- customer side -----------------------------------------------------------------------------

@customer_router.get("", response_model=list[CustomerConversationOut], summary="My conversations")
async def customer_list_conversations(customer: Customer, uow: Uow) -> list[CustomerConversationOut]:
    rows = await service.list_for_contact(uow.session, customer.account_id, customer.contact_id,
                                          inbox_id=customer.inbox_id)
    return [service.customer_conversation_out(c) for c in rows]


@customer_router.post("", response_model=CustomerConversationOut, status_code=201)
async def customer_start_conversation(customer: Customer, uow: Uow, runtime: RuntimeDep,
                                      payload: CustomerConversationCreate) -> CustomerConversationOut:
    received = await actions.do_customer_start_conversation(uow, customer, payload, store=_store(runtime))
    return service.customer_conversation_out(received.conversation)


@customer_router.get("/{conversation_id}", response_model=CustomerConversationOut)
async def customer_get_conversation(conversation: CustomerConversation) -> CustomerConversationOut:
    return service.customer_conversation_out(conversation)


@customer_router.get("/{conversation_id}/messages", response_model=Page[CustomerMessageOut])
async def customer_list_messages(conversation: CustomerConversation, uow: Uow, after_id: int | None = None,
                                 limit: Limit = 100) -> Page[CustomerMessageOut]:
    rows = await service.list_messages(uow.session, conversation.id, include_private=False, after_id=after_id,
                                       limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return Page(items=await service.customer_messages_out(uow.session, page),
                next_cursor=str(page[-1].id) if more else None)


@customer_router.post("/{conversation_id}/messages", response_model=CustomerMessageOut, status_code=201)
async def customer_send_message(customer: Customer, conversation: CustomerConversation, uow: Uow,
                                runtime: RuntimeDep, payload: CustomerMessageCreate) -> CustomerMessageOut:
    received = await actions.do_customer_send_message(uow, customer, conversation, payload, store=_store(runtime),
                                                      max_attachment_bytes=runtime.settings.max_attachment_bytes)
    return (await service.customer_messages_out(uow.session, [received.message]))[0]


@customer_router.get("/{conversation_id}/attachments/{attachment_id}", response_class=Response,
                     responses={200: {"content": {"application/octet-stream": {}}}})
async def customer_get_attachment(conversation: CustomerConversation, attachment_id: int, uow: Uow,
                                  runtime: RuntimeDep) -> Response:
    attachment = await service.get_attachment(uow.session, conversation.account_id, conversation.id, attachment_id)
    if attachment is not None:
        # Attachments on internal notes are not the customer's.
        message = await uow.session.get(Message, attachment.message_id)
        if message is None or message.private:
            attachment = None
    return await _attachment_response(runtime, attachment)
