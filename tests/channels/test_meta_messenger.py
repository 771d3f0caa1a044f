"""Messenger inboxes over real HTTP: Meta's ``page`` deliveries (text, attachments, postbacks,
echoes, other pages), delivery reports, replies through the Graph API to a fake of it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest

from swarmdesk.accounts.models import Role
from swarmdesk.channels.meta.messenger import MessengerChannel
from swarmdesk.config import Settings
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.core.clock import clock, utcnow
from tests.channels.test_meta_common import (
    ACCESS_TOKEN,
    PAGE_ID,
    FakeVendor,
    channel_meta,
    create_inbox,
    live_client,
    message_out,
    message_rows,
    meta_config,
    meta_headers,
    stored,
)
from tests.support import Harness

PSID = "6283929151720093"
T0 = 1700000000000  # Messenger timestamps are milliseconds


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"job_backoff_base": 1.0, "job_backoff_max": 3600.0})


def page_delivery(*events: dict[str, Any], page_id: str = PAGE_ID) -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": page_id, "time": T0, "messaging": list(events)}]}


def from_customer(**event: Any) -> dict[str, Any]:
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": T0, **event}


async def _post(client: Any, inbox: dict[str, Any], payload: dict[str, Any]) -> Any:
    body = orjson.dumps(payload)
    return await client.post(f"/api/v1/inboxes/{inbox['public_key']}/webhook", content=body,
                             headers=meta_headers(body))


async def test_text_and_attachments_are_stored_echoes_and_other_pages_ignored(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, "messenger", meta_config("messenger"))
    payload = page_delivery(
        from_customer(message={"mid": "m_T1", "text": "Hello, is the blue one in stock?"}),
        from_customer(message={"mid": "m_A1", "text": "this one", "attachments": [
            {"type": "image", "payload": {"url": "https://scontent.xx.fbcdn.net/v/t1/photo.jpg"}},
            {"type": "file", "payload": {"url": "https://cdn.fbsbx.com/v/t59/receipt.pdf"}}]}),
        # The page's own message, echoed back: not the customer's.
        {"sender": {"id": PAGE_ID}, "recipient": {"id": PSID}, "timestamp": T0,
         "message": {"mid": "m_E1", "text": "We reply", "is_echo": True, "app_id": 1517776481860111}},
        from_customer(postback={"mid": "m_P1", "title": "Talk to a human", "payload": "HUMAN"}),
        # Events without a customer id (a checkbox plugin opt-in) and kinds we do not handle.
        {"recipient": {"id": PAGE_ID}, "timestamp": T0, "optin": {"ref": "promo", "user_ref": "UREF"}},
        from_customer(reaction={"mid": "m_OUT0", "action": "react", "emoji": "❤"}),
    )
    other_page = page_delivery(from_customer(message={"mid": "m_O1", "text": "not for this inbox"}),
                               page_id="999")
    payload["entry"].extend(other_page["entry"])
    async with live_client(live) as client:
        r = await _post(client, inbox, payload)
        assert r.status_code == 200, r.text
        results = r.json()["messages"]
        assert len(results) == 3 and len({m["conversation_id"] for m in results}) == 1
        rows = await message_rows(h, results[0]["conversation_id"])
        assert [(m.external_id, m.content) for m in rows] == [
            ("m_T1", "Hello, is the blue one in stock?"),
            ("m_A1", "this one\n[Image] https://scontent.xx.fbcdn.net/v/t1/photo.jpg\n"
                     "[File] https://cdn.fbsbx.com/v/t59/receipt.pdf"),
            ("m_P1", "Talk to a human")]
        assert [channel_meta(m) for m in rows] == [
            {"type": "message"},
            {"type": "message", "attachments": [
                {"type": "image", "url": "https://scontent.xx.fbcdn.net/v/t1/photo.jpg"},
                {"type": "file", "url": "https://cdn.fbsbx.com/v/t59/receipt.pdf"}]},
            {"type": "postback", "payload": "HUMAN"}]

        r = await h.client.get(f"/api/v1/contacts/{results[0]['contact_id']}", headers=ctx.admin.headers)
        assert [(i["kind"], i["scope"], i["value"], i["verified"]) for i in r.json()["identities"]] == [
            ("handle", f"inbox:{inbox['id']}", PSID, True)]

        # An attachment alone, and a retry of the whole delivery.
        before = await stored(h)
        r = await _post(client, inbox, page_delivery(from_customer(message={"mid": "m_S1", "attachments": [
            {"type": "image", "payload": {"url": "https://scontent.xx.fbcdn.net/sticker.png", "sticker_id": 369239263222822}}]})))
        assert r.json()["duplicate"] is False
        rows = await message_rows(h, results[0]["conversation_id"])
        assert rows[-1].content == "[Sticker] https://scontent.xx.fbcdn.net/sticker.png"
        r = await _post(client, inbox, payload)
        assert r.json()["messages"] == [{**m, "duplicate": True} for m in results]
        assert await stored(h) == (before[0] + 1, before[1] + 1, before[2])


async def test_reply_is_sent_and_delivery_reports_update_it(h: Harness, live: Any) -> None:
    answer = {"recipient_id": PSID, "message_id": "m_OUT1"}
    async with FakeVendor(default=(200, answer)).running() as graph, live_client(live) as client:
        ctx = await h.make_account()
        await h.allowlist_loopback(ctx)
        agent = await h.make_user(ctx, "agent", Role.agent)
        inbox = await create_inbox(h, ctx, "messenger", meta_config("messenger", graph.url))
        r = await _post(client, inbox, page_delivery(from_customer(message={"mid": "m_1", "text": "Hi"})))
        conversation_id = r.json()["conversation_id"]
        r = await h.client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=agent.headers,
                                json={"content": "Hello! Yes, it is."})
        assert r.status_code == 201, r.text
        reply = r.json()
        await h.run_jobs()
        (call,) = graph.calls
        assert (call.method, call.path) == ("POST", "/v25.0/me/messages")
        assert call.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
        assert "access_token" not in call.query  # the token stays out of URLs (and their logs)
        assert call.json() == {"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
                               "message": {"text": "Hello! Yes, it is."}}
        out = await message_out(h, ctx, conversation_id, reply["id"])
        assert (out["delivery_status"], out["external_id"]) == ("sent", "m_OUT1")

        r = await _post(client, inbox, page_delivery(from_customer(delivery={"mids": ["m_OUT1"], "watermark": T0})))
        assert (r.status_code, r.json()) == (200, {"messages": []})
        assert (await message_out(h, ctx, conversation_id, reply["id"]))["delivery_status"] == "delivered"
        r = await _post(client, inbox, page_delivery(from_customer(read={"watermark": T0 + 5, "mid": "m_OUT1"})))
        assert r.status_code == 200, r.text
        assert (await message_out(h, ctx, conversation_id, reply["id"]))["delivery_status"] == "read"


async def test_a_refused_reply_fails_with_metas_reason_and_throttling_is_retried(h: Harness, live: Any) -> None:
    async with FakeVendor(default=(200, {"recipient_id": PSID, "message_id": "m_OK"})).running() as graph, \
            live_client(live) as client:
        graph.script = [
            (400, {"error": {"message": "(#613) Calls to this api have exceeded the rate limit.", "code": 613}}, {}),
            (400, {"error": {"message": "(#10) This message is sent outside of allowed window.", "type":
                             "OAuthException", "code": 10, "error_subcode": 2018278, "fbtrace_id": "A1"}}, {}),
        ]
        ctx = await h.make_account()
        await h.allowlist_loopback(ctx)
        agent = await h.make_user(ctx, "agent", Role.agent)
        inbox = await create_inbox(h, ctx, "messenger", meta_config("messenger", graph.url))
        r = await _post(client, inbox, page_delivery(from_customer(message={"mid": "m_1", "text": "Hi"})))
        conversation_id = r.json()["conversation_id"]
        r = await h.client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=agent.headers,
                                json={"content": "Hello"})
        reply = r.json()
        await h.run_jobs()
        assert (await message_out(h, ctx, conversation_id, reply["id"]))["delivery_status"] == "pending"
        clock.advance(timedelta(hours=2))
        await h.run_jobs()
        clock.advance(timedelta(hours=2))
        await h.run_jobs()
        assert len(graph.calls) == 2
        out = await message_out(h, ctx, conversation_id, reply["id"])
        assert (out["delivery_status"], out["delivery_error"]) == (
            "failed", "Messenger Platform answered 400 (code 10): (#10) This message is sent outside of allowed window.")


def test_capabilities_allow_2000_characters_within_the_standard_messaging_window() -> None:
    caps = MessengerChannel.capabilities
    now = utcnow()
    assert (caps.can_send, caps.max_message_chars, caps.reply_window, caps.recipient_kinds) == (
        True, 2000, timedelta(hours=24), (IdentityKind.handle,))
    assert caps.refusal(chars=2000, last_incoming_at=now - timedelta(hours=1), now=now) is None
    assert caps.refusal(chars=2001, last_incoming_at=now, now=now).code == "too_long"
    assert caps.refusal(chars=5, last_incoming_at=now - timedelta(hours=25), now=now).code == "window"
