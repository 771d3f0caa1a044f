"""Everything a running process shares: settings, database, bus, hub, workers, outbound HTTP.

Built once by ``create_runtime`` (the app lifespan, the CLI worker, the demo seeder, tests) and
reached from requests through ``request.app.state.runtime``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import swarmdesk.registrations  # noqa: F401  (handlers, listeners and adapters register on import)
from swarmdesk.channels.directory import ChannelDirectory
from swarmdesk.channels.inbound import IntakeBatcher
from swarmdesk.channels.registry import channels as channel_registry
from swarmdesk.config import Settings
from swarmdesk.core.background import background
from swarmdesk.core.db import UnitOfWork, create_engine, create_sessionmaker
from swarmdesk.core.security import SecretBox
from swarmdesk.events.bus import EventBus, LocalBus, RedisBus, connect_redis
from swarmdesk.events.listeners import EventCommitHooks, ListenerRegistry, listeners
from swarmdesk.jobs.registry import JobRegistry, jobs
from swarmdesk.jobs.worker import Worker
from swarmdesk.realtime.hub import Hub
from swarmdesk.realtime.queues import AckBuffer, LocalQueueStore, QueueStore, RedisQueueStore
from swarmdesk.webhooks.http import OutboundHttp

log = logging.getLogger(__name__)

JOBS_WAKE_CHANNEL = "swarmdesk:jobs:wake"  # with the default redis_prefix; see Runtime.jobs_wake_channel


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
    channels: ChannelDirectory = field(init=False)
    intake: IntakeBatcher = field(init=False)
    hooks: EventCommitHooks = field(init=False)
    acks: AckBuffer = field(init=False)
    worker: Worker | None = None
    draining: bool = False  # set on shutdown; /readyz reports it
    redis: aioredis.Redis | None = None
    # Names this process in rows only it keeps alive (e.g. routing's presence connections).
    process_id: str = field(init=False, default_factory=lambda: uuid.uuid4().hex)
    _background: list[asyncio.Task[None]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.hooks = EventCommitHooks(self.bus, self.listeners, self.wake_workers)
        self.channels = ChannelDirectory(channel_registry, self.secretbox, self.http, base_url=self.settings.base_url)
        self.intake = IntakeBatcher(self)
        self.acks = AckBuffer(self.queues)

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

    @property
    def jobs_wake_channel(self) -> str:
        # Pub/sub channels ignore the Redis database number, so the prefix is what keeps two
        # deployments (or two test runs) on one Redis from waking each other's workers.
        return f"{self.settings.redis_prefix}:jobs:wake"

    async def wake_workers(self) -> None:
        if self.worker is not None:
            self.worker.notify()
        if self.redis is not None:
            await self.redis.publish(self.jobs_wake_channel, b"1")

    async def start(self, *, with_worker: bool) -> None:
        await self.bus.start(self.hub.dispatch)
        self._background = background.start(self)
        if with_worker:
            self.worker = Worker(self, self.jobs)
            self.worker.start()
            if self.redis is not None:
                self._wake_task = _start_wake_listener(self)

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.intake.stop()
        if self.worker is not None:
            await self.worker.stop()
        task = getattr(self, "_wake_task", None)
        if task is not None:
            task.cancel()
            # Let it unsubscribe and release its connection before the client is closed below.
            await asyncio.gather(task, return_exceptions=True)
        await self.hub.close_all()
        await background.stop(self)
        await self.bus.stop()
        await self.http.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


def _start_wake_listener(runtime: Runtime) -> asyncio.Task[None]:
    async def listen() -> None:
        assert runtime.redis is not None
        pubsub = runtime.redis.pubsub()
        try:
            while True:
                try:
                    await pubsub.subscribe(runtime.jobs_wake_channel)
                    async for message in pubsub.listen():
                        if message.get("type") == "message" and runtime.worker is not None:
                            runtime.worker.notify()
                except asyncio.CancelledError:
                    raise
                except Exception:  # Redis restarting: workers still poll; resubscribe when it is back
                    log.warning("jobs wake-up subscription lost; resubscribing", exc_info=True)
                    await pubsub.reset()
                    await asyncio.sleep(1.0)
        finally:
            await pubsub.aclose()

    return asyncio.create_task(listen(), name="jobs-wake-listener")


def create_runtime(settings: Settings) -> Runtime:
    engine = create_engine(settings)
    redis_client = connect_redis(settings.redis_url, settings.redis_max_connections) if settings.redis_url else None
    bus: EventBus
    queues: QueueStore
    if settings.redis_url:
        bus = RedisBus(settings.redis_url, prefix=settings.redis_prefix, log_size=settings.event_log_size,
                       max_connections=settings.redis_max_connections)
        queues = RedisQueueStore(redis_client, ttl_seconds=settings.queue_ttl_seconds,  # type: ignore[arg-type]
                                 prefix=f"{settings.redis_prefix}:queue:")
    else:
        bus = LocalBus(log_size=settings.event_log_size)
        queues = LocalQueueStore(ttl_seconds=settings.queue_ttl_seconds)
    return Runtime(
        settings=settings, engine=engine, sessionmaker=create_sessionmaker(engine), bus=bus, hub=Hub(),
        queues=queues, secretbox=SecretBox(settings.secret_key), http=OutboundHttp(settings),
        listeners=listeners, jobs=jobs, redis=redis_client,
    )


def tune_gc_for_serving() -> None:
    """Called once a long-running process (server, worker) has started: everything allocated at
    start-up lives for the whole process, so it leaves the collector's generations, and young objects
    are collected less often — full collections over hundreds of thousands of objects were the
    latency spikes of request and routing paths."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
