"""Signed POSTs (Standard Webhooks) and what their answers mean for a retrying job."""

from __future__ import annotations

import time

import httpx

from swarmdesk.core.security import sign_webhook
from swarmdesk.jobs.registry import PermanentFailure, RetryLater
from swarmdesk.webhooks.http import OutboundBlockedError, OutboundHttp, retry_after_seconds


class DeliveryRetry(RetryLater):
    def __init__(self, message: str, status_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status_code = status_code


class DeliveryRefused(PermanentFailure):
    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def signed_headers(secret: str, webhook_id: str, body: bytes, now: int | None = None) -> dict[str, str]:
    timestamp = int(now if now is not None else time.time())
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_webhook(secret, webhook_id, timestamp, body),
    }


async def post_signed(http: OutboundHttp, url: str, *, secret: str, webhook_id: str, body: bytes,
                      allowlist: frozenset[str]) -> httpx.Response:
    """POST once; raise ``RetryLater`` or ``PermanentFailure`` unless the receiver answered 2xx."""
    try:
        response = await http.post(url, content=body, headers=signed_headers(secret, webhook_id, body),
                                   allowlist=allowlist)
    except OutboundBlockedError as exc:
        raise DeliveryRefused(str(exc)) from exc
    except httpx.HTTPError as exc:
        raise DeliveryRetry(f"{type(exc).__name__}: {exc}") from exc
    if 200 <= response.status_code < 300:
        return response
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    code = response.status_code
    if code == 410:
        raise DeliveryRefused("receiver answered 410 Gone", status_code=code)
    # 429 and 5xx are transient by definition; other 4xx are usually a receiver mid-deploy or
    # misconfigured, so they are retried on the same schedule and dead-lettered after that.
    raise DeliveryRetry(f"receiver answered {code}", status_code=code, retry_after=retry_after)
