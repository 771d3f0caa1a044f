from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from swarmdesk.accounts.models import Account
from swarmdesk.channels.directory import outbound_allowlist
from swarmdesk.core.clock import utcnow
from swarmdesk.jobs.registry import JobContext, jobs
from swarmdesk.webhooks.actions import DELIVER_JOB
from swarmdesk.webhooks.delivery import DeliveryRefused, DeliveryRetry, post_signed
from swarmdesk.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime


@jobs.handler(DELIVER_JOB)
async def deliver_webhook(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    async with runtime.uow() as uow:
        delivery = await uow.session.get(WebhookDelivery, payload["delivery_id"])
        if delivery is None or (delivery.status == DeliveryStatus.succeeded and not payload.get("manual")):
            return
        sub = await uow.session.get(WebhookSubscription, delivery.subscription_id) if delivery.subscription_id else None
        account = await uow.session.get(Account, delivery.account_id)
    if sub is None or account is None:
        return  # subscription deleted since: nothing is owed any more
    # Each attempt goes to the subscription's current URL: an admin who fixes a wrong URL expects
    # the retries (and redeliveries) to follow. The log keeps the URL of the latest attempt.
    url = sub.url
    try:
        response = await post_signed(runtime.http, url, secret=runtime.secretbox.decrypt(sub.secret_encrypted),
                                     webhook_id=delivery.webhook_id, body=orjson.dumps(delivery.payload),
                                     allowlist=outbound_allowlist(account))
    except (DeliveryRetry, DeliveryRefused) as exc:
        final = isinstance(exc, DeliveryRefused) or ctx.is_last_attempt
        await _record(runtime, delivery.id, url, DeliveryStatus.failed if final else DeliveryStatus.retrying,
                      exc.status_code, str(exc))
        raise
    await _record(runtime, delivery.id, url, DeliveryStatus.succeeded, response.status_code, None)


async def _record(runtime: Runtime, delivery_id: int, url: str, status: DeliveryStatus, status_code: int | None,
                  error: str | None) -> None:
    async with runtime.uow() as uow:
        row = await uow.session.get(WebhookDelivery, delivery_id)
        if row is None:
            return
        row.url = url
        row.attempts += 1
        row.status = status
        row.last_status_code = status_code
        row.last_error = error[:1000] if error else None
        if status == DeliveryStatus.succeeded:
            row.delivered_at = utcnow()
        await uow.commit()
