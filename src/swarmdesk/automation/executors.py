"""One function per action type: each calls the owning domain's action (the same permissions,
activity entries and events as when a person does it) inside the caller's transaction, and
returns what it did. A refused action raises a domain error."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from swarmdesk.accounts.models import Role
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.automation import schemas as s
from swarmdesk.canned_responses import service as canned_service
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations import actions as conversation_actions
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, ConversationStatus
from swarmdesk.conversations.schemas import ConversationUpdate, MessageCreate, TagsUpdate
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import Forbidden, ValidationFailed
from swarmdesk.core.storage import AttachmentStore
from swarmdesk.jobs import service as jobs_service
from swarmdesk.preferences import actions as preferences_actions
from swarmdesk.preferences.policy import Purpose
from swarmdesk.routing import actions as routing_actions
from swarmdesk.routing.schemas import RequiredSkillIn
from swarmdesk.swarming import actions as swarming_actions
from swarmdesk.webhooks.actions import DELIVER_JOB as WEBHOOK_DELIVER_JOB
from swarmdesk.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

# What an expert may do with a macro: write notes (and so mention colleagues), nothing else.
EXPERT_ACTIONS = frozenset({"add_note", "notify"})


@dataclass(slots=True)
class Run:
    """One execution's circumstances."""

    uow: UnitOfWork
    principal: StaffPrincipal
    conversation: Conversation
    execution_id: int
    source: dict[str, Any]  # {"rule": {id, version, name}} or {"macro": {id, name}}
    trigger: dict[str, Any] | None  # the trigger event's uid and type, or the timer
    store: AttachmentStore
    max_attachment_bytes: int
    # For a rule's reply when the customer is not waiting for an answer: the proactive purpose
    # under which the customer's contact rules are consulted. None: a person's macro (an answer).
    proactive_purpose: Purpose | None
    action_index: int = 0  # which of the execution's actions is running


Executor = Callable[[Run, Any], Awaitable[dict[str, Any]]]


async def execute(run: Run, action: Any) -> dict[str, Any]:
    if run.principal.role == Role.expert and action.type not in EXPERT_ACTIONS:
        raise Forbidden(f"experts cannot {action.type.replace('_', ' ')}: a macro of theirs may only add notes "
                        "and notify colleagues")
    return await EXECUTORS[action.type](run, action)


async def _update(run: Run, update: ConversationUpdate) -> None:
    await conversation_actions.do_update_conversation(run.uow, run.principal, run.conversation, update)


async def _assign(run: Run, action: s.AssignAction) -> dict[str, Any]:
    before = run.conversation.assignee_id
    await _update(run, ConversationUpdate(assignee_id=action.user_id))
    return {"assignee_id": run.conversation.assignee_id, "changed": before != run.conversation.assignee_id}


async def _set_team(run: Run, action: s.SetTeamAction) -> dict[str, Any]:
    before = run.conversation.team_id
    await _update(run, ConversationUpdate(team_id=action.team_id))
    return {"team_id": run.conversation.team_id, "changed": before != run.conversation.team_id}


async def _set_priority(run: Run, action: s.SetPriorityAction) -> dict[str, Any]:
    before = run.conversation.priority
    await _update(run, ConversationUpdate(priority=action.priority))
    return {"priority": str(run.conversation.priority), "changed": before != run.conversation.priority}


async def _tags(run: Run, update: TagsUpdate) -> dict[str, Any]:
    before = list(run.conversation.tag_names or [])
    tags = await conversation_actions.do_update_tags(run.uow, run.principal, run.conversation, update)
    return {"tags": tags, "changed": tags != before}


async def _add_tags(run: Run, action: s.AddTagsAction) -> dict[str, Any]:
    return await _tags(run, TagsUpdate(add=action.tags))


async def _remove_tags(run: Run, action: s.RemoveTagsAction) -> dict[str, Any]:
    return await _tags(run, TagsUpdate(remove=action.tags))


async def _render(run: Run, body: str) -> str:
    values = await canned_service.placeholder_values(run.uow.session, run.principal, run.conversation)
    return canned_service.render(body, values)


async def _reply_template(run: Run, action: s.ReplyTemplateAction) -> dict[str, Any]:
    canned = await canned_service.get(run.uow.session, run.conversation.account_id, action.canned_response_id)
    if canned is None:
        raise ValidationFailed(f"canned response {action.canned_response_id} no longer exists")
    text = await _render(run, canned.body)
    # An answer to a customer who is waiting for one is a reply; anything else Swarmdesk sends on
    # its own (a reminder while the conversation is pending, say) asks the customer's contact rules.
    if run.proactive_purpose is None or run.conversation.waiting_since is not None:
        message = await conversation_actions.do_send_message(
            run.uow, run.principal, run.conversation, MessageCreate(content=text), store=run.store,
            max_attachment_bytes=run.max_attachment_bytes)
        return {"message_id": message.id, "canned_response_id": canned.id}
    sent = await preferences_actions.do_send_proactive(run.uow, run.principal, run.conversation, text,
                                                       run.proactive_purpose)
    return {"canned_response_id": canned.id, "outcome": sent.decision.outcome.value,
            "explanation": sent.decision.explanation, "message_id": sent.message.id if sent.message else None,
            "deferred_send_id": sent.deferred.id if sent.deferred else None}


async def _note(run: Run, content: str, mention_ids: list[int]) -> int:
    message = await conversation_actions.do_send_message(
        run.uow, run.principal, run.conversation, MessageCreate(content=content, private=True, mention_ids=mention_ids),
        store=run.store, max_attachment_bytes=run.max_attachment_bytes)
    return message.id


async def _add_note(run: Run, action: s.AddNoteAction) -> dict[str, Any]:
    return {"message_id": await _note(run, await _render(run, action.content), [])}


async def _notify(run: Run, action: s.NotifyAction) -> dict[str, Any]:
    """An internal note that @mentions them: each gets a notification and can open the conversation."""
    ids = list(action.user_ids)
    assignee = run.conversation.assignee_id
    if action.notify_assignee and assignee is not None and assignee not in ids:
        ids.append(assignee)
    if not ids:
        return {"notified": [], "message_id": None}
    message_id = await _note(run, await _render(run, action.text), ids)
    return {"notified": [u for u in ids if u != run.principal.user_id], "message_id": message_id}


async def _call_webhook(run: Run, action: s.CallWebhookAction) -> dict[str, Any]:
    """A delivery of the webhooks domain (its log, signature, outbound guard and retrying job),
    to the subscription's URL with its secret."""
    session, conversation = run.uow.session, run.conversation
    sub = await session.get(WebhookSubscription, action.subscription_id)
    if sub is None or sub.account_id != conversation.account_id:
        raise ValidationFailed(f"webhook subscription {action.subscription_id} no longer exists")
    if not sub.is_active:
        raise ValidationFailed(f"webhook subscription {action.subscription_id} is switched off")
    contact = await session.get(Contact, conversation.contact_id)
    inbox = await session.get(Inbox, conversation.inbox_id)
    assert contact is not None and inbox is not None
    now = utcnow()
    body = {"type": "automation.webhook", "uid": os.urandom(16).hex(), "account_id": conversation.account_id,
            "occurred_at": now.isoformat(), **run.source, "execution_id": run.execution_id, "trigger": run.trigger,
            "conversation": conversations_service.conversation_out(conversation, contact, inbox.channel_kind)
            .model_dump(mode="json")}
    delivery = WebhookDelivery(account_id=conversation.account_id, subscription_id=sub.id,
                               webhook_id=f"auto_{run.execution_id}_{run.action_index}",
                               event_type="automation.webhook", url=sub.url, payload=body,
                               status=DeliveryStatus.pending, attempts=0, created_at=now)
    session.add(delivery)
    await session.flush()
    jobs_service.enqueue(session, WEBHOOK_DELIVER_JOB, {"delivery_id": delivery.id}, account_id=conversation.account_id)
    return {"delivery_id": delivery.id, "webhook_id": delivery.webhook_id}


async def _start_swarm(run: Run, action: s.StartSwarmAction) -> dict[str, Any]:
    swarm = await swarming_actions.do_start_swarm(run.uow, run.principal, run.conversation,
                                                  invite_user_ids=action.invite_user_ids, note=action.note or None)
    return {"swarm_id": swarm.id}


async def _set_required_skills(run: Run, action: s.SetRequiredSkillsAction) -> dict[str, Any]:
    required = await routing_actions.do_set_required_skills(
        run.uow, run.principal, run.conversation,
        [RequiredSkillIn(skill_id=k.skill_id, min_proficiency=k.min_proficiency) for k in action.skills])
    return {"skills": required}


async def _snooze(run: Run, action: s.SnoozeAction) -> dict[str, Any]:
    until = utcnow() + timedelta(minutes=action.minutes)
    await _update(run, ConversationUpdate(status=ConversationStatus.snoozed, snoozed_until=until))
    return {"snoozed_until": until.isoformat()}


async def _resolve(run: Run, action: s.ResolveAction) -> dict[str, Any]:
    before = run.conversation.status
    await _update(run, ConversationUpdate(status=ConversationStatus.resolved))
    return {"status": str(run.conversation.status), "changed": before != run.conversation.status}


EXECUTORS: dict[str, Executor] = {
    "assign": _assign, "set_team": _set_team, "set_priority": _set_priority, "add_tags": _add_tags,
    "remove_tags": _remove_tags, "reply_template": _reply_template, "add_note": _add_note, "notify": _notify,
    "call_webhook": _call_webhook, "start_swarm": _start_swarm, "set_required_skills": _set_required_skills,
    "snooze": _snooze, "resolve": _resolve,
}
