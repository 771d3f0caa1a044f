"""Work a long-running process repeats on its own, every few seconds, for as long as it runs (a
heartbeat, a reaper). Domains register with ``@background.every(seconds)``; the runtime starts one
task per registration and cancels them when it stops. A failing round is logged and the next one
runs on time: nothing here may be the only way something happens exactly once (that is what jobs
are for)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Task = Callable[[Any], Awaitable[None]]  # (runtime)


@dataclass(frozen=True)
class Periodic:
    name: str
    seconds: float
    fn: Task


class Background:
    def __init__(self) -> None:
        self.tasks: list[Periodic] = []
        self.stopping: list[Task] = []

    def every(self, seconds: float) -> Callable[[Task], Task]:
        def register(fn: Task) -> Task:
            self.tasks.append(Periodic(f"{fn.__module__}.{fn.__name__}", seconds, fn))
            return fn
        return register

    def at_stop(self, fn: Task) -> Task:
        """Runs when the runtime stops, after live streams are closed and before the database goes."""
        self.stopping.append(fn)
        return fn

    def start(self, runtime: Any) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(_loop(runtime, p), name=f"background:{p.name}") for p in self.tasks]

    async def stop(self, runtime: Any) -> None:
        for fn in self.stopping:
            try:
                await fn(runtime)
            except Exception:
                log.exception("stop hook failed", extra={"hook": f"{fn.__module__}.{fn.__name__}"})


async def _loop(runtime: Any, periodic: Periodic) -> None:
    while True:
        await asyncio.sleep(periodic.seconds)
        try:
            await periodic.fn(runtime)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task failed", extra={"task": periodic.name})


background = Background()
