"""Durable reactions to events of other domains (registered at import by swarmdesk.registrations).

A swarm's metrics include whether, and when, its conversation was resolved — which often happens
after the swarm ended. The status change is an event of the conversations domain; this listener
records it on the conversation's swarms, from the event outbox (so a crash cannot lose it)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.events.base import BaseEvent
from swarmdesk.events.listeners import listeners
from swarmdesk.swarming import actions, service

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

RESOLVED = ("resolved", "closed")


async def _swarm_waits_for_it(session: AsyncSession, event: BaseEvent, memo: dict[Any, Any]) -> bool:
    """Asked inside the committing transaction: only a resolution of a conversation that has a
    swarm still waiting for one costs an outbox job."""
    if getattr(event, "status", None) not in RESOLVED:
        return False
    conversation_id = event.conversation.id  # type: ignore[attr-defined]
    key = ("swarm_waits", conversation_id)
    if key not in memo:
        memo[key] = bool(await service.unresolved_swarm_ids(session, conversation_id))
    return memo[key]


@listeners.on("conversation.status_changed", wants=_swarm_waits_for_it)
async def record_swarm_resolution(runtime: Runtime, event: dict[str, Any]) -> None:
    conversation = event["conversation"]
    if event.get("status") not in RESOLVED or not conversation.get("resolved_at"):
        return
    async with runtime.uow() as uow:
        await actions.do_record_swarm_resolution(uow, conversation["id"],
                                                 datetime.fromisoformat(conversation["resolved_at"]))
