"""The customer portal's pages: sign-in by a mailed link, "My conversations", one conversation (live
through the customer real-time queue), starting a new one, and the customer's contact preferences.

Everything here is server-rendered from the portal and conversation services; what a customer
writes goes through the JSON API from ``static/js/portal.js`` (with the portal's CSRF header).
Only the sign-in and sign-out forms post to these pages, and they are checked to come from our
own origin (and, for signing out, to carry the session's CSRF token)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from swarmdesk.accounts import service as accounts_service
from swarmdesk.accounts.models import Account
from swarmdesk.auth import service as auth_service
from swarmdesk.auth.dependencies import PORTAL_COOKIE, RuntimeDep, Uow
from swarmdesk.contacts.identity import normalize_email
from swarmdesk.contacts.models import Contact, CustomerSession
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import ConversationStatus, SenderType
from swarmdesk.conversations.schemas import CustomerMessageOut
from swarmdesk.core.errors import DomainError
from swarmdesk.core.time_zones import offered_time_zones
from swarmdesk.portal import actions as portal_actions
from swarmdesk.portal import service as portal_service
from swarmdesk.portal.router import clear_portal_cookies, set_portal_cookies
from swarmdesk.preferences import views as preferences_views
from swarmdesk.web.dependencies import same_origin
from swarmdesk.web.templating import render

router = APIRouter(prefix="/portal", include_in_schema=False)

MESSAGES_SHOWN = 200
ORIGINAL_TYPE = "message/rfc822"


@dataclass(frozen=True, slots=True)
class NavItem:
    key: str
    label: str
    path: str  # below /portal/<slug>
    signed_in_only: bool = False


# The portal's header navigation, in order. Sections added later (the knowledge base, the
# community) append their item here.
NAV: list[NavItem] = [NavItem("conversations", "My conversations", "/conversations", signed_in_only=True),
                      NavItem("preferences", "Contact preferences", "/preferences", signed_in_only=True)]

# What a customer is told about a conversation's status (snoozed is the agents' business).
STATUS_LABELS = {"open": "Open", "pending": "Waiting for you", "snoozed": "Open", "resolved": "Resolved",
                 "closed": "Closed"}
STATUS_CLASSES = {"open": "open", "pending": "pending", "snoozed": "open", "resolved": "resolved", "closed": "closed"}

Slug = Annotated[str, Path(min_length=1, max_length=100)]
ConversationId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@dataclass(slots=True)
class Viewer:
    session: CustomerSession
    contact: Contact


def when(value: datetime) -> str:
    """A fixed, unambiguous time for the server-rendered page (the script shows it in local time)."""
    return f"{value.day} {value:%b %Y, %H:%M} UTC"


def _without_originals(message: CustomerMessageOut) -> CustomerMessageOut:
    """A channel's copy of what the customer sent (an email's raw original, kept for agents) is
    not something to show the customer back."""
    if message.sender.type != SenderType.contact:
        return message
    return message.model_copy(update={"attachments": [a for a in message.attachments
                                                      if a.content_type != ORIGINAL_TYPE]})


def base_path(account: Account) -> str:
    return f"/portal/{quote(account.slug, safe='')}"


async def _viewer(request: Request, uow: Uow, account: Account) -> Viewer | None:
    """The signed-in customer of this account's portal, from the portal cookie (None: signed out)."""
    token = request.cookies.get(PORTAL_COOKIE)
    if not token:
        return None
    cs = await auth_service.portal_session_for(uow.session, token)
    if cs is None or cs.account_id != account.id:
        return None
    contact = await uow.session.get(Contact, cs.contact_id)
    return Viewer(cs, contact) if contact is not None else None


def _page(request: Request, template: str, account: Account, viewer: Viewer | None, *, page: str,
          status_code: int = 200, **context: Any) -> Response:
    base = base_path(account)
    nav = [(item.key, item.label, base + item.path) for item in NAV if viewer is not None or not item.signed_in_only]
    return render(request, template, status_code=status_code, account=account, viewer=viewer, base=base, nav=nav,
                  page=page, status_labels=STATUS_LABELS, status_classes=STATUS_CLASSES, when=when, **context)


def _not_found(request: Request) -> Response:
    return render(request, "portal/not_found.html", status_code=404, account=None, viewer=None, base="", nav=[],
                  page="not-found")


def _to_sign_in(account: Account) -> RedirectResponse:
    return RedirectResponse(base_path(account), status_code=303)


@router.get("/{slug}")
async def sign_in_page(request: Request, uow: Uow, slug: Slug) -> Response:
    account = await accounts_service.get_account_by_slug(uow.session, slug)
    if account is None:
        return _not_found(request)
    if await _viewer(request, uow, account) is not None:
        return RedirectResponse(base_path(account) + "/conversations", status_code=303)
    return _page(request, "portal/sign_in.html", account, None, page="sign-in", email="", error=None)


@router.post("/{slug}/magic-link")
async def request_link(request: Request, uow: Uow, runtime: RuntimeDep, slug: Slug,
                       email: Annotated[str, Form(max_length=320)] = "") -> Response:
    account = await accounts_service.get_account_by_slug(uow.session, slug)
    if account is None:
        return _not_found(request)
    if not same_origin(request):
        return _page(request, "portal/sign_in.html", account, None, page="sign-in", status_code=403, email=email,
                     error="This form came from another site. Open this page again and enter your email.")
    try:
        address = normalize_email(email)
    except ValueError:
        return _page(request, "portal/sign_in.html", account, None, page="sign-in", status_code=422, email=email,
                     error="Enter a valid email address, like name@example.com.")
    await portal_actions.do_request_magic_link(uow, account, address, secret_key=runtime.settings.secret_key)
    return _page(request, "portal/check_mail.html", account, None, page="check-mail", email=address,
                 minutes=portal_actions.LINK_MINUTES)


@router.get("/{slug}/sign-in")
async def confirm_page(request: Request, uow: Uow, slug: Slug,
                       token: Annotated[str, Query(max_length=200)] = "") -> Response:
    """The link from the mail. A GET never uses the link up (mail scanners open links): it shows a
    button whose POST does."""
    account = await accounts_service.get_account_by_slug(uow.session, slug)
    if account is None:
        return _not_found(request)
    try:
        link = await portal_actions.check_magic_link(uow, account, token)
    except DomainError as exc:
        return _page(request, "portal/link_problem.html", account, None, page="link-problem",
                     status_code=exc.status, problem=exc.detail)
    return _page(request, "portal/confirm.html", account, None, page="confirm", token=token, email=link.email)


@router.post("/{slug}/sign-in")
async def sign_in(request: Request, uow: Uow, runtime: RuntimeDep, slug: Slug,
                  token: Annotated[str, Form(max_length=200)] = "") -> Response:
    account = await accounts_service.get_account_by_slug(uow.session, slug)
    if account is None:
        return _not_found(request)
    if not same_origin(request):
        # Another site must not sign a visitor in (as someone else) behind their back.
        return _page(request, "portal/link_problem.html", account, None, page="link-problem", status_code=403,
                     problem="This sign-in came from another site. Open the link from your mail again.")
    try:
        opened = await portal_actions.do_redeem_magic_link(uow, account, token)
    except DomainError as exc:
        return _page(request, "portal/link_problem.html", account, None, page="link-problem",
                     status_code=exc.status, problem=exc.detail)
    response = RedirectResponse(base_path(account) + "/conversations", status_code=303)
    set_portal_cookies(response, runtime.settings, opened.token, opened.csrf_token)
    return response


@router.post("/{slug}/sign-out")
async def sign_out(request: Request, uow: Uow, slug: Slug,
                   csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    account = await accounts_service.get_account_by_slug(uow.session, slug)
    if account is None:
        return _not_found(request)
    viewer = await _viewer(request, uow, account)
    if viewer is not None:
        expected = (viewer.session.csrf_token or "").encode()
        if not same_origin(request) or not hmac.compare_digest(csrf.encode(), expected):
            return _page(request, "portal/link_problem.html", account, viewer, page="link-problem", status_code=403,
                         problem="This sign-out came from another site; use the Sign out button here.")
        await portal_actions.do_end_portal_session(uow, viewer.session.id)
    response = _to_sign_in(account)
    clear_portal_cookies(response)
    return response


@router.get("/{slug}/conversations")
async def conversations_page(request: Request, uow: Uow, slug: Slug) -> Response:
    account = await accounts_service.get_account_by_slug(uow.session, slug)
    if account is None:
        return _not_found(request)
    viewer = await _viewer(request, uow, account)
    if viewer is None:
        return _to_sign_in(account)
    rows = await conversations_service.list_for_contact(uow.session, account.id, viewer.contact.id)
    previews = await portal_service.latest_public_messages(uow.session, [c.id for c in rows])
    can_start = await portal_service.portal_inbox(uow.session, account.id) is not None
    return _page(request, "portal/conversations.html", account, viewer, page="conversations", section="conversations",
                 conversations=rows, previews=previews, can_start=can_start)


@router.get("/{slug}/conversations/new")
async def new_conversation_page(request: Request, uow: Uow, slug: Slug) -> Response:
    account = await accounts_service.get_account_by_slug(uow.session, slug)
    if account is None:
        return _not_found(request)
    viewer = await _viewer(request, uow, account)
    if viewer is None:
        return _to_sign_in(account)
    if await portal_service.portal_inbox(uow.session, account.id) is None:
        return _not_found(request)
    return _page(request, "portal/new.html", account, viewer, page="new", section="conversations")


@router.get("/{slug}/conversations/{conversation_id}")
async def conversation_page(request: Request, uow: Uow, slug: Slug, conversation_id: ConversationId) -> Response:
    account = await accounts_service.get_account_by_slug(uow.session, slug)
    if account is None:
        return _not_found(request)
    viewer = await _viewer(request, uow, account)
    if viewer is None:
        return _to_sign_in(account)
    conversation = await conversations_service.get_for_contact(uow.session, account.id, viewer.contact.id,
                                                               conversation_id)
    if conversation is None:
        return _not_found(request)
    rows = await portal_service.public_messages(uow.session, conversation.id, MESSAGES_SHOWN + 1)
    earlier = len(rows) > MESSAGES_SHOWN
    messages = [_without_originals(m) for m in
                await conversations_service.customer_messages_out(uow.session, rows[-MESSAGES_SHOWN:])]
    return _page(request, "portal/conversation.html", account, viewer, page="conversation", section="conversations",
                 conversation=conversation, messages=messages, earlier=earlier,
                 closed=conversation.status == ConversationStatus.closed)


@router.get("/{slug}/preferences")
async def preferences_page(request: Request, uow: Uow, slug: Slug) -> Response:
    """The customer's contact rules as a form; ``portal.js`` saves it through
    ``PUT /api/v1/customer/preferences``."""
    account = await accounts_service.get_account_by_slug(uow.session, slug)
    if account is None:
        return _not_found(request)
    viewer = await _viewer(request, uow, account)
    if viewer is None:
        return _to_sign_in(account)
    rules = await preferences_views.for_customer(uow.session, viewer.contact)
    saved_zone = rules.quiet_hours.time_zone if rules.quiet_hours else ""
    zones = offered_time_zones()
    if saved_zone and saved_zone not in zones:  # a legacy name set through the API (US/Eastern) stays chosen
        zones = [saved_zone, *zones]
    return _page(request, "portal/preferences.html", account, viewer, page="preferences", section="preferences",
                 rules=rules, zones=zones, saved_zone=saved_zone)
