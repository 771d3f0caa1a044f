"""Telegram Bot API: Telegram POSTs Update objects to the inbox's webhook (set with
``setWebhook``), proving itself with the ``X-Telegram-Bot-Api-Secret-Token`` header; agent replies
go to ``sendMessage``.

Only private chats with the bot are conversations: a group is many customers at once, and a reply
there would reach all of them. Updates from groups, supergroups and channels, from other bots, and
update kinds other than messages are acknowledged and ignored. In a private chat the chat id is the
user's id, so the customer's handle (their Telegram user id) is also where replies go.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import httpx
from pydantic import AnyHttpUrl, ConfigDict, Field

from swarmdesk.channels.base import (
    Capabilities,
    ChannelAdapter,
    ChannelConfig,
    InboundMessage,
    InboundRequest,
    OutboundMessage,
    SendResult,
    epoch_to_datetime,
)
from swarmdesk.channels.meta.common import (
    VendorAnswer,
    VendorPayload,
    clean,
    load_payload,
    post_json,
    transport_failure,
)
from swarmdesk.channels.registry import channels
from swarmdesk.contacts.identity import IdentityClaim, handle_scope
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.core.errors import InvalidSignature
from swarmdesk.jobs.registry import PermanentFailure, RetryLater
from swarmdesk.webhooks.http import retry_after_seconds

TELEGRAM_API_URL = "https://api.telegram.org"
SECRET_HEADER = "x-telegram-bot-api-secret-token"


def new_secret_token() -> str:
    return secrets.token_urlsafe(32)  # Telegram allows A-Z, a-z, 0-9, _ and -, 1-256 characters


class TelegramConfig(ChannelConfig):
    bot_token: str = Field(pattern=r"^\d{1,20}:[A-Za-z0-9_-]{20,100}$", json_schema_extra={"secret": True},
                           description="the token @BotFather gave the bot")
    secret_token: str = Field(default_factory=new_secret_token, pattern=r"^[A-Za-z0-9_-]{16,256}$",
                              json_schema_extra={"secret": True},
                              description="pass it as secret_token to setWebhook; Telegram sends it with every "
                                          "update (generated if omitted)")
    api_base_url: AnyHttpUrl = Field(default=AnyHttpUrl(TELEGRAM_API_URL),
                                     description="Bot API address (a local Bot API server, or a test double)")


class _User(VendorPayload):
    id: int
    is_bot: bool = False
    first_name: str = ""
    last_name: str = ""
    username: str | None = None
    language_code: str | None = None


class _Chat(VendorPayload):
    id: int
    type: str


class _Message(VendorPayload):
    # The content sits in one of many optional fields (text, photo, document, ...).
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    message_id: int
    sender: _User | None = Field(default=None, alias="from")
    chat: _Chat
    date: int
    edit_date: int | None = None
    text: str | None = None
    caption: str | None = None

    def field(self, name: str) -> Any:
        return (self.model_extra or {}).get(name)


class _Update(VendorPayload):
    update_id: int
    message: _Message | None = None
    edited_message: _Message | None = None


def _name(user: _User) -> str:
    return clean(" ".join(part for part in (user.first_name, user.last_name) if part))[:200]


def _describe(m: _Message) -> tuple[list[str], dict[str, Any]]:
    """Readable lines for what is not text, and what to keep in the message's meta."""
    lines: list[str] = []
    meta: dict[str, Any] = {}
    photo = m.field("photo")
    if isinstance(photo, list) and photo and isinstance(photo[-1], dict):  # sizes, the largest last
        lines.append("[Photo]")
        meta["media"] = {"type": "photo", "file_id": photo[-1].get("file_id")}
    for kind, label in (("document", "Document"), ("video", "Video"), ("audio", "Audio"), ("voice", "Voice message"),
                        ("animation", "Animation"), ("video_note", "Video message"), ("sticker", "Sticker")):
        value = m.field(kind)
        if isinstance(value, dict):
            detail = value.get("file_name") or value.get("title") or value.get("emoji")
            lines.append(f"[{label}" + (f": {clean(str(detail))}" if detail else "") + "]")
            meta["media"] = {"type": kind, "file_id": value.get("file_id"),
                             **({"mime_type": value["mime_type"]} if value.get("mime_type") else {})}
            break
    location = m.field("location")
    if isinstance(location, dict):
        lines.append(f"[Location] {location.get('latitude')}, {location.get('longitude')}")
        meta["location"] = location
    contact = m.field("contact")
    if isinstance(contact, dict):
        lines.append(f"[Contact] {clean(str(contact.get('first_name', '')))} {clean(str(contact.get('phone_number', '')))}"
                     .rstrip())
    return lines, meta


def _failure(answer: VendorAnswer) -> Exception:
    body = answer.json()
    description = str(body.get("description") or answer.body[:200].decode("utf-8", "replace") or "no details")
    text = f"Telegram answered {answer.status_code}: {clean(description)}"
    if answer.status_code == 429 or answer.status_code >= 500:
        parameters = body.get("parameters")
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        if not isinstance(retry_after, (int, float)):
            retry_after = retry_after_seconds(answer.headers.get("retry-after"))
        return RetryLater(text, retry_after=float(retry_after) if retry_after is not None else None)
    return PermanentFailure(text)


@channels.register
class TelegramChannel(ChannelAdapter):
    kind = "telegram"
    title = "Telegram"
    config_model = TelegramConfig
    capabilities = Capabilities(can_send=True, max_message_chars=4096, reply_window=None,
                                recipient_kinds=(IdentityKind.handle,))
    config: TelegramConfig

    def delivery_id(self, request: InboundRequest) -> str:
        # update_id identifies a delivery and Telegram retries it unchanged, but after a quiet week
        # Telegram picks the next one at random, so it may repeat an old one: the body's hash keeps
        # such an update from being refused as a replay.
        update = load_payload(_Update, request.body)
        return f"{update.update_id}:{hashlib.sha256(request.body).hexdigest()[:16]}"

    async def verify(self, request: InboundRequest) -> None:
        given = request.headers.get(SECRET_HEADER)
        if not given:
            raise InvalidSignature("the X-Telegram-Bot-Api-Secret-Token header is required")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.config.secret_token.encode()):
            raise InvalidSignature("X-Telegram-Bot-Api-Secret-Token does not match this inbox's secret token")

    def parse(self, request: InboundRequest) -> list[InboundMessage]:
        update = load_payload(_Update, request.body)
        m = update.message or update.edited_message
        if m is None or m.chat.type != "private" or m.sender is None or m.sender.is_bot:
            return []
        lines, meta = _describe(m)
        text = clean(m.text if m.text is not None else m.caption)
        content = "\n".join(([text] if text else []) + lines) or "[Unsupported message]"
        meta["chat_id"] = m.chat.id
        if m.sender.username:
            meta["username"] = clean(m.sender.username)
        external_id = f"{m.chat.id}:{m.message_id}"
        if update.edited_message is not None:
            # Same message id as the original: a new message of its own, saying what it edits.
            meta["edit_of"] = external_id
            external_id = f"{external_id}:edit:{m.edit_date or update.update_id}"
            content = f"[Edited] {content}"
        claims = [IdentityClaim(IdentityKind.handle, str(m.sender.id), handle_scope(self.context.inbox_id),
                                verified=True)]
        return [InboundMessage(external_id=external_id, content=content, sender_name=_name(m.sender), claims=claims,
                               meta=meta, sent_at=epoch_to_datetime(m.edit_date or m.date))]

    async def send(self, message: OutboundMessage) -> SendResult:
        chat_id = message.recipient.handles.get(str(IdentityKind.handle))
        if not chat_id or not chat_id.lstrip("-").isdigit():
            raise PermanentFailure("the customer has no Telegram chat with this bot to reply to")
        if message.attachments:
            raise PermanentFailure("this Telegram inbox sends text only; attachments are not supported yet")
        if not message.content:
            raise PermanentFailure("Telegram cannot send an empty message")
        token = self.config.bot_token
        url = f"{str(self.config.api_base_url).rstrip('/')}/bot{token}/sendMessage"
        try:
            answer = await post_json(self.context.http, url, {"chat_id": int(chat_id), "text": message.content},
                                     headers={}, allowlist=self.context.outbound_allowlist)
        except httpx.HTTPError as exc:  # the URL holds the token: it never reaches the error text
            raise transport_failure("Telegram", exc, hide=token) from exc
        body = answer.json()
        if not 200 <= answer.status_code < 300 or body.get("ok") is not True:
            raise _failure(answer)
        result = body.get("result")
        if isinstance(result, dict) and isinstance(result.get("chat"), dict) and result.get("message_id") is not None:
            return SendResult(external_id=f"{result['chat'].get('id')}:{result['message_id']}")
        return SendResult(external_id=None)
