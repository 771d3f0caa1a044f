"""SMS over Twilio (``twilio_sms``): Twilio POSTs each incoming message and each delivery report
for our messages to the inbox's webhook; agents' replies go out through Twilio's Messages API.
``TwilioMessagingChannel`` is shared with WhatsApp over Twilio, which differs only in its
addresses (``whatsapp:+…``) and limits."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AnyHttpUrl, Field, ValidationInfo, field_validator

from swarmdesk.channels.base import (
    Capabilities,
    InboundMessage,
    InboundRequest,
    IngestResult,
    OutboundMessage,
    SendResult,
    StatusUpdate,
    WebhookReply,
)
from swarmdesk.channels.registry import channels
from swarmdesk.channels.twilio.common import (
    MESSAGING_SERVICE_SID,
    TwilioChannel,
    TwilioConfig,
    TwilioForm,
    create_message,
    empty_twiml,
    is_status_callback,
    sender_claims,
    split_text,
    status_update,
)
from swarmdesk.contacts.identity import Phone
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.core.errors import BadRequest
from swarmdesk.jobs.registry import PermanentFailure, RetryLater

BODY_LIMIT = 1600  # Twilio's limit for one message's Body, on every messaging channel
MAX_MEDIA = 10


class TwilioMessagingConfig(TwilioConfig):
    messaging_service_sid: str | None = Field(
        default=None, pattern=MESSAGING_SERVICE_SID,
        description="send through this Messaging Service (MG…) instead of one number")
    status_callback_url: AnyHttpUrl | None = Field(
        default=None, description="where Twilio reports delivery of our messages (default: this inbox's "
                                  "webhook_url)")

    def sender(self) -> str | None:
        raise NotImplementedError("each Twilio messaging config names its own sender field")


def require_sender(value: str | None, info: ValidationInfo) -> str | None:
    """A field validator, not a model one: a model validator's error would echo the whole config,
    auth token included."""
    if value is None and info.data.get("messaging_service_sid") is None:
        raise ValueError(f"set {info.field_name} or messaging_service_sid: replies need a sender")
    return value


class TwilioSmsConfig(TwilioMessagingConfig):
    phone_number: Phone | None = Field(default=None, validate_default=True,
                                       description="the Twilio number replies come from (E.164)")

    _has_sender = field_validator("phone_number")(require_sender)

    def sender(self) -> str | None:
        return self.phone_number


class TwilioMessagingChannel(TwilioChannel):
    """Inbound messages, delivery reports and replies through Twilio's Messages API."""

    config: TwilioMessagingConfig
    address_prefix: ClassVar[str] = ""
    product: ClassVar[str] = "SMS"

    def parse(self, request: InboundRequest) -> list[InboundMessage]:
        form = self.form(request)
        if is_status_callback(form):
            return []
        sid = form.get("MessageSid")
        if not sid:
            raise BadRequest("MessageSid is required")
        media = _media(form)
        content = self.content(form)
        if not content and media:
            kinds = ", ".join(m["content_type"] or "unknown type" for m in media)
            content = f"[{len(media)} media file{'s' if len(media) > 1 else ''}: {kinds}]"
        meta: dict[str, Any] = {"from": form.get("From"), "to": form.get("To")}
        if media:
            meta["media"] = media
        meta.update(self.extra_meta(form))
        return [InboundMessage(external_id=sid, content=content, sender_name=form.get("ProfileName").strip()[:200],
                               claims=sender_claims(form.get("From"), self.context.inbox_id), meta=meta)]

    def content(self, form: TwilioForm) -> str:
        return form.get("Body")

    def extra_meta(self, form: TwilioForm) -> dict[str, Any]:
        return {}

    def statuses(self, request: InboundRequest) -> list[StatusUpdate]:
        form = self.form(request)
        return status_update(form) if is_status_callback(form) else []

    def acknowledge(self, request: InboundRequest, results: list[IngestResult]) -> WebhookReply:
        return empty_twiml()

    async def send(self, message: OutboundMessage) -> SendResult:
        phone = message.recipient.handles.get(str(IdentityKind.phone))
        if not phone:
            raise PermanentFailure(f"the customer has no phone number to send {self.product} to")
        if message.attachments:
            raise PermanentFailure(f"{self.product} replies cannot carry attachments from Swarmdesk yet (Twilio "
                                   "fetches media from a public URL); send the text alone or use another channel")
        if not message.content.strip():
            raise PermanentFailure("the reply has no text")
        form = {"To": self.address_prefix + phone}
        sender = self.config.sender()
        if self.config.messaging_service_sid:
            form["MessagingServiceSid"] = self.config.messaging_service_sid
        else:
            assert sender is not None  # the config requires one of them
            form["From"] = self.address_prefix + sender
        callback = str(self.config.status_callback_url or "") or self.context.webhook_url
        if callback:  # this inbox's own webhook unless configured otherwise
            form["StatusCallback"] = callback
        parts = split_text(message.content, BODY_LIMIT)
        first: str | None = None
        for index, part in enumerate(parts):
            try:
                sid = await create_message(self, self.config, {**form, "Body": part})
            except (RetryLater, PermanentFailure) as exc:
                if index == 0:
                    raise
                # Retrying would send the first parts again.
                raise PermanentFailure(f"parts 1-{index} of {len(parts)} were sent; part {index + 1} failed: "
                                       f"{exc}") from exc
            first = first or sid
        return SendResult(external_id=first)


def _media(form: TwilioForm) -> list[dict[str, str]]:
    """Twilio's media URLs (fetching them needs the account's credentials, so they are kept, not
    shown as links a browser could open)."""
    count = min(form.int("NumMedia") or 0, MAX_MEDIA)
    return [{"url": form.get(f"MediaUrl{i}"), "content_type": form.get(f"MediaContentType{i}")}
            for i in range(count) if form.get(f"MediaUrl{i}")]


@channels.register
class TwilioSmsChannel(TwilioMessagingChannel):
    kind = "twilio_sms"
    title = "SMS (Twilio)"
    config_model = TwilioSmsConfig
    capabilities = Capabilities(can_send=True, max_message_chars=BODY_LIMIT, recipient_kinds=(IdentityKind.phone,))
    config: TwilioSmsConfig
