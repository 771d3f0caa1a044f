"""Everything a running process shares: settings, database, bus, hub, workers, outbound HTTP.

Built once by ``create_runtime`` (the app lifespan, the CLI worker, the demo seeder, tests) and
reached from requests through ``request.app.state.runtime``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import swarmdesk.registrations  # noqa: F401  (handlers, listeners and adapters register on import)
from swarmdesk.config import Settings
from swarmdesk.core.db import UnitOfWork, create_engine, create_sessionmaker
from swarmdesk.core.security import SecretBox
from swarmdesk.events.bus import EventBus, LocalBus, RedisBus
from swarmdesk.events.listeners import EventCommitHooks, ListenerRegistry, listeners
from swarmdesk.jobs.registry import JobRegistry, jobs
from swarmdesk.jobs.worker import Worker
from swarmdesk.realtime.hub import Hub
from swarmdesk.realtime.queues import LocalQueueStore, QueueStore, RedisQueueStore
from swarmdesk.webhooks.http import OutboundHttp

JOBS_WAKE_CHANNEL = "swarmdesk:jobs:wake"


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: EventBus
    hub: Hub
    queues: QueueStore
    secretbox: SecretBox
    http: OutboundHttp
    listeners: ListenerRegistry
    jobs: JobRegistry
    hooks: EventCommitHooks = field(init=False)
    worker: Worker | None = None
    redis: aioredis.Redis | None = None

    def __post_init__(self) -> None:
        self.hooks = EventCommitHooks(self.bus, self.listeners, self.wake_workers)

    @asynccontextmanager
    async def uow(self) -> AsyncIterator[UnitOfWork]:
        session = self.sessionmaker()
        uow = UnitOfWork(session, self.hooks)
        try:
            yield uow
        except BaseException:
            await uow.rollback()
            raise
        finally:
            await session.close()

    async def wake_workers(self) -> None:
        if self.worker is not None:
            self.worker.notify()
        if self.redis is not None:
            await self.redis.publish(JOBS_WAKE_CHANNEL, b"1")

    async def start(self, *, with_worker: bool) -> None:
        await self.bus.start(self.hub.dispatch)
        if with_worker:
            self.worker = Worker(self, self.jobs)
            self.worker.start()
            if self.redis is not None:
                self._wake_task = _start_wake_listener(self)

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        task = getattr(self, "_wake_task", None)
        if task is not None:
            task.cancel()
        await self.hub.close_all()
        await self.bus.stop()
        await self.http.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


def _start_wake_listener(runtime: Runtime) -> asyncio.Task[None]:
    async def listen() -> None:
        assert runtime.redis is not None
        pubsub = runtime.redis.pubsub()
        await pubsub.subscribe(JOBS_WAKE_CHANNEL)
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message" and runtime.worker is not None:
                    runtime.worker.notify()
        finally:
            await pubsub.aclose()

    return asyncio.create_task(listen(), name="jobs-wake-listener")


def create_runtime(settings: Settings) -> Runtime:
    engine = create_engine(settings)
    redis_client = aioredis.from_url(settings.redis_url) if settings.redis_url else None
    bus: EventBus
    queues: QueueStore
    if settings.redis_url:
        bus = RedisBus(settings.redis_url, log_size=settings.event_log_size)
        queues = RedisQueueStore(redis_client, ttl_seconds=settings.queue_ttl_seconds)  # type: ignore[arg-type]
    else:
        bus = LocalBus(log_size=settings.event_log_size)
        queues = LocalQueueStore(ttl_seconds=settings.queue_ttl_seconds)
    return Runtime(
        settings=settings, engine=engine, sessionmaker=create_sessionmaker(engine), bus=bus, hub=Hub(),
        queues=queues, secretbox=SecretBox(settings.secret_key), http=OutboundHttp(settings),
        listeners=listeners, jobs=jobs, redis=redis_client,
    )
