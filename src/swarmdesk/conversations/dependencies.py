"""Access gates for conversations: a conversation the caller may not see does not exist (404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from swarmdesk.auth.dependencies import ConversationsReader, ConversationsWriter, Customer, Uow
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.conversations import service
from swarmdesk.conversations.models import Conversation
from swarmdesk.core.errors import NotFound


async def _visible(principal: StaffPrincipal, uow: Uow, conversation_id: int) -> Conversation:
    conversation = await service.get_visible(uow.session, principal, conversation_id)
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return conversation


async def readable_conversation(principal: ConversationsReader, uow: Uow,
                                conversation_id: Annotated[int, Path(ge=1)]) -> Conversation:
    return await _visible(principal, uow, conversation_id)


async def writable_conversation(principal: ConversationsWriter, uow: Uow,
                                conversation_id: Annotated[int, Path(ge=1)]) -> Conversation:
    return await _visible(principal, uow, conversation_id)


async def customer_conversation(customer: Customer, uow: Uow,
                                conversation_id: Annotated[int, Path(ge=1)]) -> Conversation:
    conversation = await service.get_for_contact(uow.session, customer.account_id, customer.contact_id,
                                                 conversation_id, inbox_id=customer.inbox_id)
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return conversation


ReadableConversation = Annotated[Conversation, Depends(readable_conversation)]
WritableConversation = Annotated[Conversation, Depends(writable_conversation)]
CustomerConversation = Annotated[Conversation, Depends(customer_conversation)]
