"""The web chat channel. Visitors write through customer sessions (the widget calls the customer
routes); agents' replies reach them over the real-time socket, so ``send`` has nothing to carry."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from pydantic import Field, field_validator

from swarmdesk.channels.base import Capabilities, ChannelAdapter, ChannelConfig, OutboundMessage, SendResult
from swarmdesk.channels.registry import channels

# Field names with a meaning: they fill the contact's profile. Any other name is a custom attribute.
PROFILE_FIELDS = ("name", "email", "phone")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?")


class FormField(ChannelConfig):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$",
                      description="name, email or phone fill the contact's profile; any other name is kept as a "
                                  "custom attribute of the contact")
    label: str = Field(min_length=1, max_length=100)
    required: bool = False


def _default_fields() -> list[FormField]:
    return [FormField(name="name", label="Your name", required=True),
            FormField(name="email", label="Your email", required=False)]


def new_identity_secret() -> str:
    return secrets.token_hex(32)


class WebchatConfig(ChannelConfig):
    identity_secret: str = Field(
        default_factory=new_identity_secret, min_length=32, max_length=200, json_schema_extra={"secret": True},
        description="HMAC-SHA256 key for identity verification: your server sends user_hash = "
                    "hex(HMAC-SHA256(identity_secret, user_id)) for logged-in visitors (generated if omitted)")
    title: str = Field(default="Chat with us", min_length=1, max_length=100)
    greeting: str = Field(default="Hi! How can we help?", max_length=500)
    offline_message: str = Field(
        default="Nobody is available right now. Leave your message and we will answer by email.", max_length=500)
    fields: list[FormField] = Field(default_factory=_default_fields, max_length=10,
                                    description="the pre-chat form, in order")
    color: str = Field(default="#2f5bea", pattern=r"^#[0-9a-fA-F]{6}$", description="the widget's accent colour")
    text_color: str = Field(default="#ffffff", pattern=r"^#[0-9a-fA-F]{6}$", description="text on the accent colour")
    offline_email_inbox_id: int | None = Field(
        default=None, ge=1, description="the email inbox that answers visitors who left (reply channel) and sends "
                                        "transcripts")
    allowed_origins: list[str] = Field(
        default_factory=list, max_length=50,
        description="sites that may embed the widget (https://example.com); empty: any site")

    @field_validator("fields")
    @classmethod
    def _unique(cls, fields: list[FormField]) -> list[FormField]:
        names = [f.name for f in fields]
        if len(names) != len(set(names)):
            raise ValueError("form field names must be unique")
        return fields

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin like https://example.com")
        return [o.lower() for o in origins]


def identity_hash(secret: str, user_id: str) -> str:
    """What the customer's server computes for a logged-in visitor (Intercom's identity verification)."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def identity_matches(secret: str, user_id: str, user_hash: str) -> bool:
    return hmac.compare_digest(identity_hash(secret, user_id), user_hash.strip().lower())


@channels.register
class WebchatChannel(ChannelAdapter):
    kind = "webchat"
    title = "Web chat widget"
    config_model = WebchatConfig
    # The customer session addresses the contact itself: no identity is needed to reach them.
    capabilities = Capabilities(can_send=True, max_message_chars=50_000, recipient_kinds=())
    config: WebchatConfig

    async def send(self, message: OutboundMessage) -> SendResult:
        # The reply is already on its way: publishing it reached the visitor's socket (customer
        # events), and the widget lists the conversation's messages when it opens.
        return SendResult(external_id=None)
