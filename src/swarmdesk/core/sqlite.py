"""A lean async SQLite connection for SQLAlchemy's aiosqlite dialect (via ``async_creator``).

aiosqlite makes four thread round trips per statement (cursor, execute, fetchall, close), which
costs ~0.4 ms of CPU each time on this hardware — more than the statement itself. This adapter
keeps aiosqlite's model (one worker thread per connection, so the event loop never blocks on
SQLite) but does a statement's whole cycle in one round trip: the thread executes, fetches and
closes, and the coroutine side only reads the buffered rows.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

_STOP = object()


class Cursor:
    """Buffered results of one statement; only ``execute``/``executemany`` cross to the thread."""

    arraysize = 1

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def _run(self, fn: Callable[[sqlite3.Cursor], None]) -> Callable[[], None]:
        def work() -> None:
            cur = self._conn._db.cursor()
            try:
                fn(cur)
                self.description = cur.description
                self._rows = cur.fetchall() if cur.description else []
                self.rowcount = cur.rowcount
                self.lastrowid = cur.lastrowid
            finally:
                cur.close()
        return work

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        await self._conn._call(self._run(lambda cur: cur.execute(sql, parameters or ())))
        return self

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Cursor:
        rows = list(seq)
        await self._conn._call(self._run(lambda cur: cur.executemany(sql, rows)))
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        size = size or self.arraysize
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    async def close(self) -> None:
        self._rows = []


class Connection:
    """One SQLite connection owned by one thread; every call is a single round trip."""

    def __init__(self, database: str, **kwargs: Any) -> None:
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._db: sqlite3.Connection = None  # type: ignore[assignment]
        self._args = (database, kwargs)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="sqlite-connection", daemon=True)
        self._connection = True  # what SQLAlchemy's adapter checks before commit/rollback

    def _serve(self) -> None:
        database, kwargs = self._args
        try:
            self._db = sqlite3.connect(database, check_same_thread=False, isolation_level=None, **kwargs)
        except BaseException as exc:  # reported to the awaiting connect()
            self._error = exc
        self._ready.set()
        while True:
            item = self._requests.get()
            if item is _STOP:
                break
            loop, future, fn = item
            try:
                result = fn()
            except BaseException as exc:
                loop.call_soon_threadsafe(_set_exception, future, exc)
            else:
                loop.call_soon_threadsafe(_set_result, future, result)

    async def _start(self) -> Connection:
        self._thread.start()
        await asyncio.get_running_loop().run_in_executor(None, self._ready.wait)
        if self._error is not None:
            raise self._error
        return self

    def __await__(self):  # noqa: ANN204 - SQLAlchemy awaits what async_creator returns
        return self._start().__await__()

    async def _call(self, fn: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._requests.put((loop, future, fn))
        return await future

    @property
    def isolation_level(self) -> str | None:
        return self._db.isolation_level

    def cursor(self) -> Cursor:
        return Cursor(self)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        return await Cursor(self).execute(sql, parameters)

    async def commit(self) -> None:
        await self._call(self._db.commit)

    async def rollback(self) -> None:
        await self._call(self._db.rollback)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        await self._call(lambda: self._db.create_function(*args, **kwargs))

    async def close(self) -> None:
        if self._connection:
            self._connection = False
            await self._call(self._db.close)
            self._requests.put(_STOP)

    def stop(self) -> None:
        self._connection = False
        self._requests.put(_STOP)


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def connect(database: str) -> Callable[[], Connection]:
    """An ``async_creator`` for ``create_async_engine("sqlite+aiosqlite://", async_creator=...)``."""
    return lambda: Connection(database)
