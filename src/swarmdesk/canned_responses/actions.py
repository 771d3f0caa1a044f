"""Creating, changing and removing canned responses (recorded in the account's audit log)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from swarmdesk.accounts import service as accounts_service
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.canned_responses import service
from swarmdesk.canned_responses.models import CannedResponse
from swarmdesk.canned_responses.schemas import CannedResponseCreate, CannedResponseUpdate
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import Conflict, ValidationFailed


def _taken(short_code: str) -> Conflict:
    return Conflict(f"a canned response with short code {short_code!r} already exists")


async def _commit(uow: UnitOfWork, short_code: str) -> None:
    try:
        await uow.commit()
    except IntegrityError as exc:  # the same code saved at the same moment
        raise _taken(short_code) from exc


async def do_create_canned_response(uow: UnitOfWork, principal: StaffPrincipal,
                                    payload: CannedResponseCreate) -> CannedResponse:
    session = uow.session
    if await service.short_code_taken(session, principal.account_id, payload.short_code):
        raise _taken(payload.short_code)
    now = utcnow()
    canned = CannedResponse(account_id=principal.account_id, short_code=payload.short_code, title=payload.title,
                            body=payload.body, created_by=principal.user_id, created_at=now, updated_at=now)
    session.add(canned)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise _taken(payload.short_code) from exc
    accounts_service.audit(session, principal.account_id, principal.user_id, "canned_response.created",
                           "canned_response", canned.id, {"short_code": canned.short_code})
    await _commit(uow, payload.short_code)
    return canned


async def do_update_canned_response(uow: UnitOfWork, principal: StaffPrincipal, canned: CannedResponse,
                                    payload: CannedResponseUpdate) -> CannedResponse:
    changed = {}
    for name in payload.model_fields_set:
        value = getattr(payload, name)
        if value is None:
            raise ValidationFailed(f"{name} cannot be null")
        if value != getattr(canned, name):
            changed[name] = value
    if "short_code" in changed and await service.short_code_taken(uow.session, canned.account_id,
                                                                   changed["short_code"], except_id=canned.id):
        raise _taken(changed["short_code"])
    if not changed:
        return canned
    for name, value in changed.items():
        setattr(canned, name, value)
    canned.updated_at = utcnow()
    accounts_service.audit(uow.session, canned.account_id, principal.user_id, "canned_response.updated",
                           "canned_response", canned.id, {"changed": sorted(changed)})
    await _commit(uow, canned.short_code)
    return canned


async def do_delete_canned_response(uow: UnitOfWork, principal: StaffPrincipal, canned: CannedResponse) -> None:
    accounts_service.audit(uow.session, canned.account_id, principal.user_id, "canned_response.deleted",
                           "canned_response", canned.id, {"short_code": canned.short_code})
    await uow.session.delete(canned)
    await uow.commit()
