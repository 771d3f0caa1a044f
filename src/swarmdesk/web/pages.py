"""Sign-in, static files and the agent workspace's pages (inbox, conversation view) with the
fragments their scripts refresh live."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from swarmdesk.accounts import actions as accounts_actions
from swarmdesk.accounts import service as accounts_service
from swarmdesk.accounts.models import Role, Team, User
from swarmdesk.auth.dependencies import RuntimeDep, Uow
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.auth.router import set_session_cookies
from swarmdesk.channels.registry import channels as channel_registry
from swarmdesk.contacts import service as contacts_service
from swarmdesk.contacts.models import Contact, SuggestionStatus
from swarmdesk.conversations import reply, timeline
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, ConversationStatus, Message, Priority, SenderType
from swarmdesk.conversations.schemas import ActivityOut, ConversationOut, ReplyChannelOut
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import NotAuthenticated, NotFound, ValidationFailed
from swarmdesk.inbox import service as inbox_service
from swarmdesk.sla import service as sla_service
from swarmdesk.web.dependencies import PageStaff, safe_next, same_origin, to_login
from swarmdesk.web.templating import render, static_response

router = APIRouter(include_in_schema=False)


@router.get("/static/{name:path}")
async def static_file(name: str, request: Request, v: str | None = None) -> Response:
    response = static_response(name, v, request.headers.get("if-none-match"))
    if response is None:
        raise NotFound("no such file")
    return response


@router.get("/favicon.ico")
async def favicon() -> Response:
    return static_response("img/favicon.svg") or Response(status_code=404)


@router.get("/")
async def root(me: PageStaff) -> RedirectResponse:
    return RedirectResponse("/app" if me else "/login", status_code=303)


@router.get("/login")
async def login_page(request: Request, me: PageStaff, next: str | None = None) -> Response:
    if me is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", next=safe_next(next), email="", error=None)


@router.post("/login")
async def login_submit(request: Request, uow: Uow, runtime: RuntimeDep,
                       email: Annotated[str, Form(max_length=320)] = "",
                       password: Annotated[str, Form(max_length=1000)] = "",
                       next: Annotated[str, Form(max_length=2000)] = "/app") -> Response:
    target = safe_next(next)
    if not same_origin(request):
        return render(request, "login.html", status_code=403, next=target, email=email,
                      error="This sign-in form came from another site; open the sign-in page and try again.")
    try:
        _, token, csrf = await accounts_actions.do_login(uow, runtime.settings, email, password)
    except NotAuthenticated:
        return render(request, "login.html", status_code=401, next=target, email=email,
                      error="Email or password is wrong.")
    response = RedirectResponse(target, status_code=303)
    set_session_cookies(response, runtime.settings, token, csrf)
    return response


# --- the workspace ---------------------------------------------------------------------------------

VIEWS = (("mine", "Mine"), ("unassigned", "Unassigned"), ("my_teams", "My teams"), ("all", "All"),
         ("mentions", "Mentions"))
STATUSES = (("open", "Open"), ("pending", "Pending"), ("snoozed", "Snoozed"), ("resolved", "Resolved"),
            ("closed", "Closed"), ("any", "Any status"))
SORTS = (("last_activity", "Last activity"), ("waiting", "Waiting longest"), ("priority", "Priority"))
SLA_STATES = (("warning", "SLA warning"), ("breached", "SLA breached"), ("ok", "SLA on track"), ("paused", "SLA paused"),
              ("met", "SLA met"), ("none", "No SLA"))
IDENTITY_KINDS = {"email": "Email", "phone": "Phone", "handle": "Chat handle"}


def channel_names() -> dict[str, str]:
    return {kind: cls.title for kind, cls in channel_registry.kinds.items()}


async def _people(uow: UnitOfWork, account_id: int) -> tuple[list[User], list[Team]]:
    users = [u for u in await accounts_service.list_users(uow.session, account_id) if u.is_active]
    teams = await accounts_service.list_teams(uow.session, account_id)
    return users, teams


def _describe(users: dict[int, str], teams: dict[int, str]) -> Callable[[ActivityOut], str]:
    def describe(activity: ActivityOut) -> str:
        who = users.get(activity.actor_id or 0) if activity.actor_type == SenderType.user else None
        who = who or ("The customer" if activity.actor_type == SenderType.contact else "Swarmdesk")
        data = activity.data
        if activity.verb == "assigned":
            target = users.get(data.get("to") or 0)
            return f"{who} assigned this to {target}" if target else f"{who} unassigned this"
        if activity.verb == "status_changed":
            reason = f" ({data['reason']})" if data.get("reason") else ""
            return f"{who} changed the status to {data.get('to')}{reason}"
        if activity.verb == "team_changed":
            team = teams.get(data.get("to") or 0)
            return f"{who} moved this to the {team} team" if team else f"{who} removed the team"
        if activity.verb == "tags_changed":
            parts = [f"added {', '.join('#' + t for t in data.get('added', []))}" if data.get("added") else "",
                     f"removed {', '.join('#' + t for t in data.get('removed', []))}" if data.get("removed") else ""]
            return f"{who} " + " and ".join(p for p in parts if p)
        if activity.verb == "routed":
            target = users.get(data.get("to") or 0) or "nobody"
            return f"Routed to {target}: {data['explanation']}" if data.get("explanation") else f"Routed to {target}"
        if activity.verb == "rule_applied":
            outcome = "" if data.get("outcome") in (None, "applied") else f" ({data['outcome']})"
            return f"Rule “{data.get('rule_name', '?')}” applied{outcome}"
        if activity.verb == "queued":
            why = f" ({data['why']})" if data.get("why") else ""
            return f"Waiting in the {data.get('queue', '?')} queue{why}"
        if activity.verb == "required_skills_changed":
            skills = ", ".join(str(s.get("name", s.get("skill_id", "?"))) if isinstance(s, dict) else str(s)
                               for s in data.get("skills", []))
            return f"{who} set the required skills: {skills or 'none'}"
        if activity.verb == "swarm_started":
            invited = [users[i] for i in data.get("invited", []) if i in users]
            return f"{who} started a swarm" + (f", inviting {', '.join(invited)}" if invited else "")
        if activity.verb == "swarm_ended":
            outcome = f": {data['outcome']}" if data.get("outcome") else ""
            return f"{who} ended the swarm{outcome}"
        if activity.verb == "macro_applied":
            return f"{who} applied the macro “{data.get('macro_name', '?')}”"
        if activity.verb in ("send_deferred", "send_moved", "send_refused", "send_cancelled", "sla_breached",
                             "swarm_started", "swarm_ended") and data.get("explanation"):
            return f"{who}: {data['explanation']}"
        if activity.verb == "contact_merged":
            return f"{who} merged two customer profiles into this one"
        return f"{who}: {activity.verb.replace('_', ' ')}"
    return describe


TIMELINE_WINDOW = 50


async def _visible_conversation(uow: UnitOfWork, me: StaffPrincipal, conversation_id: int) -> Conversation:
    conversation = await conversations_service.get_visible(uow.session, me, conversation_id)
    if conversation is None:
        raise NotFound("conversation not found")
    return conversation


async def _timeline_context(uow: UnitOfWork, me: StaffPrincipal, conversation: Conversation,
                            messages: list[Message], *, since: datetime | None, until: datetime | None = None,
                            after_activity_id: int | None = None,
                            people: tuple[list[User], list[Team]] | None = None) -> dict[str, Any]:
    users, teams = people or await _people(uow, me.account_id)
    items = await timeline.build(uow.session, conversation.id, messages, since=since, until=until,
                                 after_activity_id=after_activity_id)
    return {"items": items, "channel_names": channel_names(),
            "describe": _describe({u.id: u.name for u in users}, {t.id: t.name for t in teams})}


async def _sidebar_context(uow: UnitOfWork, me: StaffPrincipal, conversation: Conversation) -> dict[str, Any]:
    session = uow.session
    # (Already in the session's identity map when the page loaded the conversation's row.)
    contact = await session.get(Contact, conversation.contact_id)
    assert contact is not None and contact.account_id == me.account_id
    if me.role == Role.expert:  # experts are pulled into cases; the customer's profile is the team's
        return {"contact": contact, "limited": True, "organization": None, "identities": [], "open_elsewhere": [],
                "previous": [], "notes": [], "suggestions": [], "identity_kinds": IDENTITY_KINDS}
    organization = await contacts_service.get_organization(session, me.account_id, contact.organization_id) \
        if contact.organization_id else None
    # Only conversations this staff member may see (another team's stay hidden, as everywhere).
    others = [c for c in await conversations_service.list_for_contact(session, me.account_id, contact.id, limit=30,
                                                                      principal=me)
              if c.id != conversation.id]
    open_statuses = {ConversationStatus.open, ConversationStatus.pending, ConversationStatus.snoozed}
    suggestions: list[Any] = []
    if me.role != Role.expert:
        suggestions = await contacts_service.suggestions_out(session, await contacts_service.list_suggestions(
            session, me.account_id, status=SuggestionStatus.open, contact_id=contact.id, after=None, limit=5))
    return {"contact": contact, "limited": False, "organization": organization,
            "identities": await contacts_service.identities_of(session, contact.id),
            "open_elsewhere": [c for c in others if c.status in open_statuses],
            "previous": [c for c in others if c.status not in open_statuses][:10],
            "notes": await contacts_service.notes_out(session, await contacts_service.notes_of(session, contact.id, 20)),
            "suggestions": suggestions, "identity_kinds": IDENTITY_KINDS}


@router.get("/app/conversations/{conversation_id}")
async def conversation_page(request: Request, me: PageStaff, uow: Uow, conversation_id: int,
                            before: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> Response:
    if me is None:
        return to_login(request)
    try:
        conversation = await _visible_conversation(uow, me, conversation_id)
    except NotFound:
        return render(request, "app/not_found.html", status_code=404, me=me, page="none", section="inbox")
    session = uow.session
    (out,) = await conversations_service.conversations_out(session, [conversation])
    messages = await timeline.latest_messages(session, conversation.id, TIMELINE_WINDOW + 1, before_id=before)
    has_earlier = len(messages) > TIMELINE_WINDOW
    messages = messages[-TIMELINE_WINDOW:]
    since = messages[0].created_at if has_earlier and messages else None
    until = messages[-1].created_at if before is not None and messages else None
    users, teams = await _people(uow, me.account_id)
    people = [{"id": u.id, "name": u.name, "role": str(u.role)} for u in users]
    channels = [] if me.role == Role.expert else await reply.reply_channels(session, conversation)
    context = {
        "me": me, "page": "conversation", "section": "inbox", "c": out,
        "contact_name": out.contact.name or out.contact.email or out.contact.phone or "a customer",
        "users": [u for u in users if u.role != Role.expert or u.id == conversation.assignee_id], "teams": teams,
        "assignee_missing": conversation.assignee_id is not None and all(u.id != conversation.assignee_id for u in users),
        "assignee_missing_name": "Assigned to a deactivated user",
        "statuses": [s.value for s in ConversationStatus], "priorities": [p.value for p in Priority],
        "has_earlier": has_earlier, "first_message_id": messages[0].id if messages else 0,
        "last_message_id": messages[-1].id if messages else 0,
        "can_reply": me.role != Role.expert,
        "reply_channels": [ReplyChannelOut(inbox_id=c.inbox.id, name=c.inbox.name, channel_kind=c.inbox.channel_kind,
                                           available=c.available, reason=c.reason, default=c.default)
                           for c in channels],
        # In a data- attribute: Jinja escapes it, the browser unescapes it, nothing parses it as markup.
        "people_json": orjson.dumps(people).decode(),
    }
    context |= await _timeline_context(uow, me, conversation, messages, since=since, until=until,
                                       people=(users, teams))
    context |= await _sidebar_context(uow, me, conversation)
    context["sla"] = (await sla_service.states_for(session, [conversation.id])).get(conversation.id)
    # The live view asks for activities after this one (a server-side cursor: no clock involved).
    context["last_activity_id"] = max((i.activity.id for i in context["items"] if i.activity), default=0)
    return render(request, "app/conversation.html", **context)


@router.get("/app/conversations/{conversation_id}/timeline")
async def timeline_fragment(request: Request, me: PageStaff, uow: Uow, conversation_id: int,
                            after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
                            after_activity_id: Annotated[int, Query(ge=0, le=2**62)] = 0) -> Response:
    """New messages after ``after_id`` and activities after ``after_activity_id``, as timeline items."""
    if me is None:
        return Response(status_code=401)
    conversation = await _visible_conversation(uow, me, conversation_id)
    messages = await conversations_service.list_messages(uow.session, conversation.id, include_private=True,
                                                         after_id=after_id, limit=200)
    context = await _timeline_context(uow, me, conversation, messages, since=None,
                                      after_activity_id=after_activity_id)
    return render(request, "app/_timeline.html", **context)


@router.get("/app/conversations/{conversation_id}/sidebar")
async def sidebar_fragment(request: Request, me: PageStaff, uow: Uow, conversation_id: int) -> Response:
    if me is None:
        return Response(status_code=401)
    conversation = await _visible_conversation(uow, me, conversation_id)
    return render(request, "app/_sidebar.html", **await _sidebar_context(uow, me, conversation))


# --- the inbox ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class InboxRow:
    conversation: ConversationOut
    unread: bool
    preview: timeline.Preview | None
    sla: Any = None  # sla.schemas.SlaStateOut


async def _inbox(request: Request, uow: Uow, me: StaffPrincipal) -> dict[str, Any]:
    """The rows of the view and filters named in the query string (the same for the page and the
    fragment its script reloads)."""
    q = request.query_params
    view = q.get("view") or "mine"
    if view not in dict(VIEWS):
        raise ValidationFailed(f"unknown view {view!r}")
    saved_view_id = q.get("saved_view_id") or None
    team_id = q.get("team_id") or None
    if (saved_view_id and not saved_view_id.isdigit()) or (team_id and not team_id.isdigit()):
        raise ValidationFailed("saved_view_id and team_id are numbers")
    given = {"status": q.get("status") or None, "channel": q.get("channel") or None,
             "priority": q.get("priority") or None, "tag": q.get("tag") or None,
             "team_id": int(team_id) if team_id else None, "sort": q.get("sort") or None,
             "sla_state": q.get("sla_state") or None}
    # A saved view's own filters fill the form, and the query string overrides them one by one.
    stored: dict[str, Any] = {}
    if saved_view_id:
        saved = await inbox_service.get_saved_view(uow.session, me, int(saved_view_id))
        if saved is None:
            raise NotFound(f"saved view {saved_view_id} not found")
        stored = dict(saved.filters or {})
        view = stored.get("view") or "all"
        if not given["sort"] and saved.sort:
            given["sort"] = saved.sort
    if view == "mentions":
        given["sort"] = None  # the mentions view is always newest mention first
    page = await inbox_service.page_for(uow.session, me, view=None if saved_view_id else view,
                                        saved_view_id=int(saved_view_id) if saved_view_id else None,
                                        cursor=q.get("cursor") or None, limit=INBOX_PAGE, **given)
    filters = {**given,
               "status": given["status"] or (_single(stored.get("status")) if stored.get("status") else
                                            ("any" if saved_view_id else "open")),
               "priority": given["priority"] or _single(stored.get("priority")),
               "channel": given["channel"] or stored.get("channel"), "tag": given["tag"] or stored.get("tag"),
               "team_id": given["team_id"] or stored.get("team_id"),
               "sla_state": given["sla_state"] or _single(stored.get("sla_state")),
               "sort": given["sort"] or "last_activity"}
    ids = [r.conversation.id for r in page.rows]
    previews = await timeline.last_messages(uow.session, ids)
    slas = await sla_service.states_for(uow.session, ids)
    rows = [InboxRow(r.conversation, r.unread, previews.get(r.conversation.id), slas.get(r.conversation.id))
            for r in page.rows]
    query = urlencode({k: v for k, v in q.items() if k != "cursor" and v})
    return {"view": view, "filters": filters, "rows": rows, "next_cursor": page.next_cursor, "query": query,
            "first_page": not q.get("cursor"), "saved_view": page.saved_view}


INBOX_PAGE = 25


def _single(value: Any) -> Any:
    """A saved filter's one value, for a form select that shows one (None when it holds several)."""
    return value[0] if isinstance(value, list) and len(value) == 1 else None


@router.get("/app")
async def inbox_page(request: Request, me: PageStaff, uow: Uow) -> Response:
    if me is None:
        return to_login(request)
    users, teams = await _people(uow, me.account_id)
    try:
        context = await _inbox(request, uow, me)
    except (ValidationFailed, NotFound) as exc:
        return render(request, "app/error.html", status_code=400 if isinstance(exc, ValidationFailed) else 404,
                      me=me, page="none", section="inbox", message=exc.detail)
    titles = dict(VIEWS)
    saved = await inbox_service.saved_views_for(uow.session, me)
    return render(request, "app/inbox.html", me=me, page="inbox", section="inbox", views=VIEWS,
                  view_title=context["saved_view"].name if context["saved_view"] else titles[context["view"]],
                  saved_views=saved, statuses=STATUSES, sorts=SORTS, sla_states=SLA_STATES, priorities=[p.value for p in Priority],
                  channels=sorted(channel_names().items(), key=lambda kv: kv[1]), channel_names=channel_names(),
                  teams=teams, users=[u for u in users if u.role != Role.expert],
                  user_names={u.id: u.name for u in users}, **context)


@router.get("/app/inbox/rows")
async def inbox_rows_fragment(request: Request, me: PageStaff, uow: Uow) -> Response:
    if me is None:
        return Response(status_code=401)
    users, _ = await _people(uow, me.account_id)
    context = await _inbox(request, uow, me)
    return render(request, "app/_rows.html", channel_names=channel_names(),
                  user_names={u.id: u.name for u in users}, **context)
