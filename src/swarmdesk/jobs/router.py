from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from swarmdesk.auth.dependencies import Admin, Uow
from swarmdesk.core.errors import Conflict, NotFound
from swarmdesk.core.schemas import Out, Page
from swarmdesk.jobs import actions, service
from swarmdesk.jobs.models import JobStatus

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


class JobOut(Out):
    id: int
    kind: str
    payload: dict[str, Any]
    status: JobStatus
    attempts: int
    max_attempts: int
    run_at: datetime
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


@router.get("", response_model=Page[JobOut], summary="This account's background jobs; status=dead is the dead-letter queue")
async def list_jobs(principal: Admin, uow: Uow, status: JobStatus | None = None, cursor: int | None = None,
                    limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Page[JobOut]:
    rows = await service.list_jobs(uow.session, status=status, account_id=principal.account_id, limit=limit + 1,
                                   before_id=cursor)
    page, more = rows[:limit], len(rows) > limit
    return Page(items=[JobOut.model_validate(j) for j in page], next_cursor=str(page[-1].id) if more else None)


@router.post("/{job_id}/retry", response_model=JobOut, summary="Run a dead job again")
async def retry_job(principal: Admin, uow: Uow, job_id: int) -> JobOut:
    job = await service.get_job(uow.session, job_id, principal.account_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    if job.status != JobStatus.dead:
        # A queued or running job will run anyway, and running a done one again repeats its effect.
        raise Conflict(f"job {job_id} is {job.status}; only dead jobs can be retried")
    return JobOut.model_validate(await actions.do_retry_job(uow, principal, job))
