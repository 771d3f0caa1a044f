"""Data access for conversations and messages. Never publishes, never calls a channel."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, bindparam, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from swarmdesk.accounts.models import Role, User
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations.models import (
    Activity,
    Attachment,
    Conversation,
    ConversationParticipant,
    ConversationStatus,
    ConversationTag,
    Message,
    SenderType,
)
from swarmdesk.conversations.schemas import (
    ActivityOut,
    AttachmentOut,
    ContactBrief,
    ConversationOut,
    CustomerConversationOut,
    CustomerMessageOut,
    MessageOut,
    SenderOut,
)
from swarmdesk.core.clock import utcnow

OPEN_STATUSES = (ConversationStatus.open, ConversationStatus.pending, ConversationStatus.snoozed)


def visible_to(principal: StaffPrincipal) -> ColumnElement[bool]:
    """The one visibility rule for staff (mirrored by ``audience.conversation_staff``)."""
    if principal.sees_all_conversations:
        return true()
    participating = exists().where(ConversationParticipant.conversation_id == Conversation.id,
                                   ConversationParticipant.user_id == principal.user_id)
    if principal.role == Role.expert:
        return or_(Conversation.assignee_id == principal.user_id, participating)
    return or_(Conversation.team_id.is_(None), Conversation.team_id.in_(principal.team_ids),
               Conversation.assignee_id == principal.user_id, participating)


async def get_visible(session: AsyncSession, principal: StaffPrincipal, conversation_id: int) -> Conversation | None:
    return await session.scalar(select(Conversation).where(
        Conversation.id == conversation_id, Conversation.account_id == principal.account_id, visible_to(principal)))


async def get_visible_many(session: AsyncSession, principal: StaffPrincipal,
                           conversation_ids: Sequence[int]) -> dict[int, Conversation]:
    """Those of the ids the caller may see, by id (the others are missing from the answer)."""
    if not conversation_ids:
        return {}
    rows = await session.scalars(select(Conversation).where(
        Conversation.id.in_(conversation_ids), Conversation.account_id == principal.account_id,
        visible_to(principal)))
    return {c.id: c for c in rows}


async def get_for_contact(session: AsyncSession, account_id: int, contact_id: int,
                          conversation_id: int, inbox_id: int | None = None) -> Conversation | None:
    """A customer's own conversation; with ``inbox_id`` (a widget or app session), only one on that
    inbox: such a session proves less than the contact's verified identities."""
    stmt = select(Conversation).where(Conversation.id == conversation_id, Conversation.account_id == account_id,
                                      Conversation.contact_id == contact_id)
    if inbox_id is not None:
        stmt = stmt.where(Conversation.inbox_id == inbox_id)
    return await session.scalar(stmt)


async def get_by_id(session: AsyncSession, account_id: int, conversation_id: int) -> Conversation | None:
    return await session.scalar(
        select(Conversation).where(Conversation.id == conversation_id, Conversation.account_id == account_id))


async def find_by_external_key(session: AsyncSession, inbox_id: int, key: str) -> Conversation | None:
    return await session.scalar(
        select(Conversation).where(Conversation.inbox_id == inbox_id, Conversation.external_key == key))


# Built once: constructing a statement costs more than running it on the intake hot path.
_LATEST_FOR_CONTACT = (
    select(Conversation)
    .where(Conversation.contact_id == bindparam("contact_id"), Conversation.inbox_id == bindparam("inbox_id"),
           Conversation.status != ConversationStatus.closed)
    .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()).limit(1))


async def find_latest_for_contact(session: AsyncSession, contact_id: int, inbox_id: int) -> Conversation | None:
    """The contact's most recent conversation in this inbox that a new message may continue."""
    return await session.scalar(_LATEST_FOR_CONTACT, {"contact_id": contact_id, "inbox_id": inbox_id})


_LATEST_FOR_PAIRS_RANKED = (
    select(Conversation, func.row_number().over(
        partition_by=(Conversation.contact_id, Conversation.inbox_id),
        order_by=(Conversation.last_activity_at.desc(), Conversation.id.desc())).label("rank"))
    .where(Conversation.contact_id.in_(bindparam("contact_ids", expanding=True)),
           Conversation.inbox_id.in_(bindparam("inbox_ids", expanding=True)),
           Conversation.status != ConversationStatus.closed)
    .subquery())
_LATEST_FOR_PAIRS = select(aliased(Conversation, _LATEST_FOR_PAIRS_RANKED)).where(_LATEST_FOR_PAIRS_RANKED.c.rank == 1)


class LatestConversations:
    """Each (contact, inbox)'s latest conversation a new message may continue, for one group
    commit: asked for all of the batch's known senders in one statement, and kept true as the
    batch's messages start and join conversations — the same answer, in the same order (latest
    activity, then highest id), that asking the database before each message would give."""

    __slots__ = ("_latest", "_joined", "_new_contacts")

    def __init__(self) -> None:
        self._latest: dict[tuple[int, int], Conversation | None] = {}  # asked, then kept true
        self._joined: dict[tuple[int, int], Conversation] = {}  # joined by the batch, not asked yet
        self._new_contacts: set[int] = set()  # made by the batch: their conversations are all in _joined

    async def prefetch(self, session: AsyncSession, pairs: Sequence[tuple[int, int]]) -> None:
        pairs = [pair for pair in dict.fromkeys(pairs) if pair not in self._latest]
        if not pairs:
            return
        rows = await session.scalars(_LATEST_FOR_PAIRS, {"contact_ids": sorted({c for c, _ in pairs}),
                                                         "inbox_ids": sorted({i for _, i in pairs})})
        found = {(c.contact_id, c.inbox_id): c for c in rows}
        for pair in pairs:
            self._latest[pair] = _later(found.get(pair), self._joined.pop(pair, None))

    async def get(self, session: AsyncSession, contact_id: int, inbox_id: int) -> Conversation | None:
        pair = (contact_id, inbox_id)
        if contact_id in self._new_contacts:
            return self._joined.get(pair)
        if pair not in self._latest:
            # The batch's own changes to conversations are not flushed yet: the database ranks by
            # their old activity, so what this batch joined is compared here.
            found = await find_latest_for_contact(session, contact_id, inbox_id)
            self._latest[pair] = _later(found, self._joined.pop(pair, None))
        return self._latest[pair]

    def new_contact(self, contact_id: int) -> None:
        self._new_contacts.add(contact_id)

    def joined(self, conversation: Conversation) -> None:
        """A message of the batch joined (or started) the conversation, which is not closed."""
        pair = (conversation.contact_id, conversation.inbox_id)
        if pair in self._latest:
            self._latest[pair] = _later(self._latest[pair], conversation)
        else:
            self._joined[pair] = _later(self._joined.get(pair), conversation) or conversation


def _later(a: Conversation | None, b: Conversation | None) -> Conversation | None:
    if a is None or b is None:
        return a or b
    return a if (a.last_activity_at, a.id) >= (b.last_activity_at, b.id) else b


async def message_by_external_id(session: AsyncSession, inbox_id: int, external_id: str) -> Message | None:
    return await session.scalar(
        select(Message).where(Message.inbox_id == inbox_id, Message.external_id == external_id))


@dataclass(slots=True)
class ConversationFilters:
    status: list[ConversationStatus] | None = None
    assignee_id: int | None = None
    unassigned: bool = False
    team_id: int | None = None
    tag: str | None = None
    inbox_id: int | None = None
    contact_id: int | None = None
    updated_since: datetime | None = None


async def list_visible(session: AsyncSession, principal: StaffPrincipal, filters: ConversationFilters,
                       after: tuple[datetime, int] | None, limit: int) -> list[Conversation]:
    stmt = select(Conversation).where(Conversation.account_id == principal.account_id, visible_to(principal))
    if filters.status:
        stmt = stmt.where(Conversation.status.in_(filters.status))
    if filters.unassigned:
        stmt = stmt.where(Conversation.assignee_id.is_(None))
    elif filters.assignee_id is not None:
        stmt = stmt.where(Conversation.assignee_id == filters.assignee_id)
    if filters.team_id is not None:
        stmt = stmt.where(Conversation.team_id == filters.team_id)
    if filters.inbox_id is not None:
        stmt = stmt.where(Conversation.inbox_id == filters.inbox_id)
    if filters.contact_id is not None:
        stmt = stmt.where(Conversation.contact_id == filters.contact_id)
    if filters.updated_since is not None:
        stmt = stmt.where(Conversation.updated_at >= filters.updated_since)
    if filters.tag is not None:
        stmt = stmt.where(exists().where(ConversationTag.conversation_id == Conversation.id,
                                         ConversationTag.name == filters.tag))
    if after is not None:
        at, last_id = after
        stmt = stmt.where(or_(Conversation.last_activity_at < at,
                              and_(Conversation.last_activity_at == at, Conversation.id < last_id)))
    stmt = stmt.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


async def list_for_contact(session: AsyncSession, account_id: int, contact_id: int, limit: int = 100, *,
                           inbox_id: int | None = None,
                           principal: StaffPrincipal | None = None) -> list[Conversation]:
    """A contact's conversations, newest activity first; only one inbox's (a widget session), or only
    those a staff member may see."""
    stmt = select(Conversation).where(Conversation.account_id == account_id, Conversation.contact_id == contact_id)
    if inbox_id is not None:
        stmt = stmt.where(Conversation.inbox_id == inbox_id)
    if principal is not None:
        stmt = stmt.where(visible_to(principal))
    return list((await session.scalars(
        stmt.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()).limit(limit))).all())


async def count_by_status(session: AsyncSession, principal: StaffPrincipal) -> dict[str, int]:
    rows = await session.execute(
        select(Conversation.status, func.count()).where(Conversation.account_id == principal.account_id,
                                                        visible_to(principal)).group_by(Conversation.status))
    return {str(status): n for status, n in rows}


async def list_messages(session: AsyncSession, conversation_id: int, *, include_private: bool,
                        after_id: int | None, limit: int) -> list[Message]:
    stmt = select(Message).where(Message.conversation_id == conversation_id)
    if not include_private:
        stmt = stmt.where(Message.private.is_(False))
    if after_id is not None:
        stmt = stmt.where(Message.id > after_id)
    return list((await session.scalars(stmt.order_by(Message.id).limit(limit))).all())


async def list_activity(session: AsyncSession, conversation_id: int, after_id: int | None,
                        limit: int) -> list[Activity]:
    stmt = select(Activity).where(Activity.conversation_id == conversation_id)
    if after_id is not None:
        stmt = stmt.where(Activity.id > after_id)
    return list((await session.scalars(stmt.order_by(Activity.id).limit(limit))).all())


async def attachments_for(session: AsyncSession, message_ids: Sequence[int]) -> dict[int, list[Attachment]]:
    result: dict[int, list[Attachment]] = defaultdict(list)
    if message_ids:
        rows = await session.scalars(select(Attachment).where(Attachment.message_id.in_(message_ids))
                                     .order_by(Attachment.id))
        for attachment in rows:
            result[attachment.message_id].append(attachment)
    return result


async def get_attachment(session: AsyncSession, account_id: int, conversation_id: int,
                         attachment_id: int) -> Attachment | None:
    return await session.scalar(
        select(Attachment).join(Message, Message.id == Attachment.message_id)
        .where(Attachment.id == attachment_id, Attachment.account_id == account_id,
               Message.conversation_id == conversation_id))


def add_activity(session: AsyncSession, conversation: Conversation, actor_type: SenderType, actor_id: int | None,
                 verb: str, data: dict) -> Activity:
    activity = Activity(account_id=conversation.account_id, conversation_id=conversation.id, actor_type=actor_type,
                        actor_id=actor_id, verb=verb, data=data, created_at=utcnow())
    session.add(activity)
    return activity


# --- serializers -------------------------------------------------------------------------------

async def conversations_out(session: AsyncSession, conversations: Sequence[Conversation]) -> list[ConversationOut]:
    """Batch-load what the output shape needs: two queries however many conversations."""
    if not conversations:
        return []
    contacts = {c.id: c for c in (await session.scalars(
        select(Contact).where(Contact.id.in_({c.contact_id for c in conversations})))).all()}
    channels = dict((await session.execute(
        select(Inbox.id, Inbox.channel_kind).where(Inbox.id.in_({c.inbox_id for c in conversations})))).all())
    return [conversation_out(c, contacts[c.contact_id], channels[c.inbox_id]) for c in conversations]


def conversation_out(conversation: Conversation, contact: Contact, channel: str) -> ConversationOut:
    return ConversationOut(
        id=conversation.id, inbox_id=conversation.inbox_id, channel=channel,
        contact=ContactBrief(id=contact.id, name=contact.name, email=contact.email, phone=contact.phone),
        subject=conversation.subject, status=conversation.status, priority=conversation.priority,
        assignee_id=conversation.assignee_id, team_id=conversation.team_id, tags=list(conversation.tag_names or []),
        custom_attributes=conversation.custom_attributes or {}, snoozed_until=conversation.snoozed_until,
        created_at=conversation.created_at, updated_at=conversation.updated_at,
        last_activity_at=conversation.last_activity_at, first_response_at=conversation.first_response_at,
        last_customer_message_at=conversation.last_customer_message_at,
        last_agent_message_at=conversation.last_agent_message_at, waiting_since=conversation.waiting_since,
        resolved_at=conversation.resolved_at, reopen_count=conversation.reopen_count,
        message_count=conversation.message_count)


def customer_conversation_out(conversation: Conversation) -> CustomerConversationOut:
    return CustomerConversationOut(id=conversation.id, subject=conversation.subject, status=conversation.status,
                                   created_at=conversation.created_at,
                                   last_activity_at=conversation.last_activity_at)


def attachment_out(attachment: Attachment, conversation_id: int, *, customer: bool) -> AttachmentOut:
    base = "/api/v1/customer" if customer else "/api/v1"
    return AttachmentOut(id=attachment.id, filename=attachment.filename, content_type=attachment.content_type,
                         size=attachment.size,
                         url=f"{base}/conversations/{conversation_id}/attachments/{attachment.id}")


async def sender_names(session: AsyncSession, messages: Sequence[Message]) -> dict[tuple[SenderType, int], str]:
    user_ids = {m.sender_id for m in messages if m.sender_type == SenderType.user and m.sender_id}
    contact_ids = {m.sender_id for m in messages if m.sender_type == SenderType.contact and m.sender_id}
    names: dict[tuple[SenderType, int], str] = {}
    if user_ids:
        for uid, name in await session.execute(select(User.id, User.name).where(User.id.in_(user_ids))):
            names[(SenderType.user, uid)] = name
    if contact_ids:
        for cid, name in await session.execute(select(Contact.id, Contact.name).where(Contact.id.in_(contact_ids))):
            names[(SenderType.contact, cid)] = name
    return names


def _sender(message: Message, names: dict[tuple[SenderType, int], str]) -> SenderOut:
    name = names.get((message.sender_type, message.sender_id or 0), "")
    return SenderOut(type=message.sender_type, id=message.sender_id, name=name or str(message.sender_type))


def message_out(message: Message, names: dict[tuple[SenderType, int], str],
                attachments: Sequence[Attachment] = ()) -> MessageOut:
    return MessageOut(
        id=message.id, conversation_id=message.conversation_id, inbox_id=message.inbox_id,
        direction=message.direction, private=message.private, channel=message.channel,
        sender=_sender(message, names), content=message.content, content_html=message.content_html,
        external_id=message.external_id, delivery_status=message.delivery_status,
        delivery_error=message.delivery_error, created_at=message.created_at,
        attachments=[attachment_out(a, message.conversation_id, customer=False) for a in attachments],
        link=message.meta.get("link") if message.meta else None,
        meta={k: v for k, v in message.meta.items() if k != "link"} if message.meta else {})


def customer_message_out(message: Message, names: dict[tuple[SenderType, int], str],
                         attachments: Sequence[Attachment] = ()) -> CustomerMessageOut:
    if message.private:  # defence in depth: callers filter notes out before this point
        raise ValueError("an internal note cannot be rendered for a customer")
    sender = _sender(message, names)
    if sender.type == SenderType.user:  # customers see the agent's name, not their user id
        sender = SenderOut(type=sender.type, id=None, name=sender.name)
    return CustomerMessageOut(
        id=message.id, conversation_id=message.conversation_id, direction=message.direction, sender=sender,
        content=message.content, content_html=message.content_html, created_at=message.created_at,
        attachments=[attachment_out(a, message.conversation_id, customer=True) for a in attachments])


async def messages_out(session: AsyncSession, messages: Sequence[Message]) -> list[MessageOut]:
    names = await sender_names(session, messages)
    attachments = await attachments_for(session, [m.id for m in messages])
    return [message_out(m, names, attachments.get(m.id, [])) for m in messages]


async def customer_messages_out(session: AsyncSession, messages: Sequence[Message]) -> list[CustomerMessageOut]:
    names = await sender_names(session, messages)
    attachments = await attachments_for(session, [m.id for m in messages])
    return [customer_message_out(m, names, attachments.get(m.id, [])) for m in messages]


def activities_out(activities: Sequence[Activity]) -> list[ActivityOut]:
    return [ActivityOut.model_validate(a) for a in activities]
