"""Changes to rules and macros, and applying a macro. Rule changes are recorded in the account's
audit log; applying a macro publishes ``automation.macro_applied`` (with the events of the
actions it ran). Running rules is ``engine``'s work."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from swarmdesk.accounts import service as accounts_service
from swarmdesk.accounts.models import Role
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.automation import service
from swarmdesk.automation.conditions import parse_actions
from swarmdesk.automation.engine import BACKFILL_JOB, InTransaction, error_text
from swarmdesk.automation.events import MacroApplied
from swarmdesk.automation.executors import Run, execute
from swarmdesk.automation.models import (
    AutomationExecution,
    AutomationRule,
    AutomationRuleVersion,
    ExecutionOutcome,
    Macro,
)
from swarmdesk.automation.schemas import (
    EVENT_TRIGGERS,
    AssigneeCondition,
    InboxCondition,
    MacroCreate,
    MacroUpdate,
    RuleCreate,
    RuleDefinition,
    RuleUpdate,
    TeamCondition,
    walk_conditions,
)
from swarmdesk.conversations import audience
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, SenderType
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import DomainError, Forbidden, ValidationFailed
from swarmdesk.core.storage import AttachmentStore
from swarmdesk.events.base import caused_by
from swarmdesk.jobs import service as jobs_service

DEFINITION_FIELDS = ("name", "description", "trigger", "conditions", "actions", "max_runs_per_hour")
MANAGERS = (Role.admin, Role.supervisor)

# --- what a definition refers to ---------------------------------------------------------------------


def _references(actions: Sequence[Any], conditions: Sequence[Any] = ()) -> dict[str, set[int]]:
    refs: dict[str, set[int]] = {"user": set(), "team": set(), "inbox": set(), "canned_response": set(),
                                 "webhook_subscription": set(), "skill": set()}
    for a in actions:
        if a.type == "assign" and a.user_id is not None:
            refs["user"].add(a.user_id)
        elif a.type == "set_team" and a.team_id is not None:
            refs["team"].add(a.team_id)
        elif a.type == "reply_template":
            refs["canned_response"].add(a.canned_response_id)
        elif a.type == "notify":
            refs["user"].update(a.user_ids)
        elif a.type == "start_swarm":
            refs["user"].update(a.invite_user_ids)
        elif a.type == "call_webhook":
            refs["webhook_subscription"].add(a.subscription_id)
        elif a.type == "set_required_skills":
            refs["skill"].update(k.skill_id for k in a.skills)
    for c in conditions:
        if isinstance(c, InboxCondition):
            refs["inbox"].update(c.inbox_ids)
        elif isinstance(c, TeamCondition):
            refs["team"].update(c.team_ids)
        elif isinstance(c, AssigneeCondition):
            refs["user"].update(c.user_ids)
    return refs


_KIND_NAMES = {"user": "active user", "team": "team", "inbox": "inbox", "canned_response": "canned response",
               "webhook_subscription": "webhook subscription", "skill": "skill"}


async def _check_references(uow: UnitOfWork, account_id: int, actions: Sequence[Any],
                            conditions: Sequence[Any] = ()) -> None:
    missing = await service.missing_ids(uow.session, account_id, _references(actions, conditions))
    if missing:
        parts = [f"{_KIND_NAMES[kind]} {', '.join(map(str, ids))}" for kind, ids in missing.items()]
        raise ValidationFailed(f"not in this account: {'; '.join(parts)}", extra={"missing": missing})


def _watch(trigger: Any) -> list[str]:
    """The event types a rule needs to hear about (the outbox asks before queueing an event)."""
    if trigger.type == "event":
        return sorted({EVENT_TRIGGERS[name] for name in trigger.events})
    if trigger.type == "status_for":
        return ["conversation.created", "conversation.status_changed"]
    return ["conversation.created", "message.created"]


# --- rules ---------------------------------------------------------------------------------------------

def _new_version(rule: AutomationRule, principal: StaffPrincipal, definition: RuleDefinition,
                 number: int) -> AutomationRuleVersion:
    dumped = definition.model_dump(mode="json")
    return AutomationRuleVersion(
        account_id=rule.account_id, rule_id=rule.id, version=number, name=definition.name,
        description=definition.description, trigger=dumped["trigger"], conditions=dumped["conditions"],
        actions=dumped["actions"], max_runs_per_hour=definition.max_runs_per_hour,
        created_by=None if principal.is_system else principal.user_id, created_at=utcnow())


def _backfill(uow: UnitOfWork, rule: AutomationRule, definition: RuleDefinition) -> None:
    """A time rule watches conversations already in its state too, not only those entering it."""
    if rule.enabled and definition.trigger.type != "event":
        jobs_service.enqueue(uow.session, BACKFILL_JOB, {"rule_id": rule.id}, account_id=rule.account_id)


async def do_create_rule(uow: UnitOfWork, principal: StaffPrincipal,
                         payload: RuleCreate) -> tuple[AutomationRule, AutomationRuleVersion]:
    await _check_references(uow, principal.account_id, payload.actions, walk_conditions(payload.conditions))
    session, now = uow.session, utcnow()
    position = payload.position if payload.position is not None else await service.next_position(
        session, principal.account_id)
    rule = AutomationRule(account_id=principal.account_id, name=payload.name, enabled=payload.enabled,
                          position=position, version=1, watch=_watch(payload.trigger),
                          created_by=principal.user_id, created_at=now, updated_at=now)
    session.add(rule)
    await session.flush()
    version = _new_version(rule, principal, payload, 1)
    session.add(version)
    await session.flush()
    rule.current_version_id = version.id
    accounts_service.audit(session, principal.account_id, principal.user_id, "automation_rule.created",
                           "automation_rule", rule.id, {"version": 1, "name": rule.name, "enabled": rule.enabled})
    _backfill(uow, rule, payload)
    await uow.commit()
    return rule, version


async def do_update_rule(uow: UnitOfWork, principal: StaffPrincipal, rule: AutomationRule,
                         payload: RuleUpdate) -> tuple[AutomationRule, AutomationRuleVersion]:
    """A change to the definition is a new version (the old one stays, for the executions that
    name it); switching on/off and moving in the order change the rule itself."""
    session = uow.session
    await service.lock_rule(session, rule.id)  # two admins saving at once make two versions, in turn
    current = await session.get(AutomationRuleVersion, rule.current_version_id)
    assert current is not None
    fields = payload.model_fields_set
    changes: dict[str, Any] = {}
    definition: RuleDefinition | None = None
    if fields & set(DEFINITION_FIELDS):
        stored = {name: getattr(current, name) for name in DEFINITION_FIELDS}
        try:
            definition = RuleDefinition.model_validate(
                {**stored, **payload.model_dump(mode="json", include=set(DEFINITION_FIELDS) & fields)})
        except ValidationError as exc:  # a stored part no longer validates (a channel kind removed, say)
            raise ValidationFailed(f"the rule's definition is not valid any more: {exc.errors()[0]['msg']}; "
                                   "send the part again") from exc
        try:
            unchanged = definition.model_dump(mode="json") == RuleDefinition.model_validate(stored).model_dump(
                mode="json")
        except ValidationError:
            unchanged = False
        if not unchanged:
            await _check_references(uow, rule.account_id, definition.actions, walk_conditions(definition.conditions))
            current = _new_version(rule, principal, definition, rule.version + 1)
            session.add(current)
            await session.flush()
            rule.version, rule.current_version_id = current.version, current.id
            rule.name, rule.watch = definition.name, _watch(definition.trigger)
            changes["version"] = rule.version
        else:
            definition = None  # the same definition again: no new version
    switched_on = False
    if "enabled" in fields and payload.enabled != rule.enabled:
        assert payload.enabled is not None
        rule.enabled = payload.enabled
        switched_on = payload.enabled
        changes["enabled"] = payload.enabled
    if "position" in fields and payload.position != rule.position:
        assert payload.position is not None
        rule.position = payload.position
        changes["position"] = payload.position
    if not changes:
        return rule, current
    rule.updated_at = utcnow()
    accounts_service.audit(session, rule.account_id, principal.user_id, "automation_rule.updated", "automation_rule",
                           rule.id, changes)
    if definition is not None or switched_on:
        _backfill(uow, rule, definition or RuleDefinition.model_validate(
            {k: getattr(current, k) for k in DEFINITION_FIELDS}))
    await uow.commit()
    return rule, current


async def do_delete_rule(uow: UnitOfWork, principal: StaffPrincipal, rule: AutomationRule) -> None:
    """The rule stops; it and its versions stay for the execution log. Its timers lapse."""
    now = utcnow()
    rule.deleted_at, rule.enabled, rule.updated_at = now, False, now
    accounts_service.audit(uow.session, rule.account_id, principal.user_id, "automation_rule.deleted",
                           "automation_rule", rule.id, {"name": rule.name})
    await uow.commit()


# --- macros ----------------------------------------------------------------------------------------------

def _require_manager_of(principal: StaffPrincipal, macro: Macro | None) -> None:
    if (macro is None or macro.owner_id is None) and principal.role not in MANAGERS:
        raise Forbidden("shared macros are managed by admins and supervisors; create a personal macro instead")


async def do_create_macro(uow: UnitOfWork, principal: StaffPrincipal, payload: MacroCreate) -> Macro:
    if not payload.personal:
        _require_manager_of(principal, None)
    await _check_references(uow, principal.account_id, payload.actions)
    now = utcnow()
    dumped = payload.model_dump(mode="json")
    macro = Macro(account_id=principal.account_id, name=payload.name, description=payload.description,
                  actions=dumped["actions"], owner_id=principal.user_id if payload.personal else None,
                  created_by=principal.user_id, created_at=now, updated_at=now)
    uow.session.add(macro)
    await uow.commit()
    return macro


async def do_update_macro(uow: UnitOfWork, principal: StaffPrincipal, macro: Macro, payload: MacroUpdate) -> Macro:
    _require_manager_of(principal, macro)
    fields = payload.model_fields_set
    if "actions" in fields:
        assert payload.actions is not None
        await _check_references(uow, principal.account_id, payload.actions)
        macro.actions = payload.model_dump(mode="json")["actions"]
    for name in ("name", "description"):
        if name in fields:
            setattr(macro, name, getattr(payload, name))
    if fields:
        macro.updated_at = utcnow()
        await uow.commit()
    return macro


async def do_delete_macro(uow: UnitOfWork, principal: StaffPrincipal, macro: Macro) -> None:
    _require_manager_of(principal, macro)
    await uow.session.delete(macro)
    await uow.commit()


async def do_apply_macro(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation, macro: Macro, *,
                         store: AttachmentStore, max_attachment_bytes: int) -> AutomationExecution:
    """The macro's actions as this person (their permissions), all in one transaction: one refused
    action refuses the whole macro (its error is the answer) and nothing changes but the log."""
    session, now = uow.session, utcnow()
    try:
        actions = parse_actions(macro.actions)
    except ValidationError as exc:
        raise ValidationFailed(f"this macro is not valid any more ({exc.errors()[0]['msg']}); edit it") from exc
    source = {"id": macro.id, "name": macro.name}
    execution = AutomationExecution(
        account_id=principal.account_id, kind="macro", macro_id=macro.id, name=macro.name,
        conversation_id=conversation.id, trigger_key=f"macro:{os.urandom(8).hex()}", outcome=ExecutionOutcome.applied,
        conditions={}, actions=[], actor_user_id=principal.user_id, created_at=now)
    session.add(execution)
    await session.flush()
    batch = InTransaction(uow)
    run = Run(uow=batch, principal=principal, conversation=conversation, execution_id=execution.id,
              source={"macro": source}, trigger=None, store=store, max_attachment_bytes=max_attachment_bytes,
              proactive_purpose=None)
    done: list[dict[str, Any]] = []
    conversation_id = conversation.id
    with caused_by({"kind": "macro", "rule_ids": [], "macro_id": macro.id, "execution_id": execution.id}):
        try:
            for index, action in enumerate(actions):
                run.action_index = index
                done.append({"type": action.type, "ok": True, "result": await execute(run, action)})
        except DomainError as exc:
            await _log_refused_macro(uow, principal, conversation_id, source, actions, done, exc)
            raise
        batch.keep()
        execution.actions = done
        conversations_service.add_activity(session, conversation, SenderType.user, principal.user_id,
                                           "macro_applied", {"macro_id": macro.id, "macro_name": macro.name,
                                                             "execution_id": execution.id,
                                                             "actions": [a["type"] for a in done]})
        uow.publish(MacroApplied(account_id=principal.account_id, audience=audience.conversation_staff(conversation),
                                 conversation_id=conversation.id, execution_id=execution.id, macro_id=macro.id,
                                 macro_name=macro.name, user_id=principal.user_id,
                                 actions=[{"type": a["type"], "ok": True} for a in done]))
    await uow.commit()
    return execution


async def _log_refused_macro(uow: UnitOfWork, principal: StaffPrincipal, conversation_id: int, source: dict[str, Any],
                             actions: list[Any], done: list[dict[str, Any]], exc: DomainError) -> None:
    """Undo everything the macro did, then log the refusal on its own."""
    await uow.rollback()
    failed = len(done)
    logged = [{**d, "rolled_back": True} for d in done]
    logged.append({"type": actions[failed].type, "ok": False, "error": error_text(exc)})
    logged += [{"type": a.type, "ok": False, "error": "not run"} for a in actions[failed + 1:]]
    uow.session.add(AutomationExecution(
        account_id=principal.account_id, kind="macro", macro_id=source["id"], name=source["name"],
        conversation_id=conversation_id, trigger_key=f"macro:{os.urandom(8).hex()}", outcome=ExecutionOutcome.failed,
        reason=f"action {failed + 1} ({actions[failed].type}) was refused: {error_text(exc)}; nothing was changed",
        conditions={}, actions=logged, actor_user_id=principal.user_id, created_at=utcnow()))
    await uow.commit()
