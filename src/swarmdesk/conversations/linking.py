"""Which conversation an incoming message belongs to, and why.

One customer, one conversation: a message joins the conversation its channel threads it to (an
email's In-Reply-To, an API client's conversation key, a per-conversation reply token), else the
customer's conversation on the same channel, else — per the account's policy — the customer's open
conversation on another channel. Every decision is recorded on the message as a ``link`` (reason
and a sentence an agent can read), so each join can be explained.

A thread reference never pulls a message from one customer into another customer's conversation:
a forwarded mail carries the original's Message-ID, so a match whose conversation belongs to
someone else only becomes a note on the new conversation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.channels.base import InboundMessage
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts.identity import IdentityClaim
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations import service
from swarmdesk.conversations.models import Conversation, ConversationStatus, Message
from swarmdesk.core.clock import utcnow
from swarmdesk.core.errors import Conflict

OPEN_STATES = (ConversationStatus.open, ConversationStatus.pending, ConversationStatus.snoozed)


class JoinMode(enum.StrEnum):
    join_open = "join_open"  # join the customer's open conversation on any channel
    always_new = "always_new"  # another channel always starts its own conversation
    within_hours = "within_hours"  # join the latest conversation on any channel active within N hours


@dataclass(frozen=True, slots=True)
class JoinPolicy:
    mode: JoinMode = JoinMode.join_open
    hours: int = 24

    @classmethod
    def from_settings(cls, settings: dict[str, Any] | None) -> JoinPolicy:
        raw = (settings or {}).get("conversation_join") or {}
        try:
            return cls(JoinMode(raw.get("mode", JoinMode.join_open)), int(raw.get("hours", 24)))
        except (ValueError, TypeError):
            return cls()


class NoConversationForAutomaticMessage(Conflict):
    """An automatic message (an out-of-office reply) that answers no conversation of its sender."""


class LinkReason(enum.StrEnum):
    thread = "thread"  # the channel's own thread (email headers, an API conversation key)
    reply_token = "reply_token"  # the per-conversation reply address
    same_channel = "same_channel"  # the customer's conversation on this channel
    open_conversation = "open_conversation"  # the customer's open conversation on another channel
    recent_conversation = "recent_conversation"  # within the account's N-hour window
    new = "new"


@dataclass(slots=True)
class Link:
    reason: LinkReason
    detail: str
    related_conversation_id: int | None = None  # a reference that was deliberately not followed

    def as_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"reason": str(self.reason), "detail": self.detail}
        if self.related_conversation_id is not None:
            meta["related_conversation_id"] = self.related_conversation_id
        return meta


def describe_claim(claim: IdentityClaim | None) -> str:
    if claim is None:
        return "the same customer"
    kind = {"email": "email address", "phone": "phone number", "handle": "channel account"}.get(str(claim.kind),
                                                                                                 str(claim.kind))
    return f"the verified {kind} {claim.value}"


_ANY_CHANNEL = (
    select(Conversation)
    .where(Conversation.contact_id == bindparam("contact_id"), Conversation.status.in_(OPEN_STATES))
    .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()).limit(1))
_RECENT_ANY_CHANNEL = (
    select(Conversation)
    .where(Conversation.contact_id == bindparam("contact_id"), Conversation.status != ConversationStatus.closed,
           Conversation.last_activity_at >= bindparam("since"))
    .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()).limit(1))


async def _by_thread_refs(session: AsyncSession, inbox_id: int, refs: list[str]) -> Conversation | None:
    """The conversation of the nearest of this inbox's messages that ``refs`` names (In-Reply-To
    first). Looked up in the message's own inbox, through the (inbox_id, external_id) index: a
    reply comes back to the address the message it answers was sent from."""
    if not refs:
        return None
    rows = (await session.execute(
        select(Message.external_id, Message.conversation_id)
        .where(Message.inbox_id == inbox_id, Message.external_id.in_(refs[:50])))).all()
    by_ref = {ext: conv_id for ext, conv_id in rows}
    for ref in refs:
        if ref in by_ref:
            return await session.get(Conversation, by_ref[ref])
    return None


async def find_conversation(session: AsyncSession, inbox: Inbox, contact: Contact, inbound: InboundMessage, *,
                            policy: JoinPolicy, matched: IdentityClaim | None, new_contact: bool,
                            latest: service.LatestConversations | None = None) -> tuple[Conversation | None, Link]:
    """The conversation the message joins (None: start one) and the reason, in the caller's
    transaction; ``latest`` answers for the (contact, inbox) pairs a group commit asked beforehand."""
    related: int | None = None
    if inbound.conversation_key:
        conversation = await service.find_by_external_key(session, inbox.id, inbound.conversation_key)
        if conversation is not None:
            if conversation.contact_id != contact.id:
                raise Conflict("conversation_key belongs to another customer's conversation")
            if conversation.status == ConversationStatus.closed:
                raise Conflict("that conversation is closed; send without conversation_key or with a new one")
            return conversation, Link(LinkReason.thread, "the channel's conversation key names this conversation")
        return None, Link(LinkReason.new, "a new conversation key from the channel")
    if inbound.thread_refs:
        conversation = await _by_thread_refs(session, inbox.id, inbound.thread_refs)
        if conversation is not None and conversation.status != ConversationStatus.closed:
            if conversation.contact_id == contact.id:
                return conversation, Link(LinkReason.thread, "a reply to a message in this conversation")
            related = related or conversation.id
    if inbound.reply_token:
        conversation = await session.scalar(select(Conversation).where(
            Conversation.account_id == inbox.account_id, Conversation.reply_token == inbound.reply_token))
        if conversation is not None and conversation.status != ConversationStatus.closed:
            if conversation.contact_id == contact.id:
                return conversation, Link(LinkReason.reply_token,
                                          "sent to this conversation's own reply address")
            related = conversation.id
    if new_contact:
        return None, _new(related, "a new customer")
    if latest is not None:
        same = await latest.get(session, contact.id, inbox.id)
    else:
        same = await service.find_latest_for_contact(session, contact.id, inbox.id)
    if same is not None and same.status in OPEN_STATES:
        return same, Link(LinkReason.same_channel, f"{describe_claim(matched)} has this conversation open on "
                                                   "the same channel", related)
    if policy.mode != JoinMode.always_new:
        # Earlier messages of this group commit may have reopened or created conversations that
        # are only in the session so far: the SQL below must see them (this path is rare).
        await session.flush()
        if policy.mode == JoinMode.join_open:
            other = await session.scalar(_ANY_CHANNEL, {"contact_id": contact.id})
            reason, why = LinkReason.open_conversation, "has this conversation open"
        else:
            other = await session.scalar(_RECENT_ANY_CHANNEL, {
                "contact_id": contact.id, "since": utcnow() - timedelta(hours=policy.hours)})
            reason, why = LinkReason.recent_conversation, f"was active in this conversation within {policy.hours} hours"
        if other is not None and other.id != (same.id if same is not None else None):
            channel = await _channel_of(session, other)
            return other, Link(reason, f"{describe_claim(matched)} {why} on {channel}", related)
    if same is not None:  # resolved on this channel: the customer's reply reopens it
        return same, Link(LinkReason.same_channel, f"{describe_claim(matched)} wrote again on the same channel "
                                                   "after it was resolved", related)
    return None, _new(related, "no open conversation with this customer")


def _new(related: int | None, why: str) -> Link:
    if related is not None:
        return Link(LinkReason.new, f"{why}; it refers to conversation {related}, which belongs to another "
                                    "customer, so it was not joined", related)
    return Link(LinkReason.new, why)


async def _channel_of(session: AsyncSession, conversation: Conversation) -> str:
    inbox = await session.get(Inbox, conversation.inbox_id)
    return f"{inbox.name} ({inbox.channel_kind})" if inbox is not None else "another channel"
