"""Access gates for routing: everyone on staff reads it; admins and supervisors change it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from swarmdesk.accounts.models import Role
from swarmdesk.auth.dependencies import Uow, scoped
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.conversations.schemas import MAX_ID
from swarmdesk.core.errors import NotFound
from swarmdesk.routing import service
from swarmdesk.routing.models import RoutingQueue, Skill

RoutingReader = Annotated[StaffPrincipal, Depends(scoped("conversations:read"))]
# Agents set their own presence (a read-scoped token may not: it changes what they are sent).
PresenceWriter = Annotated[StaffPrincipal, Depends(scoped("conversations:write"))]
RoutingManager = Annotated[StaffPrincipal, Depends(scoped("conversations:write",
                                                          roles=(Role.admin, Role.supervisor)))]


async def _skill(principal: RoutingReader, uow: Uow, skill_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> Skill:
    skill = await service.get_skill(uow.session, principal.account_id, skill_id)
    if skill is None:
        raise NotFound(f"skill {skill_id} not found")
    return skill


async def _queue(principal: RoutingReader, uow: Uow, queue_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> RoutingQueue:
    queue = await service.get_queue(uow.session, principal.account_id, queue_id)
    if queue is None:
        raise NotFound(f"queue {queue_id} not found")
    return queue


CurrentSkill = Annotated[Skill, Depends(_skill)]
CurrentQueue = Annotated[RoutingQueue, Depends(_queue)]
