"""Runs durable jobs: in the server process by default, in ``swarmdesk worker`` processes at scale."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from typing import TYPE_CHECKING

from swarmdesk.jobs import service
from swarmdesk.jobs.models import Job, JobStatus
from swarmdesk.jobs.registry import JobContext, JobRegistry, PermanentFailure, RetryLater

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, runtime: Runtime, registry: JobRegistry, *, concurrency: int = 32) -> None:
        self.runtime = runtime
        self.registry = registry
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._sem = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name="job-worker")

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop claiming; let jobs in hand finish (their leases cover a hard kill)."""
        self._stopping.set()
        self._wake.set()
        if self._task:
            try:
                await asyncio.wait_for(self._task, timeout=drain_timeout)
            except TimeoutError:
                self._task.cancel()

    async def run_forever(self) -> None:
        settings = self.runtime.settings
        while not self._stopping.is_set():
            try:
                done = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job worker loop failed; backing off")
                done = 0
                await asyncio.sleep(1.0)
            if done == 0 and not self._stopping.is_set():
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=settings.worker_poll_interval)
                except TimeoutError:
                    pass

    async def run_once(self) -> int:
        settings = self.runtime.settings
        async with self.runtime.uow() as uow:
            claimed = await service.claim(uow.session, self.worker_id, settings.worker_batch_size,
                                          settings.job_lease_seconds)
            await uow.commit()
        if not claimed:
            return 0
        results = await asyncio.gather(*(self._run(job) for job in claimed))
        done_ids = [job.id for job, error in zip(claimed, results, strict=True) if error is None]
        failed = [(job, error) for job, error in zip(claimed, results, strict=True) if error is not None]
        async with self.runtime.uow() as uow:
            await service.mark_done(uow.session, done_ids, self.worker_id)
            for job, error in failed:
                status = await service.mark_failed(
                    uow.session, job, self.worker_id, repr(error),
                    retry_after=getattr(error, "retry_after", None), base=settings.job_backoff_base,
                    cap=settings.job_backoff_max, permanent=isinstance(error, PermanentFailure))
                log_fn = log.error if status == JobStatus.dead else log.warning
                log_fn("job failed", extra={"job_id": job.id, "kind": job.kind, "attempt": job.attempts,
                                            "status": str(status), "error": repr(error)})
            await uow.commit()
        return len(claimed)

    async def _run(self, job: Job) -> BaseException | None:
        handler = self.registry.get(job.kind)
        if handler is None:
            return PermanentFailure(f"no handler for job kind {job.kind!r}")
        ctx = JobContext(job_id=job.id, attempt=job.attempts, max_attempts=job.max_attempts,
                         account_id=job.account_id)
        async with self._sem:
            try:
                await handler(self.runtime, job.payload, ctx)
            except (RetryLater, PermanentFailure) as exc:
                return exc
            except Exception as exc:  # any other failure is retried with backoff
                log.exception("job handler raised", extra={"job_id": job.id, "kind": job.kind})
                return exc
        return None

    async def drain(self, timeout: float = 30.0) -> None:
        """Run until no job is runnable now (tests and the demo seeder use it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if await self.run_once() == 0:
                return
        raise TimeoutError("jobs still runnable after drain timeout")
