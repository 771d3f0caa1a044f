"""The email channel: mail arrives by IMAP polling, LMTP/SMTP delivery or raw-MIME upload (see
``ingest``), replies leave by SMTP with the threading headers a mail client needs."""

from __future__ import annotations

import ssl
from typing import Literal

import aiosmtplib
import httpx
from pydantic import Field, field_validator

from swarmdesk.channels.base import Capabilities, ChannelAdapter, ChannelConfig, OutboundMessage, SendResult
from swarmdesk.channels.email.compose import HeaderInjection, build_reply, reply_token_address
from swarmdesk.channels.registry import channels
from swarmdesk.contacts.identity import normalize_email
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.jobs.registry import PermanentFailure, RetryLater
from swarmdesk.webhooks.http import OutboundBlockedError, check_destination

# A 25 MB attachment is about 34 MB once base64-encoded in a mail.
MAX_MAIL_BYTES = 40 * 1024 * 1024


class ImapSettings(ChannelConfig):
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=993, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=500, json_schema_extra={"secret": True})
    folder: str = Field(default="INBOX", min_length=1, max_length=200)
    # After a mail is stored: leave it, mark it \\Seen, or move it to this folder. Never before.
    after_store: Literal["keep", "mark_seen", "move"] = "keep"
    move_to: str | None = Field(default=None, max_length=200)
    poll_seconds: float = Field(default=30, ge=1, le=3600)
    batch_size: int = Field(default=200, ge=1, le=2000)


class SmtpSettings(ChannelConfig):
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "starttls"
    username: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=500, json_schema_extra={"secret": True})
    timeout_seconds: float = Field(default=30, ge=1, le=300)


class EmailChannelConfig(ChannelConfig):
    address: str = Field(max_length=320, description="the support address customers write to, e.g. support@example.com")
    display_name: str = Field(default="", max_length=200, description="shown as the sender of replies")
    imap: ImapSettings | None = None
    smtp: SmtpSettings | None = None
    # Authentication-Results headers are only believed from these receiving servers (anyone can add one).
    trusted_authserv_ids: list[str] = Field(default_factory=list, max_length=20)
    # Without a trusted Authentication-Results header, is the From address taken as verified? Only
    # for a mail server that refuses unauthenticated mail before it reaches us.
    trust_unauthenticated_from: bool = False
    max_message_bytes: int = Field(default=MAX_MAIL_BYTES, ge=1024, le=50 * 1024 * 1024)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        address = normalize_email(value)
        if "+" in address.split("@", 1)[0]:
            raise ValueError("the support address cannot contain '+' (it carries each conversation's reply token)")
        return address

    @property
    def local_part(self) -> str:
        return self.address.split("@", 1)[0]

    @property
    def domain(self) -> str:
        return self.address.split("@", 1)[1]


@channels.register
class EmailChannel(ChannelAdapter):
    kind = "email"
    title = "Email"
    config_model = EmailChannelConfig
    capabilities = Capabilities(can_send=True, max_message_chars=200_000, recipient_kinds=(IdentityKind.email,),
                                uses_reply_token=True)
    config: EmailChannelConfig

    async def send(self, message: OutboundMessage) -> SendResult:
        smtp = self.config.smtp
        if smtp is None:
            raise PermanentFailure("this email inbox has no SMTP settings to send replies with")
        to_addr = message.recipient.handles.get("email")
        if not to_addr:
            raise PermanentFailure("the customer has no email address")
        reply_to = (reply_token_address(self.config.local_part, self.config.domain, message.reply_token)
                    if message.reply_token else None)
        try:
            raw, message_id = build_reply(
                from_addr=self.config.address, from_name=message.sender_name or self.config.display_name,
                to_addr=to_addr, to_name=message.recipient.name, subject=message.subject or "Your request",
                text=message.content, html=message.content_html, message_id_domain=self.config.domain,
                in_reply_to=message.in_reply_to if _is_message_id(message.in_reply_to) else None,
                references=[r for r in message.thread_refs if _is_message_id(r)], reply_to=reply_to,
                attachments=[(a.filename, a.content_type, a.data) for a in message.attachments],
                extra_headers={"X-Swarmdesk-Message": message.idempotency_key})
        except (HeaderInjection, ValueError) as exc:
            raise PermanentFailure(f"the reply cannot be built as a mail: {exc}") from exc
        try:
            await check_destination(smtp.host, smtp.port, self.context.outbound_allowlist)
        except OutboundBlockedError as exc:
            raise PermanentFailure(str(exc)) from exc
        except httpx.HTTPError as exc:
            raise RetryLater(f"could not reach the mail server: {exc}") from exc
        try:
            await aiosmtplib.send(
                raw, sender=self.config.address, recipients=[to_addr], hostname=smtp.host, port=smtp.port,
                username=smtp.username, password=smtp.password, use_tls=smtp.security == "ssl",
                start_tls=True if smtp.security == "starttls" else False if smtp.security == "none" else None,
                timeout=smtp.timeout_seconds, tls_context=ssl.create_default_context())
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [e.code for e in exc.recipients]
            if codes and all(400 <= c < 500 for c in codes):
                raise RetryLater(f"the mail server deferred the recipient: {exc.recipients[0].message}") from exc
            raise PermanentFailure(f"the mail server refused the recipient {to_addr}: "
                                   f"{exc.recipients[0].message if exc.recipients else exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise RetryLater(f"the mail server deferred the reply: {exc.code} {exc.message}") from exc
            raise PermanentFailure(f"the mail server refused the reply: {exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise RetryLater(f"could not reach the mail server: {exc}") from exc
        return SendResult(external_id=message_id)


def _is_message_id(value: str | None) -> bool:
    """Ours and the customers' Message-IDs; mails stored without one are keyed "sha256:…"."""
    return bool(value) and value.startswith("<") and value.endswith(">") and "@" in value  # type: ignore[union-attr]
