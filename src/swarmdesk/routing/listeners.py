"""Durable reactions to conversation events, and to staff real-time connections opening and closing
(registered at import by swarmdesk.registrations).

What triggers routing:
- ``conversation.created`` open and unassigned -> route it;
- ``conversation.assigned`` to nobody (someone unassigned it) -> route it; away from an agent ->
  their capacity is freed, serve their queues; to somebody -> it stops waiting;
- ``conversation.status_changed`` reopened and unassigned -> route it; an assigned one leaving
  ``open`` -> capacity freed; anything leaving ``open`` stops waiting;
- ``conversation.updated`` (tags, priority, attributes) while unassigned and open -> route it again
  (its queue, requirements and lift may have changed).
``message.created`` is not a trigger: a customer reopening a conversation also publishes
``conversation.status_changed``, which is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.conversations import service as conversations_service
from swarmdesk.core.background import background
from swarmdesk.events.base import BaseEvent
from swarmdesk.events.listeners import listeners
from swarmdesk.realtime.hub import connection_hooks
from swarmdesk.realtime.queues import QueueInfo
from swarmdesk.routing import actions, service

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

ROUTING_FIELDS = {"tags", "priority", "custom_attributes"}


def _waiting(conversation: Any) -> bool:
    return conversation.status == "open" and conversation.assignee_id is None


def _relevant(event: BaseEvent) -> bool:
    conversation = event.conversation  # type: ignore[attr-defined]
    if event.type == "conversation.created":
        return _waiting(conversation)
    if event.type == "conversation.updated":
        return _waiting(conversation) and bool(ROUTING_FIELDS & set(event.changed))  # type: ignore[attr-defined]
    return True  # assigned and status_changed always matter (waiting lists, capacity)


async def _account_routes(session: AsyncSession, event: BaseEvent, memo: dict[Any, Any]) -> bool:
    if not _relevant(event):
        return False
    key = ("routing_queues", event.account_id)
    if key not in memo:
        memo[key] = await service.account_routes(session, event.account_id)
    return memo[key]


@listeners.on("conversation.created", "conversation.assigned", "conversation.status_changed",
              "conversation.updated", wants=_account_routes)
async def route_on_conversation_change(runtime: Runtime, event: dict[str, Any]) -> None:
    conversation = event["conversation"]
    account_id, conversation_id = event["account_id"], conversation["id"]
    waiting = conversation["status"] == "open" and conversation["assignee_id"] is None
    kind = event["type"]
    async with runtime.uow() as uow:
        session = uow.session
        freed: int | None = None
        reason: str | None = None
        if kind == "conversation.created":
            reason = "new" if waiting else None
        elif kind == "conversation.updated":
            reason = "attributes_changed" if waiting else None
        elif kind == "conversation.assigned":
            previous = event.get("previous_assignee_id")
            if previous is not None and previous != conversation["assignee_id"] and conversation["status"] == "open":
                freed = previous
            reason = "unassigned" if waiting and previous is not None else None
        elif kind == "conversation.status_changed":
            if event["previous_status"] == "open" and conversation["status"] != "open":
                freed = conversation["assignee_id"]
            reason = "reopened" if waiting and event["previous_status"] != "open" else None
        if reason is not None:
            actions.enqueue_route(session, account_id, conversation_id, reason)
        if freed is not None:
            actions.enqueue_drain(session, account_id, "capacity_freed", user_id=freed)
        if reason is None and not waiting:
            current = await conversations_service.get_by_id(session, account_id, conversation_id)
            if current is not None:
                await actions.note_left_queue(uow, current)  # commits if it changed anything
        await uow.commit()


async def _routes(session: AsyncSession, event: BaseEvent, memo: dict[Any, Any]) -> bool:
    key = ("routing_queues", event.account_id)
    if key not in memo:
        memo[key] = await service.account_routes(session, event.account_id)
    return memo[key]


@listeners.on("access.changed", wants=_routes)
async def offline_when_deactivated(runtime: Runtime, event: dict[str, Any]) -> None:
    """A deactivated user is gone for good: offline, and their open conversations re-routed."""
    async with runtime.uow() as uow:
        await actions.do_retire_presence(uow, event["account_id"], event["user_id"])


@connection_hooks.connected
async def staff_connected(runtime: Runtime, info: QueueInfo) -> None:
    if info.principal_kind == "user":
        async with runtime.uow() as uow:
            await actions.do_record_connection(uow, info.account_id, info.principal_id, runtime.process_id)


@connection_hooks.disconnected
async def staff_disconnected(runtime: Runtime, info: QueueInfo) -> None:
    if info.principal_kind == "user":
        async with runtime.uow() as uow:
            await actions.do_record_disconnection(uow, info.account_id, info.principal_id, runtime.process_id)


@background.every(service.CONNECTION_HEARTBEAT_SECONDS)
async def keep_connections_alive(runtime: Runtime) -> None:
    """This process's shares match its live streams and stay fresh; any dead process's are reaped."""
    async with runtime.uow() as uow:
        await actions.do_sync_connections(uow, runtime.process_id, runtime.hub.staff_connections())
    async with runtime.uow() as uow:
        await actions.do_reap_connections(uow)


@background.at_stop
async def release_connections(runtime: Runtime) -> None:
    """A clean stop: this process's shares go at once (its streams are closed), not after the stale
    period; agents with no connection left elsewhere get the grace period."""
    async with runtime.uow() as uow:
        await actions.do_sync_connections(uow, runtime.process_id, {})
