"""The admin area of the workspace (admins only): inboxes and their channel setup, users, teams,
the admin's own API tokens, webhooks and their delivery log, account settings and failed jobs.

Pages list what exists, rendered from the domain services; every change goes through the JSON API
from ``static/js/admin.js``. Channel configs reach the page without their secrets (at any depth:
the email channel keeps passwords inside its IMAP and SMTP blocks): a secret is only ever named as
"set", never rendered."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from swarmdesk.accounts import service as accounts_service
from swarmdesk.accounts.models import Role
from swarmdesk.accounts.schemas import ConversationJoinSettings
from swarmdesk.auth.dependencies import RuntimeDep, Uow
from swarmdesk.auth.principals import SCOPES, StaffPrincipal
from swarmdesk.channels import service as channels_service
from swarmdesk.channels.base import ChannelAdapter
from swarmdesk.channels.models import Inbox
from swarmdesk.channels.registry import channels
from swarmdesk.channels.schemas import InboxSettings
from swarmdesk.core.time_zones import offered_time_zones
from swarmdesk.events.types import WEBHOOK_EVENT_TYPES
from swarmdesk.jobs import service as jobs_service
from swarmdesk.jobs.models import JobStatus
from swarmdesk.runtime import Runtime
from swarmdesk.web.dependencies import PageStaff, to_login
from swarmdesk.web.templating import render
from swarmdesk.webhooks import service as webhooks_service

router = APIRouter(prefix="/app/admin", include_in_schema=False)

# Every admin section, in the navigation's order. Routing, SLA and automation sections live in their
# own modules (``admin_routing``, ``admin_sla``, ``admin_automation``) and render through ``admin_page``.
SECTIONS = (("inboxes", "Inboxes"), ("users", "Users"), ("teams", "Teams"),
            ("skills", "Skills & capacity"), ("queues", "Routing queues"), ("sla", "Business hours & SLAs"),
            ("automation", "Automation rules"), ("macros", "Macros"),
            ("tokens", "API tokens"), ("webhooks", "Webhooks"), ("account", "Account settings"), ("jobs", "Failed jobs"))
# Supervisors set up routing and SLAs (the API lets them); every other section is for admins.
SUPERVISOR_SECTIONS = frozenset({"skills", "queues", "sla"})
PAGE_SIZE = 50

ROLE_HINTS = {
    Role.admin: "everything, including this admin area",
    Role.supervisor: "every conversation and the team's work",
    Role.agent: "conversations of their teams, unassigned ones and their own",
    Role.expert: "only conversations they are pulled into; internal notes, no replies to customers",
}
JOIN_MODES = (
    ("join_open", "Join the open conversation",
     "A known customer writing on another channel continues their open conversation."),
    ("always_new", "Always start a new conversation", "Every channel keeps its own conversations."),
    ("within_hours", "Join a conversation active within some hours",
     "Continue a conversation that had activity within the hours below, else start a new one."),
)

# How an inbox is connected, for the kinds whose adapter takes no vendor webhook. Presentation only;
# an adapter hook (e.g. ``setup_instructions``) would let each channel say this itself.
_EMBED_SNIPPETS = {"webchat": '<script src="{base}/widget/{key}.js" async></script>'}
_NO_WEBHOOK_HINTS = {"email": "Mail arrives by IMAP polling (the IMAP settings) or by LMTP delivery."}

def sections_for(me: StaffPrincipal) -> tuple[tuple[str, str], ...]:
    """The sections this person may open, in the navigation's order."""
    if me.role == Role.admin:
        return SECTIONS
    if me.role == Role.supervisor:
        return tuple((key, label) for key, label in SECTIONS if key in SUPERVISOR_SECTIONS)
    return ()


async def admin_page(request: Request, me: StaffPrincipal | None, name: str,
                     context: Callable[[], Awaitable[dict[str, Any]]]) -> Response:
    """Renders ``admin/<name>.html`` for those who may open the section (admins all of them,
    supervisors routing and SLAs): a 403 page for other staff, sign-in for nobody. ``context`` is
    only awaited for someone allowed."""
    if me is None:
        return to_login(request)
    allowed = sections_for(me)
    if name not in {key for key, _ in allowed}:
        if allowed and request.url.path.rstrip("/") == "/app/admin":
            return RedirectResponse(f"/app/admin/{allowed[0][0]}", status_code=303)
        return render(request, "admin/forbidden.html", status_code=403, me=me, page="admin", section="admin")
    return render(request, f"admin/{name}.html", me=me, page="admin", section="admin", admin_section=name,
                  sections=allowed, **(await context()))


def _cursor(value: str | None) -> int | None:
    """An "older than" id from a page link; anything else means the first page."""
    return int(value) if value and value.isdigit() and len(value) < 19 else None


def _pretty(value: Any, limit: int = 2000) -> str:
    text = json.dumps(value, indent=1, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


# --- channel configs without secrets --------------------------------------------------------------

def _accepts_webhooks(kind: type[ChannelAdapter] | None) -> bool:
    return kind is not None and kind.verify is not ChannelAdapter.verify


def _connect(kind: str) -> str:
    adapter = channels.kinds.get(kind)
    if _accepts_webhooks(adapter):
        return "webhook"
    return "widget" if kind in _EMBED_SNIPPETS else "none"


def _inbox_view(inbox: Inbox, runtime: Runtime) -> dict[str, Any]:
    adapter = channels.kinds.get(inbox.channel_kind)
    base = runtime.settings.base_url.rstrip("/")
    view: dict[str, Any] = {
        "id": inbox.id, "name": inbox.name, "channel_kind": inbox.channel_kind, "is_active": inbox.is_active,
        "kind_title": adapter.title if adapter else inbox.channel_kind, "public_key": inbox.public_key,
        "settings": dict(inbox.settings or {}), "connect": _connect(inbox.channel_kind),
        "webhook_url": f"{base}/api/v1/inboxes/{inbox.public_key}/webhook",
        "snippet": _EMBED_SNIPPETS.get(inbox.channel_kind, "").format(base=base, key=inbox.public_key),
        "no_webhook_hint": _NO_WEBHOOK_HINTS.get(inbox.channel_kind, "This channel takes no webhook."),
        "config": {}, "secrets_set": [], "config_error": None,
    }
    if adapter is None:
        view["config_error"] = "this channel kind is not installed"
        return view
    try:
        view["config"], view["secrets_set"] = channels_service.public_config(channels_service.decrypt_config(inbox, runtime.secretbox))
    except Exception:  # noqa: BLE001 — a config that no longer decrypts or validates must not hide the list
        view["config_error"] = "the stored config cannot be read (secret key rotated, or an older format)"
    return view


# --- pages ----------------------------------------------------------------------------------------

@router.get("")
@router.get("/inboxes")
async def inboxes_page(request: Request, me: PageStaff, uow: Uow, runtime: RuntimeDep) -> Response:
    async def context() -> dict[str, Any]:
        assert me is not None
        inboxes = [_inbox_view(i, runtime) for i in await channels_service.list_inboxes(uow.session, me.account_id)]
        kinds = [{"kind": kind, "title": cls.title, "connect": _connect(kind)}
                 for kind, cls in sorted(channels.kinds.items(), key=lambda item: item[1].title.lower())]
        editable = [{k: i[k] for k in ("id", "name", "channel_kind", "kind_title", "is_active", "settings", "config",
                                        "secrets_set")} for i in inboxes if i["config_error"] is None]
        return {"inboxes": inboxes, "kinds": kinds, "inbox_data": editable,
                "base_url": runtime.settings.base_url.rstrip("/"),
                "customer_sessions_hint": InboxSettings.model_fields["allow_customer_sessions"].description}
    return await admin_page(request, me, "inboxes", context)


@router.get("/users")
async def users_page(request: Request, me: PageStaff, uow: Uow) -> Response:
    async def context() -> dict[str, Any]:
        assert me is not None
        users = await accounts_service.users_out(uow.session, await accounts_service.list_users(uow.session,
                                                                                                  me.account_id))
        teams = {t.id: t.name for t in await accounts_service.list_teams(uow.session, me.account_id)}
        return {"users": users, "team_names": teams, "roles": list(Role), "role_hints": ROLE_HINTS}
    return await admin_page(request, me, "users", context)


@router.get("/teams")
async def teams_page(request: Request, me: PageStaff, uow: Uow) -> Response:
    async def context() -> dict[str, Any]:
        assert me is not None
        teams = await accounts_service.teams_out(uow.session, await accounts_service.list_teams(uow.session,
                                                                                                  me.account_id))
        users = await accounts_service.list_users(uow.session, me.account_id)
        return {"teams": teams, "users": users, "users_by_id": {u.id: u for u in users}}
    return await admin_page(request, me, "teams", context)


@router.get("/tokens")
async def tokens_page(request: Request, me: PageStaff, uow: Uow) -> Response:
    async def context() -> dict[str, Any]:
        assert me is not None
        return {"tokens": await accounts_service.list_tokens(uow.session, me.user_id), "scopes": SCOPES}
    return await admin_page(request, me, "tokens", context)


@router.get("/webhooks")
async def webhooks_page(request: Request, me: PageStaff, uow: Uow, cursor: str | None = None) -> Response:
    before = _cursor(cursor)

    async def context() -> dict[str, Any]:
        assert me is not None
        subscriptions = await webhooks_service.list_subscriptions(uow.session, me.account_id)
        rows = await webhooks_service.list_deliveries(uow.session, me.account_id, None, before, PAGE_SIZE + 1)
        return {"subscriptions": subscriptions, "event_types": WEBHOOK_EVENT_TYPES, "deliveries": rows[:PAGE_SIZE],
                "next_cursor": rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None, "cursor": before}
    return await admin_page(request, me, "webhooks", context)


@router.get("/account")
async def account_page(request: Request, me: PageStaff, uow: Uow) -> Response:
    async def context() -> dict[str, Any]:
        assert me is not None
        account = await accounts_service.get_account(uow.session, me.account_id)
        assert account is not None
        settings = dict(account.settings or {})
        try:
            join = ConversationJoinSettings.model_validate(settings.get("conversation_join") or {})
        except ValidationError:
            join = ConversationJoinSettings()
        allowlist = [str(h) for h in settings.get("outbound_allowlist") or []]
        zone = settings.get("time_zone") if isinstance(settings.get("time_zone"), str) else None
        return {"account": account, "join": join, "join_modes": JOIN_MODES, "allowlist": allowlist,
                "time_zone": zone, "zones": offered_time_zones()}
    return await admin_page(request, me, "account", context)


@router.get("/jobs")
async def jobs_page(request: Request, me: PageStaff, uow: Uow, cursor: str | None = None) -> Response:
    before = _cursor(cursor)

    async def context() -> dict[str, Any]:
        assert me is not None
        rows = await jobs_service.list_jobs(uow.session, status=JobStatus.dead, account_id=me.account_id,
                                            limit=PAGE_SIZE + 1, before_id=before)
        return {"jobs": rows[:PAGE_SIZE], "pretty": _pretty, "next_cursor": rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None,
                "cursor": before}
    return await admin_page(request, me, "jobs", context)
