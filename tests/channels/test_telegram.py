"""Telegram inboxes over real HTTP: the secret-token header, Update objects (private chats only),
edits, replays, and replies through a fake Bot API with its errors."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from swarmdesk.accounts.models import Role
from swarmdesk.channels.telegram.adapter import TelegramChannel
from swarmdesk.config import Settings
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.core.clock import clock, utcnow
from tests.channels.test_meta_common import (
    FakeVendor,
    channel_meta,
    create_inbox,
    live_client,
    message_out,
    message_rows,
    stored,
)
from tests.support import AccountCtx, Harness

BOT_TOKEN = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET = "s3cret-token_for-the-webhook-0123456789"
USER_ID = 431109876


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"job_backoff_base": 1.0, "job_backoff_max": 3600.0})


def message(message_id: int, text: str | None = None, *, chat_type: str = "private", user_id: int = USER_ID,
            **extra: Any) -> dict[str, Any]:
    chat: dict[str, Any] = {"id": user_id, "type": "private", "first_name": "Ana", "username": "ana_l"}
    if chat_type != "private":
        chat = {"id": -1001234567890, "type": chat_type, "title": "Shop fans"}
    m: dict[str, Any] = {"message_id": message_id,
                         "from": {"id": user_id, "is_bot": False, "first_name": "Ana", "last_name": "Lima",
                                  "username": "ana_l", "language_code": "pt"},
                         "chat": chat, "date": 1700000000, **extra}
    if text is not None:
        m["text"] = text
    return m


def update(update_id: int, **kinds: Any) -> dict[str, Any]:
    return {"update_id": update_id, **kinds}


class Bot:
    def __init__(self, h: Harness, ctx: AccountCtx, inbox: dict[str, Any], client: Any) -> None:
        self.h, self.ctx, self.inbox, self.client = h, ctx, inbox, client

    async def post(self, payload: dict[str, Any], secret: str | None = SECRET) -> Any:
        headers = {"content-type": "application/json"}
        if secret is not None:
            headers["x-telegram-bot-api-secret-token"] = secret
        return await self.client.post(f"/api/v1/inboxes/{self.inbox['public_key']}/webhook",
                                      content=orjson.dumps(payload), headers=headers)


async def _bot(h: Harness, client: Any, api_base_url: str | None = None) -> Bot:
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    await h.make_user(ctx, "agent", Role.agent)
    config: dict[str, Any] = {"bot_token": BOT_TOKEN, "secret_token": SECRET}
    if api_base_url:
        config["api_base_url"] = api_base_url
    return Bot(h, ctx, await create_inbox(h, ctx, "telegram", config), client)


@pytest.mark.parametrize("case", ["missing", "wrong", "prefix", "empty"])
async def test_updates_without_the_secret_token_are_refused(h: Harness, live: Any, case: str) -> None:
    async with live_client(live) as client:
        bot = await _bot(h, client)
        secret = {"missing": None, "wrong": "x" * len(SECRET), "prefix": SECRET[:-1], "empty": ""}[case]
        r = await bot.post(update(1, message=message(10, "hello")), secret=secret)
        assert r.status_code == 401, r.text
        assert r.json()["type"].endswith("invalid-signature")
        assert await stored(h) == (0, 0, 0)
        r = await bot.post(update(1, message=message(10, "hello")))
        assert r.status_code == 200, r.text
        assert await stored(h) == (1, 1, 1)


async def test_a_private_message_is_stored_with_the_user_as_handle(h: Harness, live: Any) -> None:
    async with live_client(live) as client:
        bot = await _bot(h, client)
        r = await bot.post(update(900001, message=message(10, "Where is my parcel?")))
        assert r.status_code == 200, r.text
        result = r.json()
        assert result["duplicate"] is False
        (row,) = await message_rows(h, result["conversation_id"])
        assert (row.external_id, row.content, row.channel) == (f"{USER_ID}:10", "Where is my parcel?", "telegram")
        assert channel_meta(row) == {"chat_id": USER_ID, "username": "ana_l"}
        r = await h.client.get(f"/api/v1/contacts/{result['contact_id']}", headers=bot.ctx.admin.headers)
        contact = r.json()
        assert contact["name"] == "Ana Lima"
        assert [(i["kind"], i["scope"], i["value"], i["verified"]) for i in contact["identities"]] == [
            ("handle", f"inbox:{bot.inbox['id']}", str(USER_ID), True)]

        # Telegram retries the update unchanged: the first answer, nothing new.
        r = await bot.post(update(900001, message=message(10, "Where is my parcel?")))
        assert r.json() == {**result, "duplicate": True}
        assert await stored(h) == (1, 1, 1)


async def test_media_edits_and_what_is_ignored(h: Harness, live: Any) -> None:
    async with live_client(live) as client:
        bot = await _bot(h, client)
        r = await bot.post(update(1, message=message(
            11, caption="broken on arrival", photo=[{"file_id": "small", "file_unique_id": "s", "width": 90,
                                                     "height": 90},
                                                    {"file_id": "AgACAgQAAxkBAAIB", "file_unique_id": "b",
                                                     "width": 1280, "height": 1280}])))
        conversation_id = r.json()["conversation_id"]
        await bot.post(update(2, message=message(12, document={"file_id": "BQACAgQ", "file_unique_id": "d",
                                                               "file_name": "receipt.pdf",
                                                               "mime_type": "application/pdf"})))
        await bot.post(update(3, edited_message=message(10, "Where is my parcel #77?", edit_date=1700000100)))
        before = await stored(h)
        for ignored in [update(4, message=message(13, "hi all", chat_type="group")),
                        update(5, message=message(14, "hi channel", chat_type="supergroup")),
                        update(6, message={**message(15, "beep"), "from": {"id": 1, "is_bot": True,
                                                                           "first_name": "OtherBot"}}),
                        update(7, callback_query={"id": "1", "from": {"id": USER_ID, "is_bot": False,
                                                                      "first_name": "Ana"}, "data": "x"})]:
            r = await bot.post(ignored)
            assert (r.status_code, r.json()) == (200, {"messages": []})
        assert (await stored(h))[0] == before[0]
        rows = await message_rows(h, conversation_id)
    assert [(m.external_id, m.content) for m in rows] == [
        (f"{USER_ID}:11", "broken on arrival\n[Photo]"),
        (f"{USER_ID}:12", "[Document: receipt.pdf]"),
        (f"{USER_ID}:10:edit:1700000100", "[Edited] Where is my parcel #77?")]
    assert [channel_meta(m) for m in rows] == [
        {"media": {"type": "photo", "file_id": "AgACAgQAAxkBAAIB"}, "chat_id": USER_ID, "username": "ana_l"},
        {"media": {"type": "document", "file_id": "BQACAgQ", "mime_type": "application/pdf"}, "chat_id": USER_ID,
         "username": "ana_l"},
        {"chat_id": USER_ID, "username": "ana_l", "edit_of": f"{USER_ID}:10"}]


async def test_an_update_id_reused_for_another_update_is_not_a_replay(h: Harness, live: Any) -> None:
    # After a quiet week Telegram picks update ids at random: a repeat with other content is new.
    async with live_client(live) as client:
        bot = await _bot(h, client)
        first = (await bot.post(update(5, message=message(20, "first")))).json()
        r = await bot.post(update(5, message=message(21, "months later")))
        assert r.status_code == 200, r.text
        assert r.json()["duplicate"] is False and r.json()["message_id"] != first["message_id"]


async def test_reply_is_sent_with_send_message(h: Harness, live: Any) -> None:
    answer = {"ok": True, "result": {"message_id": 77, "from": {"id": 7012345678, "is_bot": True},
                                     "chat": {"id": USER_ID, "type": "private"}, "date": 1700000200,
                                     "text": "Tomorrow!"}}
    async with FakeVendor(default=(200, answer)).running() as api, live_client(live) as client:
        bot = await _bot(h, client, api.url)
        r = await bot.post(update(1, message=message(10, "When?")))
        conversation_id = r.json()["conversation_id"]
        r = await h.client.post(f"/api/v1/conversations/{conversation_id}/messages",
                                headers=bot.ctx.users["agent"].headers, json={"content": "Tomorrow!"})
        reply = r.json()
        await h.run_jobs()
        (call,) = api.calls
        assert (call.method, call.path) == ("POST", f"/bot{BOT_TOKEN}/sendMessage")
        assert call.headers["content-type"] == "application/json"
        assert call.json() == {"chat_id": USER_ID, "text": "Tomorrow!"}
        out = await message_out(h, bot.ctx, conversation_id, reply["id"])
        assert (out["delivery_status"], out["external_id"]) == ("sent", f"{USER_ID}:77")


async def test_flood_control_is_retried_after_retry_after_and_a_block_is_permanent(h: Harness, live: Any) -> None:
    ok = {"ok": True, "result": {"message_id": 78, "chat": {"id": USER_ID, "type": "private"}, "date": 1}}
    async with FakeVendor(default=(200, ok)).running() as api, live_client(live) as client:
        api.script = [(429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
                             "parameters": {"retry_after": 7}}, {})]
        bot = await _bot(h, client, api.url)
        r = await bot.post(update(1, message=message(10, "Hi")))
        conversation_id = r.json()["conversation_id"]
        agent = bot.ctx.users["agent"]
        first = (await h.client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=agent.headers,
                                     json={"content": "One"})).json()
        before = utcnow()
        await h.run_jobs()
        r = await h.client.get("/api/v1/jobs", headers=bot.ctx.admin.headers)
        (job,) = [j for j in r.json()["items"] if j["kind"] == "channels.deliver"]
        assert job["status"] == "queued"
        assert "Telegram answered 429: Too Many Requests: retry after 7" in job["last_error"]
        run_at = datetime.fromisoformat(job["run_at"])
        assert before + timedelta(seconds=7) <= run_at <= utcnow() + timedelta(seconds=7)
        clock.advance(timedelta(seconds=8))
        await h.run_jobs()
        assert len(api.calls) == 2
        assert (await message_out(h, bot.ctx, conversation_id, first["id"]))["external_id"] == f"{USER_ID}:78"

        api.script = [(403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
                       {})]
        second = (await h.client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=agent.headers,
                                      json={"content": "Two"})).json()
        await h.run_jobs()
        clock.advance(timedelta(hours=2))
        await h.run_jobs()
        assert len(api.calls) == 3
        out = await message_out(h, bot.ctx, conversation_id, second["id"])
        assert (out["delivery_status"], out["delivery_error"]) == (
            "failed", "Telegram answered 403: Forbidden: bot was blocked by the user")


async def test_the_bot_token_never_reaches_an_error(h: Harness, live: Any) -> None:
    unreachable = FakeVendor()  # never started: connections are refused
    async with live_client(live) as client:
        bot = await _bot(h, client, unreachable.url)
        r = await bot.post(update(1, message=message(10, "Hi")))
        conversation_id = r.json()["conversation_id"]
        await h.client.post(f"/api/v1/conversations/{conversation_id}/messages",
                            headers=bot.ctx.users["agent"].headers, json={"content": "Hello"})
        await h.run_jobs()
        r = await h.client.get("/api/v1/jobs", headers=bot.ctx.admin.headers)
        (job,) = [j for j in r.json()["items"] if j["kind"] == "channels.deliver"]
    assert job["status"] == "queued" and "Telegram could not be reached: ConnectError" in job["last_error"]
    assert BOT_TOKEN not in job["last_error"] and BOT_TOKEN.split(":")[1] not in job["last_error"]


async def test_secrets_are_write_only_and_the_secret_token_is_generated(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, "telegram", {"bot_token": BOT_TOKEN})
    generated = inbox["generated_secrets"]["secret_token"]
    assert len(generated) >= 32 and set(inbox["generated_secrets"]) == {"secret_token"}
    assert inbox["secrets_set"] == ["bot_token", "secret_token"]
    assert inbox["config"] == {"api_base_url": "https://api.telegram.org/"}
    for config in [{"bot_token": "not-a-token"}, {"bot_token": BOT_TOKEN, "secret_token": "has spaces in it!!"},
                   {"bot_token": BOT_TOKEN, "secret_token": "short"}, {"bot_token": BOT_TOKEN, "chat": 1}]:
        r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                                json={"name": "x", "channel_kind": "telegram", "config": config})
        assert r.status_code == 422, (config, r.text)


def test_capabilities_allow_4096_characters_at_any_time() -> None:
    caps = TelegramChannel.capabilities
    now = utcnow()
    assert (caps.can_send, caps.max_message_chars, caps.reply_window, caps.recipient_kinds) == (
        True, 4096, None, (IdentityKind.handle,))
    assert caps.refusal(chars=4096, last_incoming_at=None, now=now) is None
    assert caps.refusal(chars=4096, last_incoming_at=now - timedelta(days=400), now=now) is None
    assert caps.refusal(chars=4097, last_incoming_at=now, now=now).code == "too_long"
