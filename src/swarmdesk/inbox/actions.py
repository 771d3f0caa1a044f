"""Changes made from the inbox: read state, saved views and bulk changes to conversations.

Read state and saved views are the user's own and publish nothing; bulk changes go through the
conversation actions, which publish exactly what they publish one by one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.conversations import actions as conversation_actions
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, Message
from swarmdesk.conversations.schemas import ConversationUpdate, TagsUpdate
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import NestedUnitOfWork, UnitOfWork
from swarmdesk.core.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from swarmdesk.inbox import service
from swarmdesk.inbox.models import ConversationRead, SavedView
from swarmdesk.inbox.schemas import BulkUpdate, SavedViewCreate, SavedViewUpdate, View

# --- read state ----------------------------------------------------------------------------------


async def do_mark_conversation_read(uow: UnitOfWork, principal: StaffPrincipal,
                                    conversation: Conversation) -> ConversationRead:
    """Read up to the newest message, now. One row per user and conversation, written by upsert
    (two tabs marking the same conversation at once must not collide)."""
    session, now = uow.session, utcnow()
    newest = await session.scalar(select(func.max(Message.id)).where(Message.conversation_id == conversation.id))
    values = {"user_id": principal.user_id, "conversation_id": conversation.id, "last_read_message_id": newest,
              "read_at": now}
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(ConversationRead).values(**values)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=[ConversationRead.user_id, ConversationRead.conversation_id],
        set_={"last_read_message_id": stmt.excluded.last_read_message_id, "read_at": stmt.excluded.read_at}))
    await uow.commit()
    return ConversationRead(**values)


# --- saved views ---------------------------------------------------------------------------------

def _stored(payload_filters: Any) -> dict[str, Any]:
    return payload_filters.model_dump(mode="json", exclude_none=True)


async def _commit_saved_view(uow: UnitOfWork, name: str) -> None:
    try:
        await uow.commit()
    except IntegrityError as exc:  # the same name saved at the same moment
        raise Conflict(f"you already have a saved view named {name!r}") from exc


async def do_create_saved_view(uow: UnitOfWork, principal: StaffPrincipal, payload: SavedViewCreate) -> SavedView:
    session = uow.session
    if await service.saved_view_name_taken(session, principal.user_id, payload.name):
        raise Conflict(f"you already have a saved view named {payload.name!r}")
    now = utcnow()
    view = SavedView(account_id=principal.account_id, user_id=principal.user_id, name=payload.name,
                     filters=_stored(payload.filters), sort=payload.sort.value if payload.sort else None,
                     shared=payload.shared, created_at=now, updated_at=now)
    session.add(view)
    await _commit_saved_view(uow, payload.name)
    return view


def _require_editable(principal: StaffPrincipal, view: SavedView) -> None:
    if not service.can_edit(principal, view):
        raise Forbidden("only the view's owner or an admin can change a shared view")


async def do_update_saved_view(uow: UnitOfWork, principal: StaffPrincipal, view: SavedView,
                               payload: SavedViewUpdate) -> SavedView:
    _require_editable(principal, view)
    fields = payload.model_fields_set
    for name in ("name", "shared"):
        if name in fields and getattr(payload, name) is None:
            raise ValidationFailed(f"{name} cannot be null")
    if "name" in fields and payload.name != view.name:
        assert payload.name is not None
        if await service.saved_view_name_taken(uow.session, view.user_id, payload.name, except_id=view.id):
            raise Conflict(f"you already have a saved view named {payload.name!r}")
        view.name = payload.name
    if "filters" in fields:
        view.filters = _stored(payload.filters) if payload.filters is not None else {}
    if "sort" in fields:
        view.sort = payload.sort.value if payload.sort else None
    if "shared" in fields:
        view.shared = bool(payload.shared)
    if view.filters.get("view") == View.mentions.value and view.sort is not None:
        raise ValidationFailed("the mentions view is always newest mention first: leave sort out")
    view.updated_at = utcnow()
    await _commit_saved_view(uow, view.name)
    return view


async def do_delete_saved_view(uow: UnitOfWork, principal: StaffPrincipal, view: SavedView) -> None:
    _require_editable(principal, view)
    await uow.session.delete(view)
    await uow.commit()


# --- bulk changes --------------------------------------------------------------------------------

async def do_bulk_update_conversations(uow: UnitOfWork, principal: StaffPrincipal,
                                       payload: BulkUpdate) -> list[Conversation]:
    """The same change to each conversation through the conversation actions (so permissions,
    activity entries and events are those of one change at a time), all in one transaction."""
    ids = payload.conversation_ids
    found = await conversations_service.get_visible_many(uow.session, principal, ids)
    missing = [cid for cid in ids if cid not in found]
    if missing:
        raise NotFound(f"conversation{'s' if len(missing) > 1 else ''} not found: {', '.join(map(str, missing))}",
                       extra={"conversation_ids": missing})
    changes = {"assignee_id", "team_id", "status"} & payload.model_fields_set
    update = ConversationUpdate(**{name: getattr(payload, name) for name in changes}) if changes else None
    tags = TagsUpdate(add=payload.add_tags, remove=payload.remove_tags) \
        if payload.add_tags or payload.remove_tags else None
    batch = NestedUnitOfWork(uow)
    for cid in ids:
        conversation = found[cid]
        try:
            if update is not None:
                await conversation_actions.do_update_conversation(batch, principal, conversation, update)
            if tags is not None:
                await conversation_actions.do_update_tags(batch, principal, conversation, tags)
        except DomainError as exc:  # nothing is committed: say which conversation refused
            raise type(exc)(f"conversation {cid}: {exc.detail}", extra={**exc.extra, "conversation_id": cid},
                            headers=exc.headers) from exc
    await uow.commit()
    return [found[cid] for cid in ids]
