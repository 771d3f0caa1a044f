"""Durable jobs: enqueued in the caller's transaction, claimed with a lease, retried with backoff."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.core.clock import utcnow
from swarmdesk.jobs.models import Job, JobStatus


def enqueue(session: AsyncSession, kind: str, payload: dict[str, Any], *, account_id: int | None = None,
            run_at: datetime | None = None, max_attempts: int = 8) -> Job:
    """Add a job to the caller's transaction: it exists if and only if the change commits."""
    now = utcnow()
    job = Job(kind=kind, payload=payload, account_id=account_id, run_at=run_at or now, created_at=now,
              max_attempts=max_attempts, status=JobStatus.queued, attempts=0)
    session.add(job)
    session.info["jobs_enqueued"] = True  # the unit of work wakes the workers after commit
    return job


async def claim(session: AsyncSession, worker_id: str, limit: int, lease_seconds: int) -> list[Job]:
    """Lease up to ``limit`` runnable jobs. A running job whose lease expired was orphaned by a
    crashed worker and is claimed again."""
    now = utcnow()
    runnable = or_(
        and_(Job.status == JobStatus.queued, Job.run_at <= now),
        and_(Job.status == JobStatus.running, Job.locked_until < now),
    )
    ids = select(Job.id).where(runnable).order_by(Job.run_at, Job.id).limit(limit)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        ids = ids.with_for_update(skip_locked=True)
    stmt = (
        update(Job)
        .where(Job.id.in_(ids.scalar_subquery()))
        .values(status=JobStatus.running, locked_by=worker_id,
                locked_until=now + timedelta(seconds=lease_seconds), attempts=Job.attempts + 1)
        .returning(Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts, Job.account_id)
        .execution_options(synchronize_session=False)
    )
    rows = (await session.execute(stmt)).all()
    return [Job(id=r.id, kind=r.kind, payload=r.payload, attempts=r.attempts, max_attempts=r.max_attempts,
                account_id=r.account_id) for r in rows]


async def mark_done(session: AsyncSession, job_ids: list[int], worker_id: str) -> None:
    if not job_ids:
        return
    await session.execute(
        update(Job).where(Job.id.in_(job_ids), Job.locked_by == worker_id)
        .values(status=JobStatus.done, finished_at=utcnow(), locked_until=None, last_error=None)
        .execution_options(synchronize_session=False))


def backoff_delay(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter (AWS architecture blog's recommendation)."""
    return random.uniform(0, min(cap, base * (2 ** attempts))) + min(1.0, base)


async def mark_failed(session: AsyncSession, job: Job, worker_id: str, error: str, *,
                      retry_after: float | None, base: float, cap: float, permanent: bool = False) -> JobStatus:
    now = utcnow()
    if permanent or job.attempts >= job.max_attempts:
        status, run_at = JobStatus.dead, now
    else:
        delay = retry_after if retry_after is not None else backoff_delay(job.attempts, base, cap)
        status, run_at = JobStatus.queued, now + timedelta(seconds=min(delay, cap))
    await session.execute(
        update(Job).where(Job.id == job.id, Job.locked_by == worker_id)
        .values(status=status, run_at=run_at, locked_until=None, last_error=error[:4000],
                finished_at=now if status == JobStatus.dead else None)
        .execution_options(synchronize_session=False))
    return status


async def list_jobs(session: AsyncSession, *, status: JobStatus | None, account_id: int | None,
                    limit: int, before_id: int | None) -> list[Job]:
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if account_id is not None:
        stmt = stmt.where(Job.account_id == account_id)
    if before_id is not None:
        stmt = stmt.where(Job.id < before_id)
    return list((await session.scalars(stmt)).all())


async def get_job(session: AsyncSession, job_id: int, account_id: int) -> Job | None:
    return await session.scalar(select(Job).where(Job.id == job_id, Job.account_id == account_id))


async def requeue(session: AsyncSession, job: Job) -> None:
    job.status = JobStatus.queued
    job.run_at = utcnow()
    job.attempts = 0
    job.locked_until = None
    job.finished_at = None


async def prune_done(session: AsyncSession, older_than: datetime) -> int:
    result = await session.execute(delete(Job).where(Job.status == JobStatus.done, Job.finished_at < older_than))
    return result.rowcount or 0


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    rows = (await session.execute(select(Job.status, func.count()).group_by(Job.status))).all()
    return {str(s): n for s, n in rows}
