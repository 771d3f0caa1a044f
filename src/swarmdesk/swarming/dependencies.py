"""Access gates for swarms: the swarm of a conversation the caller may see (else 404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from swarmdesk.auth.dependencies import Uow
from swarmdesk.conversations.dependencies import ReadableConversation, WritableConversation
from swarmdesk.conversations.schemas import MAX_ID
from swarmdesk.core.errors import NotFound
from swarmdesk.swarming import service
from swarmdesk.swarming.models import Swarm

SwarmIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


async def readable_swarm(conversation: ReadableConversation, uow: Uow, swarm_id: SwarmIdPath) -> Swarm:
    """Whoever may see the conversation may read its swarm rooms: its staff audience, which holds
    every member of the swarm (an invitation makes the invited a participant). An expert who is
    neither gets the conversation's 404 first."""
    swarm = await service.get_swarm(uow.session, conversation, swarm_id)
    if swarm is None:
        raise NotFound(f"swarm {swarm_id} not found")
    return swarm


async def writable_swarm(conversation: WritableConversation, uow: Uow, swarm_id: SwarmIdPath) -> Swarm:
    swarm = await service.get_swarm(uow.session, conversation, swarm_id)
    if swarm is None:
        raise NotFound(f"swarm {swarm_id} not found")
    return swarm


ReadableSwarm = Annotated[Swarm, Depends(readable_swarm)]
WritableSwarm = Annotated[Swarm, Depends(writable_swarm)]
