"""Notifications and collision presence. The only module here that publishes.

``notify_*`` are building blocks: the action that causes a notification calls one inside its own
transaction (no ORM hooks, no signals), so the notification exists exactly when its cause does.
``do_*`` are whole changes and commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.conversations import audience as conversation_audience
from swarmdesk.conversations.models import Conversation, Message
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.events.types import ConversationViewing, NotificationCreated, NotificationRead
from swarmdesk.notifications import service
from swarmdesk.notifications.audience import notification_recipient
from swarmdesk.notifications.models import Notification, NotificationKind
from swarmdesk.notifications.schemas import NotificationOut, NotificationsRead, NotificationsReadOut


def _publish_created(uow: UnitOfWork, account_id: int, out: NotificationOut, user_id: int) -> None:
    uow.publish(NotificationCreated(account_id=account_id, audience=notification_recipient(user_id),
                                    notification=out))


async def notify(uow: UnitOfWork, conversation: Conversation, user_ids: Sequence[int], kind: NotificationKind, *,
                 actor_name: str, text: str, message_id: int | None = None) -> list[Notification]:
    """The building block every domain uses: one notification per user about a conversation, in the
    caller's transaction, each published as ``notification.created`` to its recipient once the caller
    commits. ``actor_name`` is who or what caused it (a person, a policy); ``text`` becomes the snippet."""
    now = utcnow()
    rows = [Notification(account_id=conversation.account_id, user_id=user_id, kind=kind,
                         conversation_id=conversation.id, message_id=message_id, actor_name=actor_name[:200],
                         snippet=service.snippet_of(text), read_at=None, created_at=now) for user_id in user_ids]
    if not rows:
        return rows
    uow.session.add_all(rows)
    await uow.session.flush()
    for row in rows:
        _publish_created(uow, conversation.account_id, service.notification_out(row), row.user_id)
    return rows


async def notify_assigned(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation) -> None:
    """The new assignee hears about it, unless they assigned themselves. In the caller's transaction."""
    assignee = conversation.assignee_id
    if assignee is None or assignee == principal.user_id:
        return
    await notify(uow, conversation, [assignee], NotificationKind.assigned, actor_name=principal.name,
                  text=conversation.subject)


async def notify_mentioned(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation,
                           message: Message, user_ids: Sequence[int]) -> None:
    """Everyone @mentioned in a note, except its author. In the caller's transaction."""
    await notify(uow, conversation, [u for u in user_ids if u != principal.user_id], NotificationKind.mentioned,
                  actor_name=principal.name, text=message.content, message_id=message.id)


async def notify_customer_replied(uow: UnitOfWork, conversation: Conversation, message: Message,
                                  contact_name: str) -> None:
    """The customer wrote in a conversation assigned to someone. On the intake hot path: one
    statement, only for an assigned conversation, and an unread notification of the same
    conversation is refreshed rather than joined by another."""
    assignee = conversation.assignee_id
    if assignee is None:
        return
    row = await service.upsert_unread_reply(uow.session, {
        "account_id": conversation.account_id, "user_id": assignee, "conversation_id": conversation.id,
        "message_id": message.id, "actor_name": contact_name[:200], "snippet": service.snippet_of(message.content),
        "created_at": message.created_at})
    _publish_created(uow, conversation.account_id, service.notification_out(row), assignee)


async def do_mark_notifications_read(uow: UnitOfWork, principal: StaffPrincipal,
                                     payload: NotificationsRead) -> NotificationsReadOut:
    """The caller's other tabs and devices hear about it (only when something changed)."""
    session = uow.session
    changed = await service.mark_read(session, principal.account_id, principal.user_id, payload.ids, utcnow())
    unread = await service.unread_count(session, principal.account_id, principal.user_id)
    marked_all = payload.all is True
    result = NotificationsReadOut(ids=None if marked_all else changed, all=marked_all, unread_count=unread)
    if changed:
        uow.publish(NotificationRead(account_id=principal.account_id,
                                     audience=notification_recipient(principal.user_id),
                                     ids=result.ids, all=result.all, unread_count=unread))
    await uow.commit()
    return result


async def do_report_viewing(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation,
                            state: Literal["viewing", "left"], composing: Literal["reply", "note"] | None) -> None:
    """Collision presence for the conversation's staff (never its customer). Nothing is stored."""
    uow.publish(ConversationViewing(
        account_id=conversation.account_id, audience=conversation_audience.conversation_staff(conversation),
        conversation_id=conversation.id, user_id=principal.user_id, name=principal.name, state=state,
        composing=composing if state == "viewing" else None))
    await uow.commit()
