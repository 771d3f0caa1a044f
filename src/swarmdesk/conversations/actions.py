"""Every observable change to conversations and messages. The only module here that publishes.

Functions named ``do_*`` are whole changes and commit; the others are building blocks that run
inside a caller's unit of work (a channel's ingest action, for example).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select

from swarmdesk.accounts.models import Role, Team, User
from swarmdesk.auth.principals import CustomerPrincipal, StaffPrincipal
from swarmdesk.channels.base import InboundAttachment, InboundMessage
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts.identity import IdentityClaim
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations import audience, linking, reply, service
from swarmdesk.conversations.linking import JoinPolicy, Link, LinkReason
from swarmdesk.conversations.models import (
    Attachment,
    Conversation,
    ConversationMention,
    ConversationParticipant,
    ConversationStatus,
    ConversationTag,
    DeliveryStatus,
    Direction,
    EarlyStatusReport,
    Message,
    SenderType,
)
from swarmdesk.conversations.schemas import (
    AttachmentIn,
    ConversationCreate,
    ConversationUpdate,
    CustomerConversationCreate,
    CustomerMessageCreate,
    MessageCreate,
    TagsUpdate,
)
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from swarmdesk.core.html import html_to_text, sanitize_html
from swarmdesk.core.storage import AttachmentStore, decode_base64, safe_content_type, safe_filename
from swarmdesk.events.base import Audience
from swarmdesk.events.types import (
    ConversationAssigned,
    ConversationCreated,
    ConversationStatusChanged,
    ConversationUpdated,
    CustomerConversationUpdated,
    CustomerMessageCreated,
    MessageCreated,
    MessageUpdated,
)
from swarmdesk.jobs import service as jobs_service
from swarmdesk.notifications import actions as notifications_actions
from swarmdesk.notifications import service as notifications_service

DELIVER_JOB = "channels.deliver"


_INSERT_MESSAGE = insert(Message.__table__).returning(Message.__table__.c.id)
_MESSAGE_COLUMNS = [c.key for c in Message.__table__.columns if c.key != "id"]


def _message_row(message: Message) -> dict[str, object]:
    return {key: getattr(message, key) for key in _MESSAGE_COLUMNS}


@dataclass(slots=True)
class Received:
    message: Message
    conversation: Conversation
    conversation_created: bool


def _merge(a: Audience, b: Audience) -> Audience:
    return Audience(roles=tuple(sorted(set(a.roles) | set(b.roles))), all_agents=a.all_agents or b.all_agents,
                    team_ids=tuple(sorted(set(a.team_ids) | set(b.team_ids))),
                    user_ids=tuple(sorted(set(a.user_ids) | set(b.user_ids))),
                    contact_ids=tuple(sorted(set(a.contact_ids) | set(b.contact_ids))))


_INSERT_ATTACHMENT = insert(Attachment.__table__).returning(Attachment.__table__.c.id)


async def _store_attachments(uow: UnitOfWork, store: AttachmentStore, message: Message,
                             files: list[InboundAttachment]) -> list[Attachment]:
    """Files on disk, rows by plain INSERT … RETURNING (every mail carries at least its original)."""
    stored = []
    now = utcnow()
    for f in files:
        saved = await store.put(f.data)
        attachment = Attachment(account_id=message.account_id, message_id=message.id,
                                filename=safe_filename(f.filename), content_type=safe_content_type(f.content_type),
                                size=saved.size, storage_key=saved.key, created_at=now)
        attachment.id = (await uow.session.execute(_INSERT_ATTACHMENT, {
            "account_id": attachment.account_id, "message_id": attachment.message_id, "filename": attachment.filename,
            "content_type": attachment.content_type, "size": attachment.size, "storage_key": attachment.storage_key,
            "created_at": now})).scalar_one()
        stored.append(attachment)
    return stored


def decode_attachments(items: list[AttachmentIn], max_bytes: int) -> list[InboundAttachment]:
    return [InboundAttachment(filename=a.filename, content_type=a.content_type,
                              data=decode_base64(a.data_base64, max_bytes)) for a in items]


def _publish_message(uow: UnitOfWork, conversation: Conversation, contact: Contact, channel: str,
                     message: Message, attachments: list[Attachment], sender_name: str) -> None:
    names = {(message.sender_type, message.sender_id or 0): sender_name}
    conv_out = service.conversation_out(conversation, contact, channel)
    staff = audience.conversation_staff(conversation)
    uow.publish(MessageCreated(account_id=conversation.account_id, audience=staff,
                               message=service.message_out(message, names, attachments), conversation=conv_out))
    if not message.private:
        uow.publish(CustomerMessageCreated(account_id=conversation.account_id,
                                           audience=audience.conversation_customer(conversation),
                                           message=service.customer_message_out(message, names, attachments)))


async def receive_message(uow: UnitOfWork, inbox: Inbox, contact: Contact, inbound: InboundMessage, *,
                          store: AttachmentStore, conversation: Conversation | None = None,
                          policy: JoinPolicy | None = None, matched: IdentityClaim | None = None,
                          new_contact: bool = False, latest: service.LatestConversations | None = None) -> Received:
    """A customer's message joins its conversation (or starts one). Runs in the caller's
    transaction; ``latest`` is the group commit's view of its senders' latest conversations."""
    session, now = uow.session, utcnow()
    if conversation is not None:
        link = Link(LinkReason.thread, "written in this conversation")
    else:
        conversation, link = await linking.find_conversation(session, inbox, contact, inbound,
                                                             policy=policy or JoinPolicy(), matched=matched,
                                                             new_contact=new_contact, latest=latest)
    if inbound.automatic and (conversation is None or link.reason == LinkReason.new):
        raise linking.NoConversationForAutomaticMessage(
            "an automatic reply (out of office, auto-responder) that answers no conversation of its sender")
    created = conversation is None
    if conversation is None:
        conversation = Conversation(
            account_id=inbox.account_id, inbox_id=inbox.id, contact_id=contact.id,
            external_key=inbound.conversation_key, subject=(inbound.subject or "")[:500],
            status=ConversationStatus.open, last_activity_at=now, waiting_since=now, created_at=now, updated_at=now,
            custom_attributes={}, reopen_count=0, message_count=0, tag_names=[], participant_ids=[])
        session.add(conversation)
        await session.flush()
        service.add_activity(session, conversation, SenderType.contact, contact.id, "created",
                             {"inbox_id": inbox.id, "channel": inbox.channel_kind})
    previous_status = conversation.status
    if previous_status != ConversationStatus.open and not inbound.automatic:
        _set_status(conversation, ConversationStatus.open, now)
        service.add_activity(session, conversation, SenderType.contact, contact.id, "status_changed",
                             {"from": str(previous_status), "to": "open", "reason": "customer replied"})

    content_html = sanitize_html(inbound.content_html) if inbound.content_html else None
    content = inbound.content or (html_to_text(content_html) if content_html else "")
    message = Message(
        account_id=inbox.account_id, conversation_id=conversation.id, inbox_id=inbox.id,
        direction=Direction.incoming, private=False, channel=inbox.channel_kind, sender_type=SenderType.contact,
        sender_id=contact.id, content=content, content_html=content_html, external_id=inbound.external_id,
        delivery_status=DeliveryStatus.received, meta={**inbound.meta, "link": link.as_meta()}, created_at=now)
    # A plain INSERT … RETURNING rather than a unit-of-work flush: this runs for every inbound
    # message, and the flush machinery cost more than the insert. The conversation's new clocks
    # are written once per transaction at commit.
    message.id = (await session.execute(_INSERT_MESSAGE, _message_row(message))).scalar_one()
    attachments = await _store_attachments(uow, store, message, inbound.attachments)

    conversation.last_activity_at = now
    if not inbound.automatic:  # an auto-reply is not the customer waiting on us
        conversation.last_customer_message_at = now
        conversation.waiting_since = conversation.waiting_since or now
    conversation.message_count += 1
    conversation.updated_at = now
    if latest is not None:
        latest.joined(conversation)

    staff = audience.conversation_staff(conversation)
    if created:
        conv_out = service.conversation_out(conversation, contact, inbox.channel_kind)
        uow.publish(ConversationCreated(account_id=inbox.account_id, audience=staff, conversation=conv_out))
    elif previous_status != ConversationStatus.open:
        conv_out = service.conversation_out(conversation, contact, inbox.channel_kind)
        uow.publish(ConversationStatusChanged(account_id=inbox.account_id, audience=staff, conversation=conv_out,
                                              previous_status=str(previous_status), status="open"))
        uow.publish(CustomerConversationUpdated(account_id=inbox.account_id,
                                                audience=audience.conversation_customer(conversation),
                                                conversation=service.customer_conversation_out(conversation)))
    _publish_message(uow, conversation, contact, inbox.channel_kind, message, attachments, contact.name)
    if conversation.assignee_id is not None and not inbound.automatic:
        await notifications_actions.notify_customer_replied(uow, conversation, message, contact.name)
    return Received(message=message, conversation=conversation, conversation_created=created)


def _set_status(conversation: Conversation, status: ConversationStatus, now: datetime) -> None:
    previous = conversation.status
    conversation.status = status
    if status in (ConversationStatus.resolved, ConversationStatus.closed):
        conversation.resolved_at = conversation.resolved_at or now
        conversation.waiting_since = None  # nobody is waiting on a solved case
    if status != ConversationStatus.snoozed:
        conversation.snoozed_until = None
    if previous in (ConversationStatus.resolved, ConversationStatus.closed) and status == ConversationStatus.open:
        conversation.reopen_count += 1
        conversation.resolved_at = None


def access_for_write(principal: StaffPrincipal, *, private: bool) -> None:
    """Experts advise inside the case; the owner stays the customer's single point of contact."""
    if principal.role == Role.expert and not private:
        raise Forbidden("experts can add internal notes but not reply to the customer")


def actor_of(principal: StaffPrincipal) -> tuple[SenderType, int | None]:
    """Who did it, for messages and the activity log: a user, or Swarmdesk itself."""
    return (SenderType.system, None) if principal.is_system else (SenderType.user, principal.user_id)


async def do_send_message(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation,
                          payload: MessageCreate, *, store: AttachmentStore, max_attachment_bytes: int) -> Message:
    access_for_write(principal, private=payload.private)
    if conversation.status == ConversationStatus.closed and not payload.private:
        raise Conflict("the conversation is closed; start a new one to write to the customer")
    content_html = sanitize_html(payload.content_html) if payload.content_html else None
    content = payload.content or (html_to_text(content_html) if content_html else "")
    if not content and not payload.attachments:
        raise ValidationFailed("a message needs content or at least one attachment")
    files = decode_attachments(payload.attachments, max_attachment_bytes)
    session, now = uow.session, utcnow()
    await _check_mentions(uow, principal, payload.mention_ids)
    if payload.private:
        if payload.inbox_id is not None:
            raise ValidationFailed("an internal note is not sent on any channel: omit inbox_id")
        inbox = await session.get(Inbox, conversation.inbox_id)
    else:
        inbox = await reply.choose_inbox(session, conversation, payload.inbox_id, chars=len(content))
    contact = await session.get(Contact, conversation.contact_id)
    assert inbox is not None and contact is not None
    message = Message(
        account_id=conversation.account_id, conversation_id=conversation.id, inbox_id=inbox.id,
        direction=Direction.outgoing, private=payload.private, channel=inbox.channel_kind,
        sender_type=actor_of(principal)[0], sender_id=actor_of(principal)[1], content=content, content_html=content_html,
        delivery_status=DeliveryStatus.not_sent if payload.private else DeliveryStatus.pending,
        meta={"mentions": payload.mention_ids} if payload.mention_ids else {}, created_at=now)
    session.add(message)
    await session.flush()
    attachments = await _store_attachments(uow, store, message, files)
    for user_id in payload.mention_ids:
        session.add(ConversationMention(account_id=conversation.account_id, conversation_id=conversation.id,
                                        message_id=message.id, user_id=user_id, created_at=now))
        # Before the message is published: the mentioned see it, and the conversation, from now on.
        await add_participant(uow, conversation, user_id)
    conversation.last_activity_at = now
    conversation.updated_at = now
    conversation.message_count += 1
    if not payload.private:
        # An automatic reply is not a person answering: first response stays for a human.
        if (conversation.first_response_at is None and conversation.last_customer_message_at is not None
                and not principal.is_system):
            conversation.first_response_at = now
        conversation.last_agent_message_at = now
        conversation.waiting_since = None
        jobs_service.enqueue(session, DELIVER_JOB, {"message_id": message.id}, account_id=conversation.account_id)
    _publish_message(uow, conversation, contact, inbox.channel_kind, message, attachments, principal.name)
    await notifications_actions.notify_mentioned(uow, principal, conversation, message, payload.mention_ids)
    await uow.commit()
    return message


async def _check_mentions(uow: UnitOfWork, principal: StaffPrincipal, user_ids: list[int]) -> None:
    """Only active users of the caller's account can be mentioned (another account's are unknown)."""
    if not user_ids:
        return
    known = await notifications_service.active_user_ids(uow.session, principal.account_id, user_ids)
    unknown = [u for u in user_ids if u not in known]
    if unknown:
        raise ValidationFailed(f"mention_ids: {', '.join(map(str, unknown))} "
                               f"{'is not an active user' if len(unknown) == 1 else 'are not active users'} "
                               "of this account", extra={"unknown_ids": unknown})


async def _validate_assignment(uow: UnitOfWork, account_id: int, assignee_id: int | None,
                               team_id: int | None) -> None:
    if assignee_id is not None:
        user = await uow.session.scalar(select(User).where(User.id == assignee_id, User.account_id == account_id))
        if user is None or not user.is_active:
            raise ValidationFailed(f"user {assignee_id} is not an active user of this account")
    if team_id is not None:
        team = await uow.session.scalar(select(Team).where(Team.id == team_id, Team.account_id == account_id))
        if team is None:
            raise ValidationFailed(f"team {team_id} does not exist in this account")


async def do_update_conversation(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation,
                                 update: ConversationUpdate) -> Conversation:
    if principal.role == Role.expert:
        raise Forbidden("experts cannot change a conversation's status, owner or attributes")
    fields = update.model_fields_set
    session, now = uow.session, utcnow()
    before = audience.conversation_staff(conversation)
    previous_status, previous_assignee, previous_team = conversation.status, conversation.assignee_id, conversation.team_id
    if {"assignee_id", "team_id"} & fields:
        await _validate_assignment(uow, conversation.account_id,
                                   update.assignee_id if "assignee_id" in fields else None,
                                   update.team_id if "team_id" in fields else None)
    changed: list[str] = []
    if "status" in fields and update.status is None:
        raise ValidationFailed("status cannot be null")
    if "status" in fields and update.status != conversation.status:
        assert update.status is not None
        if conversation.status == ConversationStatus.closed:
            raise Conflict("a closed conversation is final; start a new one")
        if update.status == ConversationStatus.snoozed and "snoozed_until" not in fields:
            raise ValidationFailed("snoozing needs snoozed_until")
        _set_status(conversation, update.status, now)
        service.add_activity(session, conversation, *actor_of(principal), "status_changed",
                             {"from": str(previous_status), "to": str(update.status)})
    if "assignee_id" in fields and update.assignee_id != conversation.assignee_id:
        conversation.assignee_id = update.assignee_id
        service.add_activity(session, conversation, *actor_of(principal), "assigned",
                             {"from": previous_assignee, "to": update.assignee_id})
    if "team_id" in fields and update.team_id != conversation.team_id:
        conversation.team_id = update.team_id
        service.add_activity(session, conversation, *actor_of(principal), "team_changed",
                             {"from": previous_team, "to": update.team_id})
    for name in ("priority", "subject", "snoozed_until", "custom_attributes"):
        if name in fields:
            value = getattr(update, name)
            if name == "priority" and value is None:
                raise ValidationFailed("priority cannot be null")
            if name == "custom_attributes":
                value = {**(conversation.custom_attributes or {}), **(value or {})}
            if getattr(conversation, name) != value:
                old = getattr(conversation, name)
                setattr(conversation, name, value)
                changed.append(name)
                service.add_activity(session, conversation, *actor_of(principal), f"{name}_changed",
                                     {"from": _jsonable(old), "to": _jsonable(value)})
    status_changed = conversation.status != previous_status
    assigned = conversation.assignee_id != previous_assignee or conversation.team_id != previous_team
    if not (status_changed or assigned or changed):
        return conversation
    conversation.updated_at = now
    await _publish_conversation_change(uow, conversation, before, previous_status=previous_status,
                                       status_changed=status_changed, assigned=assigned,
                                       previous_assignee=previous_assignee, previous_team=previous_team,
                                       changed=changed)
    if conversation.assignee_id != previous_assignee:
        await notifications_actions.notify_assigned(uow, principal, conversation)
    await uow.commit()
    return conversation


def _jsonable(value: object) -> object:
    return value.isoformat() if hasattr(value, "isoformat") else (str(value) if hasattr(value, "value") else value)


async def _publish_conversation_change(uow: UnitOfWork, conversation: Conversation, before: Audience, *, previous_status: ConversationStatus,
                                       status_changed: bool, assigned: bool, previous_assignee: int | None,
                                       previous_team: int | None, changed: list[str]) -> None:
    session = uow.session
    contact = await session.get(Contact, conversation.contact_id)
    inbox = await session.get(Inbox, conversation.inbox_id)
    assert contact is not None and inbox is not None
    conv_out = service.conversation_out(conversation, contact, inbox.channel_kind)
    # Whoever could see it before the change hears about it too (e.g. the previous assignee).
    staff = _merge(before, audience.conversation_staff(conversation))
    account_id = conversation.account_id
    if status_changed:
        uow.publish(ConversationStatusChanged(account_id=account_id, audience=staff, conversation=conv_out,
                                              previous_status=str(previous_status), status=str(conversation.status)))
        uow.publish(CustomerConversationUpdated(account_id=account_id,
                                                audience=audience.conversation_customer(conversation),
                                                conversation=service.customer_conversation_out(conversation)))
    if assigned:
        uow.publish(ConversationAssigned(account_id=account_id, audience=staff, conversation=conv_out,
                                         previous_assignee_id=previous_assignee, previous_team_id=previous_team))
    if changed:
        uow.publish(ConversationUpdated(account_id=account_id, audience=staff, conversation=conv_out, changed=changed))


async def do_update_tags(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation,
                         update: TagsUpdate) -> list[str]:
    if principal.role == Role.expert:
        raise Forbidden("experts cannot change tags")
    session = uow.session
    current = set(conversation.tag_names or [])
    to_add = [t for t in update.add if t not in current]
    to_remove = [t for t in update.remove if t in current]
    if not to_add and not to_remove:
        return sorted(current)
    for tag in to_add:
        session.add(ConversationTag(conversation_id=conversation.id, name=tag, account_id=conversation.account_id))
    if to_remove:
        await session.execute(delete(ConversationTag).where(ConversationTag.conversation_id == conversation.id,
                                                            ConversationTag.name.in_(to_remove)))
    conversation.tag_names = sorted((current | set(to_add)) - set(to_remove))
    conversation.updated_at = utcnow()
    service.add_activity(session, conversation, *actor_of(principal), "tags_changed",
                         {"added": to_add, "removed": to_remove})
    await _publish_conversation_change(uow, conversation, audience.conversation_staff(conversation),
                                       previous_status=conversation.status, status_changed=False, assigned=False,
                                       previous_assignee=None, previous_team=None, changed=["tags"])
    await uow.commit()
    return list(conversation.tag_names)


async def do_create_conversation(uow: UnitOfWork, principal: StaffPrincipal, payload: ConversationCreate, *,
                                 store: AttachmentStore, max_attachment_bytes: int) -> Conversation:
    """An agent starts a conversation with a customer (outbound)."""
    access_for_write(principal, private=False)
    session, now = uow.session, utcnow()
    inbox = await session.scalar(select(Inbox).where(Inbox.id == payload.inbox_id,
                                                     Inbox.account_id == principal.account_id))
    if inbox is None:
        raise ValidationFailed(f"inbox {payload.inbox_id} does not exist in this account")
    contact = await session.scalar(select(Contact).where(Contact.id == payload.contact_id,
                                                         Contact.account_id == principal.account_id))
    if contact is None:
        raise ValidationFailed(f"contact {payload.contact_id} does not exist in this account")
    await _validate_assignment(uow, principal.account_id, payload.assignee_id, payload.team_id)
    conversation = Conversation(
        account_id=principal.account_id, inbox_id=inbox.id, contact_id=contact.id, subject=payload.subject,
        status=ConversationStatus.open, priority=payload.priority, assignee_id=payload.assignee_id,
        team_id=payload.team_id, last_activity_at=now, created_at=now, updated_at=now, custom_attributes={},
        reopen_count=0, message_count=0, tag_names=list(payload.tags), participant_ids=[])
    session.add(conversation)
    await session.flush()
    for tag in payload.tags:
        session.add(ConversationTag(conversation_id=conversation.id, name=tag, account_id=principal.account_id))
    service.add_activity(session, conversation, *actor_of(principal), "created",
                         {"inbox_id": inbox.id, "channel": inbox.channel_kind})
    uow.publish(ConversationCreated(account_id=principal.account_id,
                                    audience=audience.conversation_staff(conversation),
                                    conversation=service.conversation_out(conversation, contact,
                                                                          inbox.channel_kind)))
    await notifications_actions.notify_assigned(uow, principal, conversation)
    if payload.content:
        # do_send_message commits the whole unit of work, conversation included.
        await do_send_message(uow, principal, conversation, MessageCreate(content=payload.content),
                              store=store, max_attachment_bytes=max_attachment_bytes)
    else:
        await uow.commit()
    return conversation


# --- customer side -----------------------------------------------------------------------------

async def do_customer_start_conversation(uow: UnitOfWork, customer: CustomerPrincipal,
                                         payload: CustomerConversationCreate, *, store: AttachmentStore) -> Received:
    if customer.inbox_id is None:
        raise Conflict("a portal session starts conversations with POST /api/v1/portal/conversations")
    inbox, contact = await _customer_context(uow, customer)
    inbound = InboundMessage(external_id=None, content=payload.content, subject=payload.subject)
    # A customer starting a conversation explicitly always gets a new one.
    received = await receive_new(uow, inbox, contact, inbound, store=store)
    await uow.commit()
    return received


async def receive_new(uow: UnitOfWork, inbox: Inbox, contact: Contact, inbound: InboundMessage, *,
                       store: AttachmentStore) -> Received:
    inbound.conversation_key = None
    now = utcnow()
    conversation = Conversation(
        account_id=inbox.account_id, inbox_id=inbox.id, contact_id=contact.id, subject=(inbound.subject or "")[:500],
        status=ConversationStatus.open, last_activity_at=now, waiting_since=now, created_at=now, updated_at=now,
        custom_attributes={}, reopen_count=0, message_count=0, tag_names=[], participant_ids=[])
    uow.session.add(conversation)
    await uow.session.flush()
    service.add_activity(uow.session, conversation, SenderType.contact, contact.id, "created",
                         {"inbox_id": inbox.id, "channel": inbox.channel_kind})
    uow.publish(ConversationCreated(account_id=inbox.account_id, audience=audience.conversation_staff(conversation),
                                    conversation=service.conversation_out(conversation, contact,
                                                                          inbox.channel_kind)))
    received = await receive_message(uow, inbox, contact, inbound, store=store, conversation=conversation)
    received.conversation_created = True
    return received


async def do_customer_send_message(uow: UnitOfWork, customer: CustomerPrincipal, conversation: Conversation,
                                   payload: CustomerMessageCreate, *, store: AttachmentStore,
                                   max_attachment_bytes: int) -> Received:
    """A widget session writes on its own inbox; a portal session (no inbox) on the conversation's,
    marked ``via: portal``, so the agent's answer goes out where the conversation lives."""
    inbox, contact = await _customer_context(uow, customer, conversation)
    if conversation.status == ConversationStatus.closed:
        raise Conflict("this conversation is closed; start a new one")
    inbound = InboundMessage(external_id=None, content=payload.content,
                             meta={"via": "portal"} if customer.inbox_id is None else {},
                             attachments=decode_attachments(payload.attachments, max_attachment_bytes))
    received = await receive_message(uow, inbox, contact, inbound, store=store, conversation=conversation)
    await uow.commit()
    return received


async def _customer_context(uow: UnitOfWork, customer: CustomerPrincipal,
                            conversation: Conversation | None = None) -> tuple[Inbox, Contact]:
    inbox_id = customer.inbox_id if customer.inbox_id is not None or conversation is None else conversation.inbox_id
    inbox = await uow.session.get(Inbox, inbox_id) if inbox_id is not None else None
    contact = await uow.session.get(Contact, customer.contact_id)
    if inbox is None or contact is None or not inbox.is_active:
        raise NotFound("this customer session's inbox is gone")
    return inbox, contact


async def do_record_delivery(uow: UnitOfWork, message_id: int, status: DeliveryStatus, error: str | None,
                             external_id: str | None) -> None:
    """A channel reported on an outgoing message: agents see it sent or failed, live. Vendor
    reports that arrived before the vendor's id was recorded are applied now."""
    session = uow.session
    message = await session.get(Message, message_id)
    if message is None:
        return
    changed = message.delivery_status != status
    message.delivery_status = status
    message.delivery_error = error[:1000] if error else None
    if external_id and message.external_id is None:
        message.external_id = external_id
        early = (await session.scalars(select(EarlyStatusReport).where(
            EarlyStatusReport.inbox_id == message.inbox_id, EarlyStatusReport.external_id == external_id)
            .order_by(EarlyStatusReport.id))).all()
        for report in early:
            changed = _advance_status(message, DeliveryStatus(report.status), report.error) or changed
            await session.delete(report)
    if not changed:
        await uow.commit()
        return
    conversation = await session.get(Conversation, message.conversation_id)
    assert conversation is not None
    (out,) = await service.messages_out(session, [message])
    uow.publish(MessageUpdated(account_id=message.account_id, audience=audience.conversation_staff(conversation),
                               message=out))
    await uow.commit()


_PROGRESS = {DeliveryStatus.pending: 0, DeliveryStatus.sent: 1, DeliveryStatus.delivered: 2, DeliveryStatus.read: 3}
EARLY_REPORT_HOURS = 24


def _advance_status(message: Message, new: DeliveryStatus, error: str | None) -> bool:
    """Reports arrive out of order: a status never moves backwards, except to failed."""
    current = message.delivery_status
    if current == new or (new != DeliveryStatus.failed and _PROGRESS.get(new, -1) <= _PROGRESS.get(current, 99)):
        return False
    message.delivery_status = new
    message.delivery_error = error[:1000] if error and new == DeliveryStatus.failed else None
    return True


async def record_vendor_status(uow: UnitOfWork, inbox_id: int, external_id: str, status: str,
                               error: str | None, *, account_id: int | None = None) -> None:
    """A vendor's report on a message we sent (by the id it gave the message), in the caller's
    transaction. A report for an id not recorded yet is kept until it is (see do_record_delivery)."""
    try:
        new = DeliveryStatus(status)
    except ValueError:
        return
    session = uow.session
    message = await service.message_by_external_id(session, inbox_id, external_id)
    if message is None:
        if account_id is not None and new in _PROGRESS.keys() | {DeliveryStatus.failed}:
            await _keep_early_report(uow, account_id, inbox_id, external_id, new, error)
        return
    if message.direction != Direction.outgoing or not _advance_status(message, new, error):
        return
    conversation = await session.get(Conversation, message.conversation_id)
    assert conversation is not None
    (out,) = await service.messages_out(session, [message])
    uow.publish(MessageUpdated(account_id=message.account_id, audience=audience.conversation_staff(conversation),
                               message=out))


async def _keep_early_report(uow: UnitOfWork, account_id: int, inbox_id: int, external_id: str,
                             status: DeliveryStatus, error: str | None) -> None:
    session, now = uow.session, utcnow()
    exists = await session.scalar(select(EarlyStatusReport.id).where(
        EarlyStatusReport.inbox_id == inbox_id, EarlyStatusReport.external_id == external_id[:300],
        EarlyStatusReport.status == str(status)))
    if exists is not None:
        return
    # Reports about messages that are not ours (or never recorded) do not pile up.
    await session.execute(delete(EarlyStatusReport).where(
        EarlyStatusReport.inbox_id == inbox_id,
        EarlyStatusReport.received_at < now - timedelta(hours=EARLY_REPORT_HOURS)))
    session.add(EarlyStatusReport(account_id=account_id, inbox_id=inbox_id, external_id=external_id[:300],
                                  status=str(status), error=error[:1000] if error else None, received_at=now))
    await session.flush()


async def add_participant(uow: UnitOfWork, conversation: Conversation, user_id: int, role: str = "participant") -> bool:
    """Bring a staff member into a conversation (the swarming layer builds on this). Keeps the
    participants table (for visibility queries) and the row's participant_ids (for audiences)
    in step. Runs in the caller's transaction; returns False if they were already in."""
    if user_id in (conversation.participant_ids or []):
        return False
    uow.session.add(ConversationParticipant(conversation_id=conversation.id, user_id=user_id,
                                            account_id=conversation.account_id, role=role, created_at=utcnow()))
    conversation.participant_ids = sorted({*(conversation.participant_ids or []), user_id})
    return True
