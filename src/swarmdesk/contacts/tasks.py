"""Background work for contacts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swarmdesk.contacts import actions
from swarmdesk.contacts.matching import SUGGEST_JOB
from swarmdesk.jobs.registry import JobContext, jobs

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime


@jobs.handler(SUGGEST_JOB)
async def suggest_merges(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    """Find and store merge suggestions for one contact (enqueued when it is created or its name,
    email, phone or organization changes). Safe to run again: suggestions are one row per pair."""
    async with runtime.uow() as uow:
        await actions.do_suggest_merges(uow, int(payload["contact_id"]))
