"""Events become webhook deliveries (durably: this runs from the event outbox job)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.events.base import BaseEvent
from swarmdesk.events.listeners import listeners
from swarmdesk.events.types import WEBHOOK_EVENT_TYPES
from swarmdesk.webhooks import service
from swarmdesk.webhooks.actions import enqueue_event_deliveries

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime


async def _subscribed(session: AsyncSession, event: BaseEvent, memo: dict[Any, Any]) -> bool:
    return event.type in memo[("webhook_event_types", event.account_id)]


listeners.probe("webhook_event_types", service.SUBSCRIBED, service.subscribed_event_types)


@listeners.on(*WEBHOOK_EVENT_TYPES, wants=_subscribed)
async def fan_out_to_subscriptions(runtime: Runtime, event: dict[str, Any]) -> None:
    async with runtime.uow() as uow:
        if await enqueue_event_deliveries(uow, event):
            await uow.commit()
