"""The customer portal's API: asking for a sign-in link (public), and what only a portal session
does (its replies and new conversations, signing out). Reading conversations, messages and
attachments goes through the customer API (/api/v1/customer/...), which takes the portal's cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from swarmdesk.accounts import service as accounts_service
from swarmdesk.accounts.models import Account
from swarmdesk.auth.dependencies import (
    PORTAL_COOKIE,
    PORTAL_CSRF_COOKIE,
    Customer,
    RuntimeDep,
    Uow,
    is_portal_customer,
)
from swarmdesk.auth.principals import CustomerPrincipal
from swarmdesk.config import Settings
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.dependencies import CustomerConversation
from swarmdesk.conversations.schemas import CustomerConversationOut, CustomerMessageOut
from swarmdesk.core.errors import Forbidden, NotFound
from swarmdesk.core.storage import AttachmentStore
from swarmdesk.portal import actions, service
from swarmdesk.portal.schemas import (
    MagicLinkAccepted,
    MagicLinkRequest,
    PortalConversationCreate,
    PortalMessageCreate,
    PortalOut,
)

router = APIRouter(prefix="/api/v1", tags=["portal"])

Slug = Annotated[str, Path(min_length=1, max_length=100)]


def set_portal_cookies(response: Response, settings: Settings, token: str, csrf: str) -> None:
    secure = settings.base_url.startswith("https://")
    max_age = actions.SESSION_DAYS * 86400
    response.set_cookie(PORTAL_COOKIE, token, httponly=True, samesite="lax", secure=secure, max_age=max_age,
                        path="/")
    # Readable by the portal's script, which echoes it in X-CSRF-Token (double submit).
    response.set_cookie(PORTAL_CSRF_COOKIE, csrf, httponly=False, samesite="strict", secure=secure,
                        max_age=max_age, path="/")


def clear_portal_cookies(response: Response) -> None:
    response.delete_cookie(PORTAL_COOKIE, path="/")
    response.delete_cookie(PORTAL_CSRF_COOKIE, path="/")


async def portal_account(uow: Uow, account_slug: Slug) -> Account:
    account = await accounts_service.get_account_by_slug(uow.session, account_slug)
    if account is None:
        raise NotFound(f"no customer portal at {account_slug!r}")
    return account


async def portal_customer(customer: Customer) -> CustomerPrincipal:
    if not is_portal_customer(customer):
        raise Forbidden("this route is for customer portal sessions (sign in by a magic link)")
    return customer


PortalAccount = Annotated[Account, Depends(portal_account)]
PortalCustomer = Annotated[CustomerPrincipal, Depends(portal_customer)]


def _store(runtime: RuntimeDep) -> AttachmentStore:
    return AttachmentStore(runtime.settings.attachments_dir)


@router.post("/portal/{account_slug}/magic-links", response_model=MagicLinkAccepted, status_code=202,
             summary="Mail me a sign-in link for this account's customer portal (same answer for any address)")
async def request_magic_link(account: PortalAccount, uow: Uow, runtime: RuntimeDep,
                             payload: MagicLinkRequest) -> MagicLinkAccepted:
    await actions.do_request_magic_link(uow, account, payload.email, secret_key=runtime.settings.secret_key)
    return MagicLinkAccepted()


@router.get("/portal/me", response_model=PortalOut, summary="Who the portal session is, and what it can do")
async def portal_me(customer: PortalCustomer, uow: Uow) -> PortalOut:
    account = await uow.session.get(Account, customer.account_id)
    contact_name = await service.contact_name(uow.session, customer.contact_id)
    assert account is not None
    return PortalOut(account_name=account.name, account_slug=account.slug, contact_id=customer.contact_id,
                     name=contact_name,
                     can_start_conversations=await service.portal_inbox(uow.session, account.id) is not None)


@router.delete("/portal/session", status_code=204, response_class=Response, summary="Sign out of the portal")
async def sign_out(customer: PortalCustomer, uow: Uow) -> Response:
    await actions.do_end_portal_session(uow, customer.session_id)
    response = Response(status_code=204)
    clear_portal_cookies(response)
    return response


@router.post("/portal/conversations", response_model=CustomerConversationOut, status_code=201,
             summary="Start a new conversation (on the account's email inbox)")
async def start_conversation(customer: PortalCustomer, uow: Uow, runtime: RuntimeDep,
                             payload: PortalConversationCreate) -> CustomerConversationOut:
    received = await actions.do_portal_start_conversation(
        uow, customer, payload, store=_store(runtime), max_attachment_bytes=runtime.settings.max_attachment_bytes)
    return conversations_service.customer_conversation_out(received.conversation)


@router.post("/portal/conversations/{conversation_id}/messages", response_model=CustomerMessageOut,
             status_code=201, summary="Reply in one of my conversations (stored on the conversation's inbox)")
async def reply(customer: PortalCustomer, conversation: CustomerConversation, uow: Uow, runtime: RuntimeDep,
                payload: PortalMessageCreate) -> CustomerMessageOut:
    received = await actions.do_portal_reply(uow, customer, conversation, payload, store=_store(runtime),
                                             max_attachment_bytes=runtime.settings.max_attachment_bytes)
    return (await conversations_service.customer_messages_out(uow.session, [received.message]))[0]
