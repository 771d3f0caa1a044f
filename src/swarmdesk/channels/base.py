"""The one channel adapter interface. Adapters translate between a vendor's payloads and these
dataclasses; they never touch the database and never publish events."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from swarmdesk.contacts.identity import IdentityClaim
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.core.errors import NotFound
from swarmdesk.webhooks.http import OutboundHttp


def epoch_to_datetime(seconds: float | None) -> datetime | None:
    """A vendor's Unix timestamp, or None when it is missing or absurd (never an exception)."""
    if not seconds:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        return None


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
    # Ids of earlier messages this one answers, nearest first (an email's In-Reply-To, then its
    # References): joins the conversation they belong to, if it is this sender's.
    thread_refs: list[str] = field(default_factory=list)
    # A conversation's unguessable reply token, when the channel addresses one (support+<token>@…).
    reply_token: str | None = None
    attachments: list[InboundAttachment] = field(default_factory=list)
    sent_at: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # Sent by a machine (an out-of-office reply): joins the conversation it answers, never starts
    # or reopens one, so two auto-responders cannot keep a loop going.
    automatic: bool = False


@dataclass(slots=True)
class InboundRequest:
    """A transport-neutral view of what arrived (an HTTP webhook today, other transports later).

    ``url`` is the address as the vendor called it (the public base URL, the path and the query),
    which signature schemes such as Twilio's sign. Header names are lower-case.
    """

    headers: dict[str, str]
    body: bytes
    query: dict[str, str] = field(default_factory=dict)
    url: str = ""
    method: str = "POST"


@dataclass(slots=True)
class StatusUpdate:
    """A vendor's report on a message we sent, matched by the id the vendor gave it."""

    external_id: str
    status: str  # one of DeliveryStatus: sent, delivered, read, failed
    error: str | None = None


@dataclass(slots=True)
class IngestResult:
    message_id: int
    conversation_id: int
    contact_id: int
    duplicate: bool


@dataclass(slots=True)
class WebhookReply:
    """What the vendor gets back, when its convention is not our JSON (TwiML, a challenge echo)."""

    body: bytes = b""
    media_type: str = "text/plain"
    status_code: int = 200


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
    subject: str = ""
    # The conversation's reply token, for channels that address conversations (see Capabilities).
    reply_token: str | None = None
    # External ids of the conversation's earlier messages on this inbox, oldest first, and the one
    # this reply answers (the customer's latest): an email's References and In-Reply-To.
    thread_refs: list[str] = field(default_factory=list)
    in_reply_to: str | None = None


@dataclass(slots=True)
class SendResult:
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    can_send: bool = True
    max_message_chars: int | None = None
    # How long after the customer's last message on this channel a free-form reply is allowed
    # (WhatsApp: 24 hours); None for no limit.
    reply_window: timedelta | None = None
    # Which of the contact's identities can address a reply on this channel (empty: the channel
    # addresses the contact itself, as the API channel does). A ``handle`` must be scoped to the
    # inbox; email and phone are account-wide.
    recipient_kinds: tuple[IdentityKind, ...] = (IdentityKind.handle,)
    # The channel addresses a conversation with its reply token (support+<token>@…): the delivery
    # job creates the token before the first reply goes out.
    uses_reply_token: bool = False

    def refusal(self, *, chars: int, last_incoming_at: datetime | None, now: datetime) -> Refusal | None:
        """Why an agent's reply of ``chars`` characters cannot go out on this channel now, or None."""
        if not self.can_send:
            return Refusal("cannot_send", "this channel cannot send messages; reply on another channel")
        if self.max_message_chars is not None and chars > self.max_message_chars:
            return Refusal("too_long", f"the message has {chars} characters; this channel allows at most "
                                       f"{self.max_message_chars}")
        if self.reply_window is not None:
            hours = f"{self.reply_window.total_seconds() / 3600:g}"
            if last_incoming_at is None:
                return Refusal("window", f"the customer has not written on this channel, which only allows replies "
                                         f"within {hours} hours of the customer's last message")
            if now - last_incoming_at > self.reply_window:
                return Refusal("window", f"the customer's last message on this channel is more than {hours} hours "
                                         "old, and the channel only allows replies within that window; reply on "
                                         "another channel")
        return None


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str  # cannot_send, too_long, window
    detail: str


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
    # This inbox's public webhook address (where vendors send deliveries and status reports).
    webhook_url: str = ""


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
        raise NotFound(f"{self.kind} inboxes do not accept webhooks")

    async def verify(self, request: InboundRequest) -> None:
        """Raise ``InvalidSignature`` unless the request provably comes from the vendor (fail closed)."""
        raise NotFound(f"{self.kind} inboxes do not accept webhooks")

    def parse(self, request: InboundRequest) -> list[InboundMessage]:
        """The customer messages in a delivery: none (a status callback), one, or several."""
        raise NotFound(f"{self.kind} inboxes do not accept webhooks")

    def statuses(self, request: InboundRequest) -> list[StatusUpdate]:
        """Reports on messages we sent that a delivery carries (delivered, read, failed)."""
        return []

    def handshake(self, request: InboundRequest) -> WebhookReply:
        """Answer a GET on the webhook address (a vendor's subscription check, e.g. Meta's
        ``hub.challenge``). Verify it as strictly as a delivery."""
        raise NotFound(f"{self.kind} inboxes do not answer GET requests")

    def acknowledge(self, request: InboundRequest, results: list[IngestResult]) -> WebhookReply | None:
        """The answer once a delivery is stored; None for our JSON. Vendors that steer the
        conversation with the answer (TwiML for an IVR) build it here."""
        return None

    @abstractmethod
    async def send(self, message: OutboundMessage) -> SendResult:
        """Deliver an agent's reply; raise ``RetryLater`` or ``PermanentFailure`` on failure."""
