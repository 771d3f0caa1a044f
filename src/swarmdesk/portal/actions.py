"""Changes the customer portal makes: sign-in links, portal sessions, and what a signed-in customer
writes (replies and new conversations)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update

from swarmdesk.accounts.models import Account
from swarmdesk.auth import audience as auth_audience
from swarmdesk.auth.principals import CustomerPrincipal, customer_credential
from swarmdesk.channels.base import InboundMessage
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts.models import Contact, CustomerSession
from swarmdesk.conversations import actions as conversations_actions
from swarmdesk.conversations.actions import Received, decode_attachments
from swarmdesk.conversations.models import Conversation, ConversationStatus
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import Conflict, DomainError, NotFound
from swarmdesk.core.security import CUSTOMER_TOKEN_PREFIX, new_token, token_digest
from swarmdesk.core.storage import AttachmentStore
from swarmdesk.events.types import CredentialRevoked
from swarmdesk.jobs import service as jobs_service
from swarmdesk.portal import service
from swarmdesk.portal.models import PortalMagicLink
from swarmdesk.portal.schemas import PortalConversationCreate, PortalMessageCreate

MAGIC_LINK_JOB = "portal.mail_magic_link"
LINK_MINUTES = 15
LINKS_PER_HOUR = 5  # per address and account; more requests still get 202, and no mail
SESSION_DAYS = 7
VIA = {"via": "portal"}


class LinkUnknown(DomainError):
    """Not a link we sent (or not for this portal): nothing to say about it."""

    status, title, type_slug = 400, "Unknown sign-in link", "sign-in-link-unknown"


class LinkGone(DomainError):
    status, title, type_slug = 410, "Sign-in link no longer valid", "sign-in-link-gone"


@dataclass(slots=True)
class PortalSession:
    session: CustomerSession
    token: str
    csrf_token: str
    contact: Contact


async def do_request_magic_link(uow: UnitOfWork, account: Account, email: str, *, secret_key: str) -> None:
    """A customer asks for a sign-in link. Only an address that is a verified identity of one of the
    account's contacts gets one, at most LINKS_PER_HOUR an hour; the caller answers the same either
    way. The link is stored (its token's digest) with a job that mails it, in one transaction."""
    session, now = uow.session, utcnow()
    contact = await service.contact_for_email(session, account.id, email)
    if contact is None:
        return
    if await service.links_since(session, account.id, email, now - timedelta(hours=1)) >= LINKS_PER_HOUR:
        return
    # Links older than a day are of no use to anyone (not even to the rate limit).
    await session.execute(delete(PortalMagicLink).where(
        PortalMagicLink.account_id == account.id, PortalMagicLink.email == email,
        PortalMagicLink.created_at < now - timedelta(days=1)))
    seed = secrets.token_urlsafe(32)
    link = PortalMagicLink(account_id=account.id, contact_id=contact.id, email=email,
                           token_hash=token_digest(service.link_token(secret_key, seed)), seed=seed,
                           created_at=now, expires_at=now + timedelta(minutes=LINK_MINUTES))
    session.add(link)
    await session.flush()
    jobs_service.enqueue(session, MAGIC_LINK_JOB, {"link_id": link.id}, account_id=account.id)
    await uow.commit()


async def check_magic_link(uow: UnitOfWork, account: Account, token: str) -> PortalMagicLink:
    """The link, if it can still sign someone in; raises LinkUnknown or LinkGone. Reads only: a
    GET of the link (a mail scanner's prefetch) must not use it up."""
    link = await service.link_by_token(uow.session, token) if token.startswith(service.MAGIC_LINK_PREFIX) else None
    if link is None or link.account_id != account.id:
        raise LinkUnknown("This sign-in link is not one we sent. Ask for a new one.")
    if link.used_at is not None:
        raise LinkGone("This sign-in link was already used (each link works once). Ask for a new one.")
    if link.expires_at <= utcnow():
        raise LinkGone(f"This sign-in link has expired (links work for {LINK_MINUTES} minutes). Ask for a new one.")
    return link


async def do_redeem_magic_link(uow: UnitOfWork, account: Account, token: str) -> PortalSession:
    """Use the link up and open a portal session for the contact that owns the address now (a
    merge since the link was sent moves the address to the surviving contact)."""
    session, now = uow.session, utcnow()
    link = await check_magic_link(uow, account, token)
    contact = await service.contact_for_email(session, account.id, link.email)
    if contact is None:
        raise LinkGone("This address no longer belongs to a customer here.")
    # Conditional, so two concurrent POSTs of one link cannot both sign in.
    used = await session.execute(update(PortalMagicLink).where(
        PortalMagicLink.id == link.id, PortalMagicLink.used_at.is_(None)).values(used_at=now, seed=""))
    if used.rowcount != 1:
        raise LinkGone("This sign-in link was already used (each link works once). Ask for a new one.")
    # Signing in uses up every other link mailed to the address: older mails stop being keys.
    for other in await service.open_links_for(session, account.id, link.email):
        other.used_at, other.seed = now, ""
    token = new_token(CUSTOMER_TOKEN_PREFIX)
    csrf = secrets.token_urlsafe(32)
    cs = CustomerSession(account_id=account.id, contact_id=contact.id, inbox_id=None, token_hash=token_digest(token),
                         csrf_token=csrf, created_at=now, expires_at=now + timedelta(days=SESSION_DAYS))
    session.add(cs)
    await uow.commit()
    return PortalSession(cs, token, csrf, contact)


async def do_end_portal_session(uow: UnitOfWork, session_id: int) -> None:
    """Sign out: the session is deleted, so its cookie is worthless from now on, and its live
    connections end."""
    ended = (await uow.session.execute(delete(CustomerSession).where(
        CustomerSession.id == session_id, CustomerSession.inbox_id.is_(None)).returning(
        CustomerSession.account_id, CustomerSession.contact_id))).all()
    for account_id, contact_id in ended:
        uow.publish(CredentialRevoked(account_id=account_id, audience=auth_audience.customer_sign_ins(
            contact_id, [customer_credential(session_id)])))
    await uow.commit()


async def do_portal_reply(uow: UnitOfWork, customer: CustomerPrincipal, conversation: Conversation,
                          payload: PortalMessageCreate, *, store: AttachmentStore,
                          max_attachment_bytes: int) -> Received:
    """The customer answers in the portal. The message is the customer's, on the conversation's own
    inbox (marked ``via: portal``), so an agent's answer goes out where the conversation lives; a
    resolved conversation reopens as for any customer reply."""
    session = uow.session
    if conversation.status == ConversationStatus.closed:
        raise Conflict("this conversation is closed; start a new one")
    inbox = await session.get(Inbox, conversation.inbox_id)
    contact = await session.get(Contact, customer.contact_id)
    if inbox is None or contact is None:
        raise NotFound(f"conversation {conversation.id} not found")
    inbound = InboundMessage(external_id=None, content=payload.content, meta=dict(VIA),
                             attachments=decode_attachments(payload.attachments, max_attachment_bytes))
    received = await conversations_actions.receive_message(uow, inbox, contact, inbound, store=store,
                                                           conversation=conversation)
    await uow.commit()
    return received


async def do_portal_start_conversation(uow: UnitOfWork, customer: CustomerPrincipal,
                                       payload: PortalConversationCreate, *, store: AttachmentStore,
                                       max_attachment_bytes: int) -> Received:
    """A new conversation from the portal, always a new one, on the account's email inbox: agents
    answer it by mail as well as in the portal."""
    session = uow.session
    inbox = await service.portal_inbox(session, customer.account_id)
    contact = await session.get(Contact, customer.contact_id)
    if inbox is None or contact is None:
        raise Conflict("conversations cannot be started here: this account has no email inbox")
    inbound = InboundMessage(external_id=None, content=payload.content, subject=payload.subject, meta=dict(VIA),
                             attachments=decode_attachments(payload.attachments, max_attachment_bytes))
    # The building block the customer API's own "start a conversation" uses (always a new one).
    received = await conversations_actions.receive_new(uow, inbox, contact, inbound, store=store)
    await uow.commit()
    return received
