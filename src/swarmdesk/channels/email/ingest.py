"""A raw mail becomes a stored message, a bounce report, or a quarantine record — never nothing.

All three ways in (IMAP polling, LMTP delivery, raw-MIME upload) call :func:`ingest_raw` and only
then acknowledge: the LMTP ``250``, the IMAP high-water mark and the upload's answer all come after
the commit. Idempotent on Message-ID (or a hash of the bytes when it is missing).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from swarmdesk.channels.base import InboundAttachment, InboundMessage, StatusUpdate
from swarmdesk.channels.email.adapter import EmailChannelConfig
from swarmdesk.channels.email.compose import extract_reply_token
from swarmdesk.channels.email.mime import ParsedMail, UnparseableMail, parse_mail
from swarmdesk.channels.email.quotes import strip_reply, strip_reply_html
from swarmdesk.channels.inbound import Delivery, Results
from swarmdesk.channels.models import InboundQuarantine, Inbox
from swarmdesk.contacts.identity import IdentityClaim, normalize_email
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.conversations.linking import JoinPolicy, NoConversationForAutomaticMessage
from swarmdesk.conversations.models import Message
from swarmdesk.core.clock import utcnow
from swarmdesk.core.errors import Conflict
from swarmdesk.core.html import sanitize_html
from swarmdesk.core.storage import AttachmentStore

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

log = logging.getLogger(__name__)
_ORIGINAL_ID = re.compile(rb"(?im)^message-id:\s*(<[^>\r\n]{1,250}>)")
_DIAGNOSTIC = re.compile(rb"(?im)^diagnostic-code:\s*([^\r\n]{1,300})")


@dataclass(slots=True)
class MailOutcome:
    kind: str  # stored, duplicate, bounce, quarantined
    results: Results
    quarantine_id: int | None = None
    reason: str | None = None


def _claims(parsed: ParsedMail, config: EmailChannelConfig) -> tuple[list[IdentityClaim], dict[str, object]]:
    """The sender's email as an identity claim: verified only when a trusted receiving server
    authenticated the From domain (or the inbox is configured to trust its server)."""
    try:
        address = normalize_email(parsed.from_addr)
    except ValueError:
        return [], {"sender_unverifiable": f"the From address {parsed.from_addr!r} is not valid"}
    authenticated = parsed.from_authenticated
    verified = authenticated is True or (authenticated is None and config.trust_unauthenticated_from)
    note: dict[str, object] = {}
    if authenticated is False:
        auth = parsed.authentication
        note["spoof_suspect"] = (f"the From address {address} failed authentication (dmarc={auth.dmarc}, "
                                 f"dkim={auth.dkim}, spf={auth.spf}); kept apart from any customer with that "
                                 "address until an agent merges them")
    elif not verified:
        note["unverified_sender"] = "no trusted Authentication-Results header vouches for the From address"
    return [IdentityClaim(IdentityKind.email, address, verified=verified)], note


def to_inbound(parsed: ParsedMail, config: EmailChannelConfig, raw: bytes) -> InboundMessage:
    claims, note = _claims(parsed, config)
    text = strip_reply(parsed.text) if parsed.text else ""
    html = parsed.html
    stripped_html = sanitize_html(strip_reply_html(html)) if html else None
    attachments = [InboundAttachment(a.filename, a.content_type, a.data) for a in parsed.attachments]
    # The full original, viewable by agents: the quoted history and signatures stripped above are in it.
    attachments.append(InboundAttachment("original.eml", "message/rfc822", raw))
    refs = [*parsed.in_reply_to, *reversed(parsed.references)]
    token = extract_reply_token([*parsed.to, *parsed.cc, *parsed.delivered_to], config.local_part, config.domain)
    meta: dict[str, object] = {"email": {
        "message_id": parsed.message_id, "from": parsed.from_addr, "to": parsed.to[:20], "cc": parsed.cc[:20],
        "subject": parsed.subject, "date": parsed.date.isoformat() if parsed.date else None,
        "authenticated": parsed.from_authenticated, **note}}
    if parsed.is_auto:
        meta["automatic"] = parsed.auto_reason
    return InboundMessage(
        external_id=parsed.idempotency_key, content=text or (parsed.text or "").strip(),
        content_html=stripped_html, sender_name=parsed.from_name, claims=claims, subject=parsed.subject,
        thread_refs=list(dict.fromkeys(refs)), reply_token=token, attachments=attachments,
        sent_at=parsed.date, meta=meta, automatic=parsed.is_auto)


def _bounce(parsed: ParsedMail, raw: bytes) -> StatusUpdate | None:
    """A delivery status notification about one of our replies: the reply is marked failed."""
    if not parsed.is_bounce:
        return None
    ids = [m.decode("ascii", "replace") for m in _ORIGINAL_ID.findall(raw)]
    original = next((i for i in ids if i != parsed.message_id), None)
    if original is None:
        return None
    diag = _DIAGNOSTIC.search(raw)
    reason = diag.group(1).decode("utf-8", "replace").strip() if diag else "the customer's mail server bounced it"
    return StatusUpdate(external_id=original, status="failed", error=f"bounced: {reason}")


async def quarantine(runtime: Runtime, inbox: Inbox, raw: bytes, reason: str, source: str) -> int:
    """Keep what could not be used, with its bytes and a reason; the same bytes twice are one record."""
    sha = hashlib.sha256(raw).hexdigest()
    async with runtime.uow() as uow:
        existing = await uow.session.scalar(select(InboundQuarantine.id).where(
            InboundQuarantine.inbox_id == inbox.id, InboundQuarantine.content_sha256 == sha))
        if existing is not None:
            return existing
    stored = await AttachmentStore(runtime.settings.attachments_dir).put(raw)
    try:
        async with runtime.uow() as uow:
            row = InboundQuarantine(account_id=inbox.account_id, inbox_id=inbox.id, reason=reason[:1000],
                                    source=source, storage_key=stored.key, size=stored.size, content_sha256=sha,
                                    created_at=utcnow())
            uow.session.add(row)
            await uow.commit()
            log.warning("mail quarantined", extra={"inbox_id": inbox.id, "reason": reason, "source": source})
            return row.id
    except IntegrityError:  # a concurrent ingester quarantined the same bytes
        async with runtime.uow() as uow:
            existing = await uow.session.scalar(select(InboundQuarantine.id).where(
                InboundQuarantine.inbox_id == inbox.id, InboundQuarantine.content_sha256 == sha))
        assert existing is not None
        return existing


def _fingerprint(parsed: ParsedMail) -> str:
    """What makes a mail this mail, whatever relays added to its headers: a second, different mail
    reusing the Message-ID (some mailers use a fixed one) is then told apart from a re-delivery."""
    h = hashlib.sha256()
    for part in (parsed.from_addr, parsed.subject, parsed.date.isoformat() if parsed.date else "",
                 parsed.text or "", parsed.html or ""):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    for a in parsed.attachments:
        h.update(hashlib.sha256(a.data).digest())
    return h.hexdigest()


def prepare_mail(inbox: Inbox, config: EmailChannelConfig, raw: bytes,
                 policy: JoinPolicy) -> Delivery | str:
    """The delivery to store, or the reason the mail must be quarantined."""
    try:
        parsed = parse_mail(raw, trusted_authserv_ids=frozenset(config.trusted_authserv_ids),
                            max_bytes=config.max_message_bytes)
    except UnparseableMail as exc:
        return f"unparseable: {exc.reason}"
    # Keyed by Message-ID, not by the bytes: the same mail fetched by IMAP and delivered by LMTP
    # differs in its Received headers but is one message.
    delivery_id = f"mail:{parsed.idempotency_key}"[:200]
    key_sha = _fingerprint(parsed)
    bounce = _bounce(parsed, raw)
    if bounce is not None:
        return Delivery(inbox, delivery_id, key_sha, [], [bounce], policy)
    inbound = to_inbound(parsed, config, raw)
    if not inbound.claims:
        return "the sender address is missing or invalid"
    return Delivery(inbox, delivery_id, key_sha, [inbound], [], policy)


async def ingest_raw(runtime: Runtime, inbox: Inbox, config: EmailChannelConfig, raw: bytes, *, source: str,
                     policy: JoinPolicy | None = None) -> MailOutcome:
    # Parsing and reply-stripping a large mail takes CPU time: off the event loop.
    prepared = await asyncio.to_thread(prepare_mail, inbox, config, raw, policy or JoinPolicy())
    return await store_prepared(runtime, inbox, raw, prepared, source)


async def store_prepared(runtime: Runtime, inbox: Inbox, raw: bytes, prepared: Delivery | str,
                         source: str) -> MailOutcome:
    """Store a prepared mail (through the intake batcher's group commit), or quarantine it."""
    if not isinstance(prepared, str) and prepared.statuses and not await _known(runtime, prepared):
        prepared = "a bounce for a message this inbox did not send"
    if isinstance(prepared, str):
        qid = await quarantine(runtime, inbox, raw, prepared, source)
        return MailOutcome("quarantined", [], qid, prepared)
    try:
        results = await runtime.intake.submit(prepared)
    except NoConversationForAutomaticMessage as exc:
        qid = await quarantine(runtime, inbox, raw, str(exc), source)
        return MailOutcome("quarantined", [], qid, str(exc))
    except Conflict as exc:  # the Message-ID of a different mail already stored
        reason = f"a different mail with the same Message-ID was stored before: {exc}"
        qid = await quarantine(runtime, inbox, raw, reason, source)
        return MailOutcome("quarantined", [], qid, reason)
    if not prepared.messages:
        return MailOutcome("bounce", results)
    return MailOutcome("duplicate" if all(r.duplicate for r in results) else "stored", results)


async def _known(runtime: Runtime, delivery: Delivery) -> bool:
    async with runtime.uow() as uow:
        return await uow.session.scalar(select(Message.id).where(
            Message.inbox_id == delivery.inbox.id,
            Message.external_id.in_([u.external_id for u in delivery.statuses]))) is not None
