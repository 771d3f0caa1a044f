"""@mentions in internal notes: the mention rows, the mentioned joining the conversation (and its
audience, from the note's own event on), their notifications, and refused mentions storing nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from swarmdesk.accounts.models import Role
from swarmdesk.conversations.models import Conversation, ConversationMention, ConversationParticipant, Message
from swarmdesk.core.clock import clock
from swarmdesk.events.base import Audience, BaseEvent
from swarmdesk.notifications.models import Notification
from tests.support import AccountCtx, ApiInbox, Harness, Staff, inbound_payload

PROBLEM = "application/problem+json"


def types(events: list[BaseEvent]) -> list[str]:
    return [e.type for e in events]


def staff(*, team: int | None = None, users: tuple[int, ...] = ()) -> Audience:
    if team is None:
        return Audience(roles=("admin", "supervisor"), all_agents=True, user_ids=users)
    return Audience(roles=("admin", "supervisor"), team_ids=(team,), user_ids=users)


async def setup(h: Harness) -> tuple[AccountCtx, ApiInbox, int, int]:
    """An account, a conversation of team Billing, and its id and contact id."""
    clock.freeze(datetime.now(UTC).replace(microsecond=0))
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    team = await h.make_team(ctx, "Billing")
    r = await h.deliver(inbox, inbound_payload(message_id="m-1"))
    assert r.status_code == 200, r.text
    cid = r.json()["conversation_id"]
    r = await h.client.patch(f"/api/v1/conversations/{cid}", headers=ctx.admin.headers, json={"team_id": team})
    assert r.status_code == 200, r.text
    return ctx, inbox, cid, team


async def note(h: Harness, who: Staff, cid: int, body: dict, status: int = 201) -> dict:
    r = await h.client.post(f"/api/v1/conversations/{cid}/messages", headers=who.headers, json=body)
    assert r.status_code == status, r.text
    if status >= 400:
        assert r.headers["content-type"].split(";")[0] == PROBLEM
        assert r.json()["status"] == status and r.json()["title"] and r.json()["detail"]
    return r.json()


async def stored(h: Harness) -> dict[str, object]:
    async with h.runtime.uow() as uow:
        s = uow.session
        return {
            "messages": await s.scalar(select(func.count()).select_from(Message)),
            "mentions": await s.scalar(select(func.count()).select_from(ConversationMention)),
            "participants": await s.scalar(select(func.count()).select_from(ConversationParticipant)),
            "notifications": await s.scalar(select(func.count()).select_from(Notification)),
            "participant_ids": [c.participant_ids for c in (await s.scalars(select(Conversation))).all()],
        }


async def test_mentions_in_a_note_notify_and_bring_colleagues_in(h: Harness) -> None:
    ctx, inbox, cid, team = await setup(h)
    returns = await h.make_team(ctx, "Returns")
    agent = await h.make_user(ctx, "agent", teams=(returns,))  # not in Billing: cannot see it yet
    expert = await h.make_user(ctx, "expert", role=Role.expert)
    for who in (agent, expert):
        r = await h.client.get(f"/api/v1/conversations/{cid}", headers=who.headers)
        assert r.status_code == 404, r.text

    with h.capture_events() as events:
        body = await note(h, ctx.admin, cid, {"content": "@Agent @Expert\nis this   a refund?", "private": True,
                                              "mention_ids": [agent.user_id, expert.user_id, agent.user_id]})
    assert types(events) == ["message.created", "notification.created", "notification.created"]
    assert not [e for e in events if e.type.startswith("customer.") or e.audience.contact_ids]
    created, to_agent, to_expert = events

    # The note's own event already reaches the mentioned.
    assert created.audience == staff(team=team, users=tuple(sorted((agent.user_id, expert.user_id))))
    m = created.message
    assert (m.id, m.private, m.delivery_status, m.meta) == (
        body["id"], True, "not_sent", {"mentions": [agent.user_id, expert.user_id]})
    assert body["meta"] == {"mentions": [agent.user_id, expert.user_id]}

    async with h.runtime.uow() as uow:
        notes = {n.user_id: n for n in (await uow.session.scalars(select(Notification))).all()}
        mentions = (await uow.session.execute(
            select(ConversationMention.user_id, ConversationMention.message_id, ConversationMention.conversation_id,
                   ConversationMention.account_id, ConversationMention.created_at)
            .order_by(ConversationMention.user_id))).all()
        participants = (await uow.session.execute(
            select(ConversationParticipant.user_id, ConversationParticipant.conversation_id)
            .order_by(ConversationParticipant.user_id))).all()
        conversation = await uow.session.get(Conversation, cid)
    assert [tuple(r) for r in mentions] == [(u, body["id"], cid, ctx.account_id, clock.now())
                                            for u in sorted((agent.user_id, expert.user_id))]
    assert [tuple(r) for r in participants] == [(u, cid) for u in sorted((agent.user_id, expert.user_id))]
    assert conversation.participant_ids == sorted((agent.user_id, expert.user_id))

    for event, who in ((to_agent, agent), (to_expert, expert)):
        assert event.audience == Audience(user_ids=(who.user_id,))
        assert event.notification.model_dump() == {
            "id": notes[who.user_id].id, "kind": "mentioned", "conversation_id": cid, "message_id": body["id"],
            "actor_name": "Acme Admin", "snippet": "@Agent @Expert is this a refund?", "read_at": None,
            "created_at": clock.now()}

    # Both can see the conversation now, and the expert can answer in a note.
    for who in (agent, expert):
        r = await h.client.get(f"/api/v1/conversations/{cid}", headers=who.headers)
        assert r.status_code == 200, r.text
        r = await h.client.get(f"/api/v1/conversations/{cid}/messages", headers=who.headers)
        assert [x["id"] for x in r.json()["items"]][-1] == body["id"]
    assert [c["id"] for c in (await h.client.get("/api/v1/conversations", headers=agent.headers)).json()["items"]] \
        == [cid]
    with h.capture_events() as events:
        answer = await note(h, expert, cid, {"content": "Yes, refund it", "private": True,
                                             "mention_ids": [ctx.admin.user_id]})
    assert types(events) == ["message.created", "notification.created"]
    assert events[1].audience == Audience(user_ids=(ctx.admin.user_id,))
    assert (events[1].notification.actor_name, events[1].notification.message_id) == ("Expert", answer["id"])


async def test_the_author_is_never_notified_of_their_own_mention(h: Harness) -> None:
    ctx, inbox, cid, team = await setup(h)
    agent = await h.make_user(ctx, "agent", teams=(team,))
    with h.capture_events() as events:
        body = await note(h, agent, cid, {"content": "note to self", "private": True,
                                          "mention_ids": [agent.user_id]})
    assert types(events) == ["message.created"]
    assert events[0].audience == staff(team=team, users=(agent.user_id,))
    assert body["meta"] == {"mentions": [agent.user_id]}
    counts = await stored(h)
    assert (counts["mentions"], counts["notifications"]) == (1, 0)


async def test_notes_and_replies_without_mentions_are_unchanged(h: Harness) -> None:
    ctx, inbox, cid, team = await setup(h)
    with h.capture_events() as events:
        body = await note(h, ctx.admin, cid, {"content": "plain note", "private": True})
    assert types(events) == ["message.created"]
    assert (body["meta"], events[0].audience) == ({}, staff(team=team))
    counts = await stored(h)
    assert (counts["mentions"], counts["participants"], counts["notifications"]) == (0, 0, 0)


async def test_refused_mentions_store_nothing(h: Harness) -> None:
    ctx, inbox, cid, team = await setup(h)
    agent = await h.make_user(ctx, "agent", teams=(team,))
    gone = await h.make_user(ctx, "gone")
    r = await h.client.patch(f"/api/v1/users/{gone.user_id}", headers=ctx.admin.headers, json={"is_active": False})
    assert r.status_code == 200, r.text
    elsewhere = await h.make_account("Globex")
    stranger = await h.make_user(elsewhere, "stranger")
    before = await stored(h)
    with h.capture_events() as events:
        problem = await note(h, agent, cid, {"content": "hi", "mention_ids": [ctx.admin.user_id]}, 422)
        assert "only an internal note (private=true) can mention" in problem["detail"], problem
        assert [e["loc"] for e in problem["errors"]] == [["body"]]
        problem = await note(h, agent, cid, {"content": "hi", "private": False, "mention_ids": [agent.user_id]}, 422)
        assert "only an internal note" in problem["detail"]

        problem = await note(h, agent, cid, {"content": "hi", "private": True,
                                             "mention_ids": [ctx.admin.user_id, 999_999]}, 422)
        assert problem["detail"] == "mention_ids: 999999 is not an active user of this account", problem
        assert problem["unknown_ids"] == [999_999]
        problem = await note(h, agent, cid, {"content": "hi", "private": True,
                                             "mention_ids": [stranger.user_id, gone.user_id]}, 422)
        assert problem["detail"] == (f"mention_ids: {stranger.user_id}, {gone.user_id} are not active users "
                                     "of this account"), problem

        for bad in ({"mention_ids": [0]}, {"mention_ids": ["me"]}, {"mention_ids": [2**64]},
                    {"mention_ids": list(range(1, 22))}, {"mentions": [agent.user_id]}):
            await note(h, agent, cid, {"content": "hi", "private": True, **bad}, 422)
    assert events == []
    assert await stored(h) == before
