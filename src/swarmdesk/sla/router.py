"""Business calendars, SLA policies, and a conversation's SLA state."""

from __future__ import annotations

from fastapi import APIRouter, Response

from swarmdesk.auth.dependencies import Uow
from swarmdesk.conversations.dependencies import ReadableConversation
from swarmdesk.core.schemas import Page
from swarmdesk.sla import actions, service
from swarmdesk.sla.dependencies import (
    EditableCalendar,
    EditablePolicy,
    ReadableCalendar,
    ReadablePolicy,
    SlaEditor,
    SlaReader,
)
from swarmdesk.sla.schemas import (
    CalendarCreate,
    CalendarOut,
    CalendarUpdate,
    SlaPolicyCreate,
    SlaPolicyOrder,
    SlaPolicyOut,
    SlaPolicyUpdate,
    SlaStateOut,
)

router = APIRouter(prefix="/api/v1", tags=["sla"])


@router.get("/sla/calendars", response_model=Page[CalendarOut], summary="Business calendars, by name")
async def list_calendars(principal: SlaReader, uow: Uow) -> Page[CalendarOut]:
    rows = await service.list_calendars(uow.session, principal.account_id)
    return Page(items=[CalendarOut.model_validate(c) for c in rows], next_cursor=None)


@router.post("/sla/calendars", response_model=CalendarOut, status_code=201)
async def create_calendar(principal: SlaEditor, uow: Uow, payload: CalendarCreate) -> CalendarOut:
    return CalendarOut.model_validate(await actions.do_create_calendar(uow, principal, payload))


@router.get("/sla/calendars/{calendar_id}", response_model=CalendarOut)
async def get_calendar(calendar: ReadableCalendar) -> CalendarOut:
    return CalendarOut.model_validate(calendar)


@router.patch("/sla/calendars/{calendar_id}", response_model=CalendarOut,
              summary="Change a calendar; hours and holidays replace the whole set")
async def update_calendar(principal: SlaEditor, uow: Uow, calendar: EditableCalendar,
                          payload: CalendarUpdate) -> CalendarOut:
    return CalendarOut.model_validate(await actions.do_update_calendar(uow, principal, calendar, payload))


@router.delete("/sla/calendars/{calendar_id}", status_code=204, response_class=Response,
               summary="Delete a calendar no policy uses (409 otherwise)")
async def delete_calendar(principal: SlaEditor, uow: Uow, calendar: EditableCalendar) -> Response:
    await actions.do_delete_calendar(uow, principal, calendar)
    return Response(status_code=204)


@router.get("/sla/policies", response_model=Page[SlaPolicyOut], summary="SLA policies in the order they are tried")
async def list_policies(principal: SlaReader, uow: Uow) -> Page[SlaPolicyOut]:
    rows = await service.list_policies(uow.session, principal.account_id)
    return Page(items=[SlaPolicyOut.model_validate(p) for p in rows], next_cursor=None)


@router.post("/sla/policies", response_model=SlaPolicyOut, status_code=201)
async def create_policy(principal: SlaEditor, uow: Uow, payload: SlaPolicyCreate) -> SlaPolicyOut:
    return SlaPolicyOut.model_validate(await actions.do_create_policy(uow, principal, payload))


@router.put("/sla/policies/order", response_model=Page[SlaPolicyOut],
            summary="Put every policy in the order they are tried, in one change (positions 10, 20, …)")
async def order_policies(principal: SlaEditor, uow: Uow, payload: SlaPolicyOrder) -> Page[SlaPolicyOut]:
    rows = await actions.do_order_policies(uow, principal, payload.policy_ids)
    return Page(items=[SlaPolicyOut.model_validate(p) for p in rows], next_cursor=None)


@router.get("/sla/policies/{policy_id}", response_model=SlaPolicyOut)
async def get_policy(policy: ReadablePolicy) -> SlaPolicyOut:
    return SlaPolicyOut.model_validate(policy)


@router.patch("/sla/policies/{policy_id}", response_model=SlaPolicyOut)
async def update_policy(principal: SlaEditor, uow: Uow, policy: EditablePolicy,
                        payload: SlaPolicyUpdate) -> SlaPolicyOut:
    return SlaPolicyOut.model_validate(await actions.do_update_policy(uow, principal, policy, payload))


@router.delete("/sla/policies/{policy_id}", status_code=204, response_class=Response)
async def delete_policy(principal: SlaEditor, uow: Uow, policy: EditablePolicy) -> Response:
    await actions.do_delete_policy(uow, principal, policy)
    return Response(status_code=204)


@router.get("/conversations/{conversation_id}/sla", response_model=SlaStateOut,
            summary="The conversation's SLA: its state, policy, deadlines and what was met")
async def conversation_sla(conversation: ReadableConversation, uow: Uow) -> SlaStateOut:
    return await service.state_for(uow.session, conversation.id)
