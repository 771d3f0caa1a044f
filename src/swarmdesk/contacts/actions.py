"""Changes to customers: creation, identity resolution, customer sessions, merge suggestions,
merges and their undoing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Insert, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts import service as accounts_service
from swarmdesk.auth import audience as auth_audience
from swarmdesk.auth.principals import StaffPrincipal, customer_credential
from swarmdesk.channels.models import Inbox
from swarmdesk.contacts import matching, service
from swarmdesk.contacts.identity import IdentityClaim
from swarmdesk.contacts.models import (
    Contact,
    ContactIdentity,
    ContactMerge,
    ContactMergeSuggestion,
    ContactNote,
    CustomerSession,
    IdentityKind,
    Organization,
    SuggestionStatus,
)
from swarmdesk.contacts.schemas import (
    ContactCreate,
    ContactNoteCreate,
    ContactOut,
    ContactUpdate,
    CustomerSessionCreate,
    MergeMoved,
    OrganizationCreate,
)
from swarmdesk.conversations import audience
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, Message, SenderType
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import Conflict, NotFound, ValidationFailed
from swarmdesk.core.security import CUSTOMER_TOKEN_PREFIX, new_token, token_digest
from swarmdesk.events.types import ContactCreated, ContactUpdated, ConversationUpdated, CredentialRevoked
from swarmdesk.jobs import service as jobs_service


def _publish_created(uow: UnitOfWork, contact: Contact) -> None:
    uow.publish(ContactCreated(account_id=contact.account_id, audience=audience.account_staff(),
                               contact=ContactOut.model_validate(contact)))


def _publish_updated(uow: UnitOfWork, contact: Contact) -> None:
    uow.publish(ContactUpdated(account_id=contact.account_id, audience=audience.account_staff(),
                               contact=ContactOut.model_validate(contact)))


def _suggest_later(uow: UnitOfWork, contact: Contact) -> None:
    """Matching runs in a job: the caller's transaction only adds one row (and none when no rule
    could find anything for the contact)."""
    if matching.has_evidence(contact):
        jobs_service.enqueue(uow.session, matching.SUGGEST_JOB, {"contact_id": contact.id},
                             account_id=contact.account_id)


@dataclass(slots=True)
class Sender:
    contact: Contact
    matched: IdentityClaim | None  # the verified identifier that found an existing contact
    created: bool


async def resolve_contact(uow: UnitOfWork, account_id: int, claims: Sequence[IdentityClaim], name: str) -> Contact:
    return (await resolve_sender(uow, account_id, claims, name)).contact


class KnownSenders:
    """Who holds which verified identifier, for one group commit: the senders of all its
    deliveries looked up in one statement, and kept true as the batch creates contacts and adds
    identities (so a contact created by the batch's first message is found by its third)."""

    __slots__ = ("_holders",)

    def __init__(self) -> None:
        self._holders: dict[tuple[int, service.ClaimKey], Contact | None] = {}

    async def prefetch(self, session: AsyncSession, account_id: int, claims: Sequence[IdentityClaim]) -> None:
        verified = [c for c in claims if c.verified]
        for c in verified:
            self._holders[(account_id, service.claim_key(c))] = None
        for key, contact in await service.contacts_by_claims(session, account_id, verified):
            self._holders[(account_id, key)] = contact

    def lookup(self, account_id: int, verified: Sequence[IdentityClaim]) -> list[tuple[service.ClaimKey, Contact]] | None:
        """The holders of these identifiers, or None when any of them was not prefetched."""
        found: list[tuple[service.ClaimKey, Contact]] = []
        for c in verified:
            key = service.claim_key(c)
            if (account_id, key) not in self._holders:
                return None
            contact = self._holders[(account_id, key)]
            if contact is not None:
                found.append((key, contact))
        return found

    def holders(self, account_id: int, claims: Sequence[IdentityClaim]) -> list[Contact]:
        """The contacts known to hold any of these verified identifiers."""
        found = (self._holders.get((account_id, service.claim_key(c))) for c in claims if c.verified)
        return list({contact.id: contact for contact in found if contact is not None}.values())

    def hold(self, contact: Contact, claims: Sequence[IdentityClaim]) -> None:
        for c in claims:
            self._holders[(contact.account_id, service.claim_key(c))] = contact


async def resolve_sender(uow: UnitOfWork, account_id: int, claims: Sequence[IdentityClaim], name: str,
                         known: KnownSenders | None = None) -> Sender:
    """The contact a sender is, by exact match on a verified identifier; a new contact otherwise.

    Only verified claims are matched and recorded as identities; unverified ones (an email typed into
    a widget) are kept on a new contact's profile and never join anyone else. Runs in the caller's
    transaction; ``known`` answers for identifiers a group commit looked up beforehand.
    """
    session = uow.session
    verified = [c for c in claims if c.verified]
    existing = known.lookup(account_id, verified) if known is not None else None
    if existing is None:
        existing = await service.contacts_by_claims(session, account_id, verified)
    if existing:
        # Prefer the claim the channel listed first (its own handle), then the others.
        order = {service.claim_key(c): i for i, c in enumerate(verified)}
        existing.sort(key=lambda pair: order.get(pair[0], 99))
        contact = existing[0][1]
        matched = verified[order[existing[0][0]]] if existing[0][0] in order else None
        held = {key for key, _ in existing}
        added = [claim for claim in verified if service.claim_key(claim) not in held]
        for claim in added:
            service.add_identity(session, contact, claim)
        if added:
            await session.flush()  # the next delivery in this batch must find them
            if known is not None:
                known.hold(contact, added)
        if name and not contact.name:
            contact.name = name[:200]
        return Sender(contact, matched, created=False)
    now = utcnow()
    contact = Contact(account_id=account_id, name=name[:200], email=service.primary_of(claims, IdentityKind.email),
                      phone=service.primary_of(claims, IdentityKind.phone), custom_attributes={}, created_at=now,
                      updated_at=now)
    session.add(contact)
    await session.flush()
    for claim in verified:
        service.add_identity(session, contact, claim)
    # Flushed now so a later delivery in the same group commit from this sender finds them.
    await session.flush()
    if known is not None:
        known.hold(contact, verified)
    _publish_created(uow, contact)
    _suggest_later(uow, contact)
    return Sender(contact, None, created=True)


async def _check_organization(uow: UnitOfWork, account_id: int, organization_id: int | None) -> None:
    if organization_id is not None and await service.get_organization(uow.session, account_id, organization_id) is None:
        raise ValidationFailed(f"organization {organization_id} does not exist in this account")


async def do_create_contact(uow: UnitOfWork, principal: StaffPrincipal, payload: ContactCreate) -> Contact:
    """An agent adds a customer. Identifiers an agent types are recorded as verified identities
    (the agent vouches for them); an identifier already owned by another contact is a conflict."""
    await _check_organization(uow, principal.account_id, payload.organization_id)
    claims = [IdentityClaim(IdentityKind.email, payload.email, verified=True)] if payload.email else []
    if payload.phone:
        claims.append(IdentityClaim(IdentityKind.phone, payload.phone, verified=True))
    taken = await service.find_by_claims(uow.session, principal.account_id, claims)
    if taken:
        raise Conflict(f"{taken[0].value} already belongs to contact {taken[0].contact_id}",
                       extra={"contact_id": taken[0].contact_id})
    now = utcnow()
    contact = Contact(account_id=principal.account_id, name=payload.name, email=payload.email, phone=payload.phone,
                      organization_id=payload.organization_id, custom_attributes=payload.custom_attributes,
                      created_at=now, updated_at=now)
    uow.session.add(contact)
    await uow.session.flush()
    for claim in claims:
        service.add_identity(uow.session, contact, claim)
    _publish_created(uow, contact)
    _suggest_later(uow, contact)
    await uow.commit()
    return contact


async def do_update_contact(uow: UnitOfWork, principal: StaffPrincipal, contact: Contact,
                            payload: ContactUpdate) -> Contact:
    if contact.merged_into_id is not None:
        # Its identities live on the survivor now; an identifier added here would route messages
        # to a contact nobody sees in the list.
        raise Conflict(f"contact {contact.id} was merged into contact {contact.merged_into_id}; change that one",
                       extra={"merged_into_id": contact.merged_into_id})
    fields = payload.model_fields_set
    before = _matched_fields(contact)
    if "organization_id" in fields:
        await _check_organization(uow, principal.account_id, payload.organization_id)
    for name in ("name", "email", "phone", "organization_id"):
        if name in fields:
            setattr(contact, name, getattr(payload, name) if name != "name" else (payload.name or ""))
    if "custom_attributes" in fields and payload.custom_attributes is not None:
        contact.custom_attributes = {**(contact.custom_attributes or {}), **payload.custom_attributes}
    for kind, value in ((IdentityKind.email, payload.email), (IdentityKind.phone, payload.phone)):
        if value and kind.value in fields:
            claim = IdentityClaim(kind, value, verified=True)
            taken = await service.find_by_claims(uow.session, principal.account_id, [claim])
            if taken and taken[0].contact_id != contact.id:
                raise Conflict(f"{value} already belongs to contact {taken[0].contact_id}",
                               extra={"contact_id": taken[0].contact_id})
            if not taken:
                service.add_identity(uow.session, contact, claim)
    contact.updated_at = utcnow()
    _publish_updated(uow, contact)
    if _matched_fields(contact) != before:
        _suggest_later(uow, contact)
    await uow.commit()
    return contact


def _matched_fields(contact: Contact) -> tuple[object, ...]:
    return contact.name, contact.email, contact.phone, contact.organization_id


async def do_create_organization(uow: UnitOfWork, principal: StaffPrincipal, payload: OrganizationCreate) -> Organization:
    exists = await uow.session.scalar(select(Organization.id).where(
        Organization.account_id == principal.account_id, Organization.name == payload.name))
    if exists is not None:
        raise Conflict(f"an organization named {payload.name!r} already exists", extra={"organization_id": exists})
    org = Organization(account_id=principal.account_id, name=payload.name, domain=payload.domain,
                       custom_attributes=payload.custom_attributes)
    uow.session.add(org)
    await uow.commit()
    return org


async def do_start_customer_session(uow: UnitOfWork, inbox: Inbox, payload: CustomerSessionCreate,
                                    days: int) -> tuple[CustomerSession, str]:
    """An anonymous visitor (widget, API client) gets a contact of its own and a token for it.
    The email it gives is unverified and joins no existing contact."""
    claims = [IdentityClaim(IdentityKind.email, payload.email, verified=False)] if payload.email else []
    contact = await resolve_contact(uow, inbox.account_id, claims, payload.name)
    token = new_token(CUSTOMER_TOKEN_PREFIX)
    now = utcnow()
    cs = CustomerSession(account_id=inbox.account_id, contact_id=contact.id, inbox_id=inbox.id,
                         token_hash=token_digest(token), created_at=now, expires_at=now + timedelta(days=days))
    uow.session.add(cs)
    await uow.commit()
    return cs, token


# --- merge suggestions, merges, undo -------------------------------------------------------------

PROFILE_FIELDS = ("name", "email", "phone", "organization_id")


async def do_suggest_merges(uow: UnitOfWork, contact_id: int) -> None:
    """Store the suggestions the evidence supports for one contact. Idempotent: a pair has one row;
    an open suggestion is rescored (or removed when its evidence is gone); an accepted or dismissed
    one is an agent's decision and never reopened. Publishes nothing (no event type for it yet)."""
    session = uow.session
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.merged_into_id is not None:
        return
    matches = {(m.contact_id, m.candidate_id): m for m in await matching.find_matches(session, contact)}
    existing = {(s.contact_id, s.candidate_id): s for s in await service.suggestions_involving(session, contact.id)}
    new: list[dict[str, object]] = []
    for pair, m in matches.items():
        suggestion = existing.get(pair)
        if suggestion is None:
            if m.score >= matching.THRESHOLD:
                new.append({"account_id": contact.account_id, "contact_id": m.contact_id,
                            "candidate_id": m.candidate_id, "score": m.score, "reasons": m.reasons,
                            "status": SuggestionStatus.open, "created_at": utcnow()})
        elif suggestion.status == SuggestionStatus.open:
            if m.score < matching.THRESHOLD:
                await session.delete(suggestion)
            elif (suggestion.score, suggestion.reasons) != (m.score, m.reasons):
                suggestion.score, suggestion.reasons = m.score, m.reasons
    for pair, suggestion in existing.items():
        if pair not in matches and suggestion.status == SuggestionStatus.open:
            await session.delete(suggestion)
    if new:
        # The jobs of both contacts of a new pair may run at once: the second insert is a no-op.
        await session.execute(_insert_ignoring_duplicates(session), new)
    await uow.commit()


def _insert_ignoring_duplicates(session: AsyncSession) -> Insert:
    table = ContactMergeSuggestion.__table__
    pair = ["contact_id", "candidate_id"]
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return postgresql_insert(table).on_conflict_do_nothing(index_elements=pair)
    return sqlite_insert(table).on_conflict_do_nothing(index_elements=pair)


def _decide(suggestion: ContactMergeSuggestion, status: SuggestionStatus, principal: StaffPrincipal) -> None:
    suggestion.status = status
    suggestion.decided_at = utcnow()
    suggestion.decided_by_user_id = principal.user_id


async def do_dismiss_suggestion(uow: UnitOfWork, principal: StaffPrincipal,
                                suggestion: ContactMergeSuggestion) -> ContactMergeSuggestion:
    if suggestion.status != SuggestionStatus.open:
        raise Conflict(f"this suggestion was already {suggestion.status}")
    _decide(suggestion, SuggestionStatus.dismissed, principal)
    accounts_service.audit(uow.session, principal.account_id, principal.user_id, "contact.merge_dismissed",
                           "contact", suggestion.contact_id,
                           {"suggestion_id": suggestion.id, "candidate_id": suggestion.candidate_id})
    await uow.commit()
    return suggestion


async def do_accept_suggestion(uow: UnitOfWork, principal: StaffPrincipal, suggestion: ContactMergeSuggestion,
                               survivor_id: int | None = None) -> ContactMerge:
    """Merge the suggestion's two contacts: into the older one, unless the agent picks the other."""
    if suggestion.status != SuggestionStatus.open:
        raise Conflict(f"this suggestion was already {suggestion.status}")
    pair = (suggestion.contact_id, suggestion.candidate_id)
    if survivor_id is not None and survivor_id not in pair:
        raise ValidationFailed(f"survivor_id must be one of the suggestion's contacts, {pair[1]} or {pair[0]}")
    found = await service.lock_contacts(uow.session, principal.account_id, pair)
    if len(found) != 2:
        raise NotFound("one of the suggestion's contacts no longer exists")
    a, b = found[pair[0]], found[pair[1]]
    if survivor_id is None:
        survivor = min((a, b), key=lambda c: (c.created_at, c.id))
    else:
        survivor = found[survivor_id]
    merged = b if survivor is a else a
    return await do_merge_contacts(uow, principal, survivor, merged, suggestion)


async def do_merge_contacts(uow: UnitOfWork, principal: StaffPrincipal, survivor: Contact, merged: Contact,
                            suggestion: ContactMergeSuggestion | None = None) -> ContactMerge:
    """``merged`` becomes part of ``survivor``: its identities (so its channels' next messages land on
    the survivor) and its conversations move; the survivor's blank profile fields and missing
    custom attributes are filled from it; ``merged`` stays, marked ``merged_into_id``.

    Customer sessions do not move: a widget visitor's session (an unauthenticated credential, bound
    to the contact it was issued for) must never gain the survivor's history. The merged contact's
    sessions keep working and see none of the moved conversations.

    Everything moved or changed is recorded on the ContactMerge, which is what its undo reverses."""
    if survivor.account_id != principal.account_id or merged.account_id != principal.account_id:
        raise NotFound("contact not found")
    if survivor.id == merged.id:
        raise ValidationFailed("a contact cannot be merged into itself")
    session, now = uow.session, utcnow()
    locked = await service.lock_contacts(session, principal.account_id, (survivor.id, merged.id))
    if len(locked) != 2:
        raise NotFound("contact not found")
    survivor, merged = locked[survivor.id], locked[merged.id]
    for c in (merged, survivor):
        if c.merged_into_id is not None:
            raise Conflict(f"contact {c.id} was already merged into contact {c.merged_into_id}",
                           extra={"contact_id": c.id, "merged_into_id": c.merged_into_id})
    if suggestion is not None:
        await session.refresh(suggestion, with_for_update=True)
        if suggestion.status != SuggestionStatus.open:
            raise Conflict(f"this suggestion was already {suggestion.status}")

    moved = MergeMoved()
    for name in PROFILE_FIELDS:
        mine, theirs = getattr(survivor, name), getattr(merged, name)
        if not mine and theirs:
            moved.survivor_before[name], moved.survivor_filled[name] = mine, theirs
            setattr(survivor, name, theirs)
    attributes = dict(survivor.custom_attributes or {})
    moved.attributes_added = {k: v for k, v in (merged.custom_attributes or {}).items() if k not in attributes}
    if moved.attributes_added:
        survivor.custom_attributes = {**attributes, **moved.attributes_added}
    identities = await service.identities_of(session, merged.id)
    for identity in identities:
        identity.contact_id = survivor.id
    moved.identity_ids = [i.id for i in identities]
    if any(i.verified for i in identities):
        # The survivor now holds verified identities (and their history) its own widget or app
        # sessions never proved: those sessions end. Portal sessions (a verified address) stay.
        revoked = (await session.scalars(delete(CustomerSession).where(
            CustomerSession.contact_id == survivor.id, CustomerSession.inbox_id.is_not(None)).returning(
            CustomerSession.id))).all()
        moved.revoked_sessions = len(revoked)
        if revoked:  # and so do their live connections
            uow.publish(CredentialRevoked(account_id=survivor.account_id, audience=auth_audience.customer_sign_ins(
                survivor.id, [customer_credential(i) for i in revoked])))
    conversations = await service.conversations_of(session, principal.account_id, merged.id)
    moved.conversation_ids = [c.id for c in conversations]
    notes = await service.notes_of(session, merged.id, limit=10_000)
    for note in notes:
        note.contact_id = survivor.id
    moved.note_ids = [n.id for n in notes]
    pair = (max(survivor.id, merged.id), min(survivor.id, merged.id))
    for s in await service.suggestions_involving(session, merged.id, SuggestionStatus.open):
        if (s.contact_id, s.candidate_id) == pair:
            _decide(s, SuggestionStatus.accepted, principal)
        else:  # the merged contact is no candidate for anyone any more; undo reopens these
            _decide(s, SuggestionStatus.dismissed, principal)
            moved.dismissed_suggestion_ids.append(s.id)
    merged.merged_into_id = survivor.id
    survivor.updated_at = merged.updated_at = now
    record = ContactMerge(account_id=principal.account_id, survivor_id=survivor.id, merged_id=merged.id,
                          actor_user_id=principal.user_id, moved=moved.model_dump(mode="json"), created_at=now)
    session.add(record)
    await session.flush()
    data = {"from_contact_id": merged.id, "to_contact_id": survivor.id, "merge_id": record.id}
    for conversation in conversations:
        conversation.contact_id = survivor.id
        conversation.updated_at = now
        conversations_service.add_activity(session, conversation, SenderType.user, principal.user_id,
                                           "contact_merged", data)
    accounts_service.audit(session, principal.account_id, principal.user_id, "contact.merged", "contact",
                           survivor.id, {"merge_id": record.id, "merged_id": merged.id,
                                         "suggestion_id": suggestion.id if suggestion else None,
                                         "identity_ids": moved.identity_ids,
                                         "conversation_ids": moved.conversation_ids})
    await _publish_merge(uow, survivor, merged, conversations)
    _suggest_later(uow, survivor)  # it has the merged contact's identifiers now
    await uow.commit()
    return record


async def do_undo_merge(uow: UnitOfWork, principal: StaffPrincipal, merge: ContactMerge) -> ContactMerge:
    """Put back what the merge moved, where it is still as the merge left it: identities and
    conversations recorded on the merge that still belong to the survivor go back (a conversation
    or identity the survivor gained since stays), profile fields and attributes the merge filled are
    restored unless someone changed them since."""
    session, now = uow.session, utcnow()
    merge = await service.lock_merge(session, merge)
    if merge.undone_at is not None:
        raise Conflict(f"merge {merge.id} was already undone")
    locked = await service.lock_contacts(session, merge.account_id, (merge.survivor_id, merge.merged_id))
    survivor, merged = locked[merge.survivor_id], locked[merge.merged_id]
    if survivor.merged_into_id is not None:
        raise Conflict(f"contact {survivor.id}, this merge's survivor, was itself merged into contact "
                       f"{survivor.merged_into_id} since; undo that merge first",
                       extra={"merged_into_id": survivor.merged_into_id})
    if merged.merged_into_id != survivor.id:
        raise Conflict(f"contact {merged.id} is no longer merged into contact {survivor.id}")
    moved = MergeMoved.model_validate(merge.moved)

    identities = list((await session.scalars(select(ContactIdentity).where(
        ContactIdentity.id.in_(moved.identity_ids), ContactIdentity.contact_id == survivor.id))).all())
    for identity in identities:
        identity.contact_id = merged.id
    for note in (await session.scalars(select(ContactNote).where(
            ContactNote.id.in_(moved.note_ids), ContactNote.contact_id == survivor.id))).all():
        note.contact_id = merged.id
    conversations = list((await session.scalars(select(Conversation).where(
        Conversation.id.in_(moved.conversation_ids), Conversation.contact_id == survivor.id)
        .order_by(Conversation.id))).all())
    # A conversation that received messages after the merge holds the survivor's words too (the
    # survivor wrote into it, an agent answered them there): moving it back would show them to the
    # other person. It stays with the survivor, and the audit says so.
    mixed = set((await session.scalars(select(Message.conversation_id).where(
        Message.conversation_id.in_([c.id for c in conversations]),
        Message.created_at > merge.created_at).distinct())).all()) if conversations else set()
    kept = [c for c in conversations if c.id in mixed]
    conversations = [c for c in conversations if c.id not in mixed]
    for name, filled in moved.survivor_filled.items():
        if getattr(survivor, name) == filled:
            setattr(survivor, name, moved.survivor_before.get(name))
    attributes = dict(survivor.custom_attributes or {})
    for key, value in moved.attributes_added.items():
        if key in attributes and attributes[key] == value:
            del attributes[key]
    survivor.custom_attributes = attributes
    merged.merged_into_id = None
    survivor.updated_at = merged.updated_at = now
    merge.undone_at, merge.undone_by_user_id = now, principal.user_id

    # The agent says these two are different people: the pair's suggestion is dismissed; those the
    # merge dismissed only because the contact disappeared are open again (if the other is still here).
    pair = await service.get_pair_suggestion(session, survivor.id, merged.id)
    if pair is not None and pair.status == SuggestionStatus.accepted:
        _decide(pair, SuggestionStatus.dismissed, principal)
    if moved.dismissed_suggestion_ids:
        for s in (await session.scalars(select(ContactMergeSuggestion).where(
                ContactMergeSuggestion.id.in_(moved.dismissed_suggestion_ids),
                ContactMergeSuggestion.status == SuggestionStatus.dismissed))).all():
            other = await session.get(Contact, s.candidate_id if s.contact_id == merged.id else s.contact_id)
            if other is not None and other.merged_into_id is None:
                s.status, s.decided_at, s.decided_by_user_id = SuggestionStatus.open, None, None

    data = {"from_contact_id": survivor.id, "to_contact_id": merged.id, "merge_id": merge.id}
    for conversation in conversations:
        conversation.contact_id = merged.id
        conversation.updated_at = now
        conversations_service.add_activity(session, conversation, SenderType.user, principal.user_id,
                                           "contact_unmerged", data)
    accounts_service.audit(session, principal.account_id, principal.user_id, "contact.merge_undone", "contact",
                           survivor.id, {"merge_id": merge.id, "merged_id": merged.id,
                                         "identity_ids": [i.id for i in identities],
                                         "conversation_ids": [c.id for c in conversations],
                                         "kept_with_survivor": [c.id for c in kept]})
    for conversation in kept:
        conversations_service.add_activity(session, conversation, SenderType.user, principal.user_id,
                                           "contact_unmerge_kept", {**data, "reason": "messages since the merge"})
    await _publish_merge(uow, survivor, merged, conversations)
    await uow.commit()
    return merge


async def _publish_merge(uow: UnitOfWork, survivor: Contact, merged: Contact,
                         conversations: list[Conversation]) -> None:
    """Both contacts changed; each moved conversation now shows another contact. Staff only: the
    customers' own widgets get no event (neither contact's sessions gain or keep anything to show)."""
    _publish_updated(uow, survivor)
    _publish_updated(uow, merged)
    for conversation, out in zip(conversations, await conversations_service.conversations_out(
            uow.session, conversations), strict=True):
        uow.publish(ConversationUpdated(account_id=conversation.account_id,
                                        audience=audience.conversation_staff(conversation),
                                        conversation=out, changed=["contact"]))


async def do_add_contact_note(uow: UnitOfWork, principal: StaffPrincipal, contact: Contact,
                              payload: ContactNoteCreate) -> ContactNote:
    if contact.account_id != principal.account_id:
        raise NotFound("contact not found")
    note = ContactNote(account_id=principal.account_id, contact_id=contact.id, author_id=principal.user_id,
                       body=payload.body, created_at=utcnow())
    uow.session.add(note)
    await uow.session.flush()
    accounts_service.audit(uow.session, principal.account_id, principal.user_id, "contact.note_added", "contact",
                           contact.id, {"note_id": note.id})
    await uow.commit()
    return note
