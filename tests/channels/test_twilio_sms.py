"""SMS over Twilio, over real HTTP: Twilio's inbound messages (signed with the inbox's Auth Token,
replayed as its docs shape them), retries, refused deliveries, agents' replies through a fake of
Twilio's Messages API, its errors, and the status callbacks that follow a reply."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from swarmdesk.accounts.models import Role
from swarmdesk.channels.twilio.common import EMPTY_TWIML
from swarmdesk.conversations.actions import DELIVER_JOB
from swarmdesk.core.clock import clock, utcnow
from tests.channels.test_twilio_common import (  # noqa: F401  (settings: the fixture)
    ACCOUNT_SID,
    AUTH_TOKEN,
    BASE_URL,
    CUSTOMER,
    SMS_NUMBER,
    FakeTwilio,
    Webhook,
    basic_auth,
    create_inbox,
    live_client,
    messages,
    settings,
    sid,
    sms_payload,
    status_payload,
    stored,
    twilio_config,
    twilio_headers,
)
from tests.support import AccountCtx, Harness

LATER = timedelta(hours=2)


async def _jobs(h: Harness, ctx: AccountCtx, status: str | None = None) -> list[dict[str, Any]]:
    r = await h.client.get("/api/v1/jobs", headers=ctx.admin.headers, params={"status": status} if status else {})
    assert r.status_code == 200, r.text
    return [j for j in r.json()["items"] if j["kind"] == DELIVER_JOB]


async def _message(h: Harness, ctx: AccountCtx, conversation_id: int, message_id: int) -> dict[str, Any]:
    (found,) = [m for m in await messages(h, ctx, conversation_id) if m["id"] == message_id]
    return found


async def test_inbound_sms_becomes_a_conversation_an_agent_sees(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent", Role.agent)
    inbox = await create_inbox(h, ctx, "twilio_sms", twilio_config(phone_number=SMS_NUMBER))
    payload = sms_payload("Hi, my order #1234 has not arrived",
                          media=[("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
                                  "image/jpeg")])
    async with live_client(live) as client:
        r = await Webhook(client, inbox["public_key"]).post(payload)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/xml")
        assert r.content == EMPTY_TWIML == b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
        assert await stored(h) == (1, 1, 1, 1)

        # The agent finds it through the API.
        r = await client.get("/api/v1/conversations", headers=agent.headers)
        assert r.status_code == 200, r.text
        (conversation,) = r.json()["items"]
        assert (conversation["channel"], conversation["inbox_id"], conversation["status"]) == (
            "twilio_sms", inbox["id"], "open")
        r = await client.get(f"/api/v1/conversations/{conversation['id']}/messages", headers=agent.headers)
        assert r.status_code == 200, r.text
        (message,) = r.json()["items"]
        assert (message["direction"], message["channel"], message["content"], message["external_id"],
                message["delivery_status"]) == ("incoming", "twilio_sms", "Hi, my order #1234 has not arrived",
                                                payload["MessageSid"], "received")
        assert message["meta"] == {"from": CUSTOMER, "to": SMS_NUMBER, "media": [
            {"url": payload["MediaUrl0"], "content_type": "image/jpeg"}]}

        # The sender's number is a verified phone identity: the same customer on every channel.
        r = await client.get(f"/api/v1/contacts/{conversation['contact']['id']}", headers=agent.headers)
        assert r.status_code == 200, r.text
        contact = r.json()
        assert contact["phone"] == CUSTOMER
        assert [(i["kind"], i["scope"], i["value"], i["verified"]) for i in contact["identities"]] == [
            ("phone", "", CUSTOMER, True)]


async def test_media_only_message_says_what_came(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, "twilio_sms", twilio_config(phone_number=SMS_NUMBER))
    payload = sms_payload("", media=[("https://api.twilio.com/m/ME1", "image/png"),
                                     ("https://api.twilio.com/m/ME2", "video/mp4")])
    async with live_client(live) as client:
        r = await Webhook(client, inbox["public_key"]).post(payload)
    assert r.status_code == 200, r.text
    (conversation,) = (await h.client.get("/api/v1/conversations", headers=ctx.admin.headers)).json()["items"]
    (message,) = await messages(h, ctx, conversation["id"])
    assert message["content"] == "[2 media files: image/png, video/mp4]"
    assert [m["url"] for m in message["meta"]["media"]] == ["https://api.twilio.com/m/ME1",
                                                            "https://api.twilio.com/m/ME2"]


async def test_a_retried_delivery_stores_nothing_new(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, "twilio_sms", twilio_config(phone_number=SMS_NUMBER))
    payload = sms_payload("Where is my parcel?")
    async with live_client(live) as client:
        hook = Webhook(client, inbox["public_key"])
        first = await hook.post(payload)
        assert first.status_code == 200, first.text
        assert await stored(h) == (1, 1, 1, 1)
        again = await hook.post(payload)  # Twilio's retry: same URL, same body
        assert (again.status_code, again.content) == (200, EMPTY_TWIML)
        assert await stored(h) == (1, 1, 1, 1)
        # The same MessageSid in a delivery that differs (another field added on the way) is still
        # the same message: recorded as a delivery, never as a second message.
        resent = await hook.post({**payload, "AddOns": '{"status":"successful"}'})
        assert (resent.status_code, resent.content) == (200, EMPTY_TWIML)
        assert await stored(h) == (1, 1, 1, 2)
        # Another message from the same number joins the same conversation.
        assert (await hook.post(sms_payload("Any news?"))).status_code == 200
        assert await stored(h) == (1, 1, 2, 3)


@pytest.mark.parametrize("case", ["missing", "wrong_token", "live_url", "other_query", "other_inbox_url",
                                  "tampered", "json", "foreign_account"])
async def test_unverified_deliveries_are_refused_and_nothing_is_stored(h: Harness, live: Any, case: str) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, "twilio_sms", twilio_config(phone_number=SMS_NUMBER))
    other = await create_inbox(h, ctx, "twilio_sms", twilio_config(phone_number=SMS_NUMBER))
    payload = sms_payload()
    async with live_client(live) as client:
        hook = Webhook(client, inbox["public_key"])
        if case == "missing":
            r = await hook.post(payload, headers={"content-type": "application/x-www-form-urlencoded"})
        elif case == "wrong_token":
            r = await hook.post(payload, token="0" * 32)
        elif case == "live_url":  # signed for the address the app listens on, not the public one
            r = await hook.post(payload, signed_url=f"{live.url}{hook.path}")
        elif case == "other_query":
            r = await hook.post(payload, query="step=gather", signed_url=hook.url())
        elif case == "other_inbox_url":  # a delivery for another inbox, replayed here
            r = await hook.post(payload, signed_url=Webhook(client, other["public_key"]).url())
        elif case == "tampered":
            headers = twilio_headers(hook.url(), payload)
            r = await client.post(hook.path, content=urlencode({**payload, "Body": "Refund me now"}), headers=headers)
        elif case == "json":
            r = await client.post(hook.path, json=payload, headers={
                "x-twilio-signature": twilio_headers(hook.url(), payload)["x-twilio-signature"]})
        else:  # correctly signed, but for another Twilio account
            r = await hook.post({**payload, "AccountSid": "AC" + "0" * 32})
    assert r.status_code == (403 if case == "foreign_account" else 401), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("forbidden" if case == "foreign_account" else "invalid-signature")
    assert await stored(h) == (0, 0, 0, 0)


async def test_get_on_the_webhook_is_refused(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, "twilio_sms", twilio_config(phone_number=SMS_NUMBER))
    async with live_client(live) as client:
        r = await client.get(f"/api/v1/inboxes/{inbox['public_key']}/webhook", params=sms_payload())
    assert r.status_code == 400, r.text
    assert "HTTP POST" in r.json()["detail"]
    assert await stored(h) == (0, 0, 0, 0)


class Scene:
    """An SMS inbox whose replies go to a fake Twilio API, with one customer conversation."""

    def __init__(self, h: Harness, ctx: AccountCtx, inbox: dict[str, Any], hook: Webhook,
                 conversation_id: int) -> None:
        self.h, self.ctx, self.inbox, self.hook, self.conversation_id = h, ctx, inbox, hook, conversation_id

    async def reply(self, content: str) -> dict[str, Any]:
        r = await self.h.client.post(f"/api/v1/conversations/{self.conversation_id}/messages",
                                     headers=self.ctx.admin.headers, json={"content": content})
        assert r.status_code == 201, r.text
        return r.json()

    async def message(self, message_id: int) -> dict[str, Any]:
        return await _message(self.h, self.ctx, self.conversation_id, message_id)


async def _scene(h: Harness, client: Any, fake: FakeTwilio, **config: Any) -> Scene:
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    inbox = await create_inbox(h, ctx, "twilio_sms", twilio_config(phone_number=SMS_NUMBER, api_base_url=fake.url,
                                                                   **config))
    # Delivery reports come back to the inbox's own webhook.
    r = await h.client.patch(f"/api/v1/inboxes/{inbox['id']}", headers=ctx.admin.headers,
                             json={"config": {"status_callback_url": inbox["webhook_url"]}})
    assert r.status_code == 200, r.text
    hook = Webhook(client, inbox["public_key"])
    assert (await hook.post(sms_payload())).status_code == 200
    (conversation,) = (await h.client.get("/api/v1/conversations", headers=ctx.admin.headers)).json()["items"]
    return Scene(h, ctx, r.json(), hook, conversation["id"])


async def test_reply_reaches_twilio_and_status_callbacks_follow_it(h: Harness, live: Any) -> None:
    async with FakeTwilio().running() as fake, live_client(live) as client:
        scene = await _scene(h, client, fake)
        assert scene.inbox["webhook_url"] == f"{BASE_URL}{scene.hook.path}"
        sent = await scene.reply("We are on it: your parcel ships today.")
        assert sent["delivery_status"] == "pending"
        assert fake.requests == []  # a job sends it, not the request
        await h.run_jobs()

        ((path, headers, form),) = fake.requests
        assert path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        assert headers["authorization"] == basic_auth(ACCOUNT_SID, AUTH_TOKEN)
        assert headers["content-type"] == "application/x-www-form-urlencoded"
        assert form == {"To": CUSTOMER, "From": SMS_NUMBER, "Body": "We are on it: your parcel ships today.",
                        "StatusCallback": scene.inbox["webhook_url"]}
        (message_sid,) = fake.sids
        message = await scene.message(sent["id"])
        assert (message["delivery_status"], message["external_id"], message["delivery_error"]) == (
            "sent", message_sid, None)

        # Twilio's status callbacks, to the inbox webhook: the status only moves forward.
        with h.capture_events() as events:
            for status in ("sent", "delivered", "sent"):
                r = await scene.hook.post(status_payload(message_sid, status, RawDlrDoneDate="2601011200"))
                assert (r.status_code, r.content) == (200, EMPTY_TWIML)
            assert (await scene.message(sent["id"]))["delivery_status"] == "delivered"
        assert [(e.type, e.message.delivery_status) for e in events] == [  # type: ignore[attr-defined]
            ("message.updated", "delivered")]
        assert (await stored(h))[:3] == (1, 1, 2)  # reports are not messages

        # A report that the next reply never arrived, with Twilio's error code.
        second = await scene.reply("Did you get this?")
        await h.run_jobs()
        second_sid = fake.sids[1]
        r = await scene.hook.post(status_payload(second_sid, "undelivered", ErrorCode="30003"))
        assert r.status_code == 200, r.text
        failed = await scene.message(second["id"])
        assert (failed["delivery_status"], failed["delivery_error"]) == (
            "failed", "Twilio error 30003: the handset is unreachable")
        # A report about a message we never sent changes nothing.
        r = await scene.hook.post(status_payload(sid("SM"), "delivered"))
        assert r.status_code == 200, r.text
        assert (await stored(h))[:3] == (1, 1, 3)


async def test_messaging_service_sends_without_from(h: Harness, live: Any) -> None:
    service = "MG" + "1" * 32
    async with FakeTwilio().running() as fake, live_client(live) as client:
        scene = await _scene(h, client, fake, messaging_service_sid=service)
        await scene.reply("Hello")
        await h.run_jobs()
    ((_, _, form),) = fake.requests
    assert form == {"To": CUSTOMER, "MessagingServiceSid": service, "Body": "Hello",
                    "StatusCallback": scene.inbox["webhook_url"]}


async def test_throttling_is_retried_after_retry_after(h: Harness, live: Any) -> None:
    async with FakeTwilio().running() as fake, live_client(live) as client:
        scene = await _scene(h, client, fake)
        fake.refuse(429, 20429, "Too Many Requests", {"Retry-After": "30"})
        fake.refuse(503, 20500, "Service Unavailable")
        sent = await scene.reply("Tracking: 1Z999")
        await h.run_jobs()
        assert len(fake.requests) == 1
        assert (await scene.message(sent["id"]))["delivery_status"] == "pending"
        (job,) = await _jobs(h, scene.ctx)
        assert job["status"] == "queued" and "Twilio answered 429 (error 20429): Too Many Requests" in job["last_error"]
        before = utcnow()
        assert before + timedelta(seconds=25) <= datetime.fromisoformat(job["run_at"]) <= before + timedelta(seconds=30)

        clock.advance(timedelta(seconds=31))
        await h.run_jobs()
        assert len(fake.requests) == 2  # 503: retried on the backoff schedule
        assert (await scene.message(sent["id"]))["delivery_status"] == "pending"

        clock.advance(LATER)
        await h.run_jobs()
        assert len(fake.requests) == 3
        assert [form for _, _, form in fake.requests] == [fake.requests[0][2]] * 3
        message = await scene.message(sent["id"])
        assert (message["delivery_status"], message["external_id"]) == ("sent", fake.sids[0])


async def test_a_refusal_is_final_with_twilios_reason(h: Harness, live: Any) -> None:
    async with FakeTwilio().running() as fake, live_client(live) as client:
        scene = await _scene(h, client, fake)
        fake.refuse(400, 21211, f"The 'To' number {CUSTOMER} is not a valid phone number.")
        sent = await scene.reply("Hello?")
        await h.run_jobs()
        clock.advance(LATER)
        await h.run_jobs()  # never retried
    assert len(fake.requests) == 1
    message = await scene.message(sent["id"])
    assert (message["delivery_status"], message["delivery_error"]) == (
        "failed", f"Twilio answered 400 (error 21211): The 'To' number {CUSTOMER} is not a valid phone number.")
    (dead,) = await _jobs(h, scene.ctx, "dead")
    assert dead["payload"] == {"message_id": sent["id"]}


async def test_without_allowlisting_a_private_api_address_nothing_is_sent(h: Harness, live: Any) -> None:
    async with FakeTwilio().running() as fake, live_client(live) as client:
        scene = await _scene(h, client, fake)
        r = await h.client.patch("/api/v1/account", headers=scene.ctx.admin.headers,
                                 json={"settings": {"outbound_allowlist": []}})
        assert r.status_code == 200, r.text
        sent = await scene.reply("Hello?")
        await h.run_jobs()
    assert fake.requests == []
    message = await scene.message(sent["id"])
    assert message["delivery_status"] == "failed"
    assert "127.0.0.1 resolves to a non-public address" in message["delivery_error"]
