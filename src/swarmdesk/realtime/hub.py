"""This process's connected clients and the fan-out of numbered events to them.

Indexes by account, role, team, user and contact make a delivery cost proportional to its
recipients, not to the number of sockets. The frame is serialized once per event and shared.

A WebSocket client whose stream has caught up (replayed what it missed, sent everything queued) is
written to directly: the events dispatched for it in one turn of the event loop (a commit's events,
a read of the Redis stream) are staged and, at the end of that turn, written as one frame — built
once for every socket that gets the same events — with one transport write and no task wake-up.
Every other client — replaying, sending, over its write buffer, on SSE — gets events queued and its
stream task sends them, in order, through ASGI.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from swarmdesk.events.base import Audience, RoutedEvent
from swarmdesk.realtime.queues import QueueInfo
from swarmdesk.realtime.wire import WriteFrame, events_payload, text_frame

log = logging.getLogger(__name__)

# A client that falls this far behind is cut off and told to resume; it reconnects and replays.
MAX_PENDING = 5000
# Events the stream itself must see (it ends the stream after sending them): never written directly.
STREAM_CONTROL = frozenset({"access.changed", "credential.revoked"})


class Client:
    __slots__ = ("info", "pending", "last_sent", "overflowed", "_closed", "write_frame", "busy", "staged",
                 "last_write")

    def __init__(self, info: QueueInfo) -> None:
        self.info = info
        self.pending: asyncio.Queue[RoutedEvent | None] = asyncio.Queue()
        self.last_sent = 0
        self.overflowed = False
        self._closed = False
        # Set by a WebSocket stream that may be written to directly (``wire.WRITE_FRAME``).
        self.write_frame: WriteFrame | None = None
        # The stream task is replaying or sending: events queue behind it, so they keep their order.
        self.busy = True
        # Events for this turn's direct write (None: nothing staged).
        self.staged: list[RoutedEvent] | None = None
        self.last_write = time.monotonic()  # of anything to the socket (the heartbeat waits for quiet)

    def caught_up(self) -> bool:
        """Whether an event may go out directly, ahead of nothing: a direct writer, an idle stream,
        nothing queued (a queued event, even one a woken stream has not taken yet, goes first)."""
        return self.write_frame is not None and not self.busy and not self._closed and self.pending.empty()

    def unstage(self) -> None:
        """What was staged goes to the stream's queue instead, ahead of what comes next."""
        staged, self.staged = self.staged, None
        for event in staged or ():
            self.push(event)

    def push(self, event: RoutedEvent) -> None:
        if self._closed:
            return
        if self.pending.qsize() >= MAX_PENDING:
            self.overflowed = True
            self.close()
            return
        self.pending.put_nowait(event)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.pending.put_nowait(None)


def audience_includes(audience: Audience, info: QueueInfo) -> bool:
    """The rule the indexes implement, used for replay; a test holds the two to the same answer."""
    if audience.credentials and info.credential not in audience.credentials:
        return False
    if info.principal_kind == "contact":
        return info.principal_id in audience.contact_ids
    if info.principal_id in audience.user_ids:
        return True
    if info.role in audience.roles:
        return True
    if audience.all_agents and info.role == "agent":
        return True
    # Experts see only what they take part in: a team membership gives them nothing.
    return info.role != "expert" and bool(set(audience.team_ids) & set(info.team_ids))


def includes(event: RoutedEvent, info: QueueInfo) -> bool:
    """Whether a client receives an event: same account, and in the audience."""
    return event.account_id == info.account_id and audience_includes(event.audience, info)


ConnectionCallback = Callable[[Any, QueueInfo], Awaitable[None]]  # (runtime, the client's queue)


class ConnectionHooks:
    """Who wants to know that a client's stream opened or closed (routing keeps staff presence with
    it). Domains register here; realtime imports none of them. A failing callback is logged and
    never breaks the stream."""

    def __init__(self) -> None:
        self._connected: list[ConnectionCallback] = []
        self._disconnected: list[ConnectionCallback] = []

    def connected(self, fn: ConnectionCallback) -> ConnectionCallback:
        self._connected.append(fn)
        return fn

    def disconnected(self, fn: ConnectionCallback) -> ConnectionCallback:
        self._disconnected.append(fn)
        return fn

    async def fire_connected(self, runtime: Any, info: QueueInfo) -> None:
        await self._fire(self._connected, runtime, info)

    async def fire_disconnected(self, runtime: Any, info: QueueInfo) -> None:
        await self._fire(self._disconnected, runtime, info)

    @staticmethod
    async def _fire(callbacks: list[ConnectionCallback], runtime: Any, info: QueueInfo) -> None:
        for fn in callbacks:
            try:
                await fn(runtime, info)
            except Exception:
                log.exception("connection hook failed", extra={"hook": getattr(fn, "__name__", repr(fn))})


connection_hooks = ConnectionHooks()


class Hub:
    def __init__(self) -> None:
        self._by_account: dict[int, set[Client]] = defaultdict(set)
        self._by_role: dict[tuple[int, str], set[Client]] = defaultdict(set)
        self._by_team: dict[tuple[int, int], set[Client]] = defaultdict(set)
        self._by_user: dict[tuple[int, int], set[Client]] = defaultdict(set)
        self._by_contact: dict[tuple[int, int], set[Client]] = defaultdict(set)
        self.direct_writes = 0  # frames written straight to a socket (the rest went through a stream)
        self._staged: list[Client] = []
        self._flush_scheduled = False

    def _keys(self, client: Client) -> Iterable[tuple[dict, tuple]]:
        info = client.info
        if info.principal_kind == "contact":
            yield self._by_contact, (info.account_id, info.principal_id)
            return
        yield self._by_user, (info.account_id, info.principal_id)
        if info.role:
            yield self._by_role, (info.account_id, info.role)
        if info.role != "expert":  # as in audience_includes
            for team_id in info.team_ids:
                yield self._by_team, (info.account_id, team_id)

    def attach(self, client: Client) -> None:
        self._by_account[client.info.account_id].add(client)
        for index, key in self._keys(client):
            index[key].add(client)

    def detach(self, client: Client) -> None:
        self._by_account[client.info.account_id].discard(client)
        if not self._by_account[client.info.account_id]:
            del self._by_account[client.info.account_id]
        for index, key in self._keys(client):
            members = index.get(key)
            if members is not None:
                members.discard(client)
                if not members:
                    del index[key]

    @property
    def client_count(self) -> int:
        return sum(len(c) for c in self._by_account.values())

    def staff_connections(self) -> dict[tuple[int, int], int]:
        """Live streams of staff users in this process, per (account id, user id)."""
        return {key: len(clients) for key, clients in self._by_user.items() if clients}

    def recipients(self, event: RoutedEvent) -> set[Client]:
        account, audience = event.account_id, event.audience
        if account not in self._by_account:
            return set()
        found: set[Client] = set()
        for role in audience.roles:
            found |= self._by_role.get((account, role), set())
        if audience.all_agents:
            found |= self._by_role.get((account, "agent"), set())
        for team_id in audience.team_ids:
            found |= self._by_team.get((account, team_id), set())
        for user_id in audience.user_ids:
            found |= self._by_user.get((account, user_id), set())
        for contact_id in audience.contact_ids:
            found |= self._by_contact.get((account, contact_id), set())
        if audience.credentials:
            found = {client for client in found if client.info.credential in audience.credentials}
        return found

    def dispatch(self, event: RoutedEvent) -> None:
        direct = event.type not in STREAM_CONTROL
        for client in self.recipients(event):
            if direct and client.caught_up():
                staged = client.staged
                if event.id <= (staged[-1].id if staged else client.last_sent):
                    continue  # already sent or staged (replay overlaps the live stream)
                if staged is None:
                    client.staged = [event]
                    self._staged.append(client)
                    if not self._flush_scheduled:
                        self._flush_scheduled = True
                        asyncio.get_running_loop().call_soon(self._flush)
                else:
                    staged.append(event)
                continue
            client.unstage()
            client.push(event)

    def _flush(self) -> None:
        """End of the turn: each client's staged events as one frame, built once per distinct set."""
        self._flush_scheduled = False
        clients, self._staged = self._staged, []
        frames: dict[tuple[int, ...], bytes] = {}
        now = time.monotonic()
        for client in clients:
            events, client.staged = client.staged, None
            if not events or client.write_frame is None or client._closed:
                continue  # unstaged meanwhile, or the stream ended (its client resumes by id)
            key = tuple(e.id for e in events)
            frame = frames.get(key)
            if frame is None:
                frame = frames[key] = text_frame(events_payload(events))
            try:
                written = client.write_frame(frame)
            except Exception:  # never let one socket stop the fan-out: its stream takes over
                log.exception("direct socket write failed")
                client.write_frame, written = None, False
            if written:
                client.last_sent, client.last_write = events[-1].id, now
                self.direct_writes += 1
            else:
                for event in events:
                    client.push(event)

    async def close_all(self) -> None:
        for clients in list(self._by_account.values()):
            for client in list(clients):
                client.close()
