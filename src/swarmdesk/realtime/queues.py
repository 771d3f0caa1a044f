"""Event queues: what a registered client is and how far it has read.

A queue id is a 128-bit secret bound at registration to one principal; it is all a socket needs
to connect. With Redis the queue records live in Redis (any process can resume them); without it
one process is the whole system and a dict is the truth.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Protocol

import orjson
import redis.asyncio as aioredis

log = logging.getLogger(__name__)


@dataclass(slots=True)
class QueueInfo:
    queue_id: str
    account_id: int
    principal_kind: str  # "user" | "contact"
    principal_id: int
    role: str | None = None
    team_ids: tuple[int, ...] = ()
    last_acked: int = 0
    credential: str = ""  # what it was registered with (auth.principals); revoking it ends the queue
    created_at: float = field(default_factory=time.time)


def new_queue_id() -> str:
    return secrets.token_urlsafe(16)


class QueueStore(Protocol):
    async def put(self, info: QueueInfo) -> None: ...

    async def get(self, queue_id: str) -> QueueInfo | None: ...

    async def ack(self, queue_id: str, last_event_id: int) -> None: ...

    async def ack_many(self, acks: dict[str, int]) -> None: ...

    async def delete(self, queue_id: str) -> None: ...


class LocalQueueStore:
    def __init__(self, ttl_seconds: int) -> None:
        self._ttl = ttl_seconds
        self._queues: dict[str, tuple[QueueInfo, float]] = {}

    def _gc(self) -> None:
        now = time.monotonic()
        for qid in [q for q, (_, exp) in self._queues.items() if exp < now]:
            del self._queues[qid]

    async def put(self, info: QueueInfo) -> None:
        self._gc()
        self._queues[info.queue_id] = (info, time.monotonic() + self._ttl)

    async def get(self, queue_id: str) -> QueueInfo | None:
        entry = self._queues.get(queue_id)
        if entry is None or entry[1] < time.monotonic():
            return None
        self._queues[queue_id] = (entry[0], time.monotonic() + self._ttl)
        return entry[0]

    async def ack(self, queue_id: str, last_event_id: int) -> None:
        entry = self._queues.get(queue_id)
        if entry is not None:
            entry[0].last_acked = max(entry[0].last_acked, last_event_id)
            self._queues[queue_id] = (entry[0], time.monotonic() + self._ttl)

    async def ack_many(self, acks: dict[str, int]) -> None:
        for queue_id, last_event_id in acks.items():
            await self.ack(queue_id, last_event_id)

    async def delete(self, queue_id: str) -> None:
        self._queues.pop(queue_id, None)


# The record is written once; the acknowledged id lives in its own key so that an ack is one
# atomic max() in Redis. A read-modify-write of the record could move it backwards when two
# sockets of one queue (the old one on process A, the new one on B) ack at the same time.
_ACK_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class RedisQueueStore:
    def __init__(self, redis: aioredis.Redis, ttl_seconds: int, prefix: str = "swarmdesk:queue:") -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._prefix = prefix
        self._ack_script = redis.register_script(_ACK_LUA)

    def _keys(self, queue_id: str) -> tuple[str, str]:
        return self._prefix + queue_id, self._prefix + queue_id + ":ack"

    async def put(self, info: QueueInfo) -> None:
        record, acked = self._keys(info.queue_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(record, orjson.dumps(asdict(info)), ex=self._ttl)
            pipe.set(acked, info.last_acked, ex=self._ttl)
            await pipe.execute()

    async def get(self, queue_id: str) -> QueueInfo | None:
        record, acked = self._keys(queue_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.getex(record, ex=self._ttl)
            pipe.getex(acked, ex=self._ttl)
            raw, raw_acked = await pipe.execute()
        if raw is None:
            return None
        data = orjson.loads(raw)
        data["team_ids"] = tuple(data["team_ids"])
        info = QueueInfo(**data)
        if raw_acked is not None:
            info.last_acked = max(info.last_acked, int(raw_acked))
        return info

    async def ack(self, queue_id: str, last_event_id: int) -> None:
        await self._ack_script(keys=list(self._keys(queue_id)), args=[last_event_id, self._ttl])

    async def ack_many(self, acks: dict[str, int]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue_id, last_event_id in acks.items():
                await self._ack_script(keys=list(self._keys(queue_id)), args=[last_event_id, self._ttl], client=pipe)
            await pipe.execute()

    async def delete(self, queue_id: str) -> None:
        await self._redis.delete(*self._keys(queue_id))


class AckBuffer:
    """Clients' acks, kept per queue and stored together (``flush``, about once a second).

    An ack only keeps the queue's position for a socket that resumes without naming its last id,
    and the queue alive; storing each as it comes would be a Redis round trip per ack per socket.
    What a crash loses is at most a second of position: that client is sent those events again
    and drops them by id. ``flush(queue_id)`` stores one queue's ack at once — before a pong (so a
    client can know its ack is stored) and when its socket closes."""

    def __init__(self, store: QueueStore) -> None:
        self._store = store
        self._pending: dict[str, int] = {}

    def note(self, queue_id: str, last_event_id: int) -> None:
        if last_event_id > self._pending.get(queue_id, -1):
            self._pending[queue_id] = last_event_id

    async def flush(self, queue_id: str | None = None) -> None:
        if queue_id is None:
            pending, self._pending = self._pending, {}
        else:
            one = self._pending.pop(queue_id, None)
            pending = {} if one is None else {queue_id: one}
        if not pending:
            return
        try:
            await self._store.ack_many(pending)
        except Exception:  # Redis away: keep them for the next flush (newer acks win)
            log.warning("storing acks failed; keeping them for the next flush", exc_info=True)
            for qid, last in pending.items():
                self.note(qid, last)
