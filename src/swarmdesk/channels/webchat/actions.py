"""Changes the web chat makes: widget sessions (with signed identity), typing notices, transcripts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from swarmdesk.accounts.models import Role
from swarmdesk.auth.principals import CustomerPrincipal, StaffPrincipal
from swarmdesk.channels.models import Inbox
from swarmdesk.channels.webchat import service
from swarmdesk.channels.webchat.adapter import PROFILE_FIELDS, WebchatConfig, identity_matches
from swarmdesk.channels.webchat.schemas import WidgetSessionCreate
from swarmdesk.contacts import actions as contacts_actions
from swarmdesk.contacts import service as contacts_service
from swarmdesk.contacts.identity import IdentityClaim, handle_scope, normalize_email, normalize_phone
from swarmdesk.contacts.models import Contact, CustomerSession, IdentityKind
from swarmdesk.conversations import audience
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, SenderType
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import Conflict, NotAuthenticated, ValidationFailed
from swarmdesk.core.security import CUSTOMER_TOKEN_PREFIX, new_token, token_digest
from swarmdesk.events.types import ConversationTyping, CustomerTyping
from swarmdesk.jobs import service as jobs_service

TRANSCRIPT_JOB = "webchat.transcript"
TRANSCRIPTS_PER_HOUR = 3


@dataclass(slots=True)
class WidgetSession:
    session: CustomerSession
    token: str
    verified: bool
    email: str | None


def validate_form(config: WebchatConfig, values: dict[str, str]) -> dict[str, str]:
    """The form's values, checked against the inbox's form: known fields only, required ones
    present, email and phone normalized. Every problem is reported at once."""
    known = {f.name: f for f in config.fields}
    errors: list[dict[str, object]] = []
    clean: dict[str, str] = {}
    for name, value in values.items():
        if name not in known:
            errors.append({"loc": ["fields", name], "msg": "this form has no such field"})
            continue
        value = value.strip()
        if not value:
            continue
        try:
            clean[name] = normalize_email(value) if name == "email" else normalize_phone(value) \
                if name == "phone" else value
        except ValueError as exc:
            errors.append({"loc": ["fields", name], "msg": str(exc)})
    for f in config.fields:
        if f.required and f.name not in clean and not any(e["loc"] == ["fields", f.name] for e in errors):
            errors.append({"loc": ["fields", f.name], "msg": f"{f.label} is required"})
    if errors:
        raise ValidationFailed("; ".join(f"{e['loc'][1]}: {e['msg']}" for e in errors), extra={"errors": errors})
    return clean


async def do_start_widget_session(uow: UnitOfWork, inbox: Inbox, config: WebchatConfig,
                                  payload: WidgetSessionCreate, *, email_inbox: Inbox | None,
                                  days: int) -> WidgetSession:
    """A visitor opens the widget. Signed visitors (user_id + a valid user_hash) join their own
    contact through a verified handle scoped to this inbox; a wrong hash creates nothing. Form values
    are unverified: they fill a new contact's profile (or an existing one's blanks) and never join
    anyone else."""
    if (payload.user_id is None) != (payload.user_hash is None):
        raise ValidationFailed("user_id and user_hash go together: send both or neither")
    verified = payload.user_id is not None and payload.user_hash is not None
    if verified and not identity_matches(config.identity_secret, payload.user_id, payload.user_hash):  # type: ignore[arg-type]
        raise NotAuthenticated("user_hash is not the HMAC of user_id with this widget's identity secret")
    if (payload.user_email is None) != (payload.user_email_hash is None):
        raise ValidationFailed("user_email and user_email_hash go together: send both or neither")
    email_signed = payload.user_email is not None and payload.user_email_hash is not None
    if email_signed and not identity_matches(config.identity_secret, payload.user_email,  # type: ignore[arg-type]
                                             payload.user_email_hash):  # type: ignore[arg-type]
        raise NotAuthenticated("user_email_hash is not the HMAC of user_email with this widget's identity secret")
    values = validate_form(config, payload.fields)
    claims = [IdentityClaim(IdentityKind.handle, payload.user_id, handle_scope(inbox.id), verified=True)] \
        if verified and payload.user_id else []
    if email_signed and payload.user_email:
        # Signed by the customer's server: the same person on every channel with this address.
        claims.append(IdentityClaim(IdentityKind.email, payload.user_email, verified=True))
        values.setdefault("email", payload.user_email)
        verified = True
    if "email" in values and not email_signed:
        claims.append(IdentityClaim(IdentityKind.email, values["email"], verified=False))
    if "phone" in values:
        claims.append(IdentityClaim(IdentityKind.phone, values["phone"], verified=False))
    sender = await contacts_actions.resolve_sender(uow, inbox.account_id, claims, values.get("name", ""))
    contact = sender.contact
    if not sender.created:  # a returning signed visitor: the form only fills blanks
        contact.email = contact.email or values.get("email")
        contact.phone = contact.phone or values.get("phone")
    custom = {k: v for k, v in values.items() if k not in PROFILE_FIELDS}
    if custom:
        contact.custom_attributes = {**custom, **(contact.custom_attributes or {})}
    email = values.get("email") or contact.email
    if email_inbox is not None and email:
        await _reachable_by_email(uow, contact, email_inbox, email)
    token = new_token(CUSTOMER_TOKEN_PREFIX)
    now = utcnow()
    cs = CustomerSession(account_id=inbox.account_id, contact_id=contact.id, inbox_id=inbox.id,
                         token_hash=token_digest(token), created_at=now, expires_at=now + timedelta(days=days))
    uow.session.add(cs)
    await uow.commit()
    return WidgetSession(cs, token, verified, email if email_inbox is not None else None)


async def _reachable_by_email(uow: UnitOfWork, contact: Contact, email_inbox: Inbox, email: str) -> None:
    """Let agents answer this visitor from the email inbox (it then lists among the conversation's
    reply channels). The address is the visitor's word, so it is scoped to that inbox: identity
    matching compares kind, scope and value, and mail arriving from the address claims it
    account-wide, so it can never join this contact or be joined by it. One contact per address
    and inbox: a second visitor giving the same address is not reachable there."""
    claim = IdentityClaim(IdentityKind.email, email, handle_scope(email_inbox.id), verified=False)
    if not await contacts_service.find_by_claims(uow.session, contact.account_id, [claim]):
        contacts_service.add_identity(uow.session, contact, claim)


async def do_customer_typing(uow: UnitOfWork, customer: CustomerPrincipal, conversation: Conversation,
                             typing: bool) -> None:
    """The visitor is typing: the conversation's staff see it; no customer ever does."""
    contact = await uow.session.get(Contact, customer.contact_id)
    uow.publish(ConversationTyping(
        account_id=conversation.account_id, audience=audience.conversation_staff(conversation),
        conversation_id=conversation.id, sender_type="contact", sender_id=customer.contact_id,
        sender_name=contact.name if contact else "", typing=typing))
    await uow.commit()


async def do_agent_typing(uow: UnitOfWork, principal: StaffPrincipal, conversation: Conversation, typing: bool,
                          *, private: bool) -> None:
    """An agent is typing: colleagues always see it; the customer only for a reply they will get
    (not for an internal note, and never from an expert, who cannot reply to customers)."""
    private = private or principal.role == Role.expert
    uow.publish(ConversationTyping(
        account_id=conversation.account_id, audience=audience.conversation_staff(conversation),
        conversation_id=conversation.id, sender_type="user", sender_id=principal.user_id,
        sender_name=principal.name, typing=typing, private=private))
    if not private:
        uow.publish(CustomerTyping(account_id=conversation.account_id,
                                   audience=audience.conversation_customer(conversation),
                                   conversation_id=conversation.id, sender_name=principal.name, typing=typing))
    await uow.commit()


async def do_request_transcript(uow: UnitOfWork, customer: CustomerPrincipal, conversation: Conversation,
                                email_inbox: Inbox) -> str:
    """Queue a mail of the conversation's public messages (as they are now) to the visitor's email.
    Recorded on the conversation's activity, which also bounds how often it can be asked for: the
    address is the visitor's word, so the widget must not become a way to mail someone else."""
    session = uow.session
    contact = await session.get(Contact, customer.contact_id)
    if contact is None or not contact.email:
        raise Conflict("we have no email address for you: give one in the chat form first")
    if await service.transcripts_since(session, conversation.id) >= TRANSCRIPTS_PER_HOUR:
        raise Conflict(f"at most {TRANSCRIPTS_PER_HOUR} transcripts of a conversation are sent per hour")
    up_to = await service.last_public_message_id(session, conversation.id)
    activity = conversations_service.add_activity(session, conversation, SenderType.contact, contact.id,
                                                  service.TRANSCRIPT_VERB, {"to": contact.email,
                                                                            "inbox_id": email_inbox.id})
    await session.flush()
    jobs_service.enqueue(session, TRANSCRIPT_JOB, {"activity_id": activity.id, "conversation_id": conversation.id,
                                                   "email_inbox_id": email_inbox.id, "to": contact.email,
                                                   "up_to_message_id": up_to}, account_id=conversation.account_id)
    await uow.commit()
    return contact.email
