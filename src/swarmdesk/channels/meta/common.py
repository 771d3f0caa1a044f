"""What WhatsApp Cloud and Messenger share, as Meta documents it: the ``hub.challenge`` subscription
check, ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with the app secret), payloads without a
delivery id, and the Graph API with its error format. Also the JSON POST that vendor APIs need."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError

from swarmdesk.channels.base import ChannelAdapter, ChannelConfig, InboundMessage, InboundRequest, WebhookReply
from swarmdesk.core.errors import BadRequest, Forbidden, InvalidSignature, ValidationFailed
from swarmdesk.jobs.registry import PermanentFailure, RetryLater
from swarmdesk.webhooks.http import OutboundBlockedError, OutboundHttp, retry_after_seconds

GRAPH_BASE_URL = "https://graph.facebook.com"
GRAPH_API_VERSION = "v25.0"
SIGNATURE_HEADER = "x-hub-signature-256"
# Meta's challenge is a number; anything beyond a short token is not echoed (it would be reflected
# content on our origin).
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{1,128}")
# Graph error codes that mean "slow down" or "try again": API, app, page and WhatsApp pair/spam
# rate limits, and Meta's own temporary failures.
_RETRYABLE_GRAPH_CODES = frozenset({1, 2, 4, 17, 32, 613, 80007, 130429, 131016, 131048, 131056, 133004})


def new_verify_token() -> str:
    return secrets.token_urlsafe(24)


class MetaConfig(ChannelConfig):
    access_token: str = Field(min_length=1, max_length=2000, json_schema_extra={"secret": True},
                              description="a long-lived token allowed to send (system user or page access token)")
    app_secret: str = Field(min_length=1, max_length=200, json_schema_extra={"secret": True},
                            description="the Meta app's secret (App settings > Basic): signs every webhook")
    verify_token: str = Field(default_factory=new_verify_token, pattern=r"^[!-~]{8,200}$",
                              json_schema_extra={"secret": True},
                              description="what you type as 'Verify token' in Meta's webhook setup (generated if omitted)")
    api_version: str = Field(default=GRAPH_API_VERSION, pattern=r"^v\d{1,3}\.\d{1,2}$",
                             description="Graph API version used for sending")
    graph_base_url: AnyHttpUrl = Field(default=AnyHttpUrl(GRAPH_BASE_URL),
                                       description="Graph API address (change only for a proxy or a test double)")


class VendorPayload(BaseModel):
    """A vendor's JSON: only the fields we read are declared, new ones are ignored."""

    model_config = ConfigDict(extra="ignore")


P = TypeVar("P", bound=BaseModel)


def load_payload(model: type[P], body: bytes | dict[str, Any]) -> P:
    """The payload (raw JSON, or a part of one already decoded) as ``model``; 400 for malformed
    JSON, 422 for another shape than the documented one."""
    try:
        if isinstance(body, bytes):
            return model.model_validate_json(body)
        return model.model_validate(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise BadRequest("the body is not valid JSON") from exc
        raise ValidationFailed("the payload does not have the documented shape",
                               extra={"errors": exc.errors(include_url=False, include_context=False,
                                                           include_input=False)}) from exc


def clean(text: str | None) -> str:
    """Vendor text as we store it: no NUL characters (PostgreSQL cannot hold them)."""
    return (text or "").replace("\x00", "")


def first_of_each(messages: list[InboundMessage]) -> list[InboundMessage]:
    """A message listed twice in one delivery is one message (its id is unique per inbox)."""
    seen: set[str] = set()
    kept = []
    for m in messages:
        if m.external_id is not None:
            if m.external_id in seen:
                continue
            seen.add(m.external_id)
        kept.append(m)
    return kept


def body_delivery_id(request: InboundRequest) -> str:
    """Meta sends no delivery id and retries a delivery with the same body: the body's hash is one."""
    return "sha256:" + hashlib.sha256(request.body).hexdigest()


def verify_signature(app_secret: str, request: InboundRequest) -> None:
    header = request.headers.get(SIGNATURE_HEADER, "").strip()
    if not header:
        raise InvalidSignature("the X-Hub-Signature-256 header is required")
    scheme, _, given = header.partition("=")
    if scheme != "sha256" or not given:
        raise InvalidSignature("X-Hub-Signature-256 must be sha256=<hex HMAC-SHA256 of the body>")
    expected = hmac.new(app_secret.encode(), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.lower().encode("utf-8", "replace")):
        raise InvalidSignature("X-Hub-Signature-256 does not match the body (is the app secret right?)")


def answer_challenge(verify_token: str, request: InboundRequest) -> WebhookReply:
    """Meta's subscription check: echo ``hub.challenge`` if ``hub.verify_token`` is ours."""
    query = request.query
    if query.get("hub.mode") != "subscribe":
        raise BadRequest("hub.mode must be 'subscribe'")
    if not hmac.compare_digest(query.get("hub.verify_token", "").encode(), verify_token.encode()):
        raise Forbidden("hub.verify_token does not match this inbox's verify token")
    challenge = query.get("hub.challenge", "")
    if not _CHALLENGE.fullmatch(challenge):
        raise BadRequest("hub.challenge must be 1-128 letters, digits, '-' or '_'")
    return WebhookReply(body=challenge.encode(), media_type="text/plain", status_code=200)


@dataclass(frozen=True, slots=True)
class VendorAnswer:
    status_code: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


async def post_json(http: OutboundHttp, url: str, payload: dict[str, Any], *, headers: dict[str, str],
                    allowlist: frozenset[str]) -> VendorAnswer:
    """POST JSON through the SSRF-guarded client, keeping the answer's body. Raises
    ``httpx.HTTPError`` (``OutboundBlockedError`` for a refused destination)."""
    answer = await http.exchange("POST", url, content=orjson.dumps(payload), allowlist=allowlist,
                                 headers={"content-type": "application/json", "accept": "application/json", **headers})
    return VendorAnswer(answer.status_code, answer.headers, answer.body)


def transport_failure(product: str, exc: httpx.HTTPError, *, hide: str = "") -> Exception:
    """What a failed exchange means for the delivery job; ``hide`` (a token in the URL) never
    reaches the error text."""
    text = f"{type(exc).__name__}: {exc}"
    if hide:
        text = text.replace(hide, "***")
    if isinstance(exc, OutboundBlockedError):
        return PermanentFailure(text)
    return RetryLater(f"{product} could not be reached: {text}")


def graph_failure(product: str, answer: VendorAnswer) -> Exception:
    """A Graph API error answer as the job sees it: throttling and Meta's own trouble are
    retried (Retry-After honoured), anything else is the vendor refusing the message."""
    error = answer.json().get("error")
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    message = str(details or error.get("message") or answer.body[:200].decode("utf-8", "replace") or "no details")
    text = f"{product} answered {answer.status_code}" + (f" (code {code})" if code is not None else "") + f": {message}"
    if (answer.status_code == 429 or answer.status_code >= 500 or error.get("is_transient") is True
            or code in _RETRYABLE_GRAPH_CODES):
        return RetryLater(text, retry_after=retry_after_seconds(answer.headers.get("retry-after")))
    return PermanentFailure(text)


class MetaChannel(ChannelAdapter):
    """Webhook verification and Graph API calls for Meta's messaging products."""

    product = "Graph API"
    config: MetaConfig

    def delivery_id(self, request: InboundRequest) -> str:
        return body_delivery_id(request)

    async def verify(self, request: InboundRequest) -> None:
        verify_signature(self.config.app_secret, request)

    def handshake(self, request: InboundRequest) -> WebhookReply:
        return answer_challenge(self.config.verify_token, request)

    def graph_url(self, path: str) -> str:
        return f"{str(self.config.graph_base_url).rstrip('/')}/{self.config.api_version}/{path}"

    async def graph_post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST to the Graph API with the inbox's token; the answer's JSON, or ``RetryLater`` /
        ``PermanentFailure``."""
        try:
            answer = await post_json(self.context.http, self.graph_url(path), payload,
                                     headers={"authorization": f"Bearer {self.config.access_token}"},
                                     allowlist=self.context.outbound_allowlist)
        except httpx.HTTPError as exc:
            raise transport_failure(self.product, exc, hide=self.config.access_token) from exc
        if not 200 <= answer.status_code < 300:
            raise graph_failure(self.product, answer)
        return answer.json()
