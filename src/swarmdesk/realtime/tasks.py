"""This process's periodic real-time work: storing the acks its sockets sent (``queues.AckBuffer``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swarmdesk.core.background import background

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

ACK_FLUSH_SECONDS = 1.0


@background.every(ACK_FLUSH_SECONDS)
async def store_acks(runtime: Runtime) -> None:
    await runtime.acks.flush()


@background.at_stop
async def store_last_acks(runtime: Runtime) -> None:
    await runtime.acks.flush()
