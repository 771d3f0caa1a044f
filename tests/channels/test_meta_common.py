"""What WhatsApp Cloud and Messenger inboxes share, over real HTTP against the running app: Meta's
``hub.challenge`` subscription check, ``X-Hub-Signature-256`` verified before anything is stored,
write-only secrets. Also the helpers the channel tests share: signing as Meta documents it, and a
fake vendor API served on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from pywa.utils import webhook_updates_validator
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import swarmdesk.channels.meta.messenger  # noqa: F401  (registers the adapters)
import swarmdesk.channels.meta.whatsapp  # noqa: F401
import swarmdesk.channels.telegram.adapter  # noqa: F401
from swarmdesk.channels.models import InboundReceipt
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations.models import Message
from tests.support import AccountCtx, Harness, serving

APP_SECRET = "6f1c0a8e4b2d9f7a3c5e8b1d0f2a4c6e"
ACCESS_TOKEN = "EAAG-test-access-token"
PHONE_NUMBER_ID = "106540352242922"
PAGE_ID = "1234567890"


def meta_signature(secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` as Meta documents it: sha256= and the hex HMAC-SHA256 of the raw
    body keyed with the app secret; cross-checked with pywa, a maintained WhatsApp library."""
    header = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert webhook_updates_validator(secret, body, header)
    return header


def meta_headers(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {"content-type": "application/json", "x-hub-signature-256": meta_signature(secret, body)}


async def create_inbox(h: Harness, ctx: AccountCtx, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                            json={"name": kind.title(), "channel_kind": kind, "config": config})
    assert r.status_code == 201, r.text
    return r.json()


def meta_config(kind: str, graph_base_url: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"access_token": ACCESS_TOKEN, "app_secret": APP_SECRET}
    config.update({"phone_number_id": PHONE_NUMBER_ID} if kind == "whatsapp" else {"page_id": PAGE_ID})
    if graph_base_url:
        config["graph_base_url"] = graph_base_url
    return config


async def stored(h: Harness) -> tuple[int, int, int]:
    """Messages, receipts and contacts in the database."""
    async with h.runtime.uow() as uow:
        s = uow.session
        return (await s.scalar(select(func.count()).select_from(Message)),
                await s.scalar(select(func.count()).select_from(InboundReceipt)),
                await s.scalar(select(func.count()).select_from(Contact)))


async def message_rows(h: Harness, conversation_id: int) -> list[Message]:
    async with h.runtime.uow() as uow:
        return list((await uow.session.scalars(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id))).all())


def channel_meta(message: Message) -> dict[str, Any]:
    """What the adapter put in the message's meta (the conversation layer adds its ``link``)."""
    return {k: v for k, v in message.meta.items() if k != "link"}


@contextlib.asynccontextmanager
async def live_client(live: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.url) as client:
        yield client


@dataclass
class VendorCall:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class FakeVendor:
    """A vendor API on loopback: records every call and answers as scripted, then ``default``."""

    def __init__(self, default: tuple[int, dict[str, Any]] = (200, {})) -> None:
        self.calls: list[VendorCall] = []
        self.script: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.default = default
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

        async def endpoint(request: Request) -> Response:
            self.calls.append(VendorCall(request.method, request.url.path, dict(request.query_params),
                                         {k.lower(): v for k, v in request.headers.items()}, await request.body()))
            status, body, headers = self.script.pop(0) if self.script else (*self.default, {})
            return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")

        app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    lifespan="off"))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeVendor]:
        async with serving(self.server):
            yield self


async def message_out(h: Harness, ctx: AccountCtx, conversation_id: int, message_id: int) -> dict[str, Any]:
    r = await h.client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    (found,) = [m for m in r.json()["items"] if m["id"] == message_id]
    return found


# --- the tests ---------------------------------------------------------------------------------

KINDS = ["whatsapp", "messenger"]


def _minimal_delivery(kind: str) -> bytes:
    if kind == "whatsapp":
        return orjson.dumps({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550000000", "phone_number_id": PHONE_NUMBER_ID},
                "contacts": [{"profile": {"name": "Ana"}, "wa_id": "4915112345678"}],
                "messages": [{"from": "4915112345678", "id": "wamid.A1", "timestamp": "1700000000", "type": "text",
                              "text": {"body": "hi"}}]}}]}]})
    return orjson.dumps({"object": "page", "entry": [{"id": PAGE_ID, "time": 1700000000000, "messaging": [{
        "sender": {"id": "7001"}, "recipient": {"id": PAGE_ID}, "timestamp": 1700000000000,
        "message": {"mid": "m_A1", "text": "hi"}}]}]})


@pytest.mark.parametrize("kind", KINDS)
async def test_subscription_check_echoes_the_challenge_for_the_right_token(h: Harness, live: Any, kind: str) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, kind, {**meta_config(kind), "verify_token": "my-verify-token-1"})
    assert inbox["generated_secrets"] == {}  # chosen, not generated
    path = f"/api/v1/inboxes/{inbox['public_key']}/webhook"
    async with live_client(live) as client:
        r = await client.get(path, params={"hub.mode": "subscribe", "hub.verify_token": "my-verify-token-1",
                                           "hub.challenge": "1158201444"})
        assert (r.status_code, r.text) == (200, "1158201444")
        assert r.headers["content-type"].startswith("text/plain")

        for params, status in [
            ({"hub.mode": "subscribe", "hub.verify_token": "my-verify-token-2", "hub.challenge": "1158201444"}, 403),
            ({"hub.mode": "subscribe", "hub.challenge": "1158201444"}, 403),
            ({"hub.mode": "unsubscribe", "hub.verify_token": "my-verify-token-1", "hub.challenge": "1"}, 400),
            # Only a short plain token is echoed: never markup, never a long string.
            ({"hub.mode": "subscribe", "hub.verify_token": "my-verify-token-1",
              "hub.challenge": "<script>alert(1)</script>"}, 400),
            ({"hub.mode": "subscribe", "hub.verify_token": "my-verify-token-1", "hub.challenge": "9" * 129}, 400),
            ({"hub.mode": "subscribe", "hub.verify_token": "my-verify-token-1"}, 400),
        ]:
            r = await client.get(path, params=params)
            assert r.status_code == status, (params, r.text)
            assert "1158201444" not in r.text and "script" not in r.text


@pytest.mark.parametrize("kind", KINDS)
async def test_generated_verify_token_is_shown_once_and_works(h: Harness, live: Any, kind: str) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, kind, meta_config(kind))
    token = inbox["generated_secrets"]["verify_token"]
    assert len(token) >= 24 and set(inbox["generated_secrets"]) == {"verify_token"}
    assert inbox["secrets_set"] == ["access_token", "app_secret", "verify_token"]
    assert not {"access_token", "app_secret", "verify_token"} & set(inbox["config"])
    assert inbox["webhook_url"].endswith(f"/api/v1/inboxes/{inbox['public_key']}/webhook")
    r = await h.client.get(f"/api/v1/inboxes/{inbox['id']}", headers=ctx.admin.headers)
    assert token not in r.text and APP_SECRET not in r.text and ACCESS_TOKEN not in r.text
    async with live_client(live) as client:
        r = await client.get(f"/api/v1/inboxes/{inbox['public_key']}/webhook",
                             params={"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "42"})
    assert (r.status_code, r.text) == (200, "42")


@pytest.mark.parametrize("kind", KINDS)
async def test_config_is_validated(h: Harness, kind: str) -> None:
    ctx = await h.make_account()
    for config in [{**meta_config(kind), "unknown": 1}, {k: v for k, v in meta_config(kind).items()
                                                          if k != "app_secret"},
                   {**meta_config(kind), "verify_token": "short"}, {**meta_config(kind), "api_version": "latest"}]:
        r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                                json={"name": "x", "channel_kind": kind, "config": config})
        assert r.status_code == 422, (config, r.text)
    r = await h.client.get("/api/v1/channel-kinds", headers=ctx.admin.headers)
    (described,) = [k for k in r.json() if k["kind"] == kind]
    assert described["secret_fields"] == ["access_token", "app_secret", "verify_token"]
    assert described["max_message_chars"] == {"whatsapp": 4096, "messenger": 2000}[kind]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", ["unsigned", "wrong_secret", "other_body", "not_sha256", "empty_digest"])
async def test_unverified_deliveries_are_refused_and_nothing_is_stored(h: Harness, live: Any, kind: str,
                                                                       case: str) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, kind, meta_config(kind))
    body = _minimal_delivery(kind)
    headers = {
        "unsigned": {"content-type": "application/json"},
        "wrong_secret": meta_headers(body, secret="0" * 32),
        "other_body": meta_headers(body.replace(b'"hi"', b'"hI"')),
        "not_sha256": {"x-hub-signature-256": "sha1=" + hmac.new(APP_SECRET.encode(), body, "sha1").hexdigest()},
        "empty_digest": {"x-hub-signature-256": "sha256="},
    }[case]
    async with live_client(live) as client:
        r = await client.post(f"/api/v1/inboxes/{inbox['public_key']}/webhook", content=body, headers=headers)
        assert r.status_code == 401, r.text
        assert r.json()["type"].endswith("invalid-signature")
        assert await stored(h) == (0, 0, 0)
        # The same body, signed, goes in: the refusal was the signature's doing.
        r = await client.post(f"/api/v1/inboxes/{inbox['public_key']}/webhook", content=body,
                              headers=meta_headers(body))
    assert r.status_code == 200, r.text
    assert await stored(h) == (1, 1, 1)


@pytest.mark.parametrize("kind", KINDS)
async def test_malformed_or_foreign_deliveries_are_refused(h: Harness, live: Any, kind: str) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, kind, meta_config(kind))
    other = "page" if kind == "whatsapp" else "whatsapp_business_account"
    async with live_client(live) as client:
        for body, status in [(b"{not json", 400), (orjson.dumps({"object": other, "entry": []}), 400),
                             (orjson.dumps({"entry": "x"}), 422)]:
            r = await client.post(f"/api/v1/inboxes/{inbox['public_key']}/webhook", content=body,
                                  headers=meta_headers(body))
            assert r.status_code == status, r.text
    assert await stored(h) == (0, 0, 0)
