"""Raw-MIME upload into an email inbox, and the quarantine an admin reviews."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from swarmdesk.auth.dependencies import Admin, RuntimeDep, Uow
from swarmdesk.channels import service
from swarmdesk.channels.email import imap
from swarmdesk.channels.email.adapter import EmailChannelConfig
from swarmdesk.channels.email.ingest import ingest_raw
from swarmdesk.channels.models import InboundQuarantine, Inbox
from swarmdesk.conversations.linking import JoinPolicy
from swarmdesk.core.clock import utcnow
from swarmdesk.core.errors import BadRequest, Conflict, NotFound
from swarmdesk.core.schemas import Out, Page
from swarmdesk.core.storage import AttachmentStore

router = APIRouter(prefix="/api/v1/inboxes", tags=["email"])


class MailIngestOut(Out):
    outcome: str  # stored, duplicate, bounce, quarantined
    message_ids: list[int]
    conversation_ids: list[int]
    quarantine_id: int | None
    reason: str | None


class QuarantineOut(Out):
    id: int
    inbox_id: int
    reason: str
    source: str
    size: int
    created_at: datetime
    released_at: datetime | None


async def _email_inbox(uow: Uow, runtime: RuntimeDep, account_id: int, inbox_id: int) -> tuple[Inbox, EmailChannelConfig]:
    inbox = await service.get_inbox(uow.session, account_id, inbox_id)
    if inbox is None:
        raise NotFound(f"inbox {inbox_id} not found")
    if inbox.channel_kind != "email":
        raise BadRequest(f"inbox {inbox_id} is not an email inbox")
    return inbox, EmailChannelConfig.model_validate_json(runtime.secretbox.decrypt(inbox.config_encrypted))


def _out(outcome) -> MailIngestOut:  # noqa: ANN001
    return MailIngestOut(outcome=outcome.kind, message_ids=[r.message_id for r in outcome.results],
                         conversation_ids=[r.conversation_id for r in outcome.results],
                         quarantine_id=outcome.quarantine_id, reason=outcome.reason)


@router.post("/{inbox_id}/email/messages", response_model=MailIngestOut,
             summary="Upload one raw mail (message/rfc822); it is threaded and stored like a delivered one",
             openapi_extra={"requestBody": {"content": {"message/rfc822": {"schema": {"type": "string",
                                                                                      "format": "binary"}}},
                                            "required": True}})
async def upload_mail(principal: Admin, uow: Uow, runtime: RuntimeDep, inbox_id: int, request: Request) -> MailIngestOut:
    inbox, config = await _email_inbox(uow, runtime, principal.account_id, inbox_id)
    raw = await request.body()
    account_settings = await service.account_settings(uow.session, principal.account_id)
    await uow.session.close()  # ends the read transaction (keeping the loaded rows) before the ingest
    return _out(await ingest_raw(runtime, inbox, config, raw, source="upload",
                                 policy=JoinPolicy.from_settings(account_settings)))


class PollOut(Out):
    fetched: int
    stored: int
    duplicates: int
    quarantined: int
    bounces: int


@router.post("/{inbox_id}/email/poll", response_model=PollOut,
             summary="Fetch new mail from the inbox's IMAP folder now (the ingester also polls on its own)")
async def poll_now(principal: Admin, uow: Uow, runtime: RuntimeDep, inbox_id: int) -> PollOut:
    inbox, config = await _email_inbox(uow, runtime, principal.account_id, inbox_id)
    if config.imap is None:
        raise BadRequest(f"inbox {inbox_id} has no IMAP settings")
    account_settings = await service.account_settings(uow.session, principal.account_id)
    await uow.session.close()
    try:
        report = await imap.poll_once(runtime, inbox, config, policy=JoinPolicy.from_settings(account_settings))
    except imap.ImapError as exc:
        raise Conflict(f"the IMAP server could not be read: {exc}") from exc
    return PollOut(**dataclasses.asdict(report))


@router.get("/{inbox_id}/quarantine", response_model=Page[QuarantineOut])
async def list_quarantine(principal: Admin, uow: Uow, runtime: RuntimeDep, inbox_id: int, cursor: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Page[QuarantineOut]:
    inbox = await service.get_inbox(uow.session, principal.account_id, inbox_id)
    if inbox is None:
        raise NotFound(f"inbox {inbox_id} not found")
    stmt = select(InboundQuarantine).where(InboundQuarantine.inbox_id == inbox.id,
                                           InboundQuarantine.account_id == principal.account_id)
    if cursor is not None:
        if not cursor.isdigit():
            raise BadRequest("invalid cursor")
        stmt = stmt.where(InboundQuarantine.id < int(cursor))
    rows = (await uow.session.scalars(stmt.order_by(InboundQuarantine.id.desc()).limit(limit + 1))).all()
    page = rows[:limit]
    return Page(items=[QuarantineOut.model_validate(r) for r in page],
                next_cursor=str(page[-1].id) if len(rows) > limit else None)


async def _quarantined(uow: Uow, account_id: int, inbox_id: int, quarantine_id: int) -> InboundQuarantine:
    row = await uow.session.get(InboundQuarantine, quarantine_id)
    if row is None or row.account_id != account_id or row.inbox_id != inbox_id:
        raise NotFound(f"quarantine record {quarantine_id} not found")
    return row


@router.get("/{inbox_id}/quarantine/{quarantine_id}/raw", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
async def download_quarantined(principal: Admin, uow: Uow, runtime: RuntimeDep, inbox_id: int,
                               quarantine_id: int) -> Response:
    row = await _quarantined(uow, principal.account_id, inbox_id, quarantine_id)
    data = await AttachmentStore(runtime.settings.attachments_dir).read(row.storage_key)
    # Never rendered: a download, whatever the bytes are.
    return Response(data, media_type="application/octet-stream",
                    headers={"content-disposition": f"attachment; filename=quarantine-{row.id}.eml",
                             "x-content-type-options": "nosniff",
                             "content-security-policy": "default-src 'none'; sandbox"})


@router.post("/{inbox_id}/quarantine/{quarantine_id}/retry", response_model=MailIngestOut,
             summary="Ingest a quarantined mail again (after a fix, or to accept an auto-reply by hand)")
async def retry_quarantined(principal: Admin, uow: Uow, runtime: RuntimeDep, inbox_id: int,
                            quarantine_id: int) -> MailIngestOut:
    row = await _quarantined(uow, principal.account_id, inbox_id, quarantine_id)
    inbox, config = await _email_inbox(uow, runtime, principal.account_id, inbox_id)
    raw = await AttachmentStore(runtime.settings.attachments_dir).read(row.storage_key)
    account_settings = await service.account_settings(uow.session, principal.account_id)
    await uow.session.close()
    outcome = await ingest_raw(runtime, inbox, config, raw, source="retry",
                               policy=JoinPolicy.from_settings(account_settings))
    if outcome.kind != "quarantined":
        async with runtime.uow() as write:
            stored = await write.session.get(InboundQuarantine, row.id)
            if stored is not None and stored.released_at is None:
                stored.released_at = utcnow()
                await write.commit()
    return _out(outcome)
