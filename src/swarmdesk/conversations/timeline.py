"""What the conversation view shows: the latest messages with what happened between them (the
activity log), and the last message of each row in an inbox list. Read-only building blocks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.conversations import service
from swarmdesk.conversations.models import Activity, Conversation, Message
from swarmdesk.conversations.schemas import ActivityOut, MessageOut

# Activities worth a line between messages; the rest (e.g. "created") is in the activity log.
SHOWN_VERBS = ("assigned", "status_changed", "team_changed", "tags_changed", "contact_merged", "priority_changed",
               "routed", "swarm_started", "swarm_ended", "sla_breached", "rule_applied", "macro_applied",
               "send_deferred", "send_moved", "send_refused", "send_cancelled", "queued", "required_skills_changed")


@dataclass(slots=True, frozen=True)
class TimelineItem:
    at: datetime
    message: MessageOut | None = None
    activity: ActivityOut | None = None


async def latest_messages(session: AsyncSession, conversation_id: int, limit: int,
                          before_id: int | None = None) -> list[Message]:
    """The newest ``limit`` messages (before ``before_id``), oldest first: one index range scan."""
    stmt = select(Message).where(Message.conversation_id == conversation_id)
    if before_id is not None:
        stmt = stmt.where(Message.id < before_id)
    rows = list((await session.scalars(stmt.order_by(Message.id.desc()).limit(limit))).all())
    rows.reverse()
    return rows


async def build(session: AsyncSession, conversation_id: int, messages: Sequence[Message], *,
                since: datetime | None, until: datetime | None = None,
                after_activity_id: int | None = None) -> list[TimelineItem]:
    """Messages and the activities between ``since`` and ``until`` (or after an activity id: the
    live view's cursor, which no clock can skew), in time order."""
    stmt = select(Activity).where(Activity.conversation_id == conversation_id, Activity.verb.in_(SHOWN_VERBS))
    if after_activity_id is not None:
        stmt = stmt.where(Activity.id > after_activity_id)
    if since is not None:
        stmt = stmt.where(Activity.created_at >= since)
    if until is not None:
        stmt = stmt.where(Activity.created_at < until)
    activities = (await session.scalars(stmt.order_by(Activity.id.desc()).limit(200))).all()
    items = [TimelineItem(at=m.created_at, message=m) for m in await service.messages_out(session, messages)]
    items += [TimelineItem(at=a.created_at, activity=a) for a in service.activities_out(activities)]
    items.sort(key=lambda i: (i.at, 0 if i.activity else 1))
    return items


@dataclass(slots=True, frozen=True)
class Preview:
    text: str
    private: bool
    incoming: bool


async def last_messages(session: AsyncSession, conversation_ids: Sequence[int]) -> dict[int, Preview]:
    """The start of the newest message of each conversation (for the inbox rows), in one statement."""
    if not conversation_ids:
        return {}
    # One index probe per conversation (newest id first, LIMIT 1): a max() grouped over the
    # conversations would read every message id of each, and a long chat has tens of thousands.
    newest_of_each = (select(Message.id).where(Message.conversation_id == Conversation.id)
                      .order_by(Message.id.desc()).limit(1).scalar_subquery())
    newest = select(newest_of_each).where(Conversation.id.in_(conversation_ids))
    rows = await session.execute(select(Message.conversation_id, func.substr(Message.content, 1, 160),
                                        Message.private, Message.direction).where(Message.id.in_(newest)))
    return {cid: Preview(text=" ".join((text or "").split()), private=private, incoming=direction == "incoming")
            for cid, text, private, direction in rows}
