"""Events become webhook deliveries (durably: this runs from the event outbox job)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swarmdesk.events.listeners import listeners
from swarmdesk.events.types import WEBHOOK_EVENT_TYPES
from swarmdesk.webhooks.actions import enqueue_event_deliveries

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime


@listeners.on(*WEBHOOK_EVENT_TYPES)
async def fan_out_to_subscriptions(runtime: Runtime, event: dict[str, Any]) -> None:
    async with runtime.uow() as uow:
        if await enqueue_event_deliveries(uow, event):
            await uow.commit()
