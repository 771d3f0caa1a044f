"""On which channel an agent's reply goes out.

A conversation is not tied to one channel: the customer may have written by chat, then email, then
SMS. A reply goes, by default, where the customer last wrote; the agent may pick any channel the
customer can be reached on. Each channel's limits (length, reply window) are checked here, before
anything is stored, so the agent gets a clear answer instead of a failed delivery later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.channels.base import Capabilities, Refusal
from swarmdesk.channels.models import Inbox
from swarmdesk.channels.registry import channels
from swarmdesk.contacts.identity import handle_scope
from swarmdesk.contacts.models import Contact, ContactIdentity
from swarmdesk.conversations.models import Conversation, Direction, Message
from swarmdesk.core.clock import utcnow
from swarmdesk.core.errors import Conflict, NotFound, ValidationFailed


@dataclass(slots=True)
class ReplyChannel:
    inbox: Inbox
    available: bool
    reason: str | None
    default: bool


def capabilities_of(inbox: Inbox) -> Capabilities:
    return channels.adapter_class(inbox.channel_kind).capabilities


async def default_inbox_id(session: AsyncSession, conversation: Conversation) -> int:
    """Where the customer last wrote in this conversation on a channel that can carry a reply (a
    phone call's inbox cannot); the conversation's first inbox if none."""
    rows = await session.execute(
        select(Message.inbox_id, Inbox.channel_kind).join(Inbox, Inbox.id == Message.inbox_id)
        .where(Message.conversation_id == conversation.id, Message.direction == Direction.incoming)
        .order_by(Message.id.desc()).limit(50))
    for inbox_id, kind in rows:
        if kind in channels.kinds and channels.adapter_class(kind).capabilities.can_send:
            return inbox_id
    return conversation.inbox_id


@dataclass(slots=True)
class Reach:
    """How the customer can be reached, loaded once for however many inboxes are checked."""

    identities: list[tuple[str, str]]  # (kind, scope)
    profile_kinds: set[str]  # the profile's email and phone (an unverified sender still gets the answer)
    last_incoming: dict[int, datetime]  # by inbox: the customer's last message there, any conversation

    def kinds_for(self, inbox: Inbox) -> set[str]:
        """Identity kinds a reply on ``inbox`` can address (account-wide or scoped to the inbox)."""
        return {kind for kind, scope in self.identities if scope in ("", handle_scope(inbox.id))} | self.profile_kinds


async def load_reach(session: AsyncSession, contact_id: int, window_inbox_ids: Sequence[int]) -> Reach:
    """Three statements whatever the number of inboxes. Vendors' reply windows are per customer,
    not per conversation, so the last incoming message is looked up across their conversations."""
    identities = [(str(kind), scope) for kind, scope in await session.execute(
        select(ContactIdentity.kind, ContactIdentity.scope).where(ContactIdentity.contact_id == contact_id))]
    profile = (await session.execute(select(Contact.email, Contact.phone).where(Contact.id == contact_id))).first()
    profile_kinds = {kind for kind, value in zip(("email", "phone"), profile or (None, None), strict=True) if value}
    last: dict[int, datetime] = {}
    if window_inbox_ids:
        last = dict((await session.execute(
            select(Message.inbox_id, func.max(Message.created_at))
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.contact_id == contact_id, Message.inbox_id.in_(list(window_inbox_ids)),
                   Message.direction == Direction.incoming)
            .group_by(Message.inbox_id))).all())
    return Reach(identities, profile_kinds, last)


async def refusal(session: AsyncSession, conversation: Conversation, inbox: Inbox, *, chars: int,
                  reach: Reach | None = None) -> Refusal | None:
    if not inbox.is_active:
        return Refusal("inactive", f"the inbox {inbox.name!r} is disabled")
    caps = capabilities_of(inbox)
    if reach is None:
        reach = await load_reach(session, conversation.contact_id, [inbox.id] if caps.reply_window else [])
    kinds = reach.kinds_for(inbox)
    if caps.can_send and caps.recipient_kinds and not kinds.intersection(str(k) for k in caps.recipient_kinds):
        wanted = " or ".join({"handle": "account on this channel"}.get(str(k), str(k)) for k in caps.recipient_kinds)
        return Refusal("unreachable", f"the customer has no {wanted} for {inbox.name!r}")
    last = reach.last_incoming.get(inbox.id) if caps.reply_window else None
    return caps.refusal(chars=chars, last_incoming_at=last, now=utcnow())


async def choose_inbox(session: AsyncSession, conversation: Conversation, inbox_id: int | None, *,
                       chars: int) -> Inbox:
    """The inbox a public reply goes out on; raises a clear 4xx if it cannot go there."""
    chosen_id = inbox_id if inbox_id is not None else await default_inbox_id(session, conversation)
    inbox = await session.get(Inbox, chosen_id)
    if inbox is None or inbox.account_id != conversation.account_id:
        raise NotFound(f"inbox {chosen_id} not found")
    refused = await refusal(session, conversation, inbox, chars=chars)
    if refused is not None:
        if refused.code == "too_long":
            raise ValidationFailed(refused.detail, extra={"code": refused.code, "inbox_id": inbox.id})
        raise Conflict(refused.detail, extra={"code": refused.code, "inbox_id": inbox.id})
    return inbox


async def reply_channels(session: AsyncSession, conversation: Conversation) -> list[ReplyChannel]:
    """Every inbox of the account that can send, and whether this customer can be reached there now."""
    default_id = await default_inbox_id(session, conversation)
    inboxes = (await session.scalars(select(Inbox).where(
        Inbox.account_id == conversation.account_id, Inbox.is_active.is_(True)).order_by(Inbox.id))).all()
    sendable = [i for i in inboxes if i.channel_kind in channels.kinds and capabilities_of(i).can_send]
    reach = await load_reach(session, conversation.contact_id,
                             [i.id for i in sendable if capabilities_of(i).reply_window])
    out = []
    for inbox in sendable:
        refused = await refusal(session, conversation, inbox, chars=0, reach=reach)
        out.append(ReplyChannel(inbox, refused is None, refused.detail if refused else None, inbox.id == default_id))
    return out
