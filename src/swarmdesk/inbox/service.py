"""The inbox's queries: views, filters, sorts with keyset cursors, unread state, counts and saved
views. Never publishes.

Every page is read from index ranges, however many conversations the account holds: each sort
orders by the trailing columns of an index that starts (account_id, status) (for newest activity in
the mine, unassigned and team views: (account_id, assignee_id | team_id, status)), and the cursor
continues with a row-value comparison on those columns, which both databases turn into the start of
the range. Several statuses become one range per status, merged (UNION ALL of limited pages, then
the page of the union). A sort may be several ranges read in turn: "waiting longest" is those
waiting (oldest first), then those not waiting (by id); "priority" is urgent, high, medium, low,
none, each newest activity first. A cursor names its sort, its range and the last row's keys.
Visibility is always ``conversations.service.visible_to``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts.models import Role
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.channels.models import Inbox
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import (
    Conversation,
    ConversationMention,
    ConversationStatus,
    ConversationTag,
    Priority,
)
from swarmdesk.conversations.service import visible_to
from swarmdesk.core.errors import BadRequest, NotFound, ValidationFailed
from swarmdesk.core.pagination import decode_cursor, encode_cursor
from swarmdesk.inbox import schemas
from swarmdesk.inbox.models import ConversationRead, SavedView
from swarmdesk.inbox.schemas import InboxFilters, InboxQuery, InboxRowOut, InboxSort, View
from swarmdesk.sla.service import state_condition as sla_state_condition

DEFAULT_STATUS = (ConversationStatus.open,)
MAX_ID = 2**63 - 1
BAD_CURSOR = "cursor is not valid; use the next_cursor a previous page returned"


# --- filters -------------------------------------------------------------------------------------

def unread_for(user_id: int) -> ColumnElement[bool]:
    """The customer wrote after the user last read the conversation (or the user never read it)."""
    read = exists().where(ConversationRead.user_id == user_id, ConversationRead.conversation_id == Conversation.id,
                          ConversationRead.read_at >= Conversation.last_customer_message_at)
    return and_(Conversation.last_customer_message_at.is_not(None), ~read)


def _channel(kind: str, principal: StaffPrincipal) -> ColumnElement[bool]:
    return Conversation.inbox_id.in_(select(Inbox.id).where(Inbox.account_id == principal.account_id,
                                                            Inbox.channel_kind == kind))


def _tag(name: str, principal: StaffPrincipal) -> ColumnElement[bool]:
    return exists().where(ConversationTag.conversation_id == Conversation.id, ConversationTag.name == name)


# One condition per filter field (besides view and status, which choose the index ranges). A new
# filter (sla_state, sentiment) is a field on InboxFilters and an entry here.
CONDITIONS: dict[str, Callable[[Any, StaffPrincipal], ColumnElement[bool]]] = {
    "channel": _channel,
    "inbox_id": lambda value, principal: Conversation.inbox_id == value,
    "priority": lambda value, principal: Conversation.priority.in_(value),
    "tag": _tag,
    "team_id": lambda value, principal: Conversation.team_id == value,
    "assignee_id": lambda value, principal: Conversation.assignee_id == value,
    "unread": lambda value, principal: unread_for(principal.user_id) if value else ~unread_for(principal.user_id),
    "sla_state": sla_state_condition,
}


def _view_condition(view: View, principal: StaffPrincipal) -> ColumnElement[bool]:
    if view == View.mine:
        return Conversation.assignee_id == principal.user_id
    if view == View.unassigned:
        return Conversation.assignee_id.is_(None)
    if view == View.my_teams:
        return Conversation.team_id.in_(principal.team_ids) if principal.team_ids else false()
    return true()  # all; mentions joins its own table


def _where(principal: StaffPrincipal, filters: InboxFilters) -> list[ColumnElement[bool]]:
    """Everything but the status: the account, visibility, the view and the filters."""
    where = [Conversation.account_id == principal.account_id, visible_to(principal),
             _view_condition(filters.view or View.all, principal)]
    for name in InboxFilters.model_fields:
        value = getattr(filters, name)
        if name not in ("view", "status") and value is not None:
            where.append(CONDITIONS[name](value, principal))
    return where


# --- sorts ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Key:
    expr: Any
    kind: type  # datetime or int: how a cursor's value is read back


@dataclass(frozen=True, slots=True)
class _Range:
    """One ordered index range: rows matching ``where``, ordered by ``leading`` (constant within
    the range: there only so the ORDER BY is literally the index's) then ``keys``."""

    where: ColumnElement[bool] | None
    keys: tuple[_Key, ...]
    descending: bool
    leading: tuple[Any, ...] = ()
    priority: Priority | None = None  # the priority sort's ranges: skipped when a filter leaves it out


_ACTIVITY = (_Key(Conversation.last_activity_at, datetime), _Key(Conversation.id, int))
URGENT_FIRST = (Priority.urgent, Priority.high, Priority.medium, Priority.low, Priority.none)
SORTS: dict[InboxSort, tuple[_Range, ...]] = {
    InboxSort.last_activity: (_Range(None, _ACTIVITY, descending=True),),
    # Priority is stored as its name, which does not sort urgent first: one range per priority, in
    # turn, each on (account_id, status, priority, last_activity_at, id). No expression to index.
    InboxSort.priority: tuple(_Range(Conversation.priority == p, _ACTIVITY, descending=True, priority=p)
                              for p in URGENT_FIRST),
    InboxSort.waiting: (
        _Range(Conversation.waiting_since.is_not(None),
               (_Key(Conversation.waiting_since, datetime), _Key(Conversation.id, int)), descending=False),
        _Range(Conversation.waiting_since.is_(None), (_Key(Conversation.id, int),), descending=False,
               leading=(Conversation.waiting_since,)),
    ),
}


def _leading(view: View, sort: InboxSort) -> tuple[Any, ...]:
    # PostgreSQL reads (account_id, assignee_id, status, last_activity_at, id) in order for
    # "assignee_id IS NULL" only if the ORDER BY names assignee_id too (IS NULL, unlike =, does not
    # make a column constant for its planner).
    return (Conversation.assignee_id,) if view == View.unassigned and sort == InboxSort.last_activity else ()


def _encode(sort: str, range_index: int, values: Sequence[Any]) -> str:
    return encode_cursor([sort, range_index, [v.isoformat() if isinstance(v, datetime) else v for v in values]])


def _decode(cursor: str, sort: str, ranges: Sequence[_Range]) -> tuple[int, tuple[Any, ...]]:
    """(range index, key values) from a cursor we issued; anything else is a 400, never a 500."""
    cursor_sort, index, raw = decode_cursor(cursor, 3)
    if cursor_sort != sort or type(index) is not int or not 0 <= index < len(ranges):
        raise BadRequest(BAD_CURSOR)
    keys = ranges[index].keys
    if not isinstance(raw, list) or len(raw) != len(keys):
        raise BadRequest(BAD_CURSOR)
    values: list[Any] = []
    for key, value in zip(keys, raw, strict=True):
        if key.kind is int:
            if type(value) is not int or not 0 <= value <= MAX_ID:
                raise BadRequest(BAD_CURSOR)
            values.append(value)
        else:
            try:
                at = datetime.fromisoformat(value) if isinstance(value, str) else None
                if at is not None and at.tzinfo is not None:  # we only ever issue UTC times
                    values.append(at.astimezone(UTC))
                    continue
            except (ValueError, OverflowError):
                pass
            raise BadRequest(BAD_CURSOR)
    return index, tuple(values)


def _range_select(where: list[ColumnElement[bool]], status: ColumnElement[bool], rng: _Range,
                  leading: tuple[Any, ...], after: tuple[Any, ...] | None, limit: int) -> Select[Any]:
    columns = [key.expr for key in rng.keys]
    stmt = select(Conversation.id.label("cid"), *(c.label(f"k{i}") for i, c in enumerate(columns)))
    stmt = stmt.where(*where, status)
    if rng.where is not None:
        stmt = stmt.where(rng.where)
    if after is not None:
        bounds = tuple_(*(literal(v, type_=c.type) for v, c in zip(after, columns, strict=True)))
        stmt = stmt.where(tuple_(*columns) < bounds if rng.descending else tuple_(*columns) > bounds)
    order = [*leading, *rng.leading, *columns]
    return stmt.order_by(*(c.desc() if rng.descending else c.asc() for c in order)).limit(limit)


async def _read_range(session: AsyncSession, where: list[ColumnElement[bool]],
                      statuses: Sequence[ConversationStatus], rng: _Range, leading: tuple[Any, ...],
                      after: tuple[Any, ...] | None, limit: int) -> list[tuple[int, tuple[Any, ...]]]:
    if len(statuses) == 1:
        stmt = _range_select(where, Conversation.status == statuses[0], rng, leading, after, limit)
    else:
        # One range per status, each already in order and limited; then the page of their union.
        parts = [_range_select(where, Conversation.status == s, rng, leading, after, limit).subquery(f"s{i}")
                 for i, s in enumerate(statuses)]
        merged = union_all(*(select(*p.c) for p in parts)).subquery("merged")
        keys = [merged.c[f"k{i}"] for i in range(len(rng.keys))]
        stmt = select(*merged.c).order_by(*(k.desc() if rng.descending else k.asc() for k in keys)).limit(limit)
    return [(row[0], tuple(row[1:])) for row in (await session.execute(stmt)).all()]


async def _page_ids(session: AsyncSession, principal: StaffPrincipal, filters: InboxFilters, sort: InboxSort,
                    cursor: str | None, limit: int) -> tuple[list[int], str | None]:
    ranges = SORTS[sort]
    start, after = _decode(cursor, sort.value, ranges) if cursor else (0, None)
    where = _where(principal, filters)
    statuses = filters.status or DEFAULT_STATUS
    leading = _leading(filters.view or View.all, sort)
    rows: list[tuple[int, int, tuple[Any, ...]]] = []
    for index in range(start, len(ranges)):
        want = limit + 1 - len(rows)
        if want <= 0:
            break
        if ranges[index].priority is not None and filters.priority and ranges[index].priority not in filters.priority:
            continue
        found = await _read_range(session, where, statuses, ranges[index], leading,
                                  after if index == start else None, want)
        rows.extend((cid, index, keys) for cid, keys in found)
    page = rows[:limit]
    next_cursor = _encode(sort.value, page[-1][1], page[-1][2]) if len(rows) > limit else None
    return [cid for cid, _, _ in page], next_cursor


def _mentioned(principal: StaffPrincipal, filters: InboxFilters) -> Select[Any]:
    """The caller's mentioned conversations that match, with their newest mention, newest first."""
    newest = func.max(ConversationMention.id)
    statuses = filters.status or DEFAULT_STATUS
    return (select(ConversationMention.conversation_id.label("cid"), newest.label("k0"))
            .join(Conversation, Conversation.id == ConversationMention.conversation_id)
            .where(ConversationMention.user_id == principal.user_id,
                   ConversationMention.account_id == principal.account_id,
                   Conversation.status.in_(statuses), *_where(principal, filters))
            .group_by(ConversationMention.conversation_id).order_by(newest.desc()))


_MENTIONS = (_Range(None, (_Key(ConversationMention.id, int),), descending=True),)


async def _mention_ids(session: AsyncSession, principal: StaffPrincipal, filters: InboxFilters,
                       cursor: str | None, limit: int) -> tuple[list[int], str | None]:
    stmt = _mentioned(principal, filters)
    if cursor:
        _, (before,) = _decode(cursor, View.mentions.value, _MENTIONS)
        stmt = stmt.having(func.max(ConversationMention.id) < before)
    rows = (await session.execute(stmt.limit(limit + 1))).all()
    page = rows[:limit]
    next_cursor = _encode(View.mentions.value, 0, [page[-1][1]]) if len(rows) > limit else None
    return [row[0] for row in page], next_cursor


# --- pages ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class InboxPage:
    rows: list[InboxRowOut]
    next_cursor: str | None
    saved_view: SavedView | None = None


async def read_states(session: AsyncSession, user_id: int, conversation_ids: Sequence[int]) -> dict[int, datetime]:
    if not conversation_ids:
        return {}
    rows = await session.execute(select(ConversationRead.conversation_id, ConversationRead.read_at).where(
        ConversationRead.user_id == user_id, ConversationRead.conversation_id.in_(conversation_ids)))
    return {cid: read_at for cid, read_at in rows}


def is_unread(conversation: Conversation, read_at: datetime | None) -> bool:
    written = conversation.last_customer_message_at
    return written is not None and (read_at is None or written > read_at)


async def resolve(session: AsyncSession, principal: StaffPrincipal,
                  query: InboxQuery) -> tuple[InboxFilters, InboxSort | None, SavedView | None]:
    """The filters and sort a list request means: a saved view's, overridden field by field by the
    parameters the request names."""
    explicit = query.filters()
    filters, sort, saved = explicit, query.sort, None
    if query.saved_view_id is not None:
        saved = await get_saved_view(session, principal, query.saved_view_id)
        if saved is None:
            raise NotFound(f"saved view {query.saved_view_id} not found")
        try:
            stored = InboxFilters.model_validate(saved.filters)
        except ValidationError as exc:  # saved by a version that knew other filters
            raise ValidationFailed(f"saved view {saved.id} has filters this version does not understand; "
                                   "save it again") from exc
        filters = stored.model_copy(update={name: getattr(explicit, name) for name in explicit.model_fields_set})
        sort = query.sort or (InboxSort(saved.sort) if saved.sort else None)
    if filters.view == View.mentions:
        if query.sort is not None:
            raise ValidationFailed("the mentions view is always newest mention first: leave sort out")
        sort = None
    return filters, sort, saved


async def list_page(session: AsyncSession, principal: StaffPrincipal, filters: InboxFilters,
                    sort: InboxSort | None, cursor: str | None, limit: int) -> InboxPage:
    if filters.view == View.mentions:
        ids, next_cursor = await _mention_ids(session, principal, filters, cursor, limit)
    else:
        ids, next_cursor = await _page_ids(session, principal, filters, sort or InboxSort.last_activity, cursor,
                                           limit)
    loaded = {c.id: c for c in (await session.scalars(select(Conversation).where(Conversation.id.in_(ids)))).all()}
    conversations = [loaded[i] for i in ids if i in loaded]  # (one deleted meanwhile is left out)
    ids = [c.id for c in conversations]
    reads = await read_states(session, principal.user_id, ids)
    outs = await conversations_service.conversations_out(session, conversations)
    rows = [InboxRowOut(conversation=out, unread=is_unread(c, reads.get(c.id)))
            for c, out in zip(conversations, outs, strict=True)]
    return InboxPage(rows=rows, next_cursor=next_cursor)


async def page_for(session: AsyncSession, principal: StaffPrincipal, *, view: str | None = None,
                   status: str | list[str] | None = None, channel: str | None = None,
                   priority: str | list[str] | None = None, tag: str | None = None, team_id: int | None = None,
                   sort: str | None = None, saved_view_id: int | None = None, cursor: str | None = None,
                   limit: int = 50, sla_state: str | None = None) -> InboxPage:
    """The list for the workspace's pages, from loosely typed form values (None: not given;
    status "any": every status; sort is ignored by the mentions view)."""
    given: dict[str, Any] = {"view": view, "channel": channel, "tag": tag, "team_id": team_id,
                             "saved_view_id": saved_view_id, "cursor": cursor, "limit": limit,
                             "sla_state": [sla_state] if sla_state else None}
    if status == "any":
        given["status"] = list(ConversationStatus)
    elif status is not None:
        given["status"] = [status] if isinstance(status, str) else status
    if priority is not None:
        given["priority"] = [priority] if isinstance(priority, str) else priority
    if sort is not None and view != View.mentions.value:
        given["sort"] = sort
    try:
        query = InboxQuery.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise ValidationFailed("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from exc
    filters, resolved_sort, saved = await resolve(session, principal, query)
    page = await list_page(session, principal, filters, resolved_sort, query.cursor, query.limit)
    page.saved_view = saved
    return page


# --- counts --------------------------------------------------------------------------------------

async def _window_flags(session: AsyncSession, principal: StaffPrincipal, view: View, cap: int) -> list[int]:
    """1 or 0 (unread or not) for at most cap + 1 open conversations of the view: one bounded index
    range, whatever the account's size."""
    unread = case((unread_for(principal.user_id), 1), else_=0)
    filters = InboxFilters(view=view, status=[ConversationStatus.open])
    if view == View.mentions:
        newest = _mentioned(principal, filters).limit(cap + 1).subquery()
        stmt = (select(unread).select_from(Conversation).join(newest, newest.c.cid == Conversation.id)
                .order_by(newest.c.k0.desc()))
    else:
        order = [*_leading(view, InboxSort.last_activity), Conversation.last_activity_at, Conversation.id]
        stmt = (select(unread).where(*_where(principal, filters), Conversation.status == ConversationStatus.open)
                .order_by(*(c.desc() for c in order)).limit(cap + 1))
    return list((await session.scalars(stmt)).all())


async def counts(session: AsyncSession, principal: StaffPrincipal) -> schemas.InboxCountsOut:
    cap = schemas.COUNT_CAP
    result = {}
    for view in View:
        flags = await _window_flags(session, principal, view, cap)
        counted = flags[:cap]
        result[view.value] = schemas.ViewCountOut(open=len(counted), unread=sum(counted), capped=len(flags) > cap)
    return schemas.InboxCountsOut(**result)


# --- saved views ---------------------------------------------------------------------------------

def _saved_visible(principal: StaffPrincipal) -> ColumnElement[bool]:
    return and_(SavedView.account_id == principal.account_id,
                or_(SavedView.user_id == principal.user_id, SavedView.shared.is_(True)))


async def saved_views_for(session: AsyncSession, principal: StaffPrincipal) -> list[SavedView]:
    """The caller's own views, then those shared with the account, each by name."""
    mine = case((SavedView.user_id == principal.user_id, 0), else_=1)
    return list((await session.scalars(select(SavedView).where(_saved_visible(principal))
                                       .order_by(mine, SavedView.name, SavedView.id))).all())


async def get_saved_view(session: AsyncSession, principal: StaffPrincipal, view_id: int) -> SavedView | None:
    return await session.scalar(select(SavedView).where(SavedView.id == view_id, _saved_visible(principal)))


async def saved_view_name_taken(session: AsyncSession, user_id: int, name: str, except_id: int | None = None) -> bool:
    stmt = select(SavedView.id).where(SavedView.user_id == user_id, SavedView.name == name)
    if except_id is not None:
        stmt = stmt.where(SavedView.id != except_id)
    return await session.scalar(stmt) is not None


def can_edit(principal: StaffPrincipal, view: SavedView) -> bool:
    return view.user_id == principal.user_id or (view.shared and principal.role == Role.admin)


def saved_view_out(view: SavedView, principal: StaffPrincipal) -> schemas.SavedViewOut:
    return schemas.SavedViewOut(id=view.id, user_id=view.user_id, name=view.name, filters=view.filters,
                                sort=InboxSort(view.sort) if view.sort else None, shared=view.shared,
                                editable=can_edit(principal, view), created_at=view.created_at,
                                updated_at=view.updated_at)
