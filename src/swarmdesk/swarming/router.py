"""Swarms on conversations: start, suggestions, invitations, the room (messages, typing,
presence), end, and the supervisors' metrics."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime

from swarmdesk.accounts.models import Role
from swarmdesk.auth.dependencies import ConversationsReader, ConversationsWriter, RuntimeDep, Supervisor, Uow
from swarmdesk.conversations.dependencies import ReadableConversation, WritableConversation
from swarmdesk.core.clock import utcnow
from swarmdesk.core.errors import Forbidden, ValidationFailed
from swarmdesk.core.schemas import Page
from swarmdesk.core.storage import AttachmentStore
from swarmdesk.swarming import actions, service, suggestions
from swarmdesk.swarming.dependencies import ReadableSwarm, WritableSwarm
from swarmdesk.swarming.models import MemberState
from swarmdesk.swarming.schemas import (
    SuggestionsOut,
    SwarmEnd,
    SwarmInvite,
    SwarmMessageCreate,
    SwarmMessageOut,
    SwarmMetricsOut,
    SwarmOut,
    SwarmStart,
)

router = APIRouter(prefix="/api/v1", tags=["swarming"])
SWARM = "/conversations/{conversation_id}/swarms/{swarm_id}"
MAX_ID = 2**62


@router.post("/conversations/{conversation_id}/swarms", response_model=SwarmOut, status_code=201,
             summary="Start a swarm and invite experts (one active swarm per conversation: 409 otherwise)")
async def start_swarm(principal: ConversationsWriter, conversation: WritableConversation, uow: Uow,
                      payload: SwarmStart) -> SwarmOut:
    swarm = await actions.do_start_swarm(uow, principal, conversation, invite_user_ids=payload.invite_user_ids,
                                         note=payload.note)
    return await service.swarm_out(uow.session, swarm)


@router.get("/conversations/{conversation_id}/swarms", response_model=Page[SwarmOut],
            summary="The conversation's swarms, newest first (at most one active)")
async def list_swarms(principal: ConversationsReader, conversation: ReadableConversation, uow: Uow) -> Page[SwarmOut]:
    swarms = await service.list_swarms(uow.session, conversation.id)
    return Page(items=[await service.swarm_out(uow.session, s) for s in swarms], next_cursor=None)


@router.get("/conversations/{conversation_id}/swarm-suggestions", response_model=SuggestionsOut,
            summary="Experts who could help, ranked by skills, presence and similar past resolutions, with reasons")
async def swarm_suggestions(principal: ConversationsReader, conversation: ReadableConversation, uow: Uow,
                            limit: Annotated[int, Query(ge=1, le=50)] = suggestions.DEFAULT_LIMIT) -> SuggestionsOut:
    if principal.role == Role.expert:
        raise Forbidden("experts are pulled into swarms; the conversation's owner starts them")
    exclude = {principal.user_id}
    if conversation.assignee_id is not None:
        exclude.add(conversation.assignee_id)
    active = await service.active_swarm(uow.session, conversation.id)
    if active is not None:
        exclude |= {m.user_id for m in await service.members_of(uow.session, active.id)
                    if m.state != MemberState.left}
        if active.owner_id is not None:
            exclude.add(active.owner_id)
    return await suggestions.suggest(uow.session, conversation, exclude_user_ids=exclude, limit=limit)


@router.get(SWARM, response_model=SwarmOut)
async def get_swarm(principal: ConversationsReader, swarm: ReadableSwarm, uow: Uow) -> SwarmOut:
    return await service.swarm_out(uow.session, swarm)


@router.post(f"{SWARM}/invitations", response_model=SwarmOut,
             summary="Invite more experts (the owner, a supervisor or an admin); each gets a notification")
async def invite(principal: ConversationsWriter, conversation: WritableConversation, swarm: WritableSwarm, uow: Uow,
                 payload: SwarmInvite) -> SwarmOut:
    await actions.do_invite_to_swarm(uow, principal, conversation, swarm, payload.user_ids)
    return await service.swarm_out(uow.session, swarm)


@router.post(f"{SWARM}/join", response_model=SwarmOut, summary="Join the swarm room")
async def join(principal: ConversationsWriter, conversation: WritableConversation, swarm: WritableSwarm,
               uow: Uow) -> SwarmOut:
    await actions.do_join_swarm(uow, principal, conversation, swarm)
    return await service.swarm_out(uow.session, swarm)


@router.post(f"{SWARM}/leave", response_model=SwarmOut, summary="Leave the swarm room (or decline the invitation)")
async def leave(principal: ConversationsWriter, conversation: WritableConversation, swarm: WritableSwarm,
                uow: Uow) -> SwarmOut:
    await actions.do_leave_swarm(uow, principal, conversation, swarm)
    return await service.swarm_out(uow.session, swarm)


@router.post(f"{SWARM}/end", response_model=SwarmOut,
             summary="End the swarm with its outcome (the owner, a supervisor or an admin); the summary is added "
                     "to the conversation as an internal note")
async def end(principal: ConversationsWriter, conversation: WritableConversation, swarm: WritableSwarm, uow: Uow,
              runtime: RuntimeDep, payload: SwarmEnd) -> SwarmOut:
    await actions.do_end_swarm(uow, principal, conversation, swarm, payload,
                               store=AttachmentStore(runtime.settings.attachments_dir))
    return await service.swarm_out(uow.session, swarm)


@router.get(f"{SWARM}/messages", response_model=Page[SwarmMessageOut],
            summary="The room's messages, oldest first: the newest page, or those after after_id")
async def list_messages(principal: ConversationsReader, swarm: ReadableSwarm, uow: Uow,
                        after_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
                        limit: Annotated[int, Query(ge=1, le=200)] = 100) -> Page[SwarmMessageOut]:
    rows = await service.list_messages(uow.session, swarm.id, after_id=after_id, limit=limit + 1)
    more = len(rows) > limit
    page = (rows[:limit] if after_id is not None else rows[-limit:])
    return Page(items=[service.message_out(m) for m in page],
                next_cursor=str(page[-1].id) if more and after_id is not None else None)


@router.post(f"{SWARM}/messages", response_model=SwarmMessageOut, status_code=201,
             summary="Write in the room (members who joined); live for the conversation's staff, never the customer")
async def send_message(principal: ConversationsWriter, conversation: WritableConversation, swarm: WritableSwarm,
                       uow: Uow, payload: SwarmMessageCreate) -> SwarmMessageOut:
    message = await actions.do_send_swarm_message(uow, principal, conversation, swarm, payload)
    return service.message_out(message)


@router.post(f"{SWARM}/typing", status_code=204, summary="I am typing in the room (renew every few seconds)")
async def typing(principal: ConversationsWriter, conversation: WritableConversation, swarm: WritableSwarm,
                 uow: Uow) -> Response:
    await actions.do_swarm_typing(uow, principal, conversation, swarm, True)
    return Response(status_code=204)


@router.delete(f"{SWARM}/typing", status_code=204, summary="I stopped typing in the room")
async def stopped_typing(principal: ConversationsWriter, conversation: WritableConversation, swarm: WritableSwarm,
                         uow: Uow) -> Response:
    await actions.do_swarm_typing(uow, principal, conversation, swarm, False)
    return Response(status_code=204)


@router.post(f"{SWARM}/presence", status_code=204,
             summary="I have the room open (heartbeat every ~20 s; others forget me 45 s after the last)")
async def here(principal: ConversationsReader, conversation: ReadableConversation, swarm: ReadableSwarm,
               uow: Uow) -> Response:
    await actions.do_report_swarm_presence(uow, principal, conversation, swarm, "here")
    return Response(status_code=204)


@router.delete(f"{SWARM}/presence", status_code=204, summary="I closed the room")
async def gone(principal: ConversationsReader, conversation: ReadableConversation, swarm: ReadableSwarm,
               uow: Uow) -> Response:
    await actions.do_report_swarm_presence(uow, principal, conversation, swarm, "gone")
    return Response(status_code=204)


@router.get("/swarms/metrics", response_model=SwarmMetricsOut,
            summary="Swarm metrics for supervisors: swarms started in [since, until) (default: the last 30 days)")
async def swarm_metrics(principal: Supervisor, uow: Uow, since: AwareDatetime | None = None,
                        until: AwareDatetime | None = None) -> SwarmMetricsOut:
    end = until or utcnow()
    start = since or end - timedelta(days=30)
    if start >= end:
        raise ValidationFailed("since must be before until")
    return await service.metrics(uow.session, principal.account_id, start, end)
