"""One customer, one conversation: a known customer writing on another channel joins their open
conversation (per the account's policy), every join says why, and a reply can go out on any channel
the customer has."""

from __future__ import annotations

from datetime import timedelta

import orjson
from sqlalchemy import select

from swarmdesk.channels.base import InboundMessage
from swarmdesk.channels.inbound import Delivery, do_ingest_delivery
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts.identity import IdentityClaim
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.conversations.linking import JoinPolicy
from swarmdesk.conversations.models import Message
from swarmdesk.core.clock import clock, utcnow
from tests.support import AccountCtx, ApiInbox, Harness, Receiver, inbound_payload, sign


def _from(email: str, source_id: str, **extra: object) -> dict:
    payload = inbound_payload(source_id=source_id, **extra)
    payload["contact"]["email"] = email
    return payload


async def _two_channels(h: Harness) -> tuple[AccountCtx, ApiInbox, ApiInbox]:
    ctx = await h.make_account()
    # Trusted identifiers: both integrations vouch for the email, so it joins one customer.
    chat = await h.make_api_inbox(ctx, trust=True)
    shop = await h.make_api_inbox(ctx, trust=True)
    return ctx, chat, shop


async def _messages(h: Harness, ctx: AccountCtx, conversation_id: int) -> list[dict]:
    r = await h.client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def _set_policy(h: Harness, ctx: AccountCtx, **policy: object) -> None:
    r = await h.client.patch("/api/v1/account", headers=ctx.admin.headers,
                             json={"settings": {"conversation_join": policy}})
    assert r.status_code == 200, r.text


async def test_a_known_customer_on_another_channel_joins_the_open_conversation_and_says_why(h: Harness) -> None:
    ctx, chat, shop = await _two_channels(h)
    first = (await h.deliver(chat, _from("ana@example.com", "chat-ana"))).json()
    second = (await h.deliver(shop, _from("Ana@Example.com", "shop-77", content="Any news?"))).json()
    assert second["contact_id"] == first["contact_id"]
    assert second["conversation_id"] == first["conversation_id"]
    items = await _messages(h, ctx, first["conversation_id"])
    assert [m["inbox_id"] for m in items] == [chat.id, shop.id]
    assert items[0]["link"]["reason"] == "new"
    assert items[1]["link"]["reason"] == "open_conversation"
    assert "ana@example.com" in items[1]["link"]["detail"]


async def test_policy_always_new_keeps_channels_apart_but_same_channel_still_joins(h: Harness) -> None:
    ctx, chat, shop = await _two_channels(h)
    await _set_policy(h, ctx, mode="always_new")
    first = (await h.deliver(chat, _from("ana@example.com", "chat-ana"))).json()
    other = (await h.deliver(shop, _from("ana@example.com", "shop-77"))).json()
    again = (await h.deliver(chat, _from("ana@example.com", "chat-ana", content="still there?"))).json()
    assert other["contact_id"] == first["contact_id"]
    assert other["conversation_id"] != first["conversation_id"]
    assert again["conversation_id"] == first["conversation_id"]
    assert (await _messages(h, ctx, first["conversation_id"]))[1]["link"]["reason"] == "same_channel"


async def test_policy_within_hours_joins_a_recent_resolved_conversation_but_not_an_old_one(h: Harness) -> None:
    ctx, chat, shop = await _two_channels(h)
    await _set_policy(h, ctx, mode="within_hours", hours=4)
    first = (await h.deliver(chat, _from("ana@example.com", "chat-ana"))).json()
    r = await h.client.patch(f"/api/v1/conversations/{first['conversation_id']}", headers=ctx.admin.headers,
                             json={"status": "resolved"})
    assert r.status_code == 200, r.text
    clock.advance(timedelta(hours=3))
    recent = (await _deliver_now(h, shop, _from("ana@example.com", "shop-77"))).json()
    assert recent["conversation_id"] == first["conversation_id"]
    r = await h.client.get(f"/api/v1/conversations/{first['conversation_id']}", headers=ctx.admin.headers)
    assert r.json()["status"] == "open"  # the customer's message reopened it
    assert (await _messages(h, ctx, first["conversation_id"]))[1]["link"]["reason"] == "recent_conversation"
    await h.client.patch(f"/api/v1/conversations/{first['conversation_id']}", headers=ctx.admin.headers,
                         json={"status": "resolved"})
    clock.advance(timedelta(hours=5))
    # Five hours after its last activity, beyond the four-hour window: a new conversation.
    late = (await _deliver_now(h, shop, _from("ana@example.com", "shop-77", content="new topic"))).json()
    assert late["conversation_id"] != first["conversation_id"]


async def _deliver_now(h: Harness, inbox: ApiInbox, payload: dict) -> object:
    """Signed at the test clock's "now" (the channel checks the timestamp against it)."""
    body = orjson.dumps(payload)
    return await h.client.post(inbox.webhook_path, content=body, headers=sign(inbox.secret, body, at=utcnow()))


async def test_an_unverified_claim_never_joins_another_customers_conversation(h: Harness) -> None:
    ctx = await h.make_account()
    trusted = await h.make_api_inbox(ctx, trust=True)
    untrusted = await h.make_api_inbox(ctx, trust=False)
    victim = (await h.deliver(trusted, _from("ana@example.com", "t-ana"))).json()
    spoof = (await h.deliver(untrusted, _from("ana@example.com", "u-mallory"))).json()
    assert spoof["contact_id"] != victim["contact_id"]
    assert spoof["conversation_id"] != victim["conversation_id"]


async def test_a_thread_reference_to_someone_elses_conversation_is_noted_not_followed(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    ana = (await h.deliver(inbox, inbound_payload(message_id="ana-1", source_id="ana"))).json()
    async with h.runtime.uow() as uow:
        row = await uow.session.get(Inbox, inbox.id)
    assert row is not None

    def delivery(source_id: str, refs: list[str], n: int) -> Delivery:
        message = InboundMessage(external_id=f"{source_id}-{n}", content="re: your order",
                                 claims=[IdentityClaim(IdentityKind.handle, source_id, f"inbox:{inbox.id}", True)],
                                 thread_refs=refs)
        return Delivery(row, f"d-{source_id}-{n}", f"sha-{source_id}-{n}", [message], [], JoinPolicy())

    # A stranger quotes Ana's message id (a forwarded mail carries it): a new conversation, with a note.
    (stranger,) = await do_ingest_delivery(h.runtime, delivery("mallory", ["unknown@x", "ana-1"], 1))
    assert stranger.conversation_id != ana["conversation_id"]
    items = await _messages(h, ctx, stranger.conversation_id)
    assert items[0]["link"]["reason"] == "new"
    assert items[0]["link"]["related_conversation_id"] == ana["conversation_id"]
    # Ana's own reply to the same message joins by the thread, even with the policy saying "always new".
    (own,) = await do_ingest_delivery(h.runtime, delivery("ana", ["ana-1"], 2))
    assert own.conversation_id == ana["conversation_id"]
    assert (await _messages(h, ctx, own.conversation_id))[-1]["link"]["reason"] == "thread"


async def test_a_reply_goes_where_the_customer_last_wrote_or_on_a_chosen_channel(h: Harness) -> None:
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    async with Receiver().running() as chat_rx, Receiver().running() as shop_rx:
        chat = await h.make_api_inbox(ctx, trust=True, callback_url=chat_rx.url)
        shop = await h.make_api_inbox(ctx, trust=True, callback_url=shop_rx.url)
        conv = (await h.deliver(chat, _from("ana@example.com", "chat-ana"))).json()["conversation_id"]
        await h.deliver(shop, _from("ana@example.com", "shop-77", content="by the shop app now"))

        r = await h.client.get(f"/api/v1/conversations/{conv}/reply-channels", headers=ctx.admin.headers)
        assert r.status_code == 200, r.text
        options = {o["inbox_id"]: o for o in r.json()}
        assert options[shop.id]["default"] and not options[chat.id]["default"]
        assert options[chat.id]["available"] and options[shop.id]["available"]

        url = f"/api/v1/conversations/{conv}/messages"
        default = await h.client.post(url, headers=ctx.admin.headers, json={"content": "Hi from us"})
        chosen = await h.client.post(url, headers=ctx.admin.headers, json={"content": "And in chat", "inbox_id": chat.id})
        note = await h.client.post(url, headers=ctx.admin.headers, json={"content": "n", "private": True,
                                                                         "inbox_id": chat.id})
        assert default.status_code == chosen.status_code == 201, (default.text, chosen.text)
        assert note.status_code == 422
        assert default.json()["inbox_id"] == shop.id and chosen.json()["inbox_id"] == chat.id
        await h.run_jobs()
        assert [r.json()["data"]["content"] for r in shop_rx.requests] == ["Hi from us"]
        assert [r.json()["data"]["content"] for r in chat_rx.requests] == ["And in chat"]


async def test_a_reply_on_an_unusable_channel_is_refused_with_the_reason(h: Harness) -> None:
    ctx = await h.make_account()
    other = await h.make_account("Other")
    inbox = await h.make_api_inbox(ctx)
    foreign = await h.make_api_inbox(other)
    conv = (await h.deliver(inbox, inbound_payload(source_id="ana"))).json()["conversation_id"]
    url = f"/api/v1/conversations/{conv}/messages"
    r = await h.client.post(url, headers=ctx.admin.headers, json={"content": "x", "inbox_id": foreign.id})
    assert r.status_code == 404
    r = await h.client.patch(f"/api/v1/inboxes/{inbox.id}", headers=ctx.admin.headers, json={"is_active": False})
    assert r.status_code == 200, r.text
    r = await h.client.post(url, headers=ctx.admin.headers, json={"content": "x"})
    assert r.status_code == 409 and r.json()["code"] == "inactive", r.text
    async with h.runtime.uow() as uow:
        outgoing = (await uow.session.scalars(select(Message).where(Message.direction == "outgoing"))).all()
    assert outgoing == []  # nothing half-written
