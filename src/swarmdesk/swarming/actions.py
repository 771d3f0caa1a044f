"""Every observable change to swarms. The only module of this domain that publishes.

Decisions (docs/swarming.md):
- The owner is the conversation's assignee. A person who starts a swarm on an unassigned
  conversation becomes its assignee first (the ordinary assignment, in the same transaction);
  Swarmdesk (automation) starting one on an unassigned conversation leaves it without an owner,
  and whoever is assigned later manages it. The owner stays the customer's single point of
  contact: experts advise in the room (and may add internal notes), never reply to the customer.
- An invitation makes the invited a participant of the conversation, so the notification's link
  opens it and they can read the case before joining; joining puts them in the room (and makes
  anyone who joins unasked a participant too). Leaving the room keeps the participation: what they
  wrote stays part of the case they took part in.
- Everything in the room goes to ``audience.swarm_room`` (the conversation's staff, which holds
  every member) and lives in swarming's own tables: no customer event type exists for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from swarmdesk.accounts.models import Role, User
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.conversations import actions as conversation_actions
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, ConversationStatus
from swarmdesk.conversations.schemas import ConversationUpdate, MessageCreate
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import NestedUnitOfWork, UnitOfWork
from swarmdesk.core.errors import Conflict, Forbidden, ValidationFailed
from swarmdesk.core.storage import AttachmentStore
from swarmdesk.notifications import actions as notifications_actions
from swarmdesk.notifications.models import NotificationKind
from swarmdesk.swarming import service
from swarmdesk.swarming.audience import swarm_room
from swarmdesk.swarming.events import (
    SwarmEnded,
    SwarmMembersChanged,
    SwarmMessageCreated,
    SwarmPresence,
    SwarmStarted,
    SwarmTyping,
)
from swarmdesk.swarming.models import (
    MemberRole,
    MemberState,
    Swarm,
    SwarmMember,
    SwarmMessage,
    SwarmOutcome,
    SwarmStatus,
)
from swarmdesk.swarming.schemas import SwarmEnd, SwarmMessageCreate

ACTIVE_SWARM = "this conversation already has an active swarm"
OUTCOME_TEXT = {SwarmOutcome.resolved: "resolved", SwarmOutcome.workaround: "workaround found",
                SwarmOutcome.escalated: "escalated", SwarmOutcome.unresolved: "not resolved"}


def _actor(principal: StaffPrincipal) -> int | None:
    return None if principal.is_system else principal.user_id


async def _commit(uow: UnitOfWork) -> None:
    try:
        await uow.commit()
    except IntegrityError as exc:  # two starts on one conversation at the same moment
        await uow.rollback()
        raise Conflict(ACTIVE_SWARM) from exc


async def _invitees(uow: UnitOfWork, account_id: int, user_ids: Sequence[int]) -> list[User]:
    """Active users of the account, in the order given; anyone else is a 422 naming them."""
    if not user_ids:
        return []
    found = {u.id: u for u in (await uow.session.scalars(select(User).where(
        User.account_id == account_id, User.id.in_(user_ids), User.is_active.is_(True)))).all()}
    unknown = [u for u in user_ids if u not in found]
    if unknown:
        raise ValidationFailed(f"{', '.join(map(str, unknown))} "
                               f"{'is not an active user' if len(unknown) == 1 else 'are not active users'} "
                               "of this account", extra={"unknown_ids": unknown})
    return [found[u] for u in user_ids]


async def _notify_invited(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation, swarm: Swarm,
                          user_ids: Sequence[int]) -> None:
    """A swarm_invite notification each, live in their bell, in this transaction."""
    subject = conversation.subject or f"conversation #{conversation.id}"
    text = f"Swarm on “{subject}”" + (f": {swarm.note}" if swarm.note else "")
    await notifications_actions.notify(uow, conversation, user_ids, NotificationKind.swarm_invite,
                                       actor_name=principal.name, text=text)


async def _invite(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation, swarm: Swarm,
                  users: Sequence[User], now: datetime) -> list[SwarmMember]:
    """Invite those not already invited or in the room; returns the members it changed."""
    changed = []
    for user in users:
        current = await service.member(uow.session, swarm.id, user.id)
        if current is not None and current.state != MemberState.left:
            continue  # already invited or in the room
        if current is None:
            current = SwarmMember(swarm_id=swarm.id, user_id=user.id, account_id=swarm.account_id,
                                  role=MemberRole.expert, state=MemberState.invited)
            uow.session.add(current)
            swarm.experts_invited += 1
        current.state = MemberState.invited
        current.invited_by_id = _actor(principal)
        current.invited_at = now
        current.left_at = None
        # Before anything is published: the invited see the conversation, and the room, from now on.
        await conversation_actions.add_participant(uow, conversation, user.id)
        changed.append(current)
    await uow.session.flush()
    await _notify_invited(uow, principal, conversation, swarm, [m.user_id for m in changed])
    return changed


async def do_start_swarm(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation, *,
                         invite_user_ids: Sequence[int] = (), note: str | None = None) -> Swarm:
    """Start the conversation's swarm and invite experts (a notification each). One active swarm
    per conversation (409). Commits. Automation calls this with ``StaffPrincipal.system(...)``."""
    if principal.role == Role.expert:
        raise Forbidden("experts are pulled into swarms; the conversation's owner starts them")
    if conversation.status == ConversationStatus.closed:
        raise Conflict("the conversation is closed")
    session, now = uow.session, utcnow()
    if await service.active_swarm(session, conversation.id) is not None:
        raise Conflict(ACTIVE_SWARM)
    invitees = await _invitees(uow, conversation.account_id, list(dict.fromkeys(invite_user_ids)))
    nested = NestedUnitOfWork(uow)
    if conversation.assignee_id is None and not principal.is_system:
        # The one who asks for help owns the case: the ordinary assignment (activity, events).
        await conversation_actions.do_update_conversation(nested, principal, conversation,
                                                          ConversationUpdate(assignee_id=principal.user_id))
    owner_id = conversation.assignee_id
    swarm = Swarm(account_id=conversation.account_id, conversation_id=conversation.id, status=SwarmStatus.active,
                  owner_id=owner_id, started_by_id=_actor(principal), started_by_name=principal.name[:200],
                  note=(note or "")[:1000], started_at=now, summary="", experts_invited=0, experts_joined=0,
                  message_count=0)
    session.add(swarm)
    try:
        await session.flush()  # PostgreSQL checks the active-swarm index here, SQLite at commit
    except IntegrityError as exc:
        await uow.rollback()
        raise Conflict(ACTIVE_SWARM) from exc
    in_room = []
    if owner_id is not None:
        in_room.append(SwarmMember(swarm_id=swarm.id, user_id=owner_id, account_id=swarm.account_id,
                                   role=MemberRole.owner, state=MemberState.joined, joined_at=now))
    if not principal.is_system and principal.user_id != owner_id:
        in_room.append(SwarmMember(swarm_id=swarm.id, user_id=principal.user_id, account_id=swarm.account_id,
                                   role=MemberRole.starter, state=MemberState.joined, joined_at=now))
        await conversation_actions.add_participant(uow, conversation, principal.user_id)
    session.add_all(in_room)
    await session.flush()
    skip = {m.user_id for m in in_room}
    invited = await _invite(uow, principal, conversation, swarm, [u for u in invitees if u.id not in skip], now)
    conversation.updated_at = now
    conversations_service.add_activity(session, conversation, *conversation_actions.actor_of(principal),
                                       "swarm_started", {"swarm_id": swarm.id, "owner_id": owner_id,
                                                         "invited": [m.user_id for m in invited],
                                                         "note": swarm.note})
    uow.publish(SwarmStarted(account_id=swarm.account_id, audience=swarm_room(conversation),
                             swarm=await service.swarm_out(session, swarm)))
    await _commit(uow)
    return swarm


def _require_active(swarm: Swarm) -> None:
    if swarm.status != SwarmStatus.active:
        raise Conflict("this swarm has ended")


def _require_manager(principal: StaffPrincipal, swarm: Swarm, conversation: Conversation, what: str) -> None:
    if not service.can_manage(principal, swarm, conversation):
        raise Forbidden(f"only the swarm's owner (the conversation's assignee), a supervisor or an admin can {what}")


async def _publish_members(uow: UnitOfWork, conversation: Conversation, swarm: Swarm,
                           change: Literal["invited", "joined", "left"], members: Sequence[SwarmMember]) -> None:
    uow.publish(SwarmMembersChanged(
        account_id=swarm.account_id, audience=swarm_room(conversation), swarm_id=swarm.id,
        conversation_id=conversation.id, change=change,
        members=await service.members_out(uow.session, swarm.account_id, members)))


async def do_invite_to_swarm(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation, swarm: Swarm,
                             user_ids: Sequence[int]) -> list[SwarmMember]:
    """More experts, by the owner (a notification each). Those already invited or in the room
    are left as they are; someone who left is invited again."""
    _require_active(swarm)
    _require_manager(principal, swarm, conversation, "invite experts")
    users = await _invitees(uow, conversation.account_id, list(dict.fromkeys(user_ids)))
    invited = await _invite(uow, principal, conversation, swarm, [u for u in users if u.id != principal.user_id],
                            utcnow())
    if invited:
        await _publish_members(uow, conversation, swarm, "invited", invited)
    await uow.commit()
    return invited


async def do_join_swarm(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation,
                        swarm: Swarm) -> SwarmMember:
    """Into the room: the invited, or anyone who can see the conversation. Joining twice changes nothing."""
    if principal.is_system:
        raise Forbidden("Swarmdesk itself does not join swarm rooms")
    _require_active(swarm)
    session, now = uow.session, utcnow()
    current = await service.member(session, swarm.id, principal.user_id)
    if current is not None and current.state == MemberState.joined:
        return current
    if current is None:
        role = MemberRole.owner if principal.user_id == conversation.assignee_id else MemberRole.expert
        current = SwarmMember(swarm_id=swarm.id, user_id=principal.user_id, account_id=swarm.account_id, role=role,
                              state=MemberState.joined)
        session.add(current)
    current.state = MemberState.joined
    current.left_at = None
    if current.joined_at is None:
        current.joined_at = now
        if current.role == MemberRole.expert:
            swarm.experts_joined += 1
            swarm.first_joined_at = swarm.first_joined_at or now
    await conversation_actions.add_participant(uow, conversation, principal.user_id)
    await session.flush()
    await _publish_members(uow, conversation, swarm, "joined", [current])
    await uow.commit()
    return current


async def do_leave_swarm(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation,
                         swarm: Swarm) -> SwarmMember:
    """Out of the room (an invitation declined, too). The owner ends the swarm instead."""
    _require_active(swarm)
    current = await service.member(uow.session, swarm.id, principal.user_id)
    if current is None or current.state == MemberState.left:
        raise Conflict("you are not in this swarm")
    if current.role == MemberRole.owner:
        raise Conflict("the owner ends the swarm rather than leaving it")
    current.state = MemberState.left
    current.left_at = utcnow()
    await uow.session.flush()
    await _publish_members(uow, conversation, swarm, "left", [current])
    await uow.commit()
    return current


async def _require_in_room(uow: UnitOfWork, principal: StaffPrincipal, swarm: Swarm) -> None:
    current = await service.member(uow.session, swarm.id, principal.user_id)
    if current is None or current.state != MemberState.joined:
        raise Forbidden("join the swarm to write in its room")


async def do_send_swarm_message(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation,
                                swarm: Swarm, payload: SwarmMessageCreate) -> SwarmMessage:
    """A line in the room, live for the conversation's staff. Never a conversation message."""
    _require_active(swarm)
    await _require_in_room(uow, principal, swarm)
    now = utcnow()
    message = SwarmMessage(account_id=swarm.account_id, swarm_id=swarm.id, conversation_id=conversation.id,
                           sender_id=principal.user_id, sender_name=principal.name[:200], content=payload.content,
                           created_at=now)
    uow.session.add(message)
    swarm.message_count += 1
    await uow.session.flush()
    uow.publish(SwarmMessageCreated(account_id=swarm.account_id, audience=swarm_room(conversation),
                                    message=service.message_out(message)))
    await uow.commit()
    return message


async def do_swarm_typing(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation, swarm: Swarm,
                          typing: bool) -> None:
    """Ephemeral: nothing is stored."""
    _require_active(swarm)
    await _require_in_room(uow, principal, swarm)
    uow.publish(SwarmTyping(account_id=swarm.account_id, audience=swarm_room(conversation), swarm_id=swarm.id,
                            conversation_id=conversation.id, user_id=principal.user_id, name=principal.name,
                            typing=typing))
    await uow.commit()


async def do_report_swarm_presence(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation,
                                   swarm: Swarm, state: Literal["here", "gone"]) -> None:
    """Who has the room open (anyone who may read it). Ephemeral: nothing is stored."""
    if state == "here":
        _require_active(swarm)
    uow.publish(SwarmPresence(account_id=swarm.account_id, audience=swarm_room(conversation), swarm_id=swarm.id,
                              conversation_id=conversation.id, user_id=principal.user_id, name=principal.name,
                              state=state))
    await uow.commit()


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


async def do_end_swarm(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation, swarm: Swarm,
                       payload: SwarmEnd, *, store: AttachmentStore) -> Swarm:
    """The owner closes the room: the outcome goes on the conversation (a ``swarm_ended`` activity
    and an internal note with the summary) and the swarm's metrics are final, except its
    resolution, which the conversation may still reach (see listeners)."""
    _require_active(swarm)
    _require_manager(principal, swarm, conversation, "end the swarm")
    session, now = uow.session, utcnow()
    swarm.status = SwarmStatus.ended
    swarm.ended_at = now
    swarm.ended_by_id = _actor(principal)
    swarm.outcome = payload.outcome
    swarm.summary = payload.summary
    if (conversation.status in (ConversationStatus.resolved, ConversationStatus.closed)
            and conversation.resolved_at is not None and conversation.resolved_at >= swarm.started_at):
        swarm.resolved_at = swarm.resolved_at or conversation.resolved_at
    members = await service.members_of(session, swarm.id)
    helpers = await service.users_by_id(session, swarm.account_id,
                                        [m.user_id for m in members if m.role == MemberRole.expert and m.joined_at])
    names = sorted(u.name for u in helpers.values())
    duration = (now - swarm.started_at).total_seconds()
    conversations_service.add_activity(session, conversation, *conversation_actions.actor_of(principal), "swarm_ended",
                                       {"swarm_id": swarm.id, "outcome": str(payload.outcome),
                                        "summary": payload.summary, "experts": names,
                                        "messages": swarm.message_count, "duration_seconds": round(duration)})
    await session.flush()
    uow.publish(SwarmEnded(account_id=swarm.account_id, audience=swarm_room(conversation),
                           swarm=await service.swarm_out(session, swarm)))
    with_whom = f" with {', '.join(names)}" if names else ""
    note = (f"Swarm ended — {OUTCOME_TEXT[payload.outcome]}{with_whom} "
            f"({swarm.message_count} message{'' if swarm.message_count == 1 else 's'}, {_duration(duration)}).\n"
            f"{payload.summary}")
    await conversation_actions.do_send_message(NestedUnitOfWork(uow), principal, conversation,
                                               MessageCreate(content=note[:50_000], private=True),
                                               store=store, max_attachment_bytes=0)
    await uow.commit()
    return swarm


async def do_record_swarm_resolution(uow: UnitOfWork, conversation_id: int, resolved_at: datetime) -> int:
    """The conversation was resolved: its swarms that were waiting for it record when (once; a
    metric, so nothing is published). Idempotent; returns how many changed."""
    result = await uow.session.execute(
        update(Swarm).where(Swarm.conversation_id == conversation_id, Swarm.resolved_at.is_(None),
                            Swarm.started_at <= resolved_at)
        .values(resolved_at=resolved_at).execution_options(synchronize_session=False))
    await uow.commit()
    return result.rowcount or 0  # type: ignore[attr-defined]
