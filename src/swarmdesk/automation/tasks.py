"""Background jobs of the automation domain (registered at import by swarmdesk.registrations)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swarmdesk.automation import engine
from swarmdesk.jobs.registry import JobContext, jobs

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime


@jobs.handler(engine.TIMER_JOB)
async def timer_due(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    """A time rule's timer came due (``run_at``): act once if the conversation is still where it was."""
    await engine.fire_timer(runtime, int(payload["timer_id"]))


@jobs.handler(engine.BACKFILL_JOB)
async def schedule_timers(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    """A time rule was created, changed or switched on: timers for conversations already in its state."""
    await engine.schedule_existing(runtime, int(payload["rule_id"]))
