"""Background jobs of the routing domain (registered at import by swarmdesk.registrations).

``routing.route`` decides for one conversation; when nobody qualifies it enqueues itself again at
the next relaxation step's time, so relaxation needs no polling loop and survives restarts.
``routing.drain`` serves a queue's waiting list in order when capacity frees up or an agent comes
online. ``routing.reroute`` takes an agent's open conversations back through routing when they go
offline. ``routing.presence_grace`` takes an agent offline once the grace period after their last
connection closed is over. Each takes ids and is idempotent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swarmdesk.jobs.registry import JobContext, jobs
from swarmdesk.routing import actions, service, snapshot
from swarmdesk.routing.actions import DRAIN_JOB, PRESENCE_GRACE_JOB, REROUTE_JOB, ROUTE_JOB
from swarmdesk.routing.models import PresenceStatus

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

# Conversations a drain tries per queue before it stops (the next freed capacity continues).
DRAIN_LIMIT = 50


@jobs.handler(ROUTE_JOB)
async def route_conversation(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    async with runtime.uow() as uow:
        await actions.do_route_conversation(uow, int(payload["account_id"]), int(payload["conversation_id"]),
                                            reason=str(payload.get("reason", "new")),
                                            from_user_id=payload.get("from_user_id"))


@jobs.handler(DRAIN_JOB)
async def drain_queues(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    await serve_waiting(runtime, int(payload["account_id"]), str(payload.get("reason", "capacity_freed")),
                        user_id=payload.get("user_id"), queue_ids=payload.get("queue_ids"))


async def serve_waiting(runtime: Runtime, account_id: int, reason: str, *, user_id: int | None = None,
                        queue_ids: list[int] | None = None) -> int:
    """Route the waiting conversations of the agent's queues (or the given ones), highest lift then
    longest waiting first, each in its own transaction; a queue is left once nobody in it has room.
    Returns how many were assigned."""
    async with runtime.uow() as uow:
        # Capacity was freed or an agent changed: this process's snapshot must not hide it, even if
        # nothing waits now (the next conversation decides on it).
        snapshot.invalidate(uow.session, account_id)
        if user_id is not None:
            presence = await service.get_presence(uow.session, account_id, user_id)
            if presence is None or presence.status != PresenceStatus.online:
                return 0
            queues = [q.id for q in await service.queues_served_by(uow.session, account_id, user_id)]
        else:
            known = {q.id for q in await service.list_queues(uow.session, account_id)}
            queues = [q for q in (queue_ids or []) if q in known]
    assigned = 0
    for queue_id in queues:
        async with runtime.uow() as uow:
            waiting = await service.waiting_in(uow.session, [queue_id], DRAIN_LIMIT)
        for conversation_id in waiting:
            async with runtime.uow() as uow:
                result = await actions.do_route_conversation(uow, account_id, conversation_id, reason=reason)
            if result.state == "assigned":
                assigned += 1
            elif result.no_capacity:
                break
    return assigned


@jobs.handler(REROUTE_JOB)
async def reroute_from_agent(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    """An agent went offline: their open conversations, oldest first, go back through routing."""
    account_id, user_id = int(payload["account_id"]), int(payload["user_id"])
    async with runtime.uow() as uow:
        conversation_ids = await service.open_assigned_to(uow.session, account_id, user_id)
    for conversation_id in conversation_ids:
        async with runtime.uow() as uow:
            await actions.do_route_conversation(uow, account_id, conversation_id, reason="agent_offline",
                                                from_user_id=user_id)


@jobs.handler(PRESENCE_GRACE_JOB)
async def expire_presence(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    async with runtime.uow() as uow:
        await actions.do_expire_presence(uow, int(payload["account_id"]), int(payload["user_id"]))
