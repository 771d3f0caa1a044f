"""One customer, one conversation across channels: a chat, then an email, then an SMS from the same
person land in one conversation with three channel badges, each saying why it joined; the agent
can answer on any of them."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from swarmdesk.config import Settings
from tests.channels.test_twilio_common import (
    BASE_URL,
    CUSTOMER,
    SMS_NUMBER,
    FakeTwilio,
    Webhook,
    create_inbox,
    live_client,
    messages,
    sms_payload,
    twilio_config,
)
from tests.mailservers import SmtpSink
from tests.support import Harness, inbound_payload
from tests.test_email_channel import mail, make_email_inbox, upload


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"base_url": BASE_URL})


async def test_chat_then_email_then_sms_is_one_conversation_with_three_channels(h: Harness, live) -> None:  # noqa: ANN001
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    sink = SmtpSink()
    sink.start()
    try:
        async with FakeTwilio().running() as fake, live_client(live) as http:
            # The chat integration vouches for the visitor's email and phone (a logged-in customer).
            chat = await h.make_api_inbox(ctx, trust=True)
            email_inbox = await make_email_inbox(h, ctx, smtp=sink)
            sms = await create_inbox(h, ctx, "twilio_sms", twilio_config(
                phone_number=SMS_NUMBER, api_base_url=fake.url), name="SMS")

            payload = inbound_payload(source_id="visitor-9", content="Hi, my parcel is lost")
            payload["contact"] |= {"email": "ana@example.org", "phone": CUSTOMER}
            first = (await h.deliver(chat, payload)).json()
            by_mail = await upload(h, ctx, email_inbox, mail("ana@example.org", "Lost parcel", "Tracking 123 attached"))
            r = await Webhook(http, sms["public_key"]).post(sms_payload("Any update? I'm on the road"))
            assert r.status_code == 200, r.text

            conversation = first["conversation_id"]
            assert by_mail["conversation_ids"] == [conversation]
            items = await messages(h, ctx, conversation)
            assert [m["channel"] for m in items] == ["api", "email", "twilio_sms"]
            assert [m["link"]["reason"] for m in items] == ["new", "open_conversation", "open_conversation"]
            assert "ana@example.org" in items[1]["link"]["detail"] and CUSTOMER in items[2]["link"]["detail"]

            r = await h.client.get(f"/api/v1/conversations/{conversation}/reply-channels", headers=ctx.admin.headers)
            options = {o["channel_kind"]: o for o in r.json()}
            assert options["twilio_sms"]["default"]  # where the customer wrote last
            assert all(options[k]["available"] for k in ("api", "email", "twilio_sms"))

            url = f"/api/v1/conversations/{conversation}/messages"
            r1 = await h.client.post(url, headers=ctx.admin.headers, json={"content": "We found it, delivery tomorrow"})
            r2 = await h.client.post(url, headers=ctx.admin.headers,
                                     json={"content": "Details by mail", "inbox_id": email_inbox})
            assert r1.status_code == r2.status_code == 201
            await h.run_jobs()
            assert [f["Body"] for _, _, f in fake.requests] == ["We found it, delivery tomorrow"]
            (sent,) = sink.messages()
            assert sent["To"].endswith("<ana@example.org>") and "Details by mail" in sent.get_payload(decode=True).decode()
    finally:
        sink.stop()


async def test_a_signed_chat_visitor_then_email_then_sms_is_one_conversation(h: Harness, live) -> None:  # noqa: ANN001
    """The web chat proper: a logged-in visitor whose email the site signs (identity verification)
    is the customer the CRM already knows, so their mail and their SMS join the chat's conversation."""
    ctx = await h.make_account()
    sink = SmtpSink()
    sink.start()
    try:
        async with FakeTwilio().running() as fake, live_client(live) as http:
            r = await h.client.post("/api/v1/contacts", headers=ctx.admin.headers,
                                    json={"name": "Ana Lima", "email": "ana@example.org", "phone": CUSTOMER})
            assert r.status_code == 201, r.text
            known = r.json()["id"]
            r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                                    json={"name": "Website", "channel_kind": "webchat", "config": {}})
            assert r.status_code == 201, r.text
            widget = r.json()
            secret = widget["generated_secrets"]["identity_secret"]
            email_inbox = await make_email_inbox(h, ctx, smtp=sink)
            sms = await create_inbox(h, ctx, "twilio_sms", twilio_config(
                phone_number=SMS_NUMBER, api_base_url=fake.url), name="SMS")

            forged = await http.post(f"/api/v1/inboxes/{widget['public_key']}/widget-sessions", json={
                "fields": {"name": "Mallory"}, "user_email": "ana@example.org", "user_email_hash": "0" * 64})
            assert forged.status_code == 401
            signature = hmac.new(secret.encode(), b"ana@example.org", hashlib.sha256).hexdigest()
            r = await http.post(f"/api/v1/inboxes/{widget['public_key']}/widget-sessions", json={
                "fields": {"name": "Ana"}, "user_email": "Ana@Example.org", "user_email_hash": signature})
            assert r.status_code == 201, r.text
            assert r.json()["contact_id"] == known
            visitor = {"authorization": f"Bearer {r.json()['token']}"}
            r = await http.post("/api/v1/customer/conversations", headers=visitor,
                                json={"content": "Hi, my parcel is lost"})
            assert r.status_code == 201, r.text
            conversation = r.json()["id"]

            by_mail = await upload(h, ctx, email_inbox, mail("ana@example.org", "Lost parcel", "Tracking 123"))
            r = await Webhook(http, sms["public_key"]).post(sms_payload("Any update?"))
            assert r.status_code == 200, r.text

            assert by_mail["conversation_ids"] == [conversation]
            items = await messages(h, ctx, conversation)
            assert [m["channel"] for m in items] == ["webchat", "email", "twilio_sms"]
            assert [m["link"]["reason"] for m in items[1:]] == ["open_conversation", "open_conversation"]
    finally:
        sink.stop()
