"""Numbered event log and fan-out: in-process by default, Redis when several processes serve.

Each published event gets a global, increasing id. Every process keeps the same numbering: with
Redis the ids come from one counter and the log is a Redis stream, so a client can resume on any
process. Without Redis the log is an in-memory ring (one process is the whole system).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import orjson
import redis.asyncio as aioredis

from swarmdesk.events.base import Audience, BaseEvent, RoutedEvent

log = logging.getLogger(__name__)

Dispatch = Callable[[RoutedEvent], None]


def connect_redis(url: str, max_connections: int = 100) -> aioredis.Redis:
    """A Redis client whose pool waits (up to 10 s) for a free connection at its limit. The default
    pool raises ``MaxConnectionsError`` at once, which under a burst of publishes or socket acks
    would lose events after their transaction committed."""
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=10)
    client = aioredis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # aclose() closes the pool it owns
    return client


def _frame(event_id: int, body: dict) -> bytes:
    return orjson.dumps({"id": event_id, **body})


class EventBus(Protocol):
    async def start(self, dispatch: Dispatch) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, events: Sequence[BaseEvent]) -> None: ...

    async def head_id(self) -> int: ...

    async def replay(self, after_id: int) -> list[RoutedEvent] | None:
        """Events after ``after_id``; None when some of them are no longer retained."""
        ...


class LocalBus:
    def __init__(self, log_size: int = 50_000) -> None:
        self._log: deque[RoutedEvent] = deque(maxlen=log_size)
        self._next_id = 1
        self._dispatch: Dispatch | None = None

    async def start(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch

    async def stop(self) -> None:
        self._dispatch = None

    async def publish(self, events: Sequence[BaseEvent]) -> None:
        for event in events:
            routed = RoutedEvent(self._next_id, event.type, event.account_id, event.audience, _frame(self._next_id, event.body()))
            self._next_id += 1
            self._log.append(routed)
            if self._dispatch is not None:
                self._dispatch(routed)

    async def head_id(self) -> int:
        return self._next_id - 1

    async def replay(self, after_id: int) -> list[RoutedEvent] | None:
        if after_id > self._next_id - 1:
            return None  # an id this log never issued: it was reset, so the client must reload
        if after_id == self._next_id - 1:
            return []
        if not self._log or self._log[0].id > after_id + 1:
            return None
        return [e for e in self._log if e.id > after_id]


# INCRBY reserves a block of ids; XADD with explicit ids keeps the stream in that order.
# A missing counter means Redis lost its data (restarted without persistence, or flushed): the
# numbering continues above the highest id this process has seen (ARGV[2]) and above the stream's
# top entry, never back at 1 - otherwise every process's reader, waiting for ids above the last
# one it read, and every connected client, dropping ids it has already passed, would go silent.
_PUBLISH_LUA = """
local n = #ARGV - 2
if redis.call('EXISTS', KEYS[1]) == 0 then
  local floor = tonumber(ARGV[2])
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if top[1] then
    local top_id = tonumber(string.match(top[1][1], '^(%d+)'))
    if top_id > floor then floor = top_id end
  end
  redis.call('SET', KEYS[1], floor)
end
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
for i = 1, n do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], (first + i - 1) .. '-1', 'e', ARGV[i + 2])
end
return first
"""


class RedisBus:
    def __init__(self, redis_url: str, *, prefix: str = "swarmdesk", log_size: int = 50_000,
                 max_connections: int = 100) -> None:
        self._redis = connect_redis(redis_url, max_connections)
        self._reader = aioredis.from_url(redis_url)  # one blocking XREAD at a time
        self._seq_key = f"{prefix}:events:seq"
        self._stream = f"{prefix}:events"
        self._log_size = log_size
        self._script = self._redis.register_script(_PUBLISH_LUA)
        self._task: asyncio.Task[None] | None = None
        self._dispatch: Dispatch | None = None
        self._highest = 0  # the highest id this process published or read

    @property
    def redis(self):  # noqa: ANN201 - shared with the queue store
        return self._redis

    async def start(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch
        head = await self.head_id()
        self._highest = max(self._highest, head)
        self._task = asyncio.create_task(self._read_loop(f"{head}-1"), name="redis-bus-reader")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._redis.aclose()
        await self._reader.aclose()

    async def publish(self, events: Sequence[BaseEvent]) -> None:
        if not events:
            return
        payloads = [orjson.dumps({"t": e.type, "a": e.account_id, "d": e.audience.model_dump(), "b": e.body()})
                    for e in events]
        first = await self._script(keys=[self._seq_key, self._stream],
                                   args=[self._log_size, self._highest, *payloads])
        self._highest = max(self._highest, int(first) + len(payloads) - 1)

    async def head_id(self) -> int:
        value = await self._redis.get(self._seq_key)
        return int(value) if value else 0

    @staticmethod
    def _decode(entry_id: bytes, fields: dict[bytes, bytes]) -> RoutedEvent:
        event_id = int(entry_id.split(b"-", 1)[0])
        data = orjson.loads(fields[b"e"])
        return RoutedEvent(event_id, data["t"], data["a"], Audience(**data["d"]), _frame(event_id, data["b"]))

    async def replay(self, after_id: int) -> list[RoutedEvent] | None:
        head = await self.head_id()
        if after_id > head:
            return None  # an id the counter never issued: Redis lost its data, so the client must reload
        if after_id == head:
            return []
        entries = await self._redis.xrange(self._stream, min=f"{after_id + 1}-0", max="+")
        events = [self._decode(eid, fields) for eid, fields in entries]
        if not events or events[0].id > after_id + 1:
            return None
        return events

    async def _read_loop(self, last: str) -> None:
        while True:
            try:
                result = await self._reader.xread({self._stream: last}, block=5000, count=1000)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis restarting: keep the loop, clients resume from the log
                log.exception("redis bus read failed; retrying")
                await asyncio.sleep(0.5)
                continue
            for _stream, entries in result or []:
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    event = self._decode(entry_id, fields)
                    self._highest = max(self._highest, event.id)
                    if self._dispatch is not None:
                        self._dispatch(event)
