"""The API channel ("bring your own channel"): your system posts customer messages to us signed
with Standard Webhooks HMAC, and receives agent replies the same way at ``callback_url``."""

from __future__ import annotations

import base64
from datetime import datetime

import orjson
from pydantic import AnyHttpUrl, Field, ValidationError

from swarmdesk.channels.base import (
    Capabilities,
    ChannelAdapter,
    ChannelConfig,
    InboundAttachment,
    InboundMessage,
    InboundRequest,
    OutboundMessage,
    SendResult,
)
from swarmdesk.channels.registry import channels
from swarmdesk.contacts.identity import Email, IdentityClaim, Phone, handle_scope
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.core.clock import utcnow
from swarmdesk.core.errors import BadRequest, InvalidSignature, ValidationFailed
from swarmdesk.core.schemas import In
from swarmdesk.core.security import new_webhook_secret, verify_webhook_signature
from swarmdesk.core.storage import decode_base64
from swarmdesk.jobs.registry import PermanentFailure
from swarmdesk.webhooks.delivery import post_signed

TOLERANCE_SECONDS = 300
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


class ApiChannelConfig(ChannelConfig):
    secret: str = Field(default_factory=new_webhook_secret, pattern=r"^whsec_[A-Za-z0-9+/=]{24,}$",
                        json_schema_extra={"secret": True},
                        description="Standard Webhooks secret for both directions (generated if omitted)")
    callback_url: AnyHttpUrl | None = Field(default=None, description="where agent replies are POSTed")
    trust_contact_identifiers: bool = Field(
        default=False, description="treat the email and phone you send as verified, so they join the same "
                                   "customer on other channels")


class _Contact(In):
    source_id: str = Field(min_length=1, max_length=200, description="your system's id for this customer")
    name: str = Field(default="", max_length=200)
    email: Email | None = Field(default=None, max_length=320)
    phone: Phone | None = Field(default=None, max_length=40)


class _Attachment(In):
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=200)
    data_base64: str = Field(min_length=1)


class ApiInboundPayload(In):
    message_id: str = Field(min_length=1, max_length=300, description="your id for this message: retries are safe")
    contact: _Contact
    content: str = Field(default="", max_length=50_000)
    content_html: str | None = Field(default=None, max_length=200_000)
    conversation_key: str | None = Field(default=None, max_length=200,
                                         description="your thread id; omit to continue the customer's latest conversation")
    subject: str | None = Field(default=None, max_length=500)
    attachments: list[_Attachment] = Field(default_factory=list, max_length=10)
    sent_at: datetime | None = None


@channels.register
class ApiChannel(ChannelAdapter):
    kind = "api"
    title = "API"
    config_model = ApiChannelConfig
    capabilities = Capabilities(can_send=True, max_message_chars=50_000, recipient_kinds=())
    config: ApiChannelConfig

    def delivery_id(self, request: InboundRequest) -> str:
        return request.headers.get("webhook-id", "")

    async def verify(self, request: InboundRequest) -> None:
        msg_id = request.headers.get("webhook-id")
        timestamp = request.headers.get("webhook-timestamp")
        signature = request.headers.get("webhook-signature")
        if not msg_id or not timestamp or not signature:
            raise InvalidSignature("webhook-id, webhook-timestamp and webhook-signature headers are required")
        if len(msg_id) > 200:
            raise InvalidSignature("webhook-id is longer than 200 characters")
        try:
            ts = int(timestamp)
        except ValueError:
            raise InvalidSignature("webhook-timestamp must be integer seconds since the epoch") from None
        now = int(utcnow().timestamp())
        if abs(now - ts) > TOLERANCE_SECONDS:
            raise InvalidSignature("webhook-timestamp is outside the 5-minute tolerance (replayed or clock skew)")
        if not verify_webhook_signature(self.config.secret, msg_id, ts, request.body, signature):
            raise InvalidSignature("webhook-signature does not match the body")

    def parse(self, request: InboundRequest) -> list[InboundMessage]:
        try:
            payload = ApiInboundPayload.model_validate_json(request.body)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise BadRequest("the body is not valid JSON") from exc
            raise ValidationFailed("the message payload is not valid",
                                   extra={"errors": exc.errors(include_url=False, include_context=False,
                                                               include_input=False)}) from exc
        if not payload.content and not payload.content_html and not payload.attachments:
            raise ValidationFailed("a message needs content, content_html or attachments")
        trusted = self.config.trust_contact_identifiers
        claims = [IdentityClaim(IdentityKind.handle, payload.contact.source_id, handle_scope(self.context.inbox_id),
                                verified=True)]
        if payload.contact.email:
            claims.append(IdentityClaim(IdentityKind.email, payload.contact.email, verified=trusted))
        if payload.contact.phone:
            claims.append(IdentityClaim(IdentityKind.phone, payload.contact.phone, verified=trusted))
        attachments = [InboundAttachment(a.filename, a.content_type, decode_base64(a.data_base64, MAX_ATTACHMENT_BYTES))
                       for a in payload.attachments]
        return [InboundMessage(
            external_id=payload.message_id, content=payload.content, content_html=payload.content_html,
            sender_name=payload.contact.name, claims=claims, subject=payload.subject,
            conversation_key=payload.conversation_key, attachments=attachments, sent_at=payload.sent_at)]

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.config.callback_url is None:
            raise PermanentFailure("this API inbox has no callback_url to deliver replies to")
        body = orjson.dumps({
            "type": "message.created",
            "timestamp": utcnow().isoformat(),
            "data": {
                "message_id": message.message_id,
                "conversation_id": message.conversation_id,
                "conversation_key": message.conversation_key,
                "contact": {"id": message.recipient.contact_id,
                            "source_id": message.recipient.handles.get("handle")},
                "sender": {"name": message.sender_name},
                "content": message.content,
                "content_html": message.content_html,
                "attachments": [{"filename": a.filename, "content_type": a.content_type,
                                 "data_base64": base64.b64encode(a.data).decode()} for a in message.attachments],
                "created_at": message.created_at.isoformat(),
            },
        })
        await post_signed(self.context.http, str(self.config.callback_url), secret=self.config.secret,
                          webhook_id=message.idempotency_key, body=body,
                          allowlist=self.context.outbound_allowlist)
        return SendResult(external_id=None)
