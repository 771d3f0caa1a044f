"""Data access for notifications (and the user look-up mentions need). Never publishes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts.models import User
from swarmdesk.notifications.models import UNREAD_REPLY, Notification, NotificationKind
from swarmdesk.notifications.schemas import SNIPPET_CHARS, NotificationOut

_TABLE = Notification.__table__


def snippet_of(content: str) -> str:
    """Plain text on one line, at most SNIPPET_CHARS characters (an ellipsis marks a cut)."""
    flat = " ".join(content[:4 * SNIPPET_CHARS].split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[:SNIPPET_CHARS - 1].rstrip() + "…"


def notification_out(row: Any) -> NotificationOut:
    return NotificationOut.model_validate(row)


async def active_user_ids(session: AsyncSession, account_id: int, user_ids: Sequence[int]) -> set[int]:
    """Which of these ids are active users of the account (others' users count as unknown)."""
    if not user_ids:
        return set()
    return set((await session.scalars(select(User.id).where(
        User.account_id == account_id, User.id.in_(user_ids), User.is_active.is_(True)))).all())


# --- the intake's upsert ---------------------------------------------------------------------------

def _unread_reply_upsert(dialect: str) -> Insert:
    """INSERT … ON CONFLICT on the partial unique index of unread customer_replied notifications:
    a further reply refreshes the unread one instead of adding a row, in one statement, and two
    transactions racing for the same (user, conversation) end with one row on both databases."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(_TABLE)
    return stmt.on_conflict_do_update(
        index_elements=[_TABLE.c.user_id, _TABLE.c.conversation_id], index_where=text(UNREAD_REPLY),
        set_={"message_id": stmt.excluded.message_id, "actor_name": stmt.excluded.actor_name,
              "snippet": stmt.excluded.snippet, "created_at": stmt.excluded.created_at},
    ).returning(*_TABLE.c)


# Built once per dialect: on the intake hot path, constructing a statement costs more than running it.
_UPSERTS: dict[str, Insert] = {}


async def upsert_unread_reply(session: AsyncSession, values: dict[str, Any]) -> Any:
    """The user's unread customer_replied notification for the conversation, new or refreshed."""
    dialect = session.get_bind().dialect.name
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        stmt = _UPSERTS[dialect] = _unread_reply_upsert(dialect)
    return (await session.execute(stmt, {**values, "kind": NotificationKind.customer_replied,
                                         "read_at": None})).one()


# --- the API --------------------------------------------------------------------------------------

async def list_for_user(session: AsyncSession, account_id: int, user_id: int, *, unread_only: bool,
                        before_id: int | None, limit: int) -> list[Notification]:
    """Newest first (by id: the (user_id, id) index serves the page and its cursor)."""
    stmt = select(Notification).where(Notification.user_id == user_id, Notification.account_id == account_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    if before_id is not None:
        stmt = stmt.where(Notification.id < before_id)
    return list((await session.scalars(stmt.order_by(Notification.id.desc()).limit(limit))).all())


async def unread_count(session: AsyncSession, account_id: int, user_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == user_id, Notification.account_id == account_id,
        Notification.read_at.is_(None))) or 0


async def mark_read(session: AsyncSession, account_id: int, user_id: int, ids: Sequence[int] | None,
                    at: datetime) -> list[int]:
    """Mark the user's unread notifications read (these ids, or all); returns the ids it changed.
    Ids of other users' notifications match nothing."""
    stmt = update(Notification).where(Notification.user_id == user_id, Notification.account_id == account_id,
                                      Notification.read_at.is_(None))
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(ids))
    changed = await session.scalars(stmt.values(read_at=at).returning(Notification.id)
                                    .execution_options(synchronize_session=False))
    return sorted(changed.all())
