"""Twilio channels, what they share: our signature check against Twilio's own SDK, config
validation through the API, the capabilities the conversation layer enforces, and the helpers the
other Twilio test modules use (doc-shaped payloads, signed deliveries, a fake Twilio REST API)."""

from __future__ import annotations

import base64
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import orjson
import pytest
import uvicorn
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

import swarmdesk.channels.twilio.sms  # noqa: F401  (registers the adapters)
import swarmdesk.channels.twilio.voice  # noqa: F401
import swarmdesk.channels.twilio.whatsapp  # noqa: F401
from swarmdesk.channels.base import InboundRequest
from swarmdesk.channels.models import InboundReceipt
from swarmdesk.channels.twilio.common import twilio_signature, verify_signature
from swarmdesk.channels.twilio.sms import TwilioSmsChannel
from swarmdesk.channels.twilio.voice import PhoneChannel
from swarmdesk.channels.twilio.whatsapp import TwilioWhatsAppChannel
from swarmdesk.config import Settings
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations.models import Conversation, Message
from swarmdesk.core.errors import InvalidSignature
from tests.support import AccountCtx, Harness, serving

ACCOUNT_SID = "AC" + "3f8e2a9c" * 4
AUTH_TOKEN = "9d1c7b5e3a2f4d6c8b0a1e3f5d7c9b2a"
BASE_URL = "https://desk.example.com"  # the public address Twilio calls (and signs)
SMS_NUMBER = "+14155550100"
CUSTOMER = "+14155550123"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Behind a proxy: Twilio calls (and signs) the public URL, not the address the app listens on.
    # Retries never run inside the same drain unless the test moves the clock.
    return settings.model_copy(update={"base_url": BASE_URL, "job_backoff_base": 1.0, "job_backoff_max": 3600.0})


def sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


# --- payloads shaped as Twilio's docs show them -----------------------------------------------------

def sms_payload(body: str = "Hi, my order #1234 has not arrived", *, message_sid: str | None = None,
                sender: str = CUSTOMER, to: str = SMS_NUMBER, media: list[tuple[str, str]] = ()) -> dict[str, str]:
    message_sid = message_sid or sid("SM")
    payload = {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": message_sid, "NumMedia": str(len(media)),
        "ToCity": "SAN FRANCISCO", "FromZip": "94105", "SmsSid": message_sid, "FromState": "CA",
        "SmsStatus": "received", "FromCity": "SAN FRANCISCO", "Body": body, "FromCountry": "US", "To": to,
        "ToZip": "94105", "NumSegments": "1", "MessageSid": message_sid, "AccountSid": ACCOUNT_SID, "From": sender,
        "ApiVersion": "2010-04-01"}
    for i, (url, content_type) in enumerate(media):
        payload[f"MediaUrl{i}"] = url
        payload[f"MediaContentType{i}"] = content_type
    return payload


def whatsapp_payload(body: str = "Hello from WhatsApp", *, message_sid: str | None = None, phone: str = CUSTOMER,
                     name: str = "Ana Lima", to: str = SMS_NUMBER, **extra: str) -> dict[str, str]:
    message_sid = message_sid or sid("SM")
    return {"SmsMessageSid": message_sid, "NumMedia": "0", "ProfileName": name, "MessageType": "text",
            "SmsSid": message_sid, "WaId": phone.lstrip("+"), "SmsStatus": "received", "Body": body,
            "To": f"whatsapp:{to}", "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": message_sid,
            "AccountSid": ACCOUNT_SID, "From": f"whatsapp:{phone}", "ApiVersion": "2010-04-01", **extra}


def status_payload(message_sid: str, status: str, *, to: str = CUSTOMER, frm: str = SMS_NUMBER,
                   **extra: str) -> dict[str, str]:
    return {"SmsSid": message_sid, "SmsStatus": status, "MessageStatus": status, "To": to, "MessageSid": message_sid,
            "AccountSid": ACCOUNT_SID, "From": frm, "ApiVersion": "2010-04-01", **extra}


def call_payload(call_sid: str, status: str = "ringing", *, caller: str = CUSTOMER, to: str = SMS_NUMBER,
                 **extra: str) -> dict[str, str]:
    return {"Called": to, "ToState": "CA", "CallerCountry": "US", "Direction": "inbound", "CallerState": "CA",
            "ToZip": "94105", "CallSid": call_sid, "To": to, "CallerZip": "94105", "ToCountry": "US",
            "ApiVersion": "2010-04-01", "CalledZip": "94105", "CalledCity": "SAN FRANCISCO", "CallStatus": status,
            "From": caller, "AccountSid": ACCOUNT_SID, "CalledCountry": "US", "CallerCity": "SAN FRANCISCO",
            "ToCity": "SAN FRANCISCO", "FromCountry": "US", "Caller": caller, "FromCity": "SAN FRANCISCO",
            "CalledState": "CA", "FromZip": "94105", "FromState": "CA", **extra}


# --- signed deliveries ----------------------------------------------------------------------------

def twilio_headers(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> dict[str, str]:
    """What Twilio sends, the signature computed by Twilio's own SDK."""
    return {"content-type": FORM, "x-twilio-signature": RequestValidator(token).compute_signature(url, params)}


class Webhook:
    """Twilio, posting to one inbox's webhook over real HTTP."""

    def __init__(self, client: httpx.AsyncClient, public_key: str) -> None:
        self.client = client
        self.path = f"/api/v1/inboxes/{public_key}/webhook"

    def url(self, query: str = "") -> str:
        return BASE_URL + self.path + (f"?{query}" if query else "")

    async def post(self, params: dict[str, str], *, query: str = "", token: str = AUTH_TOKEN,
                   signed_url: str | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        target = self.path + (f"?{query}" if query else "")
        sent = headers if headers is not None else twilio_headers(signed_url or self.url(query), params, token)
        return await self.client.post(target, content=urlencode(params), headers=sent)


@contextlib.asynccontextmanager
async def live_client(live: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        yield client


def twilio_config(**extra: Any) -> dict[str, Any]:
    return {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, **extra}


def ivr_config(**extra: Any) -> dict[str, Any]:
    """Three levels: top -> 1 Billing -> 2 Invoices (-> 3 Old invoices)."""
    config = twilio_config(phone_number=SMS_NUMBER, person={"dial": "+14155550199"}, ivr={
        "greeting": "Welcome to Acme.",
        "options": [
            {"key": "1", "label": "For billing", "action": "menu", "menu": {
                "greeting": "Billing.",
                "options": [
                    {"key": "1", "label": "For opening hours", "action": "say", "text": "We are open 9 to 5."},
                    {"key": "2", "label": "For invoices", "action": "menu", "menu": {
                        "greeting": "Invoices.",
                        "options": [{"key": "3", "label": "For old invoices", "action": "say",
                                     "text": "Old invoices are in your account."}]}}]}},
            {"key": "2", "label": "For sales", "action": "person", "person": {"queue": "sales"}},
            {"key": "9", "label": "To leave a message", "action": "voicemail"}]})
    return {**config, **extra}


async def create_inbox(h: Harness, ctx: AccountCtx, kind: str, config: dict[str, Any],
                       name: str = "Twilio") -> dict[str, Any]:
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                            json={"name": name, "channel_kind": kind, "config": config})
    assert r.status_code == 201, r.text
    return r.json()


async def stored(h: Harness) -> tuple[int, int, int, int]:
    """Contacts, conversations, messages and receipts in the database."""
    async with h.runtime.uow() as uow:
        s = uow.session
        return (await s.scalar(select(func.count()).select_from(Contact)),
                await s.scalar(select(func.count()).select_from(Conversation)),
                await s.scalar(select(func.count()).select_from(Message)),
                await s.scalar(select(func.count()).select_from(InboundReceipt)))


async def messages(h: Harness, ctx: AccountCtx, conversation_id: int) -> list[dict[str, Any]]:
    r = await h.client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


# --- a fake Twilio REST API -----------------------------------------------------------------------

class FakeTwilio:
    """Twilio's Messages API on loopback: records each request and answers as scripted (by default
    201 with a new message SID, as Twilio does)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []  # path, headers, form
        self.script: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.sids: list[str] = []
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

        async def create_message(request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            self.requests.append((request.url.path, {k.lower(): v for k, v in request.headers.items()}, form))
            if self.script:
                status, body, headers = self.script.pop(0)
            else:
                message_sid = sid("SM")
                self.sids.append(message_sid)
                status, headers = 201, {}
                body = {"sid": message_sid, "account_sid": request.path_params["account"], "status": "queued",
                        "to": form.get("To"), "from": form.get("From"), "body": form.get("Body"),
                        "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01"}
            return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")

        self.app = Starlette(routes=[Route("/2010-04-01/Accounts/{account}/Messages.json", create_message,
                                           methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_config=None,
                                                    lifespan="off"))

    def refuse(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.script.append((status, {"code": code, "message": message,
                                     "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
                            headers or {}))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeTwilio]:
        async with serving(self.server):
            yield self


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# --- tests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://desk.example.com/api/v1/inboxes/k/webhook",
    "https://desk.example.com/api/v1/inboxes/k/webhook?step=gather&ivr=12&attempt=0",
    "http://127.0.0.1:8000/api/v1/inboxes/k/webhook",
])
def test_our_signature_is_twilios(url: str) -> None:
    params = sms_payload("Grüße & <tags> + spaces", media=[("https://api.twilio.com/x/Media/ME1", "image/jpeg")])
    validator = RequestValidator(AUTH_TOKEN)
    ours = twilio_signature(AUTH_TOKEN, url, params.items())
    assert ours == validator.compute_signature(url, params)
    assert validator.validate(url, params, ours)
    assert not validator.validate(url, params, twilio_signature("0" * 32, url, params.items()))
    request = InboundRequest(headers={"x-twilio-signature": ours, "content-type": FORM},
                             body=urlencode(params).encode(), url=url)
    assert dict(verify_signature(AUTH_TOKEN, request).pairs) == params


def test_signature_accepts_the_url_with_or_without_its_port_as_twilio_signs_both() -> None:
    params = sms_payload()
    body = urlencode(params).encode()
    for signed in ("https://desk.example.com:443/hook", "https://desk.example.com/hook"):
        headers = {"x-twilio-signature": twilio_signature(AUTH_TOKEN, signed, params.items()), "content-type": FORM}
        verify_signature(AUTH_TOKEN, InboundRequest(headers=headers, body=body, url="https://desk.example.com/hook"))


@pytest.mark.parametrize("case", ["missing", "wrong_token", "other_url", "tampered", "not_form", "shared_key"])
def test_signature_fails_closed(case: str) -> None:
    url = "https://desk.example.com/hook"
    params = sms_payload()
    headers = {"x-twilio-signature": twilio_signature(AUTH_TOKEN, url, params.items()), "content-type": FORM}
    body = urlencode(params).encode()
    if case == "missing":
        del headers["x-twilio-signature"]
    elif case == "wrong_token":
        headers["x-twilio-signature"] = twilio_signature("0" * 32, url, params.items())
    elif case == "other_url":
        url = "https://desk.example.com/hook?extra=1"
    elif case == "tampered":
        body = urlencode({**params, "Body": "something else"}).encode()
    elif case == "not_form":
        headers["content-type"] = "application/json"
    else:
        headers["x-twilio-webhooks-signature-settings"] = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    with pytest.raises(InvalidSignature):
        verify_signature(AUTH_TOKEN, InboundRequest(headers=headers, body=body, url=url))


def test_capabilities_the_conversation_layer_enforces() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    sms = TwilioSmsChannel.capabilities
    assert (sms.can_send, sms.max_message_chars, sms.reply_window, [str(k) for k in sms.recipient_kinds]) == (
        True, 1600, None, ["phone"])
    assert sms.refusal(chars=1600, last_incoming_at=None, now=now) is None
    too_long = sms.refusal(chars=1601, last_incoming_at=now, now=now)
    assert too_long is not None and too_long.code == "too_long" and "1600" in too_long.detail

    wa = TwilioWhatsAppChannel.capabilities
    assert (wa.max_message_chars, wa.reply_window, [str(k) for k in wa.recipient_kinds]) == (
        4096, timedelta(hours=24), ["phone"])
    assert wa.refusal(chars=4096, last_incoming_at=now - timedelta(hours=23, minutes=59), now=now) is None
    outside = wa.refusal(chars=10, last_incoming_at=now - timedelta(hours=24, seconds=1), now=now)
    assert outside is not None and outside.code == "window" and "24 hours" in outside.detail
    never = wa.refusal(chars=10, last_incoming_at=None, now=now)
    assert never is not None and never.code == "window"
    over = wa.refusal(chars=4097, last_incoming_at=now, now=now)
    assert over is not None and over.code == "too_long"

    phone = PhoneChannel.capabilities
    assert (phone.can_send, [str(k) for k in phone.recipient_kinds]) == (False, ["phone"])
    cannot = phone.refusal(chars=1, last_incoming_at=now, now=now)
    assert cannot is not None and cannot.code == "cannot_send"


async def test_channel_kinds_list_the_twilio_channels_with_their_secret(h: Harness) -> None:
    ctx = await h.make_account()
    r = await h.client.get("/api/v1/channel-kinds", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    kinds = {k["kind"]: k for k in r.json()}
    assert {kind: (kinds[kind]["title"], kinds[kind]["can_send"], kinds[kind]["max_message_chars"],
                   kinds[kind]["secret_fields"]) for kind in ("twilio_sms", "twilio_whatsapp", "phone")} == {
        "twilio_sms": ("SMS (Twilio)", True, 1600, ["auth_token"]),
        "twilio_whatsapp": ("WhatsApp (Twilio)", True, 4096, ["auth_token"]),
        "phone": ("Phone (Twilio)", False, None, ["auth_token"])}


async def test_auth_token_is_write_only(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, "twilio_sms", twilio_config(phone_number="+1 415 555 0100"))
    assert inbox["config"]["phone_number"] == SMS_NUMBER  # normalized to E.164
    assert inbox["secrets_set"] == ["auth_token"] and "auth_token" not in inbox["config"]
    assert AUTH_TOKEN not in orjson.dumps(inbox).decode()
    r = await h.client.get(f"/api/v1/inboxes/{inbox['id']}", headers=ctx.admin.headers)
    assert AUTH_TOKEN not in r.text


@pytest.mark.parametrize(("kind", "config", "complaint"), [
    ("twilio_sms", twilio_config(), "phone_number or messaging_service_sid"),
    ("twilio_sms", twilio_config(phone_number=SMS_NUMBER, account_sid="AC123"), "account_sid"),
    ("twilio_sms", twilio_config(phone_number=SMS_NUMBER, surprise=True), "surprise"),
    ("twilio_sms", twilio_config(phone_number="12"), "phone_number"),
    ("twilio_whatsapp", twilio_config(), "whatsapp_number or messaging_service_sid"),
    ("phone", ivr_config(person={"dial": "+14155550199", "queue": "support"}), "exactly one of dial"),
    ("phone", ivr_config(person_key="9"), "person key"),  # the top menu's voicemail key
    ("phone", ivr_config(person_key="3"), "person key"),  # a key three levels down
    ("phone", ivr_config(ivr={"greeting": "Hi", "options": [
        {"key": "0", "label": "Sales", "action": "voicemail"}]}), "person key"),
    ("phone", ivr_config(ivr={"greeting": "Hi", "options": [
        {"key": "1", "label": "A", "action": "voicemail"}, {"key": "1", "label": "B", "action": "voicemail"}]}),
     "used twice"),
    ("phone", ivr_config(ivr={"greeting": "Hi\x07", "options": []}), "control characters"),
])
async def test_config_is_validated(h: Harness, kind: str, config: dict[str, Any], complaint: str) -> None:
    ctx = await h.make_account()
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                            json={"name": "Twilio", "channel_kind": kind, "config": config})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert complaint in r.text
    assert AUTH_TOKEN not in r.text
