from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from swarmdesk.auth.dependencies import Uow
from swarmdesk.conversations.dependencies import ReadableConversation, WritableConversation
from swarmdesk.conversations.models import ConversationStatus
from swarmdesk.conversations.schemas import MAX_ID
from swarmdesk.core.errors import Conflict
from swarmdesk.routing import actions, service
from swarmdesk.routing.dependencies import CurrentQueue, CurrentSkill, PresenceWriter, RoutingManager, RoutingReader
from swarmdesk.routing.schemas import (
    AgentOut,
    AgentSkillsIn,
    CapacityIn,
    ConversationRoutingOut,
    PresenceIn,
    PresenceOut,
    QueueIn,
    QueueOut,
    QueueUpdate,
    RequiredSkillsIn,
    SkillIn,
    SkillOut,
    SkillUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["routing"])
UserId = Annotated[int, Path(ge=1, le=MAX_ID)]


# --- skills ----------------------------------------------------------------------------------------

@router.get("/routing/skills", response_model=list[SkillOut])
async def list_skills(principal: RoutingReader, uow: Uow) -> list[SkillOut]:
    return [SkillOut.model_validate(s) for s in await service.list_skills(uow.session, principal.account_id)]


@router.post("/routing/skills", response_model=SkillOut, status_code=201)
async def create_skill(payload: SkillIn, principal: RoutingManager, uow: Uow) -> SkillOut:
    return SkillOut.model_validate(await actions.do_create_skill(uow, principal, payload))


@router.patch("/routing/skills/{skill_id}", response_model=SkillOut)
async def update_skill(payload: SkillUpdate, skill: CurrentSkill, principal: RoutingManager, uow: Uow) -> SkillOut:
    return SkillOut.model_validate(await actions.do_update_skill(uow, principal, skill, payload))


@router.delete("/routing/skills/{skill_id}", status_code=204)
async def delete_skill(skill: CurrentSkill, principal: RoutingManager, uow: Uow) -> Response:
    await actions.do_delete_skill(uow, principal, skill)
    return Response(status_code=204)


# --- agents and presence ---------------------------------------------------------------------------

@router.get("/routing/agents", response_model=list[AgentOut],
            summary="Agents with presence, capacity and open conversations per channel kind, and skills")
async def list_agents(principal: RoutingReader, uow: Uow) -> list[AgentOut]:
    return await service.agents_out(uow.session, principal.account_id)


async def _agent_out(uow: Uow, account_id: int, user_id: int) -> AgentOut:
    return next(a for a in await service.agents_out(uow.session, account_id) if a.user_id == user_id)


@router.put("/routing/agents/{user_id}/skills", response_model=AgentOut)
async def set_agent_skills(user_id: UserId, payload: AgentSkillsIn, principal: RoutingManager, uow: Uow) -> AgentOut:
    await actions.do_set_agent_skills(uow, principal, user_id, payload)
    return await _agent_out(uow, principal.account_id, user_id)


@router.put("/routing/agents/{user_id}/capacity", response_model=AgentOut)
async def set_agent_capacity(user_id: UserId, payload: CapacityIn, principal: RoutingManager, uow: Uow) -> AgentOut:
    await actions.do_set_agent_capacity(uow, principal, user_id, payload)
    return await _agent_out(uow, principal.account_id, user_id)


@router.get("/routing/presence", response_model=PresenceOut, summary="My presence")
async def get_presence(principal: RoutingReader, uow: Uow) -> PresenceOut:
    presence = await service.get_presence(uow.session, principal.account_id, principal.user_id)
    return service.presence_out(presence, principal.user_id)


@router.put("/routing/presence", response_model=PresenceOut, summary="Set my presence: online, away or offline")
async def set_presence(payload: PresenceIn, principal: PresenceWriter, uow: Uow) -> PresenceOut:
    presence = await actions.do_set_presence(uow, principal, payload.status)
    return service.presence_out(presence, principal.user_id)


# --- queues ----------------------------------------------------------------------------------------

@router.get("/routing/queues", response_model=list[QueueOut])
async def list_queues(principal: RoutingReader, uow: Uow) -> list[QueueOut]:
    return await service.queues_out(uow.session, principal.account_id,
                                    await service.list_queues(uow.session, principal.account_id))


@router.post("/routing/queues", response_model=QueueOut, status_code=201)
async def create_queue(payload: QueueIn, principal: RoutingManager, uow: Uow) -> QueueOut:
    queue = await actions.do_create_queue(uow, principal, payload)
    return (await service.queues_out(uow.session, principal.account_id, [queue]))[0]


@router.get("/routing/queues/{queue_id}", response_model=QueueOut)
async def get_queue(queue: CurrentQueue, principal: RoutingReader, uow: Uow) -> QueueOut:
    return (await service.queues_out(uow.session, principal.account_id, [queue]))[0]


@router.patch("/routing/queues/{queue_id}", response_model=QueueOut)
async def update_queue(payload: QueueUpdate, queue: CurrentQueue, principal: RoutingManager, uow: Uow) -> QueueOut:
    queue = await actions.do_update_queue(uow, principal, queue, payload)
    return (await service.queues_out(uow.session, principal.account_id, [queue]))[0]


@router.delete("/routing/queues/{queue_id}", status_code=204)
async def delete_queue(queue: CurrentQueue, principal: RoutingManager, uow: Uow) -> Response:
    await actions.do_delete_queue(uow, principal, queue)
    return Response(status_code=204)


# --- one conversation ------------------------------------------------------------------------------

@router.get("/conversations/{conversation_id}/routing", response_model=ConversationRoutingOut,
            summary="The conversation's queue, requirements, lift and the last routing decision explained")
async def get_conversation_routing(conversation: ReadableConversation, uow: Uow) -> ConversationRoutingOut:
    return await service.conversation_routing_out(uow.session, conversation)


@router.post("/conversations/{conversation_id}/route", response_model=ConversationRoutingOut,
             summary="Route now (supervisors): the decision is made at once, at the current relaxation step")
async def route_now(conversation: WritableConversation, principal: RoutingManager, uow: Uow) -> ConversationRoutingOut:
    if conversation.assignee_id is not None:
        raise Conflict("the conversation is assigned; unassign it to route it again")
    if conversation.status != ConversationStatus.open:
        raise Conflict(f"the conversation is {conversation.status}; only open conversations are routed")
    await actions.do_route_conversation(uow, principal.account_id, conversation.id, reason="requested")
    return await service.conversation_routing_out(uow.session, conversation)


@router.put("/conversations/{conversation_id}/routing/skills", response_model=ConversationRoutingOut,
            summary="Skills this conversation's agent must have, beside those its inbox, tags and language bring")
async def set_required_skills(payload: RequiredSkillsIn, conversation: WritableConversation,
                              principal: RoutingManager, uow: Uow) -> ConversationRoutingOut:
    await actions.do_set_required_skills(uow, principal, conversation, payload.skills)
    return await service.conversation_routing_out(uow.session, conversation)
