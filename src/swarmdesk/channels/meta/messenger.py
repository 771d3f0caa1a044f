"""Facebook Messenger (Messenger Platform): Meta POSTs ``page`` deliveries to the inbox's webhook;
agent replies go to the Graph API's ``/me/messages`` with the page's access token."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

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
from swarmdesk.contacts.identity import IdentityClaim, handle_scope
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.core.errors import BadRequest
from swarmdesk.jobs.registry import PermanentFailure

_ATTACHMENT_LABELS = {"image": "Image", "video": "Video", "audio": "Audio", "file": "File", "location": "Location",
                      "fallback": "Link", "template": "Shared content"}


class MessengerConfig(MetaConfig):
    page_id: str = Field(pattern=r"^\d{1,30}$", description="the Facebook Page's id; deliveries for other pages "
                                                            "of the same app are ignored")


class _Party(VendorPayload):
    id: str = Field(default="", max_length=64)  # absent for some events (an opt-in's user_ref)


class _Attachment(VendorPayload):
    type: str = "file"
    payload: dict[str, Any] | None = None


class _Message(VendorPayload):
    mid: str = Field(min_length=1, max_length=300)
    text: str = ""
    attachments: list[_Attachment] = []
    is_echo: bool = False
    quick_reply: dict[str, Any] | None = None
    reply_to: dict[str, Any] | None = None


class _Postback(VendorPayload):
    mid: str | None = Field(default=None, max_length=300)
    title: str = ""
    payload: str = ""


class _Delivery(VendorPayload):
    mids: list[str] = []
    watermark: int | None = None


class _Read(VendorPayload):
    watermark: int | None = None
    mid: str | None = None


class _Event(VendorPayload):
    sender: _Party = _Party()
    recipient: _Party = _Party()
    timestamp: int | None = None
    message: _Message | None = None
    postback: _Postback | None = None
    delivery: _Delivery | None = None
    read: _Read | None = None


class _Entry(VendorPayload):
    id: str = ""
    time: int | None = None
    messaging: list[_Event] = []


class _Envelope(VendorPayload):
    object: str
    entry: list[_Entry] = []


def _attachment_line(a: _Attachment) -> tuple[str, dict[str, Any]]:
    payload = a.payload or {}
    label = "Sticker" if payload.get("sticker_id") else _ATTACHMENT_LABELS.get(a.type, a.type.title() or "Attachment")
    url = payload.get("url")
    coordinates = payload.get("coordinates")
    if isinstance(coordinates, dict):
        line = f"[{label}] {coordinates.get('lat')}, {coordinates.get('long')}"
    else:
        title = clean(str(payload.get("title") or ""))
        line = f"[{label}]" + (f" {title}" if title else "") + (f" {clean(str(url))}" if url else "")
    kept = {"type": a.type, **({"url": url} if url else {}),
            **({"sticker_id": payload["sticker_id"]} if payload.get("sticker_id") else {})}
    return line, kept


def _sent_at(event: _Event) -> datetime | None:
    return epoch_to_datetime(event.timestamp / 1000) if event.timestamp else None


@channels.register
class MessengerChannel(MetaChannel):
    kind = "messenger"
    title = "Facebook Messenger"
    product = "Messenger Platform"
    config_model = MessengerConfig
    # The standard messaging window; later replies need a message tag Meta must approve of.
    capabilities = Capabilities(can_send=True, max_message_chars=2000, reply_window=timedelta(hours=24),
                                recipient_kinds=(IdentityKind.handle,))
    config: MessengerConfig

    def _events(self, request: InboundRequest) -> list[_Event]:
        envelope = load_payload(_Envelope, request.body)
        if envelope.object != "page":
            raise BadRequest(f"expected a page delivery, got {envelope.object!r}")
        return [event for entry in envelope.entry if entry.id == self.config.page_id for event in entry.messaging]

    def parse(self, request: InboundRequest) -> list[InboundMessage]:
        scope = handle_scope(self.context.inbox_id)
        parsed: list[InboundMessage] = []
        for event in self._events(request):
            if not event.sender.id or event.sender.id == self.config.page_id:
                continue  # no customer to speak of, or the page's own message (an echo)
            # PSIDs are page-scoped: a handle of this inbox, never joined to other channels.
            claims = [IdentityClaim(IdentityKind.handle, event.sender.id, scope, verified=True)]
            if event.message is not None and not event.message.is_echo:
                m = event.message
                lines = [clean(m.text)] if m.text else []
                kept = []
                for attachment in m.attachments:
                    line, info = _attachment_line(attachment)
                    lines.append(line)
                    kept.append(info)
                meta: dict[str, Any] = {"type": "message"}
                if kept:
                    meta["attachments"] = kept
                if m.quick_reply:
                    meta["quick_reply_payload"] = m.quick_reply.get("payload")
                if m.reply_to and m.reply_to.get("mid"):
                    meta["reply_to"] = m.reply_to["mid"]
                parsed.append(InboundMessage(external_id=m.mid, content="\n".join(lines) or "[Empty message]",
                                             claims=claims, meta=meta, sent_at=_sent_at(event)))
            elif event.postback is not None:  # the customer tapped a button
                p = event.postback
                parsed.append(InboundMessage(external_id=p.mid, content=clean(p.title) or "[Button]", claims=claims,
                                             meta={"type": "postback", "payload": clean(p.payload)},
                                             sent_at=_sent_at(event)))
        return first_of_each(parsed)

    def statuses(self, request: InboundRequest) -> list[StatusUpdate]:
        # Reports carry message ids only sometimes: ``delivery.mids`` "may not be present" and a
        # read carries a watermark (everything sent before it was read). Only ids can be matched.
        updates: list[StatusUpdate] = []
        for event in self._events(request):
            if event.delivery is not None:
                updates.extend(StatusUpdate(external_id=mid, status="delivered") for mid in event.delivery.mids)
            if event.read is not None and event.read.mid:
                updates.append(StatusUpdate(external_id=event.read.mid, status="read"))
        return updates

    async def send(self, message: OutboundMessage) -> SendResult:
        psid = message.recipient.handles.get(str(IdentityKind.handle))
        if not psid:
            raise PermanentFailure("the customer has no Messenger id on this page to reply to")
        if message.attachments:
            raise PermanentFailure("this Messenger inbox sends text only; attachments are not supported yet")
        if not message.content:
            raise PermanentFailure("Messenger cannot send an empty message")
        answer = await self.graph_post("me/messages", {
            "recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": {"text": message.content}})
        mid = answer.get("message_id")
        return SendResult(external_id=str(mid) if mid else None)
