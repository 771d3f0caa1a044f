from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AnyHttpUrl, Field

from swarmdesk.core.schemas import In, Out
from swarmdesk.events.types import WEBHOOK_EVENT_TYPES
from swarmdesk.webhooks.models import DeliveryStatus


def _check_types(types: list[str]) -> list[str]:
    unknown = sorted(set(types) - set(WEBHOOK_EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event types {unknown}; known: {list(WEBHOOK_EVENT_TYPES)}")
    return sorted(set(types))


EventTypes = Annotated[list[str], AfterValidator(_check_types)]


class SubscriptionCreate(In):
    url: AnyHttpUrl
    event_types: EventTypes = Field(min_length=1)
    description: str = Field(default="", max_length=500)


class SubscriptionUpdate(In):
    url: AnyHttpUrl | None = None
    event_types: EventTypes | None = Field(default=None, min_length=1)
    description: str | None = Field(default=None, max_length=500)
    is_active: bool | None = None


class SubscriptionOut(Out):
    id: int
    url: str
    event_types: list[str]
    description: str
    is_active: bool
    created_at: datetime


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="Standard Webhooks signing secret: shown once")


class DeliveryOut(Out):
    id: int
    subscription_id: int | None
    webhook_id: str
    event_type: str
    url: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
