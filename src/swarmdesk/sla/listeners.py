"""Durable reactions to conversation events: every change that can move a deadline re-syncs the
conversation's clock (registered at import by swarmdesk.registrations). Also routing's SLA lift."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.conversations.models import Conversation
from swarmdesk.events.base import BaseEvent
from swarmdesk.events.listeners import listeners
from swarmdesk.events.types import ConversationUpdated, MessageCreated
from swarmdesk.routing.service import lift_providers
from swarmdesk.sla import actions, service

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

# Routing lifts a waiting conversation whose next deadline is this close (or past).
LIFT_WITHIN = timedelta(minutes=30)
# conversation.updated fields that can change which policy applies.
_POLICY_FIELDS = {"priority", "inbox_id"}


async def _wants(session: AsyncSession, event: BaseEvent, memo: dict[Any, Any]) -> bool:
    """Only accounts with SLA policies pay for an outbox job; notes and cosmetic updates never do."""
    if isinstance(event, MessageCreated) and event.message.private:
        return False
    if isinstance(event, ConversationUpdated) and not _POLICY_FIELDS & set(event.changed):
        return False
    return bool(memo[("sla_policies", event.account_id)])


listeners.probe("sla_policies", service.ANY_POLICY, service.account_has_policies)


@listeners.on("conversation.created", "conversation.updated", "conversation.status_changed", "message.created",
              wants=_wants)
async def keep_clock(runtime: Runtime, event: dict[str, Any]) -> None:
    async with runtime.uow() as uow:
        await actions.do_sync_sla(uow, event["account_id"], event["conversation"]["id"])


async def sla_lift(session: AsyncSession, conversation: Conversation, now: datetime) -> bool:
    """Routing's ``sla`` lift: the conversation's next deadline is within LIFT_WITHIN (or past)."""
    return bool(await service.due_soon(session, [conversation.id], LIFT_WITHIN, now))


lift_providers.register("sla", sla_lift)
