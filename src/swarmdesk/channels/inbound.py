"""Ingesting what a channel delivered: verified before anything is stored, idempotent on the
vendor's delivery id and on each message's external id, one transaction for all of its effects."""

from __future__ import annotations

from typing import TYPE_CHECKING

import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from swarmdesk.channels.base import ChannelAdapter, InboundRequest
from swarmdesk.channels.models import InboundReceipt, Inbox
from swarmdesk.contacts import actions as contacts_actions
from swarmdesk.conversations import actions as conversations_actions
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, Message
from swarmdesk.core.clock import utcnow
from swarmdesk.core.errors import Conflict
from swarmdesk.core.storage import AttachmentStore

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime


@dataclass(slots=True)
class IngestResult:
    message_id: int
    conversation_id: int
    contact_id: int
    duplicate: bool


async def _existing(runtime: Runtime, inbox: Inbox, delivery_id: str, body_sha: str,
                    external_id: str | None) -> IngestResult | None:
    async with runtime.uow() as uow:
        receipt = await uow.session.scalar(select(InboundReceipt).where(
            InboundReceipt.inbox_id == inbox.id, InboundReceipt.delivery_id == delivery_id))
        if receipt is not None and receipt.body_sha256 != body_sha:
            raise Conflict("this webhook-id was already delivered with a different body (replay refused)")
        message = None
        if receipt is not None and receipt.message_id is not None:
            message = await uow.session.get(Message, receipt.message_id)
        elif external_id:
            message = await conversations_service.message_by_external_id(uow.session, inbox.id, external_id)
        if message is None:
            return None
        conversation = await uow.session.get(Conversation, message.conversation_id)
        assert conversation is not None
        return IngestResult(message.id, message.conversation_id, conversation.contact_id, duplicate=True)


async def do_ingest_delivery(runtime: Runtime, inbox: Inbox, adapter: ChannelAdapter,
                             request: InboundRequest) -> IngestResult:
    """Parse and store one verified delivery. A retry of it returns the first result.

    The happy path is one transaction with no look-ups for duplicates: the unique constraints on
    (inbox, delivery id) and (inbox, message external id) catch them, and only then do we look.
    """
    delivery_id = adapter.delivery_id(request)
    body_sha = hashlib.sha256(request.body).hexdigest()
    (inbound,) = adapter.parse(request)
    store = AttachmentStore(runtime.settings.attachments_dir)
    for attempt in range(3):
        try:
            async with runtime.uow() as uow:
                contact = await contacts_actions.resolve_contact(uow, inbox.account_id, inbound.claims,
                                                                 inbound.sender_name)
                received = await conversations_actions.receive_message(uow, inbox, contact, inbound, store=store)
                uow.session.add(InboundReceipt(account_id=inbox.account_id, inbox_id=inbox.id,
                                               delivery_id=delivery_id, body_sha256=body_sha,
                                               message_id=received.message.id, received_at=utcnow()))
                await uow.commit()
                return IngestResult(received.message.id, received.conversation.id, contact.id, duplicate=False)
        except IntegrityError:
            # A retry of this delivery, a replay of its id, or a concurrent delivery that created the
            # same new contact first: find out which. The loser of a race answers with the winner's result.
            existing = await _existing(runtime, inbox, delivery_id, body_sha, inbound.external_id)
            if existing is not None:
                return existing
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
