"""Job kinds and their handlers. Handlers take ids, open their own unit of work and are idempotent:
a job may run again after a crash between its effect and its completion."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime


class RetryLater(Exception):
    """Transient failure: run again after ``retry_after`` seconds (or the backoff schedule)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentFailure(Exception):
    """Retrying cannot help: go straight to the dead-letter state."""


@dataclass(slots=True)
class JobContext:
    job_id: int
    attempt: int
    max_attempts: int
    account_id: int | None

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


JobHandler = Callable[["Runtime", dict[str, Any], JobContext], Awaitable[None]]


class JobRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, JobHandler] = {}

    def handler(self, kind: str) -> Callable[[JobHandler], JobHandler]:
        def register(fn: JobHandler) -> JobHandler:
            if kind in self._handlers:
                raise ValueError(f"job kind {kind!r} registered twice")
            self._handlers[kind] = fn
            return fn
        return register

    def get(self, kind: str) -> JobHandler | None:
        return self._handlers.get(kind)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._handlers)


jobs = JobRegistry()
