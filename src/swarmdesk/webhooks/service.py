from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.webhooks.models import WebhookDelivery, WebhookSubscription


async def get_subscription(session: AsyncSession, account_id: int, sub_id: int) -> WebhookSubscription | None:
    return await session.scalar(select(WebhookSubscription).where(
        WebhookSubscription.id == sub_id, WebhookSubscription.account_id == account_id))


async def list_subscriptions(session: AsyncSession, account_id: int) -> list[WebhookSubscription]:
    return list((await session.scalars(select(WebhookSubscription).where(
        WebhookSubscription.account_id == account_id).order_by(WebhookSubscription.id))).all())


async def active_subscriptions(session: AsyncSession, account_id: int) -> list[WebhookSubscription]:
    return list((await session.scalars(select(WebhookSubscription).where(
        WebhookSubscription.account_id == account_id, WebhookSubscription.is_active.is_(True)))).all())


SUBSCRIBED = select(WebhookSubscription.event_types).where(
    WebhookSubscription.account_id == bindparam("account_id"), WebhookSubscription.is_active.is_(True))


def subscribed_event_types(event_types: list[list[str]]) -> set[str]:
    """What the account's active subscriptions listen to, from SUBSCRIBED's rows (asked on every
    commit that publishes, see webhooks.listeners)."""
    return {t for types in event_types for t in types}


async def delivery_by_webhook_id(session: AsyncSession, webhook_id: str) -> WebhookDelivery | None:
    return await session.scalar(select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id))


async def get_delivery(session: AsyncSession, account_id: int, delivery_id: int) -> WebhookDelivery | None:
    return await session.scalar(select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.account_id == account_id))


async def list_deliveries(session: AsyncSession, account_id: int, subscription_id: int | None,
                          before_id: int | None, limit: int) -> list[WebhookDelivery]:
    stmt = select(WebhookDelivery).where(WebhookDelivery.account_id == account_id)
    if subscription_id is not None:
        stmt = stmt.where(WebhookDelivery.subscription_id == subscription_id)
    if before_id is not None:
        stmt = stmt.where(WebhookDelivery.id < before_id)
    return list((await session.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit))).all())
