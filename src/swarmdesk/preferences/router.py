"""Contact rules over HTTP: the customer reads and sets their own (portal sessions only), agents read
them, and agents see and withdraw the messages the rules held back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from swarmdesk.auth.dependencies import ContactsReader, ConversationsWriter, Uow
from swarmdesk.contacts import service as contacts_service
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.dependencies import ReadableConversation
from swarmdesk.core.errors import NotFound
from swarmdesk.preferences import actions, service, views
from swarmdesk.preferences.dependencies import RulesCustomer
from swarmdesk.preferences.schemas import (
    AgentContactRulesOut,
    ContactRulesIn,
    CustomerContactRulesOut,
    DeferredSendOut,
)

router = APIRouter(prefix="/api/v1", tags=["preferences"])

MAX_ID = 2**63 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID)]


async def _customer_contact(uow: Uow, customer: RulesCustomer) -> Contact:
    contact = await contacts_service.get_contact(uow.session, customer.account_id, customer.contact_id)
    if contact is None:
        raise NotFound("this customer is gone")
    return contact


@router.get("/customer/preferences", response_model=CustomerContactRulesOut,
            summary="My contact preferences, and the channels I can choose from (portal sessions)")
async def get_my_preferences(customer: RulesCustomer, uow: Uow) -> CustomerContactRulesOut:
    return await views.for_customer(uow.session, await _customer_contact(uow, customer))


@router.put("/customer/preferences", response_model=CustomerContactRulesOut,
            summary="Replace my contact preferences (portal sessions)")
async def put_my_preferences(customer: RulesCustomer, uow: Uow, payload: ContactRulesIn) -> CustomerContactRulesOut:
    await actions.do_set_contact_rules(uow, customer, payload)
    return await views.for_customer(uow.session, await _customer_contact(uow, customer))


@router.get("/contacts/{contact_id}/preferences", response_model=AgentContactRulesOut,
            summary="The customer's contact rules (those of the survivor, for a merged contact)")
async def get_contact_preferences(principal: ContactsReader, uow: Uow, contact_id: Id) -> AgentContactRulesOut:
    contact = await contacts_service.get_contact(uow.session, principal.account_id, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} not found")
    return await views.for_agent(uow.session, contact)


@router.get("/conversations/{conversation_id}/deferred-sends", response_model=list[DeferredSendOut],
            summary="Messages of this conversation the customer's rules held back, newest first")
async def list_deferred_sends(conversation: ReadableConversation, uow: Uow) -> list[DeferredSendOut]:
    return [DeferredSendOut.model_validate(d) for d in
            await service.deferred_of_conversation(uow.session, conversation.id)]


@router.post("/deferred-sends/{deferred_send_id}/cancel", response_model=DeferredSendOut,
             summary="Withdraw a held-back message before it is sent")
async def cancel_deferred_send(principal: ConversationsWriter, uow: Uow, deferred_send_id: Id) -> DeferredSendOut:
    row = await service.get_deferred(uow.session, principal.account_id, deferred_send_id)
    conversation = await conversations_service.get_visible(uow.session, principal, row.conversation_id) \
        if row is not None else None
    if row is None or conversation is None:
        raise NotFound(f"deferred send {deferred_send_id} not found")
    return DeferredSendOut.model_validate(await actions.do_cancel_deferred(uow, principal, conversation, row))
