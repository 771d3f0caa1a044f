"""WhatsApp over Twilio, over real HTTP: ``whatsapp:+E164`` senders become the same verified phone
identity as their SMS, WhatsApp's richer messages, replies (split past Twilio's 1600-character
Body), read receipts, and WhatsApp's 24-hour window as the conversation layer applies it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from swarmdesk.channels.twilio.common import EMPTY_TWIML
from swarmdesk.core.clock import clock
from tests.channels.test_twilio_common import (  # noqa: F401  (settings: the fixture)
    CUSTOMER,
    SMS_NUMBER,
    FakeTwilio,
    Webhook,
    create_inbox,
    live_client,
    messages,
    settings,
    sms_payload,
    status_payload,
    stored,
    twilio_config,
    whatsapp_payload,
)
from tests.support import AccountCtx, Harness

WA_NUMBER = "+14155238886"


async def _conversations(h: Harness, ctx: AccountCtx) -> list[dict[str, Any]]:
    r = await h.client.get("/api/v1/conversations", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_whatsapp_sender_is_a_verified_phone_with_a_name(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, "twilio_whatsapp", twilio_config(whatsapp_number=WA_NUMBER))
    payload = whatsapp_payload("Hola, ¿dónde está mi pedido?", to=WA_NUMBER, OriginalRepliedMessageSid="SM" + "e" * 32)
    async with live_client(live) as client:
        r = await Webhook(client, inbox["public_key"]).post(payload)
        assert (r.status_code, r.content) == (200, EMPTY_TWIML)
        again = await Webhook(client, inbox["public_key"]).post(payload)
        assert (again.status_code, again.content) == (200, EMPTY_TWIML)
    assert await stored(h) == (1, 1, 1, 1)
    (conversation,) = await _conversations(h, ctx)
    assert (conversation["channel"], conversation["contact"]["name"]) == ("twilio_whatsapp", "Ana Lima")
    (message,) = await messages(h, ctx, conversation["id"])
    assert (message["content"], message["external_id"]) == ("Hola, ¿dónde está mi pedido?", payload["MessageSid"])
    assert message["meta"] == {"from": f"whatsapp:{CUSTOMER}", "to": f"whatsapp:{WA_NUMBER}",
                               "wa_id": CUSTOMER.lstrip("+"), "profile_name": "Ana Lima", "type": "text",
                               "reply_to": "SM" + "e" * 32}
    r = await h.client.get(f"/api/v1/contacts/{conversation['contact']['id']}", headers=ctx.admin.headers)
    assert [(i["kind"], i["scope"], i["value"], i["verified"]) for i in r.json()["identities"]] == [
        ("phone", "", CUSTOMER, True)]


async def test_location_message(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, "twilio_whatsapp", twilio_config(whatsapp_number=WA_NUMBER))
    payload = whatsapp_payload("", to=WA_NUMBER, MessageType="location", Latitude="37.7879277",
                               Longitude="-122.3937508", Address="375 Beale St, San Francisco", Label="Twilio HQ")
    async with live_client(live) as client:
        assert (await Webhook(client, inbox["public_key"]).post(payload)).status_code == 200
    (conversation,) = await _conversations(h, ctx)
    (message,) = await messages(h, ctx, conversation["id"])
    assert message["content"] == "Location: 37.7879277, -122.3937508 (Twilio HQ, 375 Beale St, San Francisco)"
    assert message["meta"]["location"] == {"latitude": "37.7879277", "longitude": "-122.3937508",
                                           "label": "Twilio HQ", "address": "375 Beale St, San Francisco"}


async def test_same_number_on_sms_and_whatsapp_is_one_customer_in_one_conversation(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    sms = await create_inbox(h, ctx, "twilio_sms", twilio_config(phone_number=SMS_NUMBER), name="SMS")
    wa = await create_inbox(h, ctx, "twilio_whatsapp", twilio_config(whatsapp_number=WA_NUMBER), name="WhatsApp")
    async with live_client(live) as client:
        assert (await Webhook(client, sms["public_key"]).post(sms_payload("Texting first"))).status_code == 200
        r = await Webhook(client, wa["public_key"]).post(whatsapp_payload("Now on WhatsApp", to=WA_NUMBER))
        assert r.status_code == 200, r.text
    assert (await stored(h))[:3] == (1, 1, 2)
    (conversation,) = await _conversations(h, ctx)
    assert [(m["channel"], m["content"]) for m in await messages(h, ctx, conversation["id"])] == [
        ("twilio_sms", "Texting first"), ("twilio_whatsapp", "Now on WhatsApp")]


async def test_replies_go_to_whatsapp_addresses_and_long_ones_in_parts(h: Harness, live: Any) -> None:
    async with FakeTwilio().running() as fake, live_client(live) as client:
        ctx = await h.make_account()
        await h.allowlist_loopback(ctx)
        inbox = await create_inbox(h, ctx, "twilio_whatsapp",
                                   twilio_config(whatsapp_number=WA_NUMBER, api_base_url=fake.url))
        hook = Webhook(client, inbox["public_key"])
        assert (await hook.post(whatsapp_payload(to=WA_NUMBER))).status_code == 200
        (conversation,) = await _conversations(h, ctx)
        long = " ".join(f"word{i:04d}" for i in range(400))  # 3599 characters: three WhatsApp-sized parts
        assert len(long) == 3599
        r = await h.client.post(f"/api/v1/conversations/{conversation['id']}/messages", headers=ctx.admin.headers,
                                json={"content": long})
        assert r.status_code == 201, r.text
        reply = r.json()
        await h.run_jobs()

        forms = [form for _, _, form in fake.requests]
        assert [(f["To"], f["From"]) for f in forms] == [(f"whatsapp:{CUSTOMER}", f"whatsapp:{WA_NUMBER}")] * 3
        # Not configured: Twilio reports back to the inbox's own webhook.
        assert forms[0]["StatusCallback"].endswith("/webhook") and "/api/v1/inboxes/" in forms[0]["StatusCallback"]
        assert all(len(f["Body"]) <= 1600 for f in forms)
        assert " ".join(f["Body"] for f in forms) == long
        (message,) = [m for m in await messages(h, ctx, conversation["id"]) if m["id"] == reply["id"]]
        assert (message["delivery_status"], message["external_id"]) == ("sent", fake.sids[0])

        # WhatsApp reports reads.
        for status in ("delivered", "read"):
            r = await hook.post(status_payload(fake.sids[0], status, to=f"whatsapp:{CUSTOMER}",
                                               frm=f"whatsapp:{WA_NUMBER}"))
            assert r.status_code == 200, r.text
        (message,) = [m for m in await messages(h, ctx, conversation["id"]) if m["id"] == reply["id"]]
        assert message["delivery_status"] == "read"


async def test_free_form_replies_only_within_24_hours_of_the_customers_message(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, "twilio_whatsapp", twilio_config(whatsapp_number=WA_NUMBER))
    async with live_client(live) as client:
        assert (await Webhook(client, inbox["public_key"]).post(whatsapp_payload(to=WA_NUMBER))).status_code == 200
    (conversation,) = await _conversations(h, ctx)
    url = f"/api/v1/conversations/{conversation['id']}/messages"
    clock.advance(timedelta(hours=23))
    r = await h.client.post(url, headers=ctx.admin.headers, json={"content": "Within the window"})
    assert r.status_code == 201, r.text
    clock.advance(timedelta(hours=1, seconds=1))
    r = await h.client.post(url, headers=ctx.admin.headers, json={"content": "Too late"})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "window" and "24 hours" in r.json()["detail"]
    r = await h.client.post(url, headers=ctx.admin.headers, json={"content": "x" * 4097})
    assert r.status_code in (409, 422), r.text
