"""Swarmdesk acting by itself (routing, automation, SLAs) goes through the same actions as a person,
recorded with the system as the actor; its replies are not a human first response."""

from __future__ import annotations

from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.conversations import actions, service
from swarmdesk.conversations.schemas import ConversationUpdate, MessageCreate
from tests.support import Harness, inbound_payload


async def test_the_system_assigns_and_replies_as_itself(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    agent = await h.make_user(ctx, "agent")
    inbox = await h.make_api_inbox(ctx)
    cid = (await h.deliver(inbox, inbound_payload())).json()["conversation_id"]
    system = StaffPrincipal.system(ctx.account_id, "Routing")
    assert system.is_system and system.user_id == 0
    async with h.runtime.uow() as uow:
        conversation = await service.get_by_id(uow.session, ctx.account_id, cid)
        await actions.do_update_conversation(uow, system, conversation, ConversationUpdate(assignee_id=agent.user_id))
    async with h.runtime.uow() as uow:
        conversation = await service.get_by_id(uow.session, ctx.account_id, cid)
        await actions.do_send_message(uow, system, conversation, MessageCreate(content="We got your message."),
                                      store=None, max_attachment_bytes=1)  # type: ignore[arg-type]
    r = await h.client.get(f"/api/v1/conversations/{cid}/activity", headers=ctx.admin.headers)
    assigned = [a for a in r.json()["items"] if a["verb"] == "assigned"]
    assert [(a["actor_type"], a["actor_id"], a["data"]["to"]) for a in assigned] == [("system", None, agent.user_id)]
    r = await h.client.get(f"/api/v1/conversations/{cid}/messages", headers=ctx.admin.headers)
    reply = r.json()["items"][-1]
    assert (reply["sender"]["type"], reply["sender"]["id"], reply["content"]) == ("system", None, "We got your message.")
    r = await h.client.get(f"/api/v1/conversations/{cid}", headers=ctx.admin.headers)
    assert r.json()["first_response_at"] is None and r.json()["last_agent_message_at"] is not None
    r = await h.client.get("/api/v1/notifications", headers=agent.headers)
    assert [(n["kind"], n["actor_name"]) for n in r.json()["items"]] == [("assigned", "Routing")]
