"""Running rules: the automation domain's second action module (with ``actions``), called by the
durable listener and the timer jobs; it publishes ``automation.rule_applied``.

A rule runs in its own transaction per conversation and trigger: its conditions are evaluated on
the conversation as it is now (locked), guards may stop it (the loop guards, the rate cap), then
each action runs in a savepoint through the owning domain's action, so one refused action does not
undo the others. The execution row, the actions' changes, the ``rule_applied`` activity and every
event they publish commit together. Events published while a rule's actions run carry the cause
chain (``events.base.caused_by``) that the loop guards read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.automation import service
from swarmdesk.automation.conditions import Definition, Facts, definition_of, evaluate
from swarmdesk.automation.events import RuleApplied
from swarmdesk.automation.executors import Run, execute
from swarmdesk.automation.models import (
    AutomationExecution,
    AutomationRule,
    AutomationRuleVersion,
    AutomationTimer,
    ExecutionOutcome,
    TimerState,
)
from swarmdesk.automation.schemas import (
    EVENT_TRIGGERS,
    OrganizationCondition,
    TextContainsCondition,
    TextMatchesCondition,
    TimeOfDayCondition,
)
from swarmdesk.conversations import audience
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, ConversationStatus, SenderType
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import DomainError
from swarmdesk.core.storage import AttachmentStore
from swarmdesk.events.base import caused_by
from swarmdesk.jobs import service as jobs_service
from swarmdesk.preferences.policy import Purpose

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

log = logging.getLogger(__name__)

# A chain of rules each reacting to the previous one's events stops after this many rules.
MAX_CHAIN_DEPTH = 5
TIMER_JOB = "automation.timer_due"
BACKFILL_JOB = "automation.schedule_timers"


class InTransaction(UnitOfWork):
    """What the other domains' actions see while automation runs them: their commit is a flush,
    and the events they publish wait until their action succeeded (a refused action's events are
    dropped with its savepoint); the caller commits everything once."""

    def __init__(self, outer: UnitOfWork) -> None:
        super().__init__(outer.session, _NO_HOOKS)
        self._outer = outer
        self._pending: list[Any] = []

    def publish(self, event: Any) -> None:
        self._pending.append(event)

    def after_commit(self, callback: Any) -> None:
        self._outer.after_commit(callback)

    async def commit(self) -> None:
        await self.session.flush()

    async def rollback(self) -> None:
        # An action that gives up rolls back and raises; the caller then undoes that action alone
        # (a rule: its savepoint) or everything (a macro). Here: only its events go.
        self.drop()

    def keep(self) -> None:
        for event in self._pending:
            self._outer.publish(event)
        self._pending.clear()

    def drop(self) -> None:
        self._pending.clear()


class _NoHooks:
    async def before_commit(self, session: Any, events: list[Any]) -> None:
        raise AssertionError("automation commits through the caller's unit of work")

    async def after_commit(self, session: Any, events: list[Any]) -> None:
        raise AssertionError("automation commits through the caller's unit of work")


_NO_HOOKS = _NoHooks()


def attachment_store(runtime: Runtime) -> AttachmentStore:
    return AttachmentStore(runtime.settings.attachments_dir)


def error_text(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        return exc.detail[:500]
    return f"internal error ({type(exc).__name__}); it has been logged"


def _definition(version: AutomationRuleVersion) -> Definition | None:
    """The version's parsed definition, or None (logged) if it no longer validates (a channel kind or
    a time zone that went away): such a rule is skipped rather than failing every event's outbox job."""
    try:
        return definition_of(version)
    except ValidationError:
        log.exception("automation rule version no longer valid; skipped",
                      extra={"rule_id": version.rule_id, "version": version.version})
        return None


def _with_definitions(rules: list[tuple[AutomationRule, AutomationRuleVersion]]
                      ) -> list[tuple[AutomationRule, AutomationRuleVersion, Definition]]:
    return [(r, v, d) for r, v in rules if (d := _definition(v)) is not None]


# --- what triggered a rule -----------------------------------------------------------------------

@dataclass(slots=True)
class Trigger:
    key: str  # unique per rule version and conversation: the event uid, or timer:<id>
    at: datetime
    cause: dict[str, Any] | None
    purpose: Purpose  # of a reply sent while the customer is not waiting for one
    event_uid: str | None = None
    event_type: str | None = None
    message_text: str | None = None
    timer_id: int | None = None

    def describe(self) -> dict[str, Any]:
        if self.timer_id is not None:
            return {"timer_id": self.timer_id}
        return {"event_uid": self.event_uid, "event_type": self.event_type}


def event_conversation_id(event: dict[str, Any]) -> int | None:
    conversation = event.get("conversation")
    if isinstance(conversation, dict) and isinstance(conversation.get("id"), int):
        return conversation["id"]
    value = event.get("conversation_id")
    return value if isinstance(value, int) else None


def event_trigger_names(event: dict[str, Any]) -> set[str]:
    """The rule triggers an event stands for."""
    kind = event.get("type")
    if kind == "message.created":
        message = event.get("message") or {}
        if message.get("private"):
            return set()
        return {"message_received"} if message.get("direction") == "incoming" else {"agent_replied"}
    if kind == "conversation.updated":
        return {"tags_changed"} if "tags" in (event.get("changed") or ()) else set()
    return {name for name, event_type in EVENT_TRIGGERS.items()
            if event_type == kind and name not in ("message_received", "agent_replied", "tags_changed")}


def _event_time(event: dict[str, Any]) -> datetime:
    try:
        at = datetime.fromisoformat(str(event.get("occurred_at")))
    except ValueError:
        return utcnow()
    return at if at.tzinfo is not None else utcnow()


# --- evaluating and executing a rule ------------------------------------------------------------

async def _facts(uow: UnitOfWork, conversation: Conversation, definition: Definition, trigger: Trigger) -> Facts:
    leaves = definition.leaves
    wants_text = trigger.message_text is None and any(
        isinstance(c, (TextContainsCondition, TextMatchesCondition)) and c.field != "subject" for c in leaves)
    channel, contact, org, text = await service.conversation_context(
        uow.session, conversation, organization=any(isinstance(c, OrganizationCondition) for c in leaves),
        message_text=wants_text)
    zone = None
    if any(isinstance(c, TimeOfDayCondition) and c.timezone is None for c in leaves):
        zone = await service.account_time_zone(uow.session, conversation.account_id)
    return Facts(conversation=conversation, channel=channel, contact=contact, organization=org,
                 message_text=trigger.message_text if trigger.message_text is not None else text, at=trigger.at,
                 account_time_zone=zone)


async def _guard(uow: UnitOfWork, rule: AutomationRule, version: AutomationRuleVersion, conversation: Conversation,
                 chain: list[int]) -> str | None:
    """Why a rule whose conditions hold must not act now, if it must not."""
    if rule.id in chain:
        return (f"loop: this rule is already in the cause chain of the trigger event (rules {chain}); a rule never "
                "reacts to what it caused")
    if len(chain) >= MAX_CHAIN_DEPTH:
        return f"chain depth limit: the trigger event was caused by a chain of {len(chain)} rules {chain}"
    runs = await service.runs_since(uow.session, rule.id, conversation.id, utcnow() - timedelta(hours=1))
    if runs >= version.max_runs_per_hour:
        return f"rate cap: this rule already ran {runs} times on this conversation in the last hour"
    return None


async def _run_isolated(run: Run, actions: list[Any]) -> list[dict[str, Any]]:
    """Each action in its own savepoint: a refused one is undone alone and logged."""
    session = run.uow.session
    assert isinstance(run.uow, InTransaction)
    results: list[dict[str, Any]] = []
    for index, action in enumerate(actions):
        run.action_index = index
        savepoint = await session.begin_nested()
        try:
            result = await execute(run, action)
            await session.flush()
        except Exception as exc:
            await savepoint.rollback()
            run.uow.drop()
            await session.refresh(run.conversation)  # the rollback expired what the action changed
            if not isinstance(exc, DomainError):
                log.exception("automation action failed", extra={"execution_id": run.execution_id,
                                                                 "action": action.type})
            results.append({"type": action.type, "ok": False, "error": error_text(exc)})
            continue
        await savepoint.commit()
        run.uow.keep()
        results.append({"type": action.type, "ok": True, "result": result})
    return results


def _outcome(results: list[dict[str, Any]]) -> ExecutionOutcome:
    ok = sum(1 for r in results if r["ok"])
    if ok == len(results):
        return ExecutionOutcome.applied
    return ExecutionOutcome.failed if ok == 0 else ExecutionOutcome.partial


async def _execute_rule(runtime: Runtime, uow: UnitOfWork, rule: AutomationRule, version: AutomationRuleVersion,
                        conversation: Conversation, trigger: Trigger) -> AutomationExecution:
    """Evaluate, guard, act and log, in the caller's transaction (which the caller commits)."""
    session, now = uow.session, utcnow()
    definition = definition_of(version)
    matched, results = evaluate(definition.conditions, await _facts(uow, conversation, definition, trigger))
    chain = [int(r) for r in ((trigger.cause or {}).get("rule_ids") or [])]
    reason = await _guard(uow, rule, version, conversation, chain) if matched else None
    execution = AutomationExecution(
        account_id=rule.account_id, kind="rule", rule_id=rule.id, rule_version_id=version.id, rule_version=version.version,
        name=version.name, conversation_id=conversation.id, trigger_key=trigger.key,
        trigger_event_uid=trigger.event_uid, trigger_event_type=trigger.event_type,
        outcome=ExecutionOutcome.not_matched if not matched else (
            ExecutionOutcome.skipped if reason else ExecutionOutcome.applied),
        reason=reason, conditions={"matched": matched, "results": results}, actions=[], cause=trigger.cause,
        created_at=now)
    session.add(execution)
    await session.flush()
    if execution.outcome != ExecutionOutcome.applied:
        return execution
    batch = InTransaction(uow)
    run = Run(uow=batch, principal=StaffPrincipal.system(rule.account_id), conversation=conversation,
              execution_id=execution.id, source={"rule": {"id": rule.id, "version": version.version,
                                                          "name": version.name}},
              trigger=trigger.describe(), store=attachment_store(runtime),
              max_attachment_bytes=runtime.settings.max_attachment_bytes, proactive_purpose=trigger.purpose)
    # Everything these actions publish names this rule (after the chain that led here).
    with caused_by({"kind": "rule", "rule_ids": [*chain, rule.id], "execution_id": execution.id}):
        done = await _run_isolated(run, definition.actions)
        execution.actions = done
        execution.outcome = _outcome(done)
        if execution.outcome == ExecutionOutcome.failed:
            execution.reason = "every action failed"
        summary = [{"type": r["type"], "ok": r["ok"]} for r in done]
        conversations_service.add_activity(session, conversation, SenderType.system, None, "rule_applied", {
            "rule_id": rule.id, "rule_version": version.version, "rule_name": version.name,
            "execution_id": execution.id, "outcome": str(execution.outcome), "actions": summary})
        uow.publish(RuleApplied(account_id=rule.account_id, audience=audience.conversation_staff(conversation),
                                conversation_id=conversation.id, execution_id=execution.id, rule_id=rule.id,
                                rule_version=version.version, rule_name=version.name,
                                outcome=str(execution.outcome), actions=summary))
    return execution


async def run_rules_for_event(runtime: Runtime, event: dict[str, Any]) -> None:
    """The durable listener's work for one event: the event rules it triggers, in order, each in
    its own transaction; then the time rules' timers for the conversation."""
    conversation_id = event_conversation_id(event)
    if conversation_id is None:
        return
    account_id = event["account_id"]
    async with runtime.uow() as uow:
        rules = _with_definitions(await service.running_rules(uow.session, account_id))
    names = event_trigger_names(event)
    message = event.get("message") if event.get("type") == "message.created" else None
    trigger = Trigger(key=str(event["uid"])[:100], at=_event_time(event), cause=event.get("cause"),
                      purpose=Purpose.notification, event_uid=str(event["uid"])[:64],
                      event_type=str(event["type"])[:100],
                      message_text=message.get("content") if isinstance(message, dict) else None)
    for rule, _, definition in rules:
        if definition.trigger.type == "event" and names & set(definition.trigger.events):
            await _run_event_rule(runtime, rule.id, account_id, conversation_id, trigger, names)
    timed = [(r, v, d) for r, v, d in rules if d.trigger.type != "event" and event["type"] in (r.watch or ())]
    if timed:
        await sync_timers(runtime, account_id, conversation_id)


async def _run_event_rule(runtime: Runtime, rule_id: int, account_id: int, conversation_id: int, trigger: Trigger,
                          names: set[str]) -> None:
    async with runtime.uow() as uow:
        session = uow.session
        conversation = await service.locked_conversation(session, account_id, conversation_id)
        rule = await session.get(AutomationRule, rule_id)
        if conversation is None or rule is None or not rule.enabled or rule.deleted_at is not None:
            return
        # The version in force now (an admin may have changed the rule since the event).
        version = await session.get(AutomationRuleVersion, rule.current_version_id)
        if version is None:
            return
        definition = _definition(version)
        if definition is None or definition.trigger.type != "event" or not names & set(definition.trigger.events):
            return
        if await service.execution_exists(session, version.id, conversation.id, trigger.key):
            return  # the dispatch job ran again after a partial failure
        try:
            await _execute_rule(runtime, uow, rule, version, conversation, trigger)
            await uow.commit()
        except IntegrityError:  # another worker ran it for the same event meanwhile
            await uow.rollback()


# --- time rules ------------------------------------------------------------------------------------

async def _entry(uow: UnitOfWork, conversation: Conversation, trigger: Any,
                 cache: dict[str, tuple[str, datetime] | None]) -> tuple[str, datetime] | None:
    """Which entry into the watched state the conversation is in (a key naming it, and when it
    happened), or None when it is not in that state."""
    if trigger.type == "status_for":
        if conversation.status not in trigger.statuses:
            return None
        if "status" not in cache:
            cache["status"] = await service.status_entry(uow.session, conversation)
        return cache["status"]
    waiting = conversation.waiting_since
    if waiting is None or conversation.status in (ConversationStatus.resolved, ConversationStatus.closed):
        return None
    return f"w{waiting.isoformat()}", waiting


def _cancel(timer: AutomationTimer, reason: str) -> None:
    timer.state = TimerState.cancelled
    timer.reason = reason
    timer.finished_at = utcnow()


async def _sync_conversation_timers(uow: UnitOfWork, conversation: Conversation,
                                    rules: list[tuple[AutomationRule, AutomationRuleVersion, Definition]]) -> bool:
    """Make the time rules' timers match the conversation's state: one scheduled timer (and its
    delayed job) per rule whose state it is in; the others cancelled. Returns whether anything changed."""
    session, now = uow.session, utcnow()
    changed = False
    cache: dict[str, tuple[str, datetime] | None] = {}
    scheduled = await service.scheduled_timers(session, [r.id for r, _, _ in rules], conversation.id)
    for rule, version, definition in rules:
        entry = await _entry(uow, conversation, definition.trigger, cache)
        for timer in scheduled:
            if timer.rule_id != rule.id:
                continue
            if timer.rule_version_id != version.id:
                _cancel(timer, "the rule was changed")
                changed = True
            elif entry is None or timer.entry_key != entry[0]:
                _cancel(timer, "the conversation left the state")
                changed = True
        if entry is None:
            continue
        key, entered_at = entry
        timer = await service.find_timer(session, version.id, conversation.id, key)
        if timer is not None and timer.state != TimerState.cancelled:
            continue  # scheduled already, or fired: once per entry
        due = entered_at + timedelta(minutes=definition.trigger.minutes)
        if timer is None:
            timer = AutomationTimer(account_id=conversation.account_id, rule_id=rule.id, rule_version_id=version.id,
                                    conversation_id=conversation.id, entry_key=key, entered_at=entered_at,
                                    due_at=due, state=TimerState.scheduled, created_at=now)
            session.add(timer)
            await session.flush()
        else:  # cancelled while the rule was switched off, and it is back on
            timer.state, timer.reason, timer.finished_at = TimerState.scheduled, None, None
        jobs_service.enqueue(session, TIMER_JOB, {"timer_id": timer.id}, account_id=conversation.account_id,
                             run_at=max(due, now))
        changed = True
    return changed


async def _time_rules(uow: UnitOfWork, account_id: int,
                      rule_id: int | None = None) -> list[tuple[AutomationRule, AutomationRuleVersion, Definition]]:
    return [(r, v, d) for r, v, d in _with_definitions(await service.running_rules(uow.session, account_id))
            if d.trigger.type != "event" and (rule_id is None or r.id == rule_id)]


async def sync_timers(runtime: Runtime, account_id: int, conversation_id: int) -> None:
    async with runtime.uow() as uow:
        rules = await _time_rules(uow, account_id)
        conversation = await service.locked_conversation(uow.session, account_id, conversation_id)
        if conversation is None or not rules:
            return
        try:
            if await _sync_conversation_timers(uow, conversation, rules):
                await uow.commit()
        except IntegrityError:  # a concurrent sync made the same timer
            await uow.rollback()


async def schedule_existing(runtime: Runtime, rule_id: int, batch: int = 200) -> None:
    """A time rule created, changed or switched on: timers for the conversations already in its state."""
    after = 0
    while True:
        async with runtime.uow() as uow:
            rule = await uow.session.get(AutomationRule, rule_id)
            if rule is None:
                return
            rules = await _time_rules(uow, rule.account_id, rule_id)
            if not rules:
                return
            ids = await service.conversation_ids_in_state(uow.session, rule.account_id, rules[0][2].trigger,
                                                          after, batch)
            if not ids:
                return
            for conversation_id in ids:
                conversation = await service.locked_conversation(uow.session, rule.account_id, conversation_id)
                if conversation is not None:
                    await _sync_conversation_timers(uow, conversation, rules)
            await uow.commit()
            after = ids[-1]


async def fire_timer(runtime: Runtime, timer_id: int) -> None:
    """A timer's due time: act if the conversation is still in the same entry into the state and
    the conditions hold, at most once (the timer's state and the execution's unique key)."""
    async with runtime.uow() as uow:
        session, now = uow.session, utcnow()
        timer = await session.get(AutomationTimer, timer_id)
        if timer is None or timer.state != TimerState.scheduled or timer.due_at > now:
            return  # done already, or a job for an earlier schedule of a timer moved later
        # Locks in the order every automation transaction takes them: the conversation, then its timers.
        conversation = await service.locked_conversation(session, timer.account_id, timer.conversation_id)
        timer = await service.timer_for_update(session, timer_id)
        if conversation is None or timer is None or timer.state != TimerState.scheduled:
            return  # another worker got here first
        rule = await session.get(AutomationRule, timer.rule_id)
        version = await session.get(AutomationRuleVersion, timer.rule_version_id)
        if rule is None or version is None:
            return
        reason = None
        if rule.deleted_at is not None:
            reason = "the rule was deleted"
        elif not rule.enabled:
            reason = "the rule is switched off"
        elif rule.current_version_id != version.id:
            reason = "the rule was changed"
        elif (definition := _definition(version)) is None:
            reason = "the rule's definition is not valid any more"
        else:
            entry = await _entry(uow, conversation, definition.trigger, {})
            if entry is None or entry[0] != timer.entry_key:
                reason = "the conversation left the state"
        if reason is not None:
            _cancel(timer, reason)
            await uow.commit()
            return
        trigger = Trigger(key=f"timer:{timer.id}", at=now, cause=None, purpose=Purpose.reminder, timer_id=timer.id)
        if await service.execution_exists(session, version.id, conversation.id, trigger.key):
            return
        await _execute_rule(runtime, uow, rule, version, conversation, trigger)
        timer.state, timer.finished_at = TimerState.fired, now
        await uow.commit()
