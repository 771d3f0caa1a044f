"""Webhook subscriptions, and the deliveries owed to them."""

from __future__ import annotations

from typing import Any

from swarmdesk.accounts import service as accounts_service
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import ValidationFailed
from swarmdesk.core.security import SecretBox, new_webhook_secret
from swarmdesk.jobs import service as jobs_service
from swarmdesk.webhooks import service
from swarmdesk.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from swarmdesk.webhooks.schemas import SubscriptionCreate, SubscriptionUpdate

DELIVER_JOB = "webhooks.deliver"


async def do_create_subscription(uow: UnitOfWork, principal: StaffPrincipal, box: SecretBox,
                                 payload: SubscriptionCreate) -> tuple[WebhookSubscription, str]:
    secret = new_webhook_secret()
    sub = WebhookSubscription(account_id=principal.account_id, url=str(payload.url), event_types=payload.event_types,
                              description=payload.description, secret_encrypted=box.encrypt(secret), is_active=True)
    uow.session.add(sub)
    await uow.session.flush()
    accounts_service.audit(uow.session, principal.account_id, principal.user_id, "webhook.created", "webhook",
                           sub.id, {"url": sub.url, "event_types": sub.event_types})
    await uow.commit()
    return sub, secret


async def do_update_subscription(uow: UnitOfWork, principal: StaffPrincipal, sub: WebhookSubscription,
                                 payload: SubscriptionUpdate) -> WebhookSubscription:
    changes = payload.model_dump(exclude_unset=True, mode="json")
    nulls = sorted(name for name, value in changes.items() if value is None)
    if nulls:
        raise ValidationFailed(f"{', '.join(nulls)} cannot be null; leave a field out to keep it")
    for name, value in changes.items():
        setattr(sub, name, value)
    if changes:
        accounts_service.audit(uow.session, principal.account_id, principal.user_id, "webhook.updated", "webhook",
                               sub.id, changes)
        await uow.commit()
    return sub


async def do_delete_subscription(uow: UnitOfWork, principal: StaffPrincipal, sub: WebhookSubscription) -> None:
    await uow.session.delete(sub)
    accounts_service.audit(uow.session, principal.account_id, principal.user_id, "webhook.deleted", "webhook",
                           sub.id, {"url": sub.url})
    await uow.commit()


async def enqueue_event_deliveries(uow: UnitOfWork, event: dict[str, Any]) -> int:
    """One delivery per interested subscription. The webhook id derives from the event uid, so
    running this twice for the same event creates nothing new."""
    subs = [s for s in await service.active_subscriptions(uow.session, event["account_id"])
            if event["type"] in s.event_types]
    created = 0
    body = {k: v for k, v in event.items() if k != "audience"}
    for sub in subs:
        webhook_id = f"evt_{event['uid']}_{sub.id}"
        if await service.delivery_by_webhook_id(uow.session, webhook_id) is not None:
            continue
        delivery = WebhookDelivery(account_id=sub.account_id, subscription_id=sub.id, webhook_id=webhook_id,
                                   event_type=event["type"], url=sub.url, payload=body,
                                   status=DeliveryStatus.pending, attempts=0, created_at=utcnow())
        uow.session.add(delivery)
        await uow.session.flush()
        jobs_service.enqueue(uow.session, DELIVER_JOB, {"delivery_id": delivery.id}, account_id=sub.account_id)
        created += 1
    return created


async def do_redeliver(uow: UnitOfWork, principal: StaffPrincipal, delivery: WebhookDelivery) -> WebhookDelivery:
    delivery.status = DeliveryStatus.pending
    jobs_service.enqueue(uow.session, DELIVER_JOB, {"delivery_id": delivery.id, "manual": True},
                         account_id=delivery.account_id)
    accounts_service.audit(uow.session, principal.account_id, principal.user_id, "webhook.redelivered",
                           "webhook_delivery", delivery.id, {})
    await uow.commit()
    return delivery
