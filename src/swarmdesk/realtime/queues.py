"""Event queues: what a registered client is and how far it has read.

A queue id is a 128-bit secret bound at registration to one principal; it is all a socket needs
to connect. With Redis the queue records live in Redis (any process can resume them); without it
one process is the whole system and a dict is the truth.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Protocol

import orjson
import redis.asyncio as aioredis


@dataclass(slots=True)
class QueueInfo:
    queue_id: str
    account_id: int
    principal_kind: str  # "user" | "contact"
    principal_id: int
    role: str | None = None
    team_ids: tuple[int, ...] = ()
    last_acked: int = 0
    created_at: float = field(default_factory=time.time)


def new_queue_id() -> str:
    return secrets.token_urlsafe(16)


class QueueStore(Protocol):
    async def put(self, info: QueueInfo) -> None: ...

    async def get(self, queue_id: str) -> QueueInfo | None: ...

    async def ack(self, queue_id: str, last_event_id: int) -> None: ...

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

    async def delete(self, queue_id: str) -> None:
        self._queues.pop(queue_id, None)


class RedisQueueStore:
    def __init__(self, redis: aioredis.Redis, ttl_seconds: int, prefix: str = "swarmdesk:queue:") -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._prefix = prefix

    async def put(self, info: QueueInfo) -> None:
        await self._redis.set(self._prefix + info.queue_id, orjson.dumps(asdict(info)), ex=self._ttl)

    async def get(self, queue_id: str) -> QueueInfo | None:
        raw = await self._redis.getex(self._prefix + queue_id, ex=self._ttl)
        if raw is None:
            return None
        data = orjson.loads(raw)
        data["team_ids"] = tuple(data["team_ids"])
        return QueueInfo(**data)

    async def ack(self, queue_id: str, last_event_id: int) -> None:
        info = await self.get(queue_id)
        if info is not None and last_event_id > info.last_acked:
            info.last_acked = last_event_id
            await self.put(info)

    async def delete(self, queue_id: str) -> None:
        await self._redis.delete(self._prefix + queue_id)
