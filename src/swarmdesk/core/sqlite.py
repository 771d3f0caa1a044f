"""A lean async SQLite connection for SQLAlchemy's aiosqlite dialect (via ``async_creator``).

Why not aiosqlite: it makes four thread round trips per statement (cursor, execute, fetchall,
close). Each hand-off to its thread costs more CPU than the statement itself (a GIL hand-off plus
an event-loop wake-up: ~0.3 ms here), so a message that needs eight statements spent most of its
time switching threads.

What this does instead: statements run on the event loop's thread, straight into SQLite. That is
the same serialisation we already have — Swarmdesk gives SQLite one pooled connection per process,
so statements never ran in parallel — minus the hand-offs. What could block the loop is kept off
it:
- waiting for another process's write lock: ``busy_timeout`` is 0 and a busy ``BEGIN`` is retried
  with ``asyncio.sleep`` backoff, so waiting never blocks;
- WAL checkpoints (disk writes and fsync): auto-checkpointing is off on this connection and a
  checkpointer thread with its own connection does passive checkpoints as the WAL grows.
A statement itself takes microseconds on an indexed table; heavy analytical reads belong on
PostgreSQL, which is what a deployment outgrowing one process uses.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

BUSY_RETRY_SECONDS = 30.0
CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class Cursor:
    """Buffered results of one statement."""

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

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        db = self._conn._db
        delay = 0.001
        waited = 0.0
        while True:
            cur = db.cursor()
            try:
                cur.execute(sql, parameters or ())
                self._rows = cur.fetchall() if cur.description else []
                self.description = cur.description
                self.rowcount = cur.rowcount
                self.lastrowid = cur.lastrowid
                return self
            except sqlite3.OperationalError as exc:
                # Another process holds the write lock. Only a statement outside a transaction
                # (our BEGIN IMMEDIATE) can be retried safely; wait without blocking the loop.
                if not _is_busy(exc) or db.in_transaction or waited >= BUSY_RETRY_SECONDS:
                    raise
            finally:
                cur.close()
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.05)

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Cursor:
        cur = self._conn._db.cursor()
        try:
            cur.executemany(sql, seq)
            self.description = cur.description
            self._rows = []
            self.rowcount = cur.rowcount
            self.lastrowid = cur.lastrowid
        finally:
            cur.close()
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


class Checkpointer:
    """Moves WAL frames into the database file on its own thread and connection."""

    def __init__(self, database: str, interval: float = 0.5) -> None:
        self._database = database
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        wal = Path(self._database + "-wal")
        conn = sqlite3.connect(self._database, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=1000")
        try:
            while not self._stop.wait(self._interval):
                try:
                    if wal.exists() and wal.stat().st_size >= CHECKPOINT_WAL_BYTES:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    continue  # busy or locked: the next round will get it
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass
        finally:
            conn.close()


class Connection:
    def __init__(self, database: str) -> None:
        self._database = database
        self._db: sqlite3.Connection = None  # type: ignore[assignment]
        self._connection = False  # what SQLAlchemy's adapter checks before commit/rollback
        self._checkpointer = Checkpointer(database)

    async def _start(self) -> Connection:
        self._db = sqlite3.connect(self._database, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=0")
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._connection = True
        self._checkpointer.start()
        return self

    def __await__(self):  # noqa: ANN204 - SQLAlchemy awaits what async_creator returns
        return self._start().__await__()

    @property
    def isolation_level(self) -> str | None:
        return self._db.isolation_level

    def cursor(self) -> Cursor:
        return Cursor(self)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        return await Cursor(self).execute(sql, parameters)

    async def commit(self) -> None:
        self._db.commit()

    async def rollback(self) -> None:
        self._db.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._db.create_function(*args, **kwargs)

    async def close(self) -> None:
        if self._connection:
            self._connection = False
            self._checkpointer.stop()
            self._db.close()

    def stop(self) -> None:
        self._connection = False
        self._checkpointer.stop()


def connect(database: str):  # noqa: ANN201 - an async_creator
    """For ``create_async_engine("sqlite+aiosqlite:///…", async_creator=connect(path))``."""
    return lambda: Connection(database)
