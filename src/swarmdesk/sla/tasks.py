"""Background jobs of the sla domain (registered at import by swarmdesk.registrations). Each
takes ids and is idempotent: running one twice, or two at once, changes nothing more."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swarmdesk.jobs.registry import JobContext, jobs
from swarmdesk.sla import actions

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

SWEEP_BATCH = 200


@jobs.handler(actions.DEADLINE_JOB)
async def deadline_came_due(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    """A warning or due instant was reached (payload: conversation_id, target, cycle, kind, at —
    the last four say why the job exists; what happens is decided by the clock as it is now)."""
    async with runtime.uow() as uow:
        await actions.do_evaluate_sla(uow, int(payload["conversation_id"]))


@jobs.handler(actions.SWEEP_JOB)
async def sweep(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    while True:
        async with runtime.uow() as uow:
            if await actions.do_sweep_sla(uow, SWEEP_BATCH) < SWEEP_BATCH:
                break
    async with runtime.uow() as uow:
        await actions.ensure_sweep_scheduled(uow)
        await uow.commit()


@jobs.handler(actions.REEVALUATE_JOB)
async def reevaluate(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    async with runtime.uow() as uow:
        await actions.do_reevaluate_account(uow, int(payload["account_id"]), int(payload["after_id"]))
