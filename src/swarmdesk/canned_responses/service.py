"""Canned responses: search and rendering. Never publishes."""

from __future__ import annotations

import re

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.canned_responses.models import CannedResponse
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations.models import Conversation

# Only these names are filled in; anything else between braces is left exactly as typed. The body
# is never evaluated: one pass of plain substitution, so a value that itself looks like a
# placeholder (a contact named "{{agent.name}}") stays as it is.
PLACEHOLDER = re.compile(r"\{\{\s*(contact\.name|contact\.email|agent\.name|conversation\.id)\s*\}\}")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(session: AsyncSession, account_id: int, q: str | None, after_code: str | None,
                 limit: int) -> list[CannedResponse]:
    """By short code; ``q`` matches a short-code prefix or a part of the title or body, ignoring case."""
    stmt = select(CannedResponse).where(CannedResponse.account_id == account_id)
    if q:
        needle = _like_escape(q.lower())
        stmt = stmt.where(or_(CannedResponse.short_code.like(f"{needle}%", escape="\\"),
                              func.lower(CannedResponse.title).like(f"%{needle}%", escape="\\"),
                              func.lower(CannedResponse.body).like(f"%{needle}%", escape="\\")))
    if after_code is not None:
        stmt = stmt.where(CannedResponse.short_code > after_code)
    return list((await session.scalars(stmt.order_by(CannedResponse.short_code).limit(limit))).all())


async def get(session: AsyncSession, account_id: int, canned_id: int) -> CannedResponse | None:
    return await session.scalar(select(CannedResponse).where(CannedResponse.id == canned_id,
                                                             CannedResponse.account_id == account_id))


async def short_code_taken(session: AsyncSession, account_id: int, short_code: str,
                           except_id: int | None = None) -> bool:
    stmt = select(CannedResponse.id).where(CannedResponse.account_id == account_id,
                                           CannedResponse.short_code == short_code)
    if except_id is not None:
        stmt = stmt.where(CannedResponse.id != except_id)
    return await session.scalar(stmt) is not None


def render(body: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], body)


async def placeholder_values(session: AsyncSession, principal: StaffPrincipal,
                             conversation: Conversation) -> dict[str, str]:
    contact = await session.get(Contact, conversation.contact_id)
    assert contact is not None
    return {"contact.name": contact.name or "", "contact.email": contact.email or "", "agent.name": principal.name,
            "conversation.id": str(conversation.id)}
