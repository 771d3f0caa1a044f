"""WhatsApp Cloud API inboxes over real HTTP: Meta's deliveries (several messages and statuses in
one), replays, media and interactive messages, replies through the Graph API to a fake of it, its
errors, status callbacks, and the number that joins the customer across channels."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from swarmdesk.accounts.models import Role
from swarmdesk.channels.base import AdapterContext, OutboundMessage, Recipient
from swarmdesk.channels.meta.whatsapp import WhatsAppChannel
from swarmdesk.config import Settings
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.core.clock import clock, utcnow
from tests.channels.test_meta_common import (
    ACCESS_TOKEN,
    PHONE_NUMBER_ID,
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
from tests.support import AccountCtx, Harness, inbound_payload

WA_ID = "4915112345678"
LATER = timedelta(hours=2)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Retries never run inside the same drain unless the test moves the clock.
    return settings.model_copy(update={"job_backoff_base": 1.0, "job_backoff_max": 3600.0})


def delivery(messages: list[dict[str, Any]] = (), statuses: list[dict[str, Any]] = (), *,
             phone_number_id: str = PHONE_NUMBER_ID, name: str = "Ana Lima", wa_id: str = WA_ID) -> dict[str, Any]:
    """One ``messages`` change as Meta sends it."""
    value: dict[str, Any] = {"messaging_product": "whatsapp",
                             "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id}}
    if messages:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]}


def text(wamid: str, body: str, wa_id: str = WA_ID) -> dict[str, Any]:
    return {"from": wa_id, "id": wamid, "timestamp": "1700000000", "type": "text", "text": {"body": body}}


def status(wamid: str, state: str, **extra: Any) -> dict[str, Any]:
    return {"id": wamid, "status": state, "timestamp": "1700000100", "recipient_id": WA_ID, **extra}


def sent_answer(wamid: str) -> tuple[int, dict[str, Any]]:
    return 200, {"messaging_product": "whatsapp", "contacts": [{"input": WA_ID, "wa_id": WA_ID}],
                 "messages": [{"id": wamid}]}


class Scene:
    def __init__(self, h: Harness, ctx: AccountCtx, inbox: dict[str, Any], client: Any) -> None:
        self.h, self.ctx, self.inbox, self.client = h, ctx, inbox, client

    async def post(self, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> Any:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return await self.client.post(f"/api/v1/inboxes/{self.inbox['public_key']}/webhook", content=body,
                                      headers=headers if headers is not None else meta_headers(body))

    async def reply(self, conversation_id: int, content: str) -> dict[str, Any]:
        agent = self.ctx.users["agent"]
        r = await self.h.client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=agent.headers,
                                     json={"content": content})
        assert r.status_code == 201, r.text
        return r.json()

    async def jobs(self) -> list[dict[str, Any]]:
        r = await self.h.client.get("/api/v1/jobs", headers=self.ctx.admin.headers)
        assert r.status_code == 200, r.text
        return [j for j in r.json()["items"] if j["kind"] == "channels.deliver"]


async def _scene(h: Harness, client: Any, graph_base_url: str | None = None) -> Scene:
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    await h.make_user(ctx, "agent", Role.agent)
    inbox = await create_inbox(h, ctx, "whatsapp", meta_config("whatsapp", graph_base_url))
    return Scene(h, ctx, inbox, client)


async def test_one_delivery_with_two_messages_and_a_status_is_stored(h: Harness, live: Any) -> None:
    async with FakeVendor(default=sent_answer("wamid.OUT1")).running() as graph, live_client(live) as client:
        scene = await _scene(h, client, graph.url)
        r = await scene.post(delivery([text("wamid.IN1", "Hi, my order is late")]))
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["duplicate"] is False
        reply = await scene.reply(first["conversation_id"], "Sorry! Checking now.")
        await h.run_jobs()
        assert (await message_out(h, scene.ctx, first["conversation_id"], reply["id"]))["delivery_status"] == "sent"

        payload = delivery([text("wamid.IN2", "Order 1234"),
                            {"from": WA_ID, "id": "wamid.IN3", "timestamp": "1700000050", "type": "image",
                             "image": {"caption": "the box", "mime_type": "image/jpeg", "sha256": "abc=",
                                       "id": "1479537139650973"}}],
                           [status("wamid.OUT1", "delivered")])
        before = await stored(h)
        r = await scene.post(payload)
        assert r.status_code == 200, r.text
        results = r.json()["messages"]
        assert [(m["conversation_id"], m["contact_id"], m["duplicate"]) for m in results] == [
            (first["conversation_id"], first["contact_id"], False)] * 2
        assert await stored(h) == (before[0] + 2, before[1] + 1, before[2])

        rows = await message_rows(h, first["conversation_id"])
        assert [(m.direction, m.content, m.external_id, m.channel) for m in rows] == [
            ("incoming", "Hi, my order is late", "wamid.IN1", "whatsapp"),
            ("outgoing", "Sorry! Checking now.", "wamid.OUT1", "whatsapp"),
            ("incoming", "Order 1234", "wamid.IN2", "whatsapp"),
            ("incoming", "[Image] the box", "wamid.IN3", "whatsapp")]
        assert channel_meta(rows[3]) == {"type": "image", "media": {"id": "1479537139650973", "mime_type": "image/jpeg",
                                                           "sha256": "abc="}}
        out = await message_out(h, scene.ctx, first["conversation_id"], reply["id"])
        assert (out["delivery_status"], out["delivery_error"]) == ("delivered", None)

        r = await h.client.get(f"/api/v1/contacts/{first['contact_id']}", headers=scene.ctx.admin.headers)
        contact = r.json()
        assert (contact["name"], contact["phone"]) == ("Ana Lima", "+4915112345678")
        assert sorted((i["kind"], i["scope"], i["value"], i["verified"]) for i in contact["identities"]) == [
            ("handle", f"inbox:{scene.inbox['id']}", WA_ID, True), ("phone", "", "+4915112345678", True)]

        # Meta retries the same body: the same answers, marked duplicate; nothing new is stored.
        r = await scene.post(payload)
        assert r.status_code == 200, r.text
        assert r.json()["messages"] == [{**m, "duplicate": True} for m in results]
        assert await stored(h) == (before[0] + 2, before[1] + 1, before[2])

        # A message Meta sends again in another delivery is a duplicate too (idempotent per wamid).
        r = await scene.post(delivery([text("wamid.IN2", "Order 1234")], [status("wamid.OUT1", "read")]))
        assert r.json() == {**results[0], "duplicate": True}
        assert await stored(h) == (before[0] + 2, before[1] + 2, before[2])
        out = await message_out(h, scene.ctx, first["conversation_id"], reply["id"])
        assert out["delivery_status"] == "read"

        # A late "delivered" does not move it back.
        r = await scene.post(delivery(statuses=[status("wamid.OUT1", "delivered", timestamp="1700000200")]))
        assert r.json() == {"messages": []}
        assert (await message_out(h, scene.ctx, first["conversation_id"], reply["id"]))["delivery_status"] == "read"


async def test_messages_for_another_number_are_ignored(h: Harness, live: Any) -> None:
    async with live_client(live) as client:
        scene = await _scene(h, client)
        payload = delivery([text("wamid.X1", "for someone else")], phone_number_id="999999")
        ours = delivery([text("wamid.X2", "for us")])
        payload["entry"].append(ours["entry"][0])
        r = await scene.post(payload)
        assert r.status_code == 200, r.text
        assert r.json()["duplicate"] is False
        rows = await message_rows(h, r.json()["conversation_id"])
        assert [m.content for m in rows] == ["for us"]
        r = await scene.post(delivery([text("wamid.X3", "nope")], phone_number_id="999999"))
        assert (r.status_code, r.json()) == (200, {"messages": []})
        assert (await stored(h))[0] == 1


async def test_a_message_listed_twice_in_one_delivery_is_stored_once(h: Harness, live: Any) -> None:
    async with live_client(live) as client:
        scene = await _scene(h, client)
        r = await scene.post(delivery([text("wamid.T", "twice"), text("wamid.T", "twice")]))
        assert r.status_code == 200, r.text
        assert r.json()["duplicate"] is False
        assert (await stored(h))[0] == 1


async def test_non_text_messages_become_readable_messages(h: Harness, live: Any) -> None:
    def msg(wamid: str, kind: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"from": WA_ID, "id": wamid, "timestamp": "1700000000", "type": kind, kind: body, **extra}

    messages = [
        msg("wamid.D", "document", {"caption": "invoice", "filename": "inv-7.pdf", "mime_type": "application/pdf",
                                    "sha256": "h1", "id": "555"}),
        msg("wamid.V", "audio", {"mime_type": "audio/ogg; codecs=opus", "sha256": "h2", "id": "556", "voice": True}),
        msg("wamid.L", "location", {"latitude": 52.52, "longitude": 13.405, "name": "Shop", "address": "Main St 1"}),
        msg("wamid.B", "interactive", {"type": "button_reply", "button_reply": {"id": "yes-1", "title": "Yes"}},
            context={"from": "15550783881", "id": "wamid.OUTX"}),
        msg("wamid.R", "reaction", {"message_id": "wamid.OUTX", "emoji": "👍"}),
        {"from": WA_ID, "id": "wamid.C", "timestamp": "1700000000", "type": "contacts", "contacts": [
            {"name": {"formatted_name": "Bo Chen", "first_name": "Bo"},
             "phones": [{"phone": "+1 555 0100", "wa_id": "15550100", "type": "CELL"}]}]},
        {"from": WA_ID, "id": "wamid.U", "timestamp": "1700000000", "type": "unsupported",
         "errors": [{"code": 131051, "title": "Message type unknown"}]},
    ]
    async with live_client(live) as client:
        scene = await _scene(h, client)
        r = await scene.post(delivery(messages))
        assert r.status_code == 200, r.text
        rows = await message_rows(h, r.json()["messages"][0]["conversation_id"])
    assert [(m.external_id, m.content) for m in rows] == [
        ("wamid.D", "[Document: inv-7.pdf] invoice"), ("wamid.V", "[Voice message]"),
        ("wamid.L", "[Location] Shop, Main St 1 (52.52, 13.405)"), ("wamid.B", "Yes"), ("wamid.R", "[Reaction] 👍"),
        ("wamid.C", "[Contact card] Bo Chen +1 555 0100"),
        ("wamid.U", "[Unsupported WhatsApp message type: unsupported]")]
    assert [channel_meta(m) for m in rows] == [
        {"type": "document", "media": {"id": "555", "mime_type": "application/pdf", "sha256": "h1",
                                       "filename": "inv-7.pdf"}},
        {"type": "audio", "media": {"id": "556", "mime_type": "audio/ogg; codecs=opus", "sha256": "h2",
                                    "voice": True}},
        {"type": "location", "location": {"latitude": 52.52, "longitude": 13.405, "name": "Shop",
                                          "address": "Main St 1"}},
        {"type": "interactive", "reply": {"type": "button_reply", "id": "yes-1", "title": "Yes"},
         "reply_to": "wamid.OUTX"},
        {"type": "reaction", "reaction": {"message_id": "wamid.OUTX", "emoji": "👍"}},
        {"type": "contacts"},
        {"type": "unsupported"}]


async def test_reply_is_sent_through_the_graph_api(h: Harness, live: Any) -> None:
    async with FakeVendor(default=sent_answer("wamid.HBgLOUT")).running() as graph, live_client(live) as client:
        scene = await _scene(h, client, graph.url)
        r = await scene.post(delivery([text("wamid.IN1", "Hello")]))
        conversation_id = r.json()["conversation_id"]
        reply = await scene.reply(conversation_id, "Hi Ana, how can we help?")
        assert graph.calls == []
        await h.run_jobs()
        (call,) = graph.calls
        assert (call.method, call.path, call.query) == ("POST", f"/v25.0/{PHONE_NUMBER_ID}/messages", {})
        assert call.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
        assert call.headers["content-type"] == "application/json"
        assert call.json() == {"messaging_product": "whatsapp", "to": WA_ID, "type": "text",
                               "text": {"body": "Hi Ana, how can we help?"}}
        out = await message_out(h, scene.ctx, conversation_id, reply["id"])
        assert (out["delivery_status"], out["external_id"], out["delivery_error"]) == ("sent", "wamid.HBgLOUT", None)

        clock.advance(LATER)
        await h.run_jobs()
        assert len(graph.calls) == 1  # sent once


async def test_throttling_and_meta_trouble_are_retried_honouring_retry_after(h: Harness, live: Any) -> None:
    async with FakeVendor(default=sent_answer("wamid.LATE")).running() as graph, live_client(live) as client:
        graph.script = [
            (429, {"error": {"message": "Too many calls", "code": 80007}}, {"retry-after": "30"}),
            # Graph's rate limits often come as 400 with a throttling code.
            (400, {"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429}}, {}),
            (503, {}, {}),
        ]
        scene = await _scene(h, client, graph.url)
        r = await scene.post(delivery([text("wamid.IN1", "Hello")]))
        conversation_id = r.json()["conversation_id"]
        reply = await scene.reply(conversation_id, "On it")
        before = utcnow()
        await h.run_jobs()
        (job,) = await scene.jobs()
        assert (job["status"], job["attempts"]) == ("queued", 1)
        assert "WhatsApp Cloud API answered 429 (code 80007): Too many calls" in job["last_error"]
        assert before + timedelta(seconds=30) <= datetime.fromisoformat(job["run_at"]) <= utcnow() + timedelta(
            seconds=30)
        assert (await message_out(h, scene.ctx, conversation_id, reply["id"]))["delivery_status"] == "pending"
        for attempt in (2, 3, 4):
            clock.advance(LATER)
            await h.run_jobs()
            assert len(graph.calls) == attempt
        assert [c.json() for c in graph.calls] == [graph.calls[0].json()] * 4
        out = await message_out(h, scene.ctx, conversation_id, reply["id"])
        assert (out["delivery_status"], out["external_id"]) == ("sent", "wamid.LATE")


async def test_a_refused_message_fails_with_metas_reason(h: Harness, live: Any) -> None:
    async with FakeVendor().running() as graph, live_client(live) as client:
        graph.script = [(400, {"error": {
            "message": "(#131030) Recipient phone number not in allowed list", "type": "OAuthException",
            "code": 131030, "error_data": {"messaging_product": "whatsapp",
                                           "details": "Recipient phone number not in allowed list"},
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}}, {})]
        scene = await _scene(h, client, graph.url)
        r = await scene.post(delivery([text("wamid.IN1", "Hello")]))
        conversation_id = r.json()["conversation_id"]
        reply = await scene.reply(conversation_id, "Hi")
        await h.run_jobs()
        clock.advance(LATER)
        await h.run_jobs()  # permanent: not retried
        assert len(graph.calls) == 1
        error = "WhatsApp Cloud API answered 400 (code 131030): Recipient phone number not in allowed list"
        out = await message_out(h, scene.ctx, conversation_id, reply["id"])
        assert (out["delivery_status"], out["delivery_error"]) == ("failed", error)
        (job,) = await scene.jobs()
        assert job["status"] == "dead" and ACCESS_TOKEN not in job["last_error"]


async def test_a_failed_status_marks_the_reply_failed(h: Harness, live: Any) -> None:
    async with FakeVendor(default=sent_answer("wamid.OUT9")).running() as graph, live_client(live) as client:
        scene = await _scene(h, client, graph.url)
        r = await scene.post(delivery([text("wamid.IN1", "Hello")]))
        conversation_id = r.json()["conversation_id"]
        reply = await scene.reply(conversation_id, "Hi")
        await h.run_jobs()
        r = await scene.post(delivery(statuses=[status("wamid.OUT9", "failed", errors=[{
            "code": 131047, "title": "Re-engagement message",
            "error_data": {"details": "Message failed to send because more than 24 hours have passed"}}])]))
        assert (r.status_code, r.json()) == (200, {"messages": []})
        out = await message_out(h, scene.ctx, conversation_id, reply["id"])
        assert (out["delivery_status"], out["delivery_error"]) == (
            "failed", "131047 Re-engagement message: Message failed to send because more than 24 hours have passed")


async def test_the_same_phone_on_whatsapp_and_another_channel_is_one_contact(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    api_inbox = await h.make_api_inbox(ctx, trust=True)
    r = await h.deliver(api_inbox, {**inbound_payload(source_id="crm-77"),
                                    "contact": {"source_id": "crm-77", "name": "Ana", "phone": "+49 151 12345678"}})
    assert r.status_code == 200, r.text
    api_contact = r.json()["contact_id"]
    inbox = await create_inbox(h, ctx, "whatsapp", meta_config("whatsapp"))
    async with live_client(live) as client:
        scene = Scene(h, ctx, inbox, client)
        r = await scene.post(delivery([text("wamid.IN1", "it's me again")]))
        assert r.status_code == 200, r.text
        assert r.json()["contact_id"] == api_contact
        # Another WhatsApp number is another person.
        r = await scene.post(delivery([text("wamid.IN2", "hello", wa_id="4915199999999")], wa_id="4915199999999"))
        assert r.json()["contact_id"] != api_contact
    r = await h.client.get(f"/api/v1/contacts/{api_contact}", headers=ctx.admin.headers)
    assert sorted((i["kind"], i["value"]) for i in r.json()["identities"]) == [
        ("handle", WA_ID), ("handle", "crm-77"), ("phone", "+4915112345678")]


async def test_a_contact_known_only_by_phone_is_addressed_by_number(h: Harness) -> None:
    async with FakeVendor(default=sent_answer("wamid.P")).running() as graph:
        config = WhatsAppChannel.config_model.model_validate(meta_config("whatsapp", graph.url))
        adapter = WhatsAppChannel(config, AdapterContext(inbox_id=1, account_id=1, http=h.runtime.http,
                                                         outbound_allowlist=frozenset({"127.0.0.1"})))
        result = await adapter.send(OutboundMessage(
            message_id=1, conversation_id=1, conversation_key=None, content="Hello", content_html=None,
            sender_name="Agent", recipient=Recipient(contact_id=1, name="Ana", handles={"phone": "+4915112345678"}),
            attachments=[], created_at=utcnow(), idempotency_key="msg_1"))
    assert result.external_id == "wamid.P"
    assert graph.calls[0].json()["to"] == "4915112345678"


def test_capabilities_refuse_long_messages_and_replies_outside_24_hours() -> None:
    caps = WhatsAppChannel.capabilities
    now = utcnow()
    assert (caps.can_send, caps.max_message_chars, caps.reply_window, caps.recipient_kinds) == (
        True, 4096, timedelta(hours=24), (IdentityKind.phone, IdentityKind.handle))
    assert caps.refusal(chars=4096, last_incoming_at=now - timedelta(hours=23, minutes=59), now=now) is None
    too_long = caps.refusal(chars=4097, last_incoming_at=now, now=now)
    assert (too_long.code, too_long.detail) == (
        "too_long", "the message has 4097 characters; this channel allows at most 4096")
    late = caps.refusal(chars=10, last_incoming_at=now - timedelta(hours=24, seconds=1), now=now)
    assert (late.code, "24 hours" in late.detail) == ("window", True)
    assert caps.refusal(chars=10, last_incoming_at=None, now=now).code == "window"
