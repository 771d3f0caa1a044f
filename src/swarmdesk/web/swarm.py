"""The swarm room on the conversation view: fragments that ``static/js/swarm.js`` puts in the
page's ``#swarm`` slot (the room, or the "Start a swarm" form with ranked suggestions) and the
room's new messages. Read-only: the script changes things through the JSON API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from swarmdesk.accounts.models import Role
from swarmdesk.auth.dependencies import Uow
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, ConversationStatus
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import NotFound
from swarmdesk.swarming import service, suggestions
from swarmdesk.swarming.actions import OUTCOME_TEXT
from swarmdesk.swarming.models import MemberState, SwarmOutcome, SwarmStatus
from swarmdesk.web.dependencies import PageStaff
from swarmdesk.web.templating import render

router = APIRouter(include_in_schema=False)

ROOM_WINDOW = 50
IdPath = Annotated[int, Path(ge=1, le=2**62)]
ROLE_TEXT = {"owner": "owner", "starter": "started it", "expert": "expert"}
STATE_TEXT = {"joined": "in the room", "invited": "invited", "left": "left"}


async def _conversation(uow: UnitOfWork, me: StaffPrincipal, conversation_id: int) -> Conversation:
    conversation = await conversations_service.get_visible(uow.session, me, conversation_id)
    if conversation is None:
        raise NotFound("conversation not found")
    return conversation


@router.get("/app/conversations/{conversation_id}/swarm")
async def swarm_fragment(request: Request, me: PageStaff, uow: Uow,
                         conversation_id: IdPath) -> Response:
    """The active swarm's room, or (no swarm) the bar that offers to start one."""
    if me is None:
        return Response(status_code=401)
    session = uow.session
    conversation = await _conversation(uow, me, conversation_id)
    swarm = await service.active_swarm(session, conversation.id)
    context: dict[str, Any] = {"me": me, "view": "none", "role_text": ROLE_TEXT, "state_text": STATE_TEXT,
                               "can_start": me.role != Role.expert and conversation.status != ConversationStatus.closed}
    if swarm is None:
        previous = await service.list_swarms(session, conversation.id, limit=1)
        last = previous[0] if previous and previous[0].status == SwarmStatus.ended else None
        context |= {"last": last, "outcome_text": OUTCOME_TEXT}
        return render(request, "app/_swarm.html", **context)
    out = await service.swarm_out(session, swarm)
    mine = next((m for m in out.members if m.user_id == me.user_id), None)
    messages = await service.list_messages(session, swarm.id, after_id=None, limit=ROOM_WINDOW)
    context |= {
        "view": "room", "swarm": out, "members": out.members, "mine": mine,
        "my_state": mine.state.value if mine else "", "my_role": mine.role.value if mine else "",
        "can_join": mine is None or mine.state != MemberState.joined,
        "can_manage": service.can_manage(me, swarm, conversation),
        "messages": [service.message_out(m) for m in messages],
        "last_message_id": messages[-1].id if messages else 0,
        "outcomes": [(o.value, OUTCOME_TEXT[o]) for o in SwarmOutcome],
    }
    return render(request, "app/_swarm.html", **context)


@router.get("/app/conversations/{conversation_id}/swarm/suggestions")
async def suggestions_fragment(request: Request, me: PageStaff, uow: Uow, conversation_id: IdPath,
                               mode: Literal["start", "invite"] = "start") -> Response:
    """Ranked experts with invite checkboxes: the "Start a swarm" form, or "Invite more"."""
    if me is None:
        return Response(status_code=401)
    if me.role == Role.expert:
        raise NotFound("no suggestions for experts")
    session = uow.session
    conversation = await _conversation(uow, me, conversation_id)
    exclude = {me.user_id} | ({conversation.assignee_id} if conversation.assignee_id else set())
    swarm = await service.active_swarm(session, conversation.id)
    if swarm is not None:
        exclude |= {m.user_id for m in await service.members_of(session, swarm.id) if m.state != MemberState.left}
    found = await suggestions.suggest(session, conversation, exclude_user_ids=exclude)
    return render(request, "app/_swarm.html", me=me, view="suggestions", mode=mode, suggestions=found)


@router.get("/app/conversations/{conversation_id}/swarm/{swarm_id}/messages")
async def messages_fragment(request: Request, me: PageStaff, uow: Uow, conversation_id: IdPath, swarm_id: IdPath,
                            after_id: Annotated[int, Query(ge=0, le=2**62)] = 0) -> Response:
    """Room messages after ``after_id`` (the script appends them when one is announced)."""
    if me is None:
        return Response(status_code=401)
    conversation = await _conversation(uow, me, conversation_id)
    swarm = await service.get_swarm(uow.session, conversation, swarm_id)
    if swarm is None:
        raise NotFound("swarm not found")
    rows = await service.list_messages(uow.session, swarm.id, after_id=after_id, limit=200)
    return render(request, "app/_swarm.html", me=me, view="messages", messages=[service.message_out(m) for m in rows])
