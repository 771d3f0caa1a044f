from __future__ import annotations

from swarmdesk.accounts import service as accounts_service
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.core.db import UnitOfWork
from swarmdesk.jobs import service
from swarmdesk.jobs.models import Job


async def do_retry_job(uow: UnitOfWork, principal: StaffPrincipal, job: Job) -> Job:
    await service.requeue(uow.session, job)
    uow.session.info["jobs_enqueued"] = True
    accounts_service.audit(uow.session, principal.account_id, principal.user_id, "job.retried", "job", job.id,
                           {"kind": job.kind})
    await uow.commit()
    return job
