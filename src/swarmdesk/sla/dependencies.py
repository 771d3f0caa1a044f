"""Access gates: every staff member reads calendars and policies; admins and supervisors change them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from swarmdesk.accounts.models import Role
from swarmdesk.auth.dependencies import ConversationsReader, Uow, scoped
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.core.errors import NotFound
from swarmdesk.sla import service
from swarmdesk.sla.models import BusinessCalendar, SlaPolicy

SlaEditor = Annotated[StaffPrincipal, Depends(scoped("conversations:write", roles=(Role.admin, Role.supervisor)))]
SlaReader = ConversationsReader

BIG = 2**63 - 1
CalendarId = Annotated[int, Path(ge=1, le=BIG)]
PolicyId = Annotated[int, Path(ge=1, le=BIG)]


async def _calendar(principal: StaffPrincipal, uow: Uow, calendar_id: int) -> BusinessCalendar:
    calendar = await service.get_calendar(uow.session, principal.account_id, calendar_id)
    if calendar is None:
        raise NotFound(f"calendar {calendar_id} not found")
    return calendar


async def readable_calendar(principal: SlaReader, uow: Uow, calendar_id: CalendarId) -> BusinessCalendar:
    return await _calendar(principal, uow, calendar_id)


async def editable_calendar(principal: SlaEditor, uow: Uow, calendar_id: CalendarId) -> BusinessCalendar:
    return await _calendar(principal, uow, calendar_id)


async def _policy(principal: StaffPrincipal, uow: Uow, policy_id: int) -> SlaPolicy:
    policy = await service.get_policy(uow.session, principal.account_id, policy_id)
    if policy is None:
        raise NotFound(f"SLA policy {policy_id} not found")
    return policy


async def readable_policy(principal: SlaReader, uow: Uow, policy_id: PolicyId) -> SlaPolicy:
    return await _policy(principal, uow, policy_id)


async def editable_policy(principal: SlaEditor, uow: Uow, policy_id: PolicyId) -> SlaPolicy:
    return await _policy(principal, uow, policy_id)


ReadableCalendar = Annotated[BusinessCalendar, Depends(readable_calendar)]
EditableCalendar = Annotated[BusinessCalendar, Depends(editable_calendar)]
ReadablePolicy = Annotated[SlaPolicy, Depends(readable_policy)]
EditablePolicy = Annotated[SlaPolicy, Depends(editable_policy)]
