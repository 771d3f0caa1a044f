from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from swarmdesk.accounts.models import Role
from swarmdesk.auth.dependencies import Admin, ConversationsReader, ConversationsWriter, RuntimeDep, Supervisor, Uow
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.automation import actions, service
from swarmdesk.automation.executors import EXPERT_ACTIONS
from swarmdesk.automation.models import AutomationRule, ExecutionOutcome, Macro
from swarmdesk.automation.schemas import (
    ExecutionOut,
    MacroApplied,
    MacroCreate,
    MacroOut,
    MacroUpdate,
    RuleCreate,
    RuleOut,
    RuleUpdate,
    RuleVersionOut,
)
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.dependencies import WritableConversation
from swarmdesk.core.errors import BadRequest, NotFound
from swarmdesk.core.schemas import Page
from swarmdesk.core.storage import AttachmentStore

router = APIRouter(prefix="/api/v1", tags=["automation"])

BIG = 2**63 - 1
RuleId = Annotated[int, Path(ge=1, le=BIG)]
MacroId = Annotated[int, Path(ge=1, le=BIG)]


async def _rule(uow: Uow, principal: StaffPrincipal, rule_id: int) -> AutomationRule:
    rule = await service.get_rule(uow.session, principal.account_id, rule_id)
    if rule is None:
        raise NotFound(f"rule {rule_id} not found")
    return rule


async def _rule_out(uow: Uow, rule: AutomationRule) -> RuleOut:
    version = await service.get_version(uow.session, rule.id, rule.version)
    assert version is not None
    return service.rule_out(rule, version)


# --- rules -----------------------------------------------------------------------------------------

@router.get("/automation/rules", response_model=list[RuleOut], summary="Rules in the order they run")
async def list_rules(principal: Admin, uow: Uow) -> list[RuleOut]:
    return [service.rule_out(r, v) for r, v in await service.list_rules(uow.session, principal.account_id)]


@router.post("/automation/rules", response_model=RuleOut, status_code=201)
async def create_rule(principal: Admin, uow: Uow, payload: RuleCreate) -> RuleOut:
    rule, version = await actions.do_create_rule(uow, principal, payload)
    return service.rule_out(rule, version)


@router.get("/automation/rules/{rule_id}", response_model=RuleOut)
async def get_rule(principal: Admin, uow: Uow, rule_id: RuleId) -> RuleOut:
    return await _rule_out(uow, await _rule(uow, principal, rule_id))


@router.patch("/automation/rules/{rule_id}", response_model=RuleOut,
              summary="Change a rule: a new version if the definition changes")
async def update_rule(principal: Admin, uow: Uow, rule_id: RuleId, payload: RuleUpdate) -> RuleOut:
    rule, version = await actions.do_update_rule(uow, principal, await _rule(uow, principal, rule_id), payload)
    return service.rule_out(rule, version)


@router.delete("/automation/rules/{rule_id}", status_code=204, response_class=Response)
async def delete_rule(principal: Admin, uow: Uow, rule_id: RuleId) -> Response:
    await actions.do_delete_rule(uow, principal, await _rule(uow, principal, rule_id))
    return Response(status_code=204)


@router.get("/automation/rules/{rule_id}/versions", response_model=list[RuleVersionOut],
            summary="Every version of the rule, newest first")
async def list_rule_versions(principal: Admin, uow: Uow, rule_id: RuleId) -> list[RuleVersionOut]:
    rule = await _rule(uow, principal, rule_id)
    return [RuleVersionOut.model_validate(v) for v in await service.list_versions(uow.session, rule.id)]


@router.get("/automation/rules/{rule_id}/versions/{version}", response_model=RuleVersionOut)
async def get_rule_version(principal: Admin, uow: Uow, rule_id: RuleId,
                           version: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> RuleVersionOut:
    rule = await _rule(uow, principal, rule_id)
    found = await service.get_version(uow.session, rule.id, version)
    if found is None:
        raise NotFound(f"rule {rule_id} has no version {version}")
    return RuleVersionOut.model_validate(found)


@router.get("/automation/executions", response_model=Page[ExecutionOut],
            summary="What rules and macros did (or why not), newest first")
async def list_executions(principal: Supervisor, uow: Uow,
                          rule_id: Annotated[int | None, Query(ge=1, le=BIG)] = None,
                          macro_id: Annotated[int | None, Query(ge=1, le=BIG)] = None,
                          conversation_id: Annotated[int | None, Query(ge=1, le=BIG)] = None,
                          outcome: Annotated[list[ExecutionOutcome] | None, Query(
                              description="only these outcomes, e.g. outcome=failed&outcome=partial")] = None,
                          cursor: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Page[ExecutionOut]:
    before_id = None
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()) or not 1 <= int(cursor) <= BIG:
            raise BadRequest("cursor is not valid; use the next_cursor a previous page returned")
        before_id = int(cursor)
    rows = await service.list_executions(uow.session, principal.account_id, rule_id=rule_id, macro_id=macro_id,
                                         conversation_id=conversation_id, before_id=before_id, limit=limit + 1,
                                         outcomes=outcome)
    page, more = rows[:limit], len(rows) > limit
    return Page(items=[ExecutionOut.model_validate(e) for e in page], next_cursor=str(page[-1].id) if more else None)


# --- macros ----------------------------------------------------------------------------------------

def _macro_out(macro: Macro) -> MacroOut:
    return MacroOut(id=macro.id, name=macro.name, description=macro.description, actions=macro.actions,
                    personal=macro.owner_id is not None, owner_id=macro.owner_id, created_at=macro.created_at,
                    updated_at=macro.updated_at)


def _usable_by(principal: StaffPrincipal, macro: Macro) -> bool:
    return principal.role != Role.expert or all(a.get("type") in EXPERT_ACTIONS for a in macro.actions)


async def _macro(uow: Uow, principal: StaffPrincipal, macro_id: int) -> Macro:
    macro = await service.get_macro(uow.session, principal, macro_id)
    if macro is None:
        raise NotFound(f"macro {macro_id} not found")
    return macro


@router.get("/macros", response_model=list[MacroOut], summary="The macros the caller may apply, by name")
async def list_macros(principal: ConversationsReader, uow: Uow) -> list[MacroOut]:
    return [_macro_out(m) for m in await service.usable_macros(uow.session, principal) if _usable_by(principal, m)]


@router.post("/macros", response_model=MacroOut, status_code=201)
async def create_macro(principal: ConversationsWriter, uow: Uow, payload: MacroCreate) -> MacroOut:
    return _macro_out(await actions.do_create_macro(uow, principal, payload))


@router.get("/macros/{macro_id}", response_model=MacroOut)
async def get_macro(principal: ConversationsReader, uow: Uow, macro_id: MacroId) -> MacroOut:
    return _macro_out(await _macro(uow, principal, macro_id))


@router.patch("/macros/{macro_id}", response_model=MacroOut)
async def update_macro(principal: ConversationsWriter, uow: Uow, macro_id: MacroId, payload: MacroUpdate) -> MacroOut:
    return _macro_out(await actions.do_update_macro(uow, principal, await _macro(uow, principal, macro_id), payload))


@router.delete("/macros/{macro_id}", status_code=204, response_class=Response)
async def delete_macro(principal: ConversationsWriter, uow: Uow, macro_id: MacroId) -> Response:
    await actions.do_delete_macro(uow, principal, await _macro(uow, principal, macro_id))
    return Response(status_code=204)


@router.post("/conversations/{conversation_id}/macros/{macro_id}/apply", response_model=MacroApplied,
             summary="Apply a macro to the conversation as the caller, all or nothing")
async def apply_macro(principal: ConversationsWriter, uow: Uow, runtime: RuntimeDep,
                      conversation: WritableConversation, macro_id: MacroId) -> MacroApplied:
    macro = await _macro(uow, principal, macro_id)
    execution = await actions.do_apply_macro(
        uow, principal, conversation, macro, store=AttachmentStore(runtime.settings.attachments_dir),
        max_attachment_bytes=runtime.settings.max_attachment_bytes)
    (out,) = await conversations_service.conversations_out(uow.session, [conversation])
    return MacroApplied(execution=ExecutionOut.model_validate(execution), conversation=out)
