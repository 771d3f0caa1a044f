"""WhatsApp over Twilio (``twilio_whatsapp``): the SMS adapter's flow with ``whatsapp:+E164``
addresses, WhatsApp's richer messages (locations, buttons, replies to a message) and its limits:
4096 characters and free-form replies only within 24 hours of the customer's last message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator

from swarmdesk.channels.base import Capabilities
from swarmdesk.channels.registry import channels
from swarmdesk.channels.twilio.common import TwilioForm
from swarmdesk.channels.twilio.sms import TwilioMessagingChannel, TwilioMessagingConfig, require_sender
from swarmdesk.contacts.identity import Phone
from swarmdesk.contacts.models import IdentityKind

WHATSAPP_MAX_CHARS = 4096  # WhatsApp's limit; longer than Twilio's Body, so a reply may go in parts
WHATSAPP_WINDOW = timedelta(hours=24)


class TwilioWhatsAppConfig(TwilioMessagingConfig):
    whatsapp_number: Phone | None = Field(
        default=None, validate_default=True,
        description="the WhatsApp sender number registered with Twilio (E.164, without 'whatsapp:')")

    _has_sender = field_validator("whatsapp_number")(require_sender)

    def sender(self) -> str | None:
        return self.whatsapp_number


@channels.register
class TwilioWhatsAppChannel(TwilioMessagingChannel):
    kind = "twilio_whatsapp"
    title = "WhatsApp (Twilio)"
    config_model = TwilioWhatsAppConfig
    capabilities = Capabilities(can_send=True, max_message_chars=WHATSAPP_MAX_CHARS, reply_window=WHATSAPP_WINDOW,
                                recipient_kinds=(IdentityKind.phone,))
    config: TwilioWhatsAppConfig
    address_prefix = "whatsapp:"
    product = "WhatsApp"

    def content(self, form: TwilioForm) -> str:
        body = form.get("Body") or form.get("ButtonText")
        if "Latitude" in form and "Longitude" in form:
            place = ", ".join(p for p in (form.get("Label"), form.get("Address")) if p)
            location = f"Location: {form.get('Latitude')}, {form.get('Longitude')}" + (f" ({place})" if place else "")
            body = f"{body}\n{location}" if body and body != form.get("Label") else location
        return body

    def extra_meta(self, form: TwilioForm) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        for name, key in (("WaId", "wa_id"), ("ProfileName", "profile_name"), ("MessageType", "type"),
                          ("OriginalRepliedMessageSid", "reply_to"), ("ButtonPayload", "button_payload")):
            if form.get(name):
                meta[key] = form.get(name)
        if "Latitude" in form and "Longitude" in form:
            meta["location"] = {"latitude": form.get("Latitude"), "longitude": form.get("Longitude"),
                                "label": form.get("Label"), "address": form.get("Address")}
        return meta
