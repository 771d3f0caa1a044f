"""Delivering agent replies through their channel: a durable job per message, at least once, with
the message id as idempotency key so the receiving side can drop duplicates."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from swarmdesk.accounts.models import Account, User
from swarmdesk.channels.base import OutboundAttachment, OutboundMessage, Recipient
from swarmdesk.channels.directory import outbound_allowlist
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts.identity import handle_scope
from swarmdesk.contacts.models import Contact, ContactIdentity
from swarmdesk.conversations import actions as conversations_actions
from swarmdesk.conversations.actions import DELIVER_JOB
from swarmdesk.conversations.models import Attachment, Conversation, DeliveryStatus, Direction, Message
from swarmdesk.core.storage import AttachmentStore
from swarmdesk.jobs.registry import JobContext, PermanentFailure, jobs

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime


@jobs.handler(DELIVER_JOB)
async def deliver_message(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    async with runtime.uow() as uow:
        s = uow.session
        message = await s.get(Message, payload["message_id"])
        # pending: not sent yet, or sent by a worker that died before recording it (the receiver
        # drops the duplicate by webhook-id). failed: an admin retried the dead job by hand.
        # Anything else was delivered already, or is an internal note, which is never sent.
        if message is None or message.delivery_status not in (DeliveryStatus.pending, DeliveryStatus.failed):
            return
        conversation = await s.get(Conversation, message.conversation_id)
        inbox = await s.get(Inbox, message.inbox_id)
        account = await s.get(Account, message.account_id)
        assert conversation is not None and inbox is not None and account is not None
        contact = await s.get(Contact, conversation.contact_id)
        sender = await s.get(User, message.sender_id) if message.sender_id else None
        identities = (await s.scalars(select(ContactIdentity).where(
            ContactIdentity.contact_id == conversation.contact_id))).all()
        attachment_rows = (await s.scalars(select(Attachment).where(Attachment.message_id == message.id))).all()
        earlier = (await s.execute(
            select(Message.external_id, Message.direction).where(
                Message.conversation_id == conversation.id, Message.inbox_id == inbox.id, Message.id < message.id,
                Message.external_id.is_not(None)).order_by(Message.id))).all()
        if runtime.channels.capabilities(inbox).uses_reply_token and conversation.reply_token is None:
            # Set only if still unset: two replies delivered at once must end up with one token.
            await s.execute(update(Conversation).where(Conversation.id == conversation.id,
                                                       Conversation.reply_token.is_(None))
                            .values(reply_token=secrets.token_hex(16)))
            await uow.commit()
            conversation.reply_token = await s.scalar(
                select(Conversation.reply_token).where(Conversation.id == conversation.id))
    assert contact is not None
    thread_refs = [ext for ext, _ in earlier if ext]
    in_reply_to = next((ext for ext, direction in reversed(earlier) if direction == Direction.incoming), None)
    if message.delivery_status == DeliveryStatus.failed:
        await _record(runtime, message.id, DeliveryStatus.pending, None, None)  # agents see it is being retried
    handles = {str(i.kind): i.value for i in identities if i.scope in ("", handle_scope(inbox.id))}
    # The profile's address and number when no identity carries one (an unverified sender).
    for kind, value in (("email", contact.email), ("phone", contact.phone)):
        if value:
            handles.setdefault(kind, value)
    store = AttachmentStore(runtime.settings.attachments_dir)
    try:
        outbound = OutboundMessage(
            message_id=message.id, conversation_id=conversation.id, conversation_key=conversation.external_key,
            content=message.content, content_html=message.content_html, sender_name=sender.name if sender else "",
            recipient=Recipient(contact_id=contact.id, name=contact.name, handles=handles),
            attachments=[OutboundAttachment(a.filename, a.content_type, await store.read(a.storage_key))
                         for a in attachment_rows],
            created_at=message.created_at, idempotency_key=f"msg_{message.id}", subject=conversation.subject,
            reply_token=conversation.reply_token, thread_refs=thread_refs, in_reply_to=in_reply_to)
        adapter = runtime.channels.build(inbox, outbound_allowlist(account))
        result = await adapter.send(outbound)
    except PermanentFailure as exc:
        await _record(runtime, message.id, DeliveryStatus.failed, str(exc), None)
        raise
    except Exception as exc:
        # Transient, or unexpected (an undecryptable config, a missing attachment file): retried,
        # but the message must not stay pending for ever once the job dies.
        if ctx.is_last_attempt:
            await _record(runtime, message.id, DeliveryStatus.failed, f"gave up after {ctx.attempt} attempts: {exc}",
                          None)
        raise
    await _record(runtime, message.id, DeliveryStatus.sent, None, result.external_id)


async def _record(runtime: Runtime, message_id: int, status: DeliveryStatus, error: str | None,
                  external_id: str | None) -> None:
    async with runtime.uow() as uow:
        await conversations_actions.do_record_delivery(uow, message_id, status, error, external_id)
