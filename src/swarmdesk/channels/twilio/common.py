"""What Twilio's channels share: the inbox config, webhook signatures (``X-Twilio-Signature``),
form-encoded deliveries, TwiML answers and the REST API client.

Twilio signs every webhook with the account's Auth Token: HMAC-SHA1 over the full URL it called
followed by each POST parameter's name and value, sorted by name, base64-encoded. We compute it
ourselves (the ``twilio`` SDK is a test dependency only, to check that we agree with it) and fail
closed: no signature, another algorithm, another URL or another body is refused before anything
is parsed or stored.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import orjson
from pydantic import AnyHttpUrl, Field

from swarmdesk.channels.base import ChannelAdapter, ChannelConfig, InboundRequest, StatusUpdate, WebhookReply
from swarmdesk.contacts.identity import IdentityClaim, handle_scope, normalize_phone
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.core.errors import BadRequest, Forbidden, InvalidSignature
from swarmdesk.jobs.registry import PermanentFailure, RetryLater
from swarmdesk.webhooks.http import Answer, OutboundBlockedError, OutboundHttp, retry_after_seconds

TWILIO_API_BASE_URL = "https://api.twilio.com"
ACCOUNT_SID = r"^AC[0-9a-fA-F]{32}$"
MESSAGING_SERVICE_SID = r"^MG[0-9a-fA-F]{32}$"
SIGNATURE_HEADER = "x-twilio-signature"
# Present when a webhook is signed with a SharedKey instead of the Auth Token.
SIGNATURE_SETTINGS_HEADER = "x-twilio-webhooks-signature-settings"
MAX_FORM_FIELDS = 300  # Twilio's richest webhooks (WhatsApp with ten media) have well under 100
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


class TwilioConfig(ChannelConfig):
    account_sid: str = Field(pattern=ACCOUNT_SID, description="Account SID (AC…), Twilio Console → Account Info")
    auth_token: str = Field(min_length=16, max_length=128, json_schema_extra={"secret": True},
                            description="Auth Token: Twilio signs its webhooks with it, and our API calls use it")
    api_base_url: AnyHttpUrl = Field(default=AnyHttpUrl(TWILIO_API_BASE_URL),
                                     description="Twilio's REST API (change only for a regional edge or a test double)")

    @property
    def api_base(self) -> str:
        return str(self.api_base_url).rstrip("/")


# --- deliveries -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TwilioForm:
    """A form-encoded Twilio delivery: every (name, value) pair, and the first value by name."""

    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, body: bytes) -> TwilioForm:
        """Parsed once per delivery: verify, delivery_id and parse each ask for it (cached by body;
        only small bodies, so unverified large posts cannot fill memory)."""
        return _parse_form(body) if len(body) <= 16 * 1024 else cls._parse(body)

    @classmethod
    def _parse(cls, body: bytes) -> TwilioForm:
        try:
            text = body.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
        except UnicodeDecodeError:
            raise BadRequest("the body is not UTF-8 form data") from None
        except ValueError:
            raise BadRequest(f"the form has more than {MAX_FORM_FIELDS} fields") from None
        return cls(tuple(pairs))

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.pairs:
            if key == name:
                return value
        return default

    def __contains__(self, name: str) -> bool:
        return any(key == name for key, _ in self.pairs)

    def int(self, name: str) -> int | None:
        value = self.get(name).strip()
        return int(value) if value.isascii() and value.isdigit() else None


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's request signature: HMAC-SHA1 of the URL and the sorted parameters, base64."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    payload = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def _url_variants(url: str) -> list[str]:
    """The URL without and with its port: Twilio signs one or the other (as its SDK allows)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = parts.netloc[: len(parts.netloc) - len(host)]
    bare = host
    if parts.port is not None:
        bare = host[: host.rfind(":")]
    default_port = 443 if parts.scheme == "https" else 80
    with_port = host if parts.port is not None else f"{host}:{default_port}"
    return list(dict.fromkeys(urlunsplit(parts._replace(netloc=userinfo + netloc)) for netloc in (bare, with_port)))


def verify_signature(auth_token: str, request: InboundRequest) -> TwilioForm:
    """The delivery's form, once its ``X-Twilio-Signature`` proves Twilio sent it to this URL."""
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        raise InvalidSignature("the X-Twilio-Signature header is required")
    if request.headers.get(SIGNATURE_SETTINGS_HEADER):
        raise InvalidSignature("this webhook is signed with a SharedKey; Swarmdesk verifies Auth Token signatures "
                               "(HMAC-SHA1) only")
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidSignature("Twilio webhooks must be application/x-www-form-urlencoded POSTs")
    if not request.url:
        raise InvalidSignature("the request URL is unknown, so the signature cannot be checked")
    try:
        form = TwilioForm.parse(request.body)
    except BadRequest as exc:
        raise InvalidSignature(f"the body cannot be verified: {exc.detail}") from None
    given = signature.strip().encode()
    if not any(hmac.compare_digest(twilio_signature(auth_token, url, form.pairs).encode(), given)
               for url in _url_variants(request.url)):
        raise InvalidSignature("X-Twilio-Signature does not match this URL and body for this inbox's Auth Token")
    return form


def delivery_id(request: InboundRequest, form: TwilioForm) -> str:
    """Twilio has no delivery id: a retry repeats the same URL and body, so their digest is one.
    Idempotency per message rests on the message's own id (MessageSid, CallSid and event)."""
    sid = form.get("MessageSid") or form.get("CallSid") or "twilio"
    digest = hashlib.sha256(request.url.encode() + b"\n" + request.body).hexdigest()[:32]
    return f"{sid[:64]}:{digest}"


# Twilio's placeholders for a withheld caller id (the words spelled on a keypad).
_WITHHELD = {"anonymous", "restricted", "unknown", "blocked", "private", "unavailable", "+266696687",
             "+7378742833", "+2562533", "+8656696", "+86282452253"}


def sender_claims(address: str, inbox_id: int, *, call_sid: str = "") -> list[IdentityClaim]:
    """A phone number Twilio vouches for becomes a verified account-wide ``phone`` identity, so
    the customer is one person on SMS, WhatsApp, calls and email. Anything else (a short code, a
    withheld caller id) is a handle on this inbox; a withheld caller id is one per call."""
    address = address.strip()
    if not address:
        raise BadRequest("From is required")
    bare = address.removeprefix("whatsapp:").removeprefix("sms:").strip()
    if bare.lower() in _WITHHELD:
        return [IdentityClaim(IdentityKind.handle, f"withheld:{call_sid or address}", handle_scope(inbox_id),
                              verified=True)]
    try:
        return [IdentityClaim(IdentityKind.phone, normalize_phone(bare), verified=True)]
    except ValueError:
        return [IdentityClaim(IdentityKind.handle, address[:200], handle_scope(inbox_id), verified=True)]


# --- delivery reports -----------------------------------------------------------------------------

_STATUS = {"accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
           "delivered": "delivered", "read": "read", "failed": "failed", "undelivered": "failed",
           "canceled": "failed"}
# The errors an agent most often meets, in words; others are named by code.
_ERRORS = {
    "21211": "the number is not a valid phone number",
    "21408": "this region is not enabled for the Twilio account",
    "21610": "the customer has opted out (replied STOP)",
    "21614": "the number is not a mobile number",
    "30003": "the handset is unreachable",
    "30004": "the message was blocked",
    "30005": "the number is unknown or no longer exists",
    "30006": "the number is a landline or unreachable carrier",
    "30007": "the carrier filtered the message",
    "30008": "unknown error",
    "63016": "outside WhatsApp's 24-hour window: only an approved template may be sent",
    "63024": "the recipient is not a valid WhatsApp user",
}


def status_update(form: TwilioForm) -> list[StatusUpdate]:
    """A message status callback as a report on the message we sent (matched by MessageSid)."""
    sid, status = form.get("MessageSid"), _STATUS.get(form.get("MessageStatus").lower())
    if not sid or status is None:
        return []
    error = None
    if status == "failed":
        code = form.get("ErrorCode")
        error = (f"Twilio error {code}: {_ERRORS.get(code, 'see twilio.com/docs/api/errors/' + code)}" if code
                 else f"Twilio reports the message {form.get('MessageStatus').lower()}")
    return [StatusUpdate(external_id=sid, status=status, error=error)]


def is_status_callback(form: TwilioForm) -> bool:
    return form.get("MessageStatus").lower() not in ("", "received", "receiving")


# --- TwiML ----------------------------------------------------------------------------------------

def twiml(response: ET.Element) -> WebhookReply:
    """A TwiML document. Built as a tree, so no configured or caller-supplied text can become markup."""
    body = _XML_DECLARATION + ET.tostring(response, encoding="unicode", short_empty_elements=False)
    return WebhookReply(body=body.encode(), media_type="text/xml")


def empty_twiml() -> WebhookReply:
    """"Nothing to do": the fastest answer Twilio accepts for a message or a status callback."""
    return WebhookReply(body=EMPTY_TWIML, media_type="text/xml")


# --- REST API -------------------------------------------------------------------------------------

def _json(answer: Answer) -> dict[str, Any]:
    try:
        value = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


async def post_form(http: OutboundHttp, url: str, form: dict[str, str], *, username: str, password: str,
                    allowlist: frozenset[str]) -> Answer:
    """POST a form with HTTP basic auth through the SSRF-guarded client, keeping the answer's
    body: Twilio puts the message SID and its errors there. Raises ``httpx.HTTPError``
    (``OutboundBlockedError`` for a refused destination)."""
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
    return await http.exchange("POST", url, content=urlencode(form).encode(), allowlist=allowlist, headers={
        "content-type": "application/x-www-form-urlencoded", "accept": "application/json",
        "authorization": f"Basic {credentials}"})


def api_failure(answer: Answer) -> Exception:
    """Throttling and Twilio's own trouble are retried (Retry-After honoured); any other refusal
    is final, with Twilio's explanation for the agent."""
    error = _json(answer)
    code = error.get("code")
    message = str(error.get("message") or answer.body[:200].decode("utf-8", "replace") or "no details")
    text = f"Twilio answered {answer.status_code}" + (f" (error {code})" if code is not None else "") + f": {message}"
    if answer.status_code == 429 or answer.status_code >= 500:
        return RetryLater(text, retry_after=retry_after_seconds(answer.headers.get("retry-after")))
    return PermanentFailure(text)


async def create_message(adapter: ChannelAdapter, config: TwilioConfig, form: dict[str, str]) -> str | None:
    """Create a Message resource; its SID, or ``RetryLater`` / ``PermanentFailure``."""
    url = f"{config.api_base}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
    try:
        answer = await post_form(adapter.context.http, url, form, username=config.account_sid,
                                 password=config.auth_token, allowlist=adapter.context.outbound_allowlist)
    except OutboundBlockedError as exc:
        raise PermanentFailure(f"Twilio's API address is not allowed: {exc}") from exc
    except httpx.HTTPError as exc:
        raise RetryLater(f"Twilio could not be reached: {type(exc).__name__}: {exc}") from exc
    if not 200 <= answer.status_code < 300:
        raise api_failure(answer)
    sid = _json(answer).get("sid")
    return sid if isinstance(sid, str) and sid else None


# --- the adapters' common part --------------------------------------------------------------------

_SPLIT_AT = re.compile(r"\s")


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut at whitespace where possible."""
    parts: list[str] = []
    while len(text) > limit:
        cut = max((m.start() for m in _SPLIT_AT.finditer(text, 0, limit + 1)), default=0)
        cut = cut if cut > limit // 2 else limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text or not parts:
        parts.append(text)
    return parts


class TwilioChannel(ChannelAdapter):
    """Signature checks and delivery ids for every Twilio inbox."""

    config: TwilioConfig

    def form(self, request: InboundRequest) -> TwilioForm:
        return TwilioForm.parse(request.body)

    def delivery_id(self, request: InboundRequest) -> str:
        return delivery_id(request, self.form(request))

    async def verify(self, request: InboundRequest) -> None:
        form = verify_signature(self.config.auth_token, request)
        account = form.get("AccountSid")
        if account != self.config.account_sid:
            raise Forbidden("the delivery's AccountSid is not this inbox's Twilio account")

    def handshake(self, request: InboundRequest) -> WebhookReply:
        raise BadRequest("Twilio inboxes take POST requests: set the webhook's method to HTTP POST in Twilio")


@functools.lru_cache(maxsize=256)
def _parse_form(body: bytes) -> TwilioForm:
    return TwilioForm._parse(body)
