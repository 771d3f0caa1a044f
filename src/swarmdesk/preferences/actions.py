"""Changes made by or under the customer's contact rules. The only module here that publishes.

``do_send_proactive`` is the entry point for every outbound message that is not a direct answer
to the customer (automation reminders, surveys, notifications): it asks the policy, then sends
now, sends on another channel, holds the message back until the rules allow it, or records that
the rules refused it, and the agent sees why in the conversation's activity. An agent starting a
conversation with a first message goes through ``do_start_conversation`` (the create route).
Direct answers (an agent replying where the customer wrote) keep using
``conversations.actions.do_send_message``: the rules do not apply to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from swarmdesk.accounts.models import Role, User
from swarmdesk.auth import service as auth_service
from swarmdesk.auth.principals import CustomerPrincipal, StaffPrincipal
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts import service as contacts_service
from swarmdesk.contacts.models import Contact
from swarmdesk.contacts.schemas import ContactOut
from swarmdesk.conversations import actions as conversations_actions
from swarmdesk.conversations import audience, reply
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, Message
from swarmdesk.conversations.schemas import ConversationCreate, MessageCreate, SendDecisionOut
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import NestedUnitOfWork, UnitOfWork
from swarmdesk.core.errors import Conflict, NotFound, ValidationFailed
from swarmdesk.core.storage import AttachmentStore, StoredFile
from swarmdesk.events.types import ContactUpdated, ConversationUpdated
from swarmdesk.jobs import service as jobs_service
from swarmdesk.preferences import policy, service
from swarmdesk.preferences.models import ContactRules, ContactTouch, DeferredSend, DeferredStatus
from swarmdesk.preferences.policy import Decision, Outcome, Purpose
from swarmdesk.preferences.schemas import ContactRulesIn

SEND_DEFERRED_JOB = "preferences.send_deferred"


@dataclass(slots=True)
class Sent:
    """What became of one proactive message."""

    decision: Decision
    message: Message | None = None  # sent now (send, move)
    deferred: DeferredSend | None = None  # held back (defer)

    def out(self) -> SendDecisionOut:
        return decision_out(self.decision, message_id=self.message.id if self.message else None,
                            deferred_send_id=self.deferred.id if self.deferred else None)


def decision_out(decision: Decision, *, message_id: int | None = None,
                 deferred_send_id: int | None = None) -> SendDecisionOut:
    return SendDecisionOut(
        outcome=decision.outcome.value, explanation=decision.explanation, reasons=list(decision.reasons),
        channel_kind=decision.channel.kind, inbox_id=decision.channel.inbox_id,
        requested_channel_kind=decision.requested.kind, requested_inbox_id=decision.requested.inbox_id,
        send_at=decision.send_at, message_id=message_id, deferred_send_id=deferred_send_id)


class RefusedByContactRules(Conflict):
    title, type_slug = "Refused by the customer's contact rules", "contact-rules"


def refused(decision: Decision) -> RefusedByContactRules:
    return RefusedByContactRules(decision.explanation, extra={
        "code": "contact_rules", "decision": decision_out(decision).model_dump(mode="json")})


class _TextOnly(AttachmentStore):
    """Proactive messages are text: the conversation action never stores a file for them."""

    def __init__(self) -> None:
        super().__init__(Path("."))

    async def put(self, data: bytes) -> StoredFile:
        raise AssertionError("proactive messages carry no attachments")


# --- deciding and carrying out ----------------------------------------------------------------------

async def _decide(uow: UnitOfWork, contact: Contact, purpose: Purpose, inbox: Inbox, chars: int) -> Decision:
    """The decision, with the customer's rules locked for the rest of the transaction: two sends to
    one customer cannot both count the same free place under the cap."""
    person = await service.survivor_of(uow.session, contact)
    await service.rules_row(uow.session, person.id, lock=True)
    return await policy.decide(uow.session, contact, purpose=purpose, inbox=inbox, now=utcnow(), chars=chars)


def _activity(uow: UnitOfWork, conversation: Conversation, principal: StaffPrincipal, verb: str, decision: Decision,
              purpose: Purpose, **extra: Any) -> None:
    data = {"explanation": decision.explanation, "outcome": decision.outcome.value, "purpose": purpose.value,
            "reasons": list(decision.reasons), "channel": decision.channel.kind, "inbox_id": decision.channel.inbox_id,
            "requested_channel": decision.requested.kind,
            "send_at": decision.send_at.isoformat() if decision.send_at else None, **extra}
    conversations_service.add_activity(uow.session, conversation, *conversations_actions.actor_of(principal), verb, data)


async def _publish_changed(uow: UnitOfWork, conversation: Conversation) -> None:
    """Agents looking at the conversation pull its timeline (and see the new activity)."""
    contact = await uow.session.get(Contact, conversation.contact_id)
    inbox = await uow.session.get(Inbox, conversation.inbox_id)
    assert contact is not None and inbox is not None
    uow.publish(ConversationUpdated(account_id=conversation.account_id,
                                    audience=audience.conversation_staff(conversation),
                                    conversation=conversations_service.conversation_out(conversation, contact,
                                                                                        inbox.channel_kind),
                                    changed=["contact_rules"]))


async def _count_touch(uow: UnitOfWork, contact: Contact, conversation: Conversation, message: Message,
                       purpose: Purpose) -> None:
    person = await service.survivor_of(uow.session, contact)
    uow.session.add(ContactTouch(account_id=conversation.account_id, contact_id=person.id,
                                 conversation_id=conversation.id, message_id=message.id, purpose=purpose.value,
                                 channel=message.channel, sent_at=message.created_at))


async def _carry_out(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation, contact: Contact,
                     decision: Decision, content: str, purpose: Purpose) -> Sent:
    """Send now (on the decided inbox) or hold back until ``send_at``; refusals never get here.
    Runs inside ``uow`` (a NestedUnitOfWork): nothing is committed here."""
    session, now = uow.session, utcnow()
    if decision.outcome == Outcome.defer:
        assert decision.send_at is not None
        # The channel must be able to take it at all (length, an address): say so now, not at 08:00.
        await reply.choose_inbox(session, conversation, decision.channel.inbox_id, chars=len(content))
        row = DeferredSend(account_id=conversation.account_id, conversation_id=conversation.id, contact_id=contact.id,
                           author_id=None if principal.is_system else principal.user_id,
                           inbox_id=decision.channel.inbox_id, purpose=purpose.value, content=content,
                           status=DeferredStatus.scheduled, send_at=decision.send_at,
                           explanation=decision.explanation, created_at=now)
        session.add(row)
        await session.flush()
        jobs_service.enqueue(session, SEND_DEFERRED_JOB, {"deferred_send_id": row.id},
                             account_id=conversation.account_id, run_at=decision.send_at)
        _activity(uow, conversation, principal, "send_deferred", decision, purpose, deferred_send_id=row.id)
        return Sent(decision, deferred=row)
    message = await conversations_actions.do_send_message(
        uow, principal, conversation, MessageCreate(content=content, inbox_id=decision.channel.inbox_id),
        store=_TextOnly(), max_attachment_bytes=0)
    await _count_touch(uow, contact, conversation, message, purpose)
    if decision.moved:
        _activity(uow, conversation, principal, "send_moved", decision, purpose, message_id=message.id)
    return Sent(decision, message=message)


# --- an agent starts a conversation ------------------------------------------------------------------

async def do_start_conversation(uow: UnitOfWork, principal: StaffPrincipal, payload: ConversationCreate, *,
                                store: AttachmentStore, max_attachment_bytes: int) -> tuple[Conversation, Sent | None]:
    """``POST /api/v1/conversations``: an agent starts a conversation with a customer. Its first
    message is proactive outreach and obeys the customer's rules: sent now; moved (the
    conversation then lives on the channel it went out on, so later replies do not return to the
    refused one); deferred (a delayed job sends it when the rules allow); or refused, and then
    nothing is created (a 409 with the explanation)."""
    if not payload.content:
        conversation = await conversations_actions.do_create_conversation(
            uow, principal, payload, store=store, max_attachment_bytes=max_attachment_bytes)
        return conversation, None
    conversations_actions.access_for_write(principal, private=False)
    session = uow.session
    inbox = await session.scalar(select(Inbox).where(Inbox.id == payload.inbox_id,
                                                     Inbox.account_id == principal.account_id))
    contact = await session.scalar(select(Contact).where(Contact.id == payload.contact_id,
                                                         Contact.account_id == principal.account_id))
    if inbox is None or contact is None:  # the conversation action says which one is unknown
        await conversations_actions.do_create_conversation(
            uow, principal, payload.model_copy(update={"content": None}), store=store,
            max_attachment_bytes=max_attachment_bytes)
        raise AssertionError("do_create_conversation accepted an unknown inbox or contact")
    decision = await _decide(uow, contact, Purpose.outreach, inbox, len(payload.content))
    if not decision.allowed:
        raise refused(decision)
    batch = NestedUnitOfWork(uow)
    conversation = await conversations_actions.do_create_conversation(
        batch, principal, payload.model_copy(update={"content": None, "inbox_id": decision.channel.inbox_id or inbox.id}),
        store=store, max_attachment_bytes=max_attachment_bytes)
    sent = await _carry_out(batch, principal, conversation, contact, decision, payload.content, Purpose.outreach)
    await uow.commit()
    return conversation, sent


# --- the entry point for later outbound paths ---------------------------------------------------------

async def do_send_proactive(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation, content: str,
                            purpose: Purpose, *, inbox_id: int | None = None) -> Sent:
    """Send ``content`` to the conversation's customer as a proactive message, if and how their
    contact rules allow, and commit. For automation (``purpose=Purpose.reminder``), surveys
    (``Purpose.survey``) and anything else Swarmdesk sends on its own (``Purpose.notification``);
    ``principal`` is usually ``StaffPrincipal.system(account_id)``.

    The channel is ``inbox_id``, or the one a reply would use (where the customer last wrote).
    Returns what happened (``Sent.decision.outcome``): ``send``/``move`` (``Sent.message``, counted
    toward the cap), ``defer`` (``Sent.deferred``, sent by a delayed job when the rules allow,
    after checking them again) or ``refuse`` (nothing sent). Every outcome but a plain send leaves
    an activity with the explanation (``send_deferred``, ``send_moved``, ``send_refused``). A
    channel that cannot take the message at all raises as for a reply (a 4xx domain error)."""
    if purpose == Purpose.reply:
        raise ValueError("a direct answer is not proactive: use conversations.actions.do_send_message")
    content = content.strip()
    if not content:
        raise ValidationFailed("a proactive message needs content")
    session = uow.session
    contact = await session.get(Contact, conversation.contact_id)
    inbox = await session.get(Inbox, inbox_id if inbox_id is not None
                              else await reply.default_inbox_id(session, conversation))
    if contact is None or inbox is None or inbox.account_id != conversation.account_id:
        raise NotFound(f"inbox {inbox_id} not found")
    decision = await _decide(uow, contact, purpose, inbox, len(content))
    if not decision.allowed:
        _activity(uow, conversation, principal, "send_refused", decision, purpose)
        await _publish_changed(uow, conversation)
        await uow.commit()
        return Sent(decision)
    sent = await _carry_out(NestedUnitOfWork(uow), principal, conversation, contact, decision, content, purpose)
    if sent.deferred is not None:
        await _publish_changed(uow, conversation)
    await uow.commit()
    return sent


# --- the delayed job's work ------------------------------------------------------------------------

async def _author(uow: UnitOfWork, row: DeferredSend) -> StaffPrincipal:
    """Who the held-back message is from: the agent who wrote it, if they still may write to
    customers; Swarmdesk itself otherwise (or when Swarmdesk wrote it)."""
    user = await uow.session.get(User, row.author_id) if row.author_id is not None else None
    if user is None or not user.is_active or user.role == Role.expert or user.account_id != row.account_id:
        return StaffPrincipal.system(row.account_id)
    return StaffPrincipal(user_id=user.id, account_id=user.account_id, role=user.role, name=user.name,
                          email=user.email, team_ids=await auth_service.team_ids_for(uow.session, user.id),
                          scopes=None, via="scheduled")


async def do_send_deferred(uow: UnitOfWork, deferred_send_id: int) -> DeferredSend | None:
    """A held-back message is due: check the rules again, then send it, hold it back again, or
    refuse it. Exactly once: the row is locked and only a ``scheduled`` row is acted on, and its
    new status commits in the same transaction as the message (and its count toward the cap), so a
    job that runs again after a crash, or twice at once, finds it already done."""
    session, now = uow.session, utcnow()
    row = await service.lock_deferred(session, deferred_send_id)
    if row is None or row.status != DeferredStatus.scheduled:
        return row
    if row.send_at > now:  # a stale copy of the job (it was deferred again since): the newer job will come
        return row
    conversation = await session.get(Conversation, row.conversation_id)
    contact = await session.get(Contact, row.contact_id)
    assert conversation is not None and contact is not None  # both cascade to this row
    inbox = await session.get(Inbox, row.inbox_id) if row.inbox_id is not None else None
    if inbox is None or not inbox.is_active:
        inbox = await session.get(Inbox, await reply.default_inbox_id(session, conversation))
    assert inbox is not None
    system = StaffPrincipal.system(row.account_id)
    purpose = Purpose(row.purpose)
    decision = await _decide(uow, contact, purpose, inbox, len(row.content))
    row.explanation = decision.explanation
    if decision.outcome == Outcome.refuse:
        row.status, row.finished_at = DeferredStatus.refused, now
        _activity(uow, conversation, system, "send_refused", decision, purpose, deferred_send_id=row.id)
        await _publish_changed(uow, conversation)
        await uow.commit()
        return row
    if decision.outcome == Outcome.defer:  # the rules changed meanwhile: wait again
        assert decision.send_at is not None
        row.send_at, row.inbox_id = decision.send_at, decision.channel.inbox_id
        jobs_service.enqueue(session, SEND_DEFERRED_JOB, {"deferred_send_id": row.id}, account_id=row.account_id,
                             run_at=decision.send_at)
        _activity(uow, conversation, system, "send_deferred", decision, purpose, deferred_send_id=row.id)
        await _publish_changed(uow, conversation)
        await uow.commit()
        return row
    author = await _author(uow, row)
    try:
        sent = await _carry_out(NestedUnitOfWork(uow), author, conversation, contact, decision, row.content, purpose)
    except (Conflict, ValidationFailed, NotFound) as exc:  # the channel cannot take it now (closed, disabled, ...)
        await uow.rollback()
        return await _fail(uow, deferred_send_id, decision, purpose, exc.detail)
    assert sent.message is not None
    row.status, row.message_id, row.finished_at = DeferredStatus.sent, sent.message.id, now
    await uow.commit()
    return row


async def _fail(uow: UnitOfWork, deferred_send_id: int, decision: Decision, purpose: Purpose,
                detail: str) -> DeferredSend | None:
    row = await service.lock_deferred(uow.session, deferred_send_id)
    if row is None or row.status != DeferredStatus.scheduled:
        return row
    conversation = await uow.session.get(Conversation, row.conversation_id)
    assert conversation is not None
    row.status, row.finished_at = DeferredStatus.failed, utcnow()
    row.explanation = f"Not sent: {detail}"
    conversations_service.add_activity(uow.session, conversation, *conversations_actions.actor_of(
        StaffPrincipal.system(row.account_id)), "send_refused", {
            "explanation": row.explanation, "outcome": "failed", "purpose": purpose.value,
            "channel": decision.channel.kind, "inbox_id": decision.channel.inbox_id, "deferred_send_id": row.id})
    await _publish_changed(uow, conversation)
    await uow.commit()
    return row


async def do_cancel_deferred(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation,
                             row: DeferredSend) -> DeferredSend:
    """An agent withdraws a held-back message before it is due; its job then finds nothing to do."""
    conversations_actions.access_for_write(principal, private=False)
    locked = await service.lock_deferred(uow.session, row.id)
    assert locked is not None
    if locked.status != DeferredStatus.scheduled:
        raise Conflict(f"this message is {locked.status.value} already; only a scheduled one can be cancelled")
    locked.status, locked.finished_at = DeferredStatus.cancelled, utcnow()
    conversations_service.add_activity(uow.session, conversation, *conversations_actions.actor_of(principal),
                                       "send_cancelled", {"deferred_send_id": locked.id})
    await _publish_changed(uow, conversation)
    await uow.commit()
    return locked


# --- the customer sets their rules ------------------------------------------------------------------

async def do_set_contact_rules(uow: UnitOfWork, customer: CustomerPrincipal, payload: ContactRulesIn) -> ContactRules:
    """The customer replaces their rules (a merged contact's portal session sets the survivor's,
    whose rules are the ones that apply). Agents' views of the customer refresh (contact.updated)."""
    session, now = uow.session, utcnow()
    contact = await session.get(Contact, customer.contact_id)
    if contact is None or contact.account_id != customer.account_id:
        raise NotFound("this customer is gone")
    person = await service.survivor_of(session, contact)
    # Locked: two saves at once cannot both insert the contact's first row.
    await contacts_service.lock_contacts(session, person.account_id, [person.id])
    if payload.preferred_channel:
        reachable = {c.kind for c in await policy.reachable_channels(session, person)}
        if payload.preferred_channel not in reachable:
            raise ValidationFailed(f"preferred_channel: we cannot reach you by "
                                   f"{policy.channel_label(payload.preferred_channel)}; choose one of the channels "
                                   "you can be reached on", extra={"reachable": sorted(reachable)})
    row = await service.rules_row(session, person.id)
    if row is None:
        row = ContactRules(account_id=person.account_id, contact_id=person.id, never_channels=[], created_at=now,
                           updated_at=now)
        session.add(row)
    quiet, cap = payload.quiet_hours, payload.contact_cap
    row.preferred_channel = payload.preferred_channel
    row.never_channels = list(payload.never_channels)
    row.quiet_start, row.quiet_end = (quiet.start, quiet.end) if quiet else (None, None)
    row.time_zone = quiet.time_zone if quiet else None
    row.cap_count, row.cap_days = (cap.max_contacts, cap.per_days) if cap else (None, None)
    row.updated_at = now
    uow.publish(ContactUpdated(account_id=person.account_id, audience=audience.account_staff(),
                               contact=ContactOut.model_validate(person)))
    await uow.commit()
    return row
