"""Data access for contact rules. Never publishes, never calls a channel."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.channels.models import Inbox
from swarmdesk.channels.registry import channels
from swarmdesk.contacts.identity import handle_scope
from swarmdesk.contacts.models import Contact, ContactIdentity
from swarmdesk.conversations import reply
from swarmdesk.conversations.models import Conversation, Direction, Message
from swarmdesk.preferences.models import ContactRules, ContactTouch, DeferredSend

MAX_MERGE_HOPS = 10


async def survivor_of(session: AsyncSession, contact: Contact) -> Contact:
    """The contact that a merged contact now lives on in (itself if it was never merged)."""
    current = contact
    for _ in range(MAX_MERGE_HOPS):
        if current.merged_into_id is None:
            return current
        survivor = await session.get(Contact, current.merged_into_id)
        if survivor is None or survivor.account_id != contact.account_id:
            return current
        current = survivor
    return current


async def rules_row(session: AsyncSession, contact_id: int, *, lock: bool = False) -> ContactRules | None:
    """The contact's rules row. ``lock`` holds it for the rest of the transaction (PostgreSQL), so
    two proactive sends to one customer cannot both pass the cap."""
    stmt = select(ContactRules).where(ContactRules.contact_id == contact_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def contacted_since(session: AsyncSession, contact_id: int, since: datetime) -> list[datetime]:
    """When proactive messages went to this customer since ``since``: to the contact itself and to
    contacts merged into it (their history is the same person's)."""
    merged = select(Contact.id).where(Contact.merged_into_id == contact_id)
    rows = await session.scalars(select(ContactTouch.sent_at).where(
        or_(ContactTouch.contact_id == contact_id, ContactTouch.contact_id.in_(merged)),
        ContactTouch.sent_at > since).order_by(ContactTouch.sent_at))
    return list(rows.all())


async def touches_count(session: AsyncSession, contact_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(ContactTouch)
                                .where(ContactTouch.contact_id == contact_id)) or 0


async def sending_kinds(session: AsyncSession, account_id: int) -> list[str]:
    """The channel kinds of the account's active inboxes that can send, in inbox order."""
    kinds = (await session.scalars(select(Inbox.channel_kind).where(
        Inbox.account_id == account_id, Inbox.is_active.is_(True)).order_by(Inbox.id))).all()
    out: list[str] = []
    for kind in kinds:
        if kind in channels.kinds and channels.kinds[kind].capabilities.can_send and kind not in out:
            out.append(kind)
    return out


async def reachable_inboxes(session: AsyncSession, contact: Contact, *, chars: int = 0) -> list[Inbox]:
    """Every active inbox of the account that can send and can reach this customer now (the
    channel's own limits, e.g. a reply window, checked as for a reply), in inbox order."""
    probe = Conversation(account_id=contact.account_id, contact_id=contact.id)  # never stored
    inboxes = (await session.scalars(select(Inbox).where(
        Inbox.account_id == contact.account_id, Inbox.is_active.is_(True)).order_by(Inbox.id))).all()
    scopes = set((await session.scalars(select(ContactIdentity.scope).where(
        ContactIdentity.contact_id == contact.id))).all())
    scopes |= {handle_scope(inbox_id) for inbox_id in (await session.scalars(
        select(Message.inbox_id).join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.contact_id == contact.id, Message.direction == Direction.incoming)
        .distinct())).all()}
    out = []
    for inbox in inboxes:
        if inbox.channel_kind not in channels.kinds or not reply.capabilities_of(inbox).can_send:
            continue
        # A channel that addresses the contact itself (web chat, an app) reaches only someone who
        # has been there (an identity of that inbox, or a message written on it): a message would
        # otherwise wait in a widget the customer never opens.
        if not reply.capabilities_of(inbox).recipient_kinds and handle_scope(inbox.id) not in scopes:
            continue
        if await reply.refusal(session, probe, inbox, chars=chars) is None:
            out.append(inbox)
    return out


async def get_deferred(session: AsyncSession, account_id: int, deferred_id: int) -> DeferredSend | None:
    return await session.scalar(select(DeferredSend).where(DeferredSend.id == deferred_id,
                                                           DeferredSend.account_id == account_id))


async def lock_deferred(session: AsyncSession, deferred_id: int) -> DeferredSend | None:
    """Re-read and lock the row (PostgreSQL; SQLite's writers are serialized anyway): whoever holds
    it decides its fate, and the next to look sees that fate."""
    return await session.scalar(select(DeferredSend).where(DeferredSend.id == deferred_id).with_for_update()
                                .execution_options(populate_existing=True))


async def deferred_of_conversation(session: AsyncSession, conversation_id: int, limit: int = 50) -> list[DeferredSend]:
    """Newest first."""
    return list((await session.scalars(select(DeferredSend).where(DeferredSend.conversation_id == conversation_id)
                                       .order_by(DeferredSend.id.desc()).limit(limit))).all())
