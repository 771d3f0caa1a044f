"""Durable reactions to conversation events (registered at import by swarmdesk.registrations):
event rules run, and time rules' timers follow the conversation's state. This runs from the event
outbox job after the change committed, never inside it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.automation import engine, service
from swarmdesk.events.base import BaseEvent
from swarmdesk.events.listeners import listeners

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

WATCHED_EVENT_TYPES = ("conversation.created", "message.created", "conversation.status_changed",
                       "conversation.assigned", "conversation.updated", "sla.warning", "sla.breached")


async def _wanted(session: AsyncSession, event: BaseEvent, memo: dict[Any, Any]) -> bool:
    """Asked in the committing transaction: does an enabled rule of the account react to this
    type? The registry's probe looked it up (one statement per account and commit for all
    listeners); no outbox job for accounts without rules."""
    if event.type == "conversation.updated" and "tags" not in (getattr(event, "changed", None) or ()):
        return False
    return event.type in memo[("automation_watch", event.account_id)]


listeners.probe("automation_watch", service.WATCHED, service.watched_event_types)


@listeners.on(*WATCHED_EVENT_TYPES, wants=_wanted)
async def run_automation(runtime: Runtime, event: dict[str, Any]) -> None:
    await engine.run_rules_for_event(runtime, event)
