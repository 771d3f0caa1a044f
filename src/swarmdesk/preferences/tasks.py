"""Background jobs of the preferences domain (registered at import by swarmdesk.registrations)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swarmdesk.jobs.registry import JobContext, jobs
from swarmdesk.preferences import actions

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime


@jobs.handler(actions.SEND_DEFERRED_JOB)
async def send_deferred(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    """A message the customer's rules held back is due (the job's run_at is the row's send_at).
    Idempotent: the row's status says whether it was already dealt with."""
    async with runtime.uow() as uow:
        await actions.do_send_deferred(uow, int(payload["deferred_send_id"]))
