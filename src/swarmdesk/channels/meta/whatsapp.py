"""WhatsApp Business Cloud API: Meta POSTs ``whatsapp_business_account`` deliveries (customer
messages and reports on ours) to the inbox's webhook; agent replies go to the Graph API's
``/{phone_number_id}/messages``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ConfigDict, Field

from swarmdesk.channels.base import (
    Capabilities,
    InboundMessage,
    InboundRequest,
    OutboundMessage,
    SendResult,
    StatusUpdate,
    epoch_to_datetime,
)
from swarmdesk.channels.meta.common import (
    MetaChannel,
    MetaConfig,
    VendorPayload,
    clean,
    first_of_each,
    load_payload,
)
from swarmdesk.channels.registry import channels
from swarmdesk.contacts.identity import IdentityClaim, handle_scope, normalize_phone
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.core.errors import BadRequest
from swarmdesk.jobs.registry import PermanentFailure

_STATUSES = frozenset({"sent", "delivered", "read", "failed"})
_MEDIA = {"image": "Image", "video": "Video", "sticker": "Sticker", "audio": "Audio", "document": "Document"}


class WhatsAppConfig(MetaConfig):
    phone_number_id: str = Field(pattern=r"^\d{1,30}$",
                                 description="the business number's Phone number ID (WhatsApp Manager > API "
                                             "setup), not the number itself")


class _Profile(VendorPayload):
    name: str = ""


class _Contact(VendorPayload):
    wa_id: str
    profile: _Profile = _Profile()


class _Metadata(VendorPayload):
    display_phone_number: str = ""
    phone_number_id: str


class _Message(VendorPayload):
    # The type-specific object sits under the type's name ("text", "image", ...).
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    sender: str = Field(alias="from", min_length=1, max_length=64)
    id: str = Field(min_length=1, max_length=300)
    timestamp: int | None = None
    type: str = "unknown"
    context: dict[str, Any] | None = None

    def body(self) -> Any:
        return (self.model_extra or {}).get(self.type)


class _Status(VendorPayload):
    id: str = Field(min_length=1, max_length=300)
    status: str
    recipient_id: str = ""
    errors: list[dict[str, Any]] = []


class _Value(VendorPayload):
    messaging_product: str = "whatsapp"
    metadata: _Metadata
    contacts: list[_Contact] = []
    messages: list[_Message] = []
    statuses: list[_Status] = []


class _Change(VendorPayload):
    field: str = ""
    value: dict[str, Any] = {}


class _Entry(VendorPayload):
    id: str = ""
    changes: list[_Change] = []


class _Envelope(VendorPayload):
    object: str
    entry: list[_Entry] = []


def _media(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("id", "mime_type", "sha256", "filename", "animated", "voice") if k in body}


def _contact_cards(cards: Any) -> str:
    parts = []
    for card in cards if isinstance(cards, list) else []:
        if not isinstance(card, dict):
            continue
        name = (card.get("name") or {}).get("formatted_name", "") if isinstance(card.get("name"), dict) else ""
        phones = [p.get("phone", "") for p in card.get("phones") or [] if isinstance(p, dict)]
        parts.append(" ".join(clean(str(x)) for x in (name, *phones) if x))
    return "; ".join(p for p in parts if p)


def _describe(kind: str, raw: Any) -> tuple[str, dict[str, Any]]:
    """Readable content for an agent, and what to keep in the message's meta."""
    body: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if kind == "text":
        return clean(body.get("body")), {}
    if kind in _MEDIA:
        label = "Voice message" if kind == "audio" and body.get("voice") else _MEDIA[kind]
        if body.get("filename"):
            label += f": {clean(str(body['filename']))}"
        caption = clean(body.get("caption"))
        return f"[{label}]" + (f" {caption}" if caption else ""), {"media": _media(body)}
    if kind == "location":
        place = ", ".join(clean(str(body[k])) for k in ("name", "address") if body.get(k))
        where = f"{body.get('latitude')}, {body.get('longitude')}"
        return f"[Location] {place} ({where})" if place else f"[Location] {where}", {"location": body}
    if kind == "interactive":
        reply = body.get(str(body.get("type"))) or {}
        reply = reply if isinstance(reply, dict) else {}
        title = clean(reply.get("title") or reply.get("body") or "")
        return title or "[Interactive reply]", {"reply": {"type": body.get("type"), "id": reply.get("id"),
                                                           "title": reply.get("title")}}
    if kind == "button":  # a quick-reply button of a template
        return clean(body.get("text")), {"reply": {"type": "button", "payload": body.get("payload")}}
    if kind == "reaction":
        emoji = clean(body.get("emoji"))
        return (f"[Reaction] {emoji}" if emoji else "[Reaction removed]"), {"reaction": body}
    if kind == "contacts":  # cards the customer shared: someone's number, not a claim about the sender
        cards = _contact_cards(raw)
        return "[Contact card]" + (f" {cards}" if cards else ""), {}
    if kind == "system":
        return clean(body.get("body")) or "[System message]", {"system": body}
    return f"[Unsupported WhatsApp message type: {clean(kind)}]", {}


def _error_text(errors: list[dict[str, Any]]) -> str | None:
    if not errors:
        return None
    first = errors[0]
    data = first.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    title = first.get("title") or first.get("message") or "failed"
    return f"{first.get('code', '?')} {title}" + (f": {details}" if details and details != title else "")


def _phone_claim(wa_id: str) -> IdentityClaim | None:
    try:
        return IdentityClaim(IdentityKind.phone, normalize_phone("+" + wa_id), verified=True)
    except ValueError:
        return None


@channels.register
class WhatsAppChannel(MetaChannel):
    kind = "whatsapp"
    title = "WhatsApp (Cloud API)"
    product = "WhatsApp Cloud API"
    config_model = WhatsAppConfig
    capabilities = Capabilities(can_send=True, max_message_chars=4096, reply_window=timedelta(hours=24),
                                recipient_kinds=(IdentityKind.phone, IdentityKind.handle))
    config: WhatsAppConfig

    def _values(self, request: InboundRequest) -> list[_Value]:
        """The ``messages`` changes for this inbox's number (one app may serve several)."""
        envelope = load_payload(_Envelope, request.body)
        if envelope.object != "whatsapp_business_account":
            raise BadRequest(f"expected a whatsapp_business_account delivery, got {envelope.object!r}")
        values = []
        for entry in envelope.entry:
            for change in entry.changes:
                if change.field != "messages":
                    continue
                value = load_payload(_Value, change.value)
                if value.metadata.phone_number_id == self.config.phone_number_id:
                    values.append(value)
        return values

    def parse(self, request: InboundRequest) -> list[InboundMessage]:
        scope = handle_scope(self.context.inbox_id)
        parsed: list[InboundMessage] = []
        for value in self._values(request):
            names = {c.wa_id: c.profile.name for c in value.contacts}
            for m in value.messages:
                content, meta = _describe(m.type, m.body())
                meta = {"type": m.type, **meta}
                if m.context and m.context.get("id"):
                    meta["reply_to"] = m.context["id"]
                # wa_id is the number WhatsApp verified when the customer registered: it joins the
                # same person on other channels. The handle (listed first, preferred) addresses replies.
                claims = [IdentityClaim(IdentityKind.handle, m.sender, scope, verified=True)]
                phone = _phone_claim(m.sender)
                if phone is not None:
                    claims.append(phone)
                parsed.append(InboundMessage(
                    external_id=m.id, content=content, sender_name=clean(names.get(m.sender, ""))[:200],
                    claims=claims, meta=meta,
                    sent_at=epoch_to_datetime(m.timestamp)))
        return first_of_each(parsed)

    def statuses(self, request: InboundRequest) -> list[StatusUpdate]:
        return [StatusUpdate(external_id=s.id, status=s.status,
                             error=_error_text(s.errors) if s.status == "failed" else None)
                for value in self._values(request) for s in value.statuses if s.status in _STATUSES]

    async def send(self, message: OutboundMessage) -> SendResult:
        handles = message.recipient.handles
        to = handles.get(str(IdentityKind.handle)) or handles.get(str(IdentityKind.phone), "").lstrip("+")
        if not to:
            raise PermanentFailure("the customer has no WhatsApp number on this inbox to reply to")
        if message.attachments:
            raise PermanentFailure("this WhatsApp inbox sends text only; attachments are not supported yet")
        if not message.content:
            raise PermanentFailure("WhatsApp cannot send an empty message")
        answer = await self.graph_post(f"{self.config.phone_number_id}/messages", {
            "messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": message.content}})
        sent = answer.get("messages")
        external_id = sent[0].get("id") if isinstance(sent, list) and sent and isinstance(sent[0], dict) else None
        return SendResult(external_id=str(external_id) if external_id else None)
