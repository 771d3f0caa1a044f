"""Engine, sessions and the unit of work.

SQLite runs in WAL mode through ``core.sqlite`` (statements inline, lock waits and checkpoints
off the event loop) with one pooled connection per process and ``BEGIN IMMEDIATE``: writers
queue on the pool instead of spinning on SQLITE_BUSY, and a second process (``swarmdesk worker``)
retries a busy ``BEGIN`` with async backoff. PostgreSQL uses asyncpg with a normal pool; concurrent commits share
WAL flushes, which is how it gets past one fsync per message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from swarmdesk.config import Settings
from swarmdesk.core import sqlite


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, pool_size=1, max_overflow=0, pool_timeout=60, json_serializer=_json_dumps,
            json_deserializer=orjson.loads, async_creator=sqlite.connect(url.split(":///", 1)[1]),
        )
        synchronous = settings.sqlite_synchronous

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # The connection runs in autocommit mode (isolation_level=None), so transactions are
            # ours to begin: BEGIN IMMEDIATE below.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # busy_timeout stays 0: core.sqlite waits for other processes' locks without blocking.
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=False, json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class CommitHooks(Protocol):
    """What the unit of work needs from the event layer (core does not import it)."""

    async def before_commit(self, session: AsyncSession, events: list[Any]) -> None: ...

    async def after_commit(self, session: AsyncSession, events: list[Any]) -> None: ...


class UnitOfWork:
    """One transaction plus what must happen once it has committed.

    Actions call :meth:`publish` for each observable change; events are written to the outbox
    inside the transaction and sent to live clients only after the commit succeeds, so nobody
    ever sees a change that was rolled back.
    """

    def __init__(self, session: AsyncSession, hooks: CommitHooks) -> None:
        self.session = session
        self._hooks = hooks
        self._events: list[Any] = []
        self._after: list[Callable[[], Awaitable[None]]] = []

    def publish(self, event: Any) -> None:
        self._events.append(event)

    def after_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._after.append(callback)

    async def commit(self) -> None:
        events, self._events = self._events, []
        await self._hooks.before_commit(self.session, events)
        await self.session.commit()
        after, self._after = self._after, []
        await self._hooks.after_commit(self.session, events)
        for callback in after:
            await callback()

    async def rollback(self) -> None:
        self._events.clear()
        self._after.clear()
        await self.session.rollback()

    async def close(self) -> None:
        await self.session.close()


class _CallerCommits:
    async def before_commit(self, session: Any, events: list[Any]) -> None:
        raise AssertionError("a nested unit of work commits through its caller's")

    async def after_commit(self, session: Any, events: list[Any]) -> None:
        raise AssertionError("a nested unit of work commits through its caller's")


class NestedUnitOfWork(UnitOfWork):
    """What an action sees when another action runs it inside its own transaction (a bulk change,
    a swarm assigning its owner, a deferred send): its commit only flushes, its events and
    after-commit callbacks join the caller's, and the caller commits (or rolls back) everything once."""

    def __init__(self, outer: UnitOfWork) -> None:
        super().__init__(outer.session, _CallerCommits())
        self._outer = outer

    def publish(self, event: Any) -> None:
        self._outer.publish(event)

    def after_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._outer.after_commit(callback)

    async def commit(self) -> None:
        await self.session.flush()

    async def rollback(self) -> None:
        await self._outer.rollback()
