from tests.support import Harness, inbound_payload


async def test_inbound_message_creates_conversation(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    r = await h.deliver(inbox, inbound_payload(message_id="m-1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["duplicate"] is False
    r = await h.client.get(f"/api/v1/conversations/{body['conversation_id']}/messages", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    assert [m["content"] for m in r.json()["items"]] == ["Hello, my order is late"]
