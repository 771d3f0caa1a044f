"""The one channel adapter interface. Adapters translate between a vendor's payloads and these
dataclasses; they never touch the database and never publish events."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from swarmdesk.contacts.identity import IdentityClaim
from swarmdesk.webhooks.http import OutboundHttp


@dataclass(slots=True)
class InboundAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class InboundMessage:
    """One customer message as a channel delivered it, before it has a contact or conversation."""

    external_id: str | None
    content: str
    sender_name: str = ""
    claims: list[IdentityClaim] = field(default_factory=list)
    content_html: str | None = None
    subject: str | None = None
    conversation_key: str | None = None
    attachments: list[InboundAttachment] = field(default_factory=list)
    sent_at: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class InboundRequest:
    """A transport-neutral view of what arrived (an HTTP webhook today, other transports later)."""

    headers: dict[str, str]
    body: bytes
    query: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Recipient:
    contact_id: int
    name: str
    handles: dict[str, str]  # identity kind/scope -> value, e.g. {"handle": "cust-1", "email": "a@b.c"}


@dataclass(slots=True)
class OutboundAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class OutboundMessage:
    message_id: int
    conversation_id: int
    conversation_key: str | None
    content: str
    content_html: str | None
    sender_name: str
    recipient: Recipient
    attachments: list[OutboundAttachment]
    created_at: datetime
    # Stable across retries, so the receiving side can deduplicate.
    idempotency_key: str


@dataclass(slots=True)
class SendResult:
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    can_send: bool = True
    max_message_chars: int | None = None


class ChannelConfig(BaseModel):
    """Base for each adapter's config schema. Fields marked ``json_schema_extra={"secret": True}``
    are write-only: the API never returns them."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def secret_fields(cls) -> set[str]:
        return {name for name, f in cls.model_fields.items()
                if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("secret")}


@dataclass(slots=True)
class AdapterContext:
    inbox_id: int
    account_id: int
    http: OutboundHttp
    outbound_allowlist: frozenset[str]


class ChannelAdapter(ABC):
    kind: ClassVar[str]
    title: ClassVar[str]
    config_model: ClassVar[type[ChannelConfig]]
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, config: ChannelConfig, context: AdapterContext) -> None:
        self.config = config
        self.context = context

    def delivery_id(self, request: InboundRequest) -> str:
        """The vendor's id for this delivery (a retry carries the same one)."""
        raise NotImplementedError(f"{self.kind} does not accept webhooks")

    async def verify(self, request: InboundRequest) -> None:
        """Raise ``InvalidSignature`` unless the request provably comes from the vendor (fail closed)."""
        raise NotImplementedError(f"{self.kind} does not accept webhooks")

    def parse(self, request: InboundRequest) -> list[InboundMessage]:
        raise NotImplementedError(f"{self.kind} does not accept webhooks")

    @abstractmethod
    async def send(self, message: OutboundMessage) -> SendResult:
        """Deliver an agent's reply; raise ``RetryLater`` or ``PermanentFailure`` on failure."""
