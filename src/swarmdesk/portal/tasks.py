"""The sign-in link's mail, sent through the account's email inbox."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swarmdesk.accounts.models import Account
from swarmdesk.channels.base import OutboundMessage, Recipient
from swarmdesk.channels.directory import outbound_allowlist
from swarmdesk.contacts.models import Contact
from swarmdesk.core.clock import utcnow
from swarmdesk.core.security import token_digest
from swarmdesk.jobs.registry import JobContext, PermanentFailure, jobs
from swarmdesk.portal import service
from swarmdesk.portal.actions import LINK_MINUTES, MAGIC_LINK_JOB
from swarmdesk.portal.models import PortalMagicLink

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

NO_INBOX = ("the customer portal's sign-in link cannot be mailed: this account has no active email inbox "
            "to send it from (add one under Inboxes, then the customer can ask for a new link)")


def render_mail(account_name: str, customer_name: str, url: str) -> str:
    greeting = f"Hello {customer_name}," if customer_name else "Hello,"
    return "\n".join([
        greeting, "",
        f"here is your link to sign in to {account_name}'s customer portal, where you can see and answer "
        "your conversations with us:", "",
        url, "",
        f"It works once, within {LINK_MINUTES} minutes. If you did not ask for it, ignore this mail: "
        "nobody can sign in without it.", "",
        account_name,
    ])


@jobs.handler(MAGIC_LINK_JOB)
async def mail_magic_link(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    # At least once: a crash between the mail and the job's completion sends the same link again
    # (the token is derived from the link's seed, so both mails carry the same working link).
    async with runtime.uow() as uow:
        s = uow.session
        link = await s.get(PortalMagicLink, payload["link_id"])
        if link is None or link.used_at is not None:
            return  # used already (the customer signed in with another of their links): nothing to send
        if link.expires_at <= utcnow():
            raise PermanentFailure("the sign-in link expired before it could be mailed; the customer can ask "
                                   "for a new one")
        account = await s.get(Account, link.account_id)
        contact = await s.get(Contact, link.contact_id)
        inbox = await service.portal_inbox(s, link.account_id)
    if inbox is None:
        raise PermanentFailure(NO_INBOX)
    assert account is not None
    token = service.link_token(runtime.settings.secret_key, link.seed)
    if token_digest(token) != link.token_hash:
        raise PermanentFailure("the server's secret key changed after this sign-in link was made; the customer "
                               "can ask for a new one")
    name = contact.name if contact is not None else ""
    outbound = OutboundMessage(
        message_id=0, conversation_id=0, conversation_key=None,
        content=render_mail(account.name, name, service.sign_in_url(runtime.settings.base_url, account.slug, token)),
        content_html=None, sender_name="", recipient=Recipient(contact_id=link.contact_id, name=name,
                                                               handles={"email": link.email}),
        attachments=[], created_at=utcnow(), idempotency_key=f"portal_link_{link.id}",
        subject=f"Your sign-in link for {account.name}")
    adapter = runtime.channels.build(inbox, outbound_allowlist(account))
    await adapter.send(outbound)
