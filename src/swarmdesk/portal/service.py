"""Data access for the customer portal. Never publishes, never calls a channel."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.channels.models import Inbox
from swarmdesk.channels.registry import channels
from swarmdesk.contacts.models import Contact, ContactIdentity, IdentityKind
from swarmdesk.conversations.models import Message
from swarmdesk.core.security import token_digest
from swarmdesk.portal.models import PortalMagicLink

MAGIC_LINK_PREFIX = "sdm_"


def link_token(secret_key: str, seed: str) -> str:
    """The token a link's mail carries: an HMAC of the link's random seed with the server's secret
    key. Neither the database nor a job's payload holds it; a database copy alone cannot sign in."""
    mac = hmac.new(secret_key.encode(), b"swarmdesk-portal-link:" + seed.encode(), hashlib.sha256).digest()
    return MAGIC_LINK_PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign_in_url(base_url: str, account_slug: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/portal/{quote(account_slug, safe='')}/sign-in?token={quote(token, safe='')}"


async def contact_for_email(session: AsyncSession, account_id: int, email: str) -> Contact | None:
    """The contact of this account that owns ``email`` (normalized) as a verified, account-wide
    identity: authenticated mail from the address, an email the customer's own site signed for the
    widget, or an address an agent entered. A contact's ``email`` field alone does not count: a
    widget visitor may type anyone's address there, and mailing a sign-in link to it would show
    that visitor's conversations to whoever reads that mailbox."""
    return await session.scalar(
        select(Contact).join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
        .where(ContactIdentity.account_id == account_id, ContactIdentity.kind == IdentityKind.email,
               ContactIdentity.scope == "", ContactIdentity.value == email, ContactIdentity.verified.is_(True),
               Contact.merged_into_id.is_(None)))


async def links_since(session: AsyncSession, account_id: int, email: str, since: datetime) -> int:
    return await session.scalar(select(func.count(PortalMagicLink.id)).where(
        PortalMagicLink.account_id == account_id, PortalMagicLink.email == email,
        PortalMagicLink.created_at >= since)) or 0


async def link_by_token(session: AsyncSession, token: str) -> PortalMagicLink | None:
    return await session.scalar(select(PortalMagicLink).where(PortalMagicLink.token_hash == token_digest(token)))


async def open_links_for(session: AsyncSession, account_id: int, email: str) -> list[PortalMagicLink]:
    return list((await session.scalars(select(PortalMagicLink).where(
        PortalMagicLink.account_id == account_id, PortalMagicLink.email == email,
        PortalMagicLink.used_at.is_(None)))).all())


def mails_customers(inbox: Inbox) -> bool:
    """An inbox whose channel sends to the customer's email address (the registry says which)."""
    if inbox.channel_kind not in channels.kinds:
        return False
    caps = channels.adapter_class(inbox.channel_kind).capabilities
    return caps.can_send and IdentityKind.email in caps.recipient_kinds


async def portal_inbox(session: AsyncSession, account_id: int) -> Inbox | None:
    """The account's email inbox, which the portal uses: it mails the sign-in links, and
    conversations started in the portal live there, so agents' answers also reach the customer by
    mail. The first active inbox (by id) whose channel sends to email addresses; None if none."""
    inboxes = (await session.scalars(select(Inbox).where(Inbox.account_id == account_id,
                                                         Inbox.is_active.is_(True)).order_by(Inbox.id))).all()
    return next((inbox for inbox in inboxes if mails_customers(inbox)), None)


async def latest_public_messages(session: AsyncSession, conversation_ids: Sequence[int]) -> dict[int, Message]:
    """Each conversation's newest message a customer may see (a preview for the list)."""
    if not conversation_ids:
        return {}
    newest = (select(func.max(Message.id)).where(Message.conversation_id.in_(conversation_ids),
                                                 Message.private.is_(False))
              .group_by(Message.conversation_id))
    rows = await session.scalars(select(Message).where(Message.id.in_(newest)))
    return {m.conversation_id: m for m in rows}


async def contact_name(session: AsyncSession, contact_id: int) -> str:
    return await session.scalar(select(Contact.name).where(Contact.id == contact_id)) or ""


async def public_messages(session: AsyncSession, conversation_id: int, limit: int) -> list[Message]:
    """The conversation's latest ``limit`` messages a customer may see (never an internal note), oldest first."""
    rows = (await session.scalars(select(Message).where(
        Message.conversation_id == conversation_id, Message.private.is_(False))
        .order_by(Message.id.desc()).limit(limit))).all()
    return list(reversed(rows))
