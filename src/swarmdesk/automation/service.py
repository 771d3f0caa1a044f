"""Data access for rules, macros, executions and timers. Never publishes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts.models import Account, Team, User
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.automation.models import (
    AutomationExecution,
    AutomationRule,
    AutomationRuleVersion,
    AutomationTimer,
    ExecutionOutcome,
    Macro,
)
from swarmdesk.automation.schemas import RuleOut
from swarmdesk.canned_responses.models import CannedResponse
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts.models import Contact, Organization
from swarmdesk.conversations.models import Activity, Conversation, ConversationStatus, Direction, Message
from swarmdesk.routing.models import Skill
from swarmdesk.webhooks.models import WebhookSubscription

# --- rules ---------------------------------------------------------------------------------------


async def list_rules(session: AsyncSession, account_id: int) -> list[tuple[AutomationRule, AutomationRuleVersion]]:
    rows = await session.execute(
        select(AutomationRule, AutomationRuleVersion)
        .join(AutomationRuleVersion, AutomationRuleVersion.id == AutomationRule.current_version_id)
        .where(AutomationRule.account_id == account_id, AutomationRule.deleted_at.is_(None))
        .order_by(AutomationRule.position, AutomationRule.id))
    return [(rule, version) for rule, version in rows]


async def running_rules(session: AsyncSession, account_id: int) -> list[tuple[AutomationRule, AutomationRuleVersion]]:
    """The account's enabled rules with their current versions, in order."""
    rows = await session.execute(
        select(AutomationRule, AutomationRuleVersion)
        .join(AutomationRuleVersion, AutomationRuleVersion.id == AutomationRule.current_version_id)
        .where(AutomationRule.account_id == account_id, AutomationRule.enabled.is_(True),
               AutomationRule.deleted_at.is_(None))
        .order_by(AutomationRule.position, AutomationRule.id))
    return [(rule, version) for rule, version in rows]


# Asked on every commit that publishes: built once (building a statement costs more than running it).
WATCHED = select(AutomationRule.watch).where(AutomationRule.account_id == bindparam("account_id"),
                                             AutomationRule.enabled.is_(True), AutomationRule.deleted_at.is_(None))


def watched_event_types(watches: list[list[str] | None]) -> set[str]:
    """What the account's enabled rules react to, from their ``watch`` lists (WATCHED's rows; the
    outbox asks it on every commit, see automation.listeners)."""
    return {t for watch in watches for t in watch or ()}


async def get_rule(session: AsyncSession, account_id: int, rule_id: int) -> AutomationRule | None:
    return await session.scalar(select(AutomationRule).where(
        AutomationRule.id == rule_id, AutomationRule.account_id == account_id, AutomationRule.deleted_at.is_(None)))


async def lock_rule(session: AsyncSession, rule_id: int) -> AutomationRule | None:
    return await session.scalar(select(AutomationRule).where(AutomationRule.id == rule_id).with_for_update()
                                .execution_options(populate_existing=True))


async def get_version(session: AsyncSession, rule_id: int, version: int) -> AutomationRuleVersion | None:
    return await session.scalar(select(AutomationRuleVersion).where(
        AutomationRuleVersion.rule_id == rule_id, AutomationRuleVersion.version == version))


async def list_versions(session: AsyncSession, rule_id: int) -> list[AutomationRuleVersion]:
    return list((await session.scalars(select(AutomationRuleVersion).where(AutomationRuleVersion.rule_id == rule_id)
                                       .order_by(AutomationRuleVersion.version.desc()))).all())


async def next_position(session: AsyncSession, account_id: int) -> int:
    highest = await session.scalar(select(func.max(AutomationRule.position)).where(
        AutomationRule.account_id == account_id, AutomationRule.deleted_at.is_(None)))
    return 0 if highest is None else highest + 10


def rule_out(rule: AutomationRule, version: AutomationRuleVersion) -> RuleOut:
    return RuleOut(id=rule.id, name=version.name, description=version.description, enabled=rule.enabled,
                   position=rule.position, version=rule.version, trigger=version.trigger, conditions=version.conditions,
                   actions=version.actions, max_runs_per_hour=version.max_runs_per_hour, created_at=rule.created_at,
                   updated_at=rule.updated_at)


# --- what definitions refer to -------------------------------------------------------------------

async def missing_ids(session: AsyncSession, account_id: int, refs: dict[str, set[int]]) -> dict[str, list[int]]:
    """Of the ids a definition names, by kind, those that are not this account's (users: active ones)."""
    tables: dict[str, Any] = {"user": User, "team": Team, "inbox": Inbox, "canned_response": CannedResponse,
                              "webhook_subscription": WebhookSubscription, "skill": Skill}
    missing: dict[str, list[int]] = {}
    for kind, ids in refs.items():
        if not ids:
            continue
        model = tables[kind]
        stmt = select(model.id).where(model.id.in_(ids), model.account_id == account_id)
        if model is User:
            stmt = stmt.where(User.is_active.is_(True))
        found = set((await session.scalars(stmt)).all())
        if ids - found:
            missing[kind] = sorted(ids - found)
    return missing


async def account_time_zone(session: AsyncSession, account_id: int) -> str | None:
    account = await session.get(Account, account_id)
    value = (account.settings or {}).get("time_zone") if account is not None else None
    return value if isinstance(value, str) else None


async def locked_conversation(session: AsyncSession, account_id: int, conversation_id: int) -> Conversation | None:
    """The conversation, locked for the rest of the transaction: automation acting on one
    conversation from several workers at once queues up instead of losing updates (SQLite: every
    transaction already holds the write lock)."""
    return await session.scalar(select(Conversation).where(
        Conversation.id == conversation_id, Conversation.account_id == account_id).with_for_update())


# --- facts for conditions ------------------------------------------------------------------------

async def conversation_context(session: AsyncSession, conversation: Conversation, *, organization: bool,
                               message_text: bool) -> tuple[str, Contact | None, Organization | None, str | None]:
    """The conversation's channel, contact, the contact's organization (if asked) and the text of
    the customer's latest message (if asked)."""
    inbox = await session.get(Inbox, conversation.inbox_id)
    contact = await session.get(Contact, conversation.contact_id)
    org = None
    if organization and contact is not None and contact.organization_id is not None:
        org = await session.get(Organization, contact.organization_id)
    text = None
    if message_text:
        text = await session.scalar(select(Message.content).where(
            Message.conversation_id == conversation.id, Message.direction == Direction.incoming,
            Message.private.is_(False)).order_by(Message.id.desc()).limit(1))
    return (inbox.channel_kind if inbox is not None else ""), contact, org, text


# --- executions ----------------------------------------------------------------------------------

async def execution_exists(session: AsyncSession, rule_version_id: int, conversation_id: int, trigger_key: str) -> bool:
    return await session.scalar(select(AutomationExecution.id).where(
        AutomationExecution.rule_version_id == rule_version_id, AutomationExecution.conversation_id == conversation_id,
        AutomationExecution.trigger_key == trigger_key)) is not None


_RAN = (ExecutionOutcome.applied, ExecutionOutcome.partial, ExecutionOutcome.failed)


async def runs_since(session: AsyncSession, rule_id: int, conversation_id: int, since: datetime) -> int:
    """How often the rule acted on the conversation since ``since`` (the per-conversation cap)."""
    return await session.scalar(select(func.count()).select_from(AutomationExecution).where(
        AutomationExecution.rule_id == rule_id, AutomationExecution.conversation_id == conversation_id,
        AutomationExecution.created_at >= since, AutomationExecution.outcome.in_(_RAN))) or 0


async def list_executions(session: AsyncSession, account_id: int, *, rule_id: int | None, macro_id: int | None,
                          conversation_id: int | None, before_id: int | None, limit: int,
                          outcomes: Sequence[ExecutionOutcome] | None = None) -> list[AutomationExecution]:
    stmt = select(AutomationExecution).where(AutomationExecution.account_id == account_id)
    if outcomes:
        stmt = stmt.where(AutomationExecution.outcome.in_(list(dict.fromkeys(outcomes))))
    if rule_id is not None:
        stmt = stmt.where(AutomationExecution.rule_id == rule_id)
    if macro_id is not None:
        stmt = stmt.where(AutomationExecution.macro_id == macro_id)
    if conversation_id is not None:
        stmt = stmt.where(AutomationExecution.conversation_id == conversation_id)
    if before_id is not None:
        stmt = stmt.where(AutomationExecution.id < before_id)
    return list((await session.scalars(stmt.order_by(AutomationExecution.id.desc()).limit(limit))).all())


FIRED_OUTCOMES = (ExecutionOutcome.applied, ExecutionOutcome.partial, ExecutionOutcome.failed)


async def last_runs(session: AsyncSession, account_id: int, rule_ids: Sequence[int]
                    ) -> dict[int, tuple[AutomationExecution | None, AutomationExecution | None]]:
    """Each rule's latest execution and its latest one that acted (applied, partial or failed), in
    two statements whatever the number of rules: per rule, index probes on (rule_id, id) and
    (rule_id, outcome, id) — never a scan of a log that grows with every message."""
    if not rule_ids:
        return {}
    e = AutomationExecution

    def latest(*where: Any) -> Any:
        return select(func.max(e.id)).where(e.rule_id == AutomationRule.id, *where).scalar_subquery()

    rows = (await session.execute(select(AutomationRule.id, latest(), *(latest(e.outcome == o) for o in FIRED_OUTCOMES))
                                  .where(AutomationRule.account_id == account_id,
                                         AutomationRule.id.in_(list(rule_ids))))).all()
    wanted = {i for row in rows for i in row[1:] if i is not None}
    found = {x.id: x for x in (await session.scalars(select(e).where(e.id.in_(wanted)))).all()} if wanted else {}
    out = {}
    for rule_id, last, *fired in rows:
        acted = max((i for i in fired if i is not None), default=None)
        out[rule_id] = (found.get(last) if last is not None else None,
                        found.get(acted) if acted is not None else None)
    return out


# --- macros --------------------------------------------------------------------------------------

async def usable_macros(session: AsyncSession, principal: StaffPrincipal) -> list[Macro]:
    """Shared macros and the caller's own, by name."""
    return list((await session.scalars(select(Macro).where(
        Macro.account_id == principal.account_id,
        or_(Macro.owner_id.is_(None), Macro.owner_id == principal.user_id))
        .order_by(func.lower(Macro.name), Macro.id))).all())


async def get_macro(session: AsyncSession, principal: StaffPrincipal, macro_id: int) -> Macro | None:
    """A shared macro or one of the caller's own (someone else's personal macro does not exist)."""
    return await session.scalar(select(Macro).where(
        Macro.id == macro_id, Macro.account_id == principal.account_id,
        or_(Macro.owner_id.is_(None), Macro.owner_id == principal.user_id)))


# --- timers --------------------------------------------------------------------------------------

async def status_entry(session: AsyncSession, conversation: Conversation) -> tuple[str, datetime]:
    """When (and by which logged change) the conversation entered its current status: the latest
    status change, or its creation. The activity id identifies the entry."""
    row = (await session.execute(
        select(Activity.id, Activity.created_at).where(Activity.conversation_id == conversation.id,
                                                       Activity.verb.in_(("created", "status_changed")))
        .order_by(Activity.id.desc()).limit(1))).first()
    if row is None:
        return "c", conversation.created_at
    return f"a{row.id}", row.created_at


async def find_timer(session: AsyncSession, rule_version_id: int, conversation_id: int,
                     entry_key: str) -> AutomationTimer | None:
    return await session.scalar(select(AutomationTimer).where(
        AutomationTimer.rule_version_id == rule_version_id, AutomationTimer.conversation_id == conversation_id,
        AutomationTimer.entry_key == entry_key))


async def timer_for_update(session: AsyncSession, timer_id: int) -> AutomationTimer | None:
    """Locked until the transaction ends (SQLite: every transaction already holds the write lock)."""
    return await session.scalar(select(AutomationTimer).where(AutomationTimer.id == timer_id).with_for_update()
                                .execution_options(populate_existing=True))


async def scheduled_timers(session: AsyncSession, rule_ids: Sequence[int], conversation_id: int) -> list[AutomationTimer]:
    if not rule_ids:
        return []
    return list((await session.scalars(select(AutomationTimer).where(
        AutomationTimer.conversation_id == conversation_id, AutomationTimer.rule_id.in_(rule_ids),
        AutomationTimer.state == "scheduled"))).all())


async def conversation_ids_in_state(session: AsyncSession, account_id: int, trigger: Any, after_id: int,
                                    limit: int) -> list[int]:
    """Conversations a time rule may have to watch already (its backfill), by id."""
    stmt = select(Conversation.id).where(Conversation.account_id == account_id, Conversation.id > after_id)
    if trigger.type == "status_for":
        stmt = stmt.where(Conversation.status.in_([ConversationStatus(s) for s in trigger.statuses]))
    else:
        stmt = stmt.where(Conversation.waiting_since.is_not(None),
                          Conversation.status.in_((ConversationStatus.open, ConversationStatus.pending,
                                                   ConversationStatus.snoozed)))
    return list((await session.scalars(stmt.order_by(Conversation.id).limit(limit))).all())
