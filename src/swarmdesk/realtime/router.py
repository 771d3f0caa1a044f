"""Zulip's event-queue protocol over WebSocket, with SSE as the fallback.

1. ``POST /api/v1/realtime/register`` (any principal) -> ``queue_id``, ``last_event_id``, initial state.
2. Connect ``/api/v1/realtime/ws?queue_id=…&last_event_id=…`` (or the SSE URL). The server replays
   what the client missed, then streams ``{"op": "events", "events": [{"id": n, "type": …}, …]}``.
3. The client sends ``{"op": "ack", "last_event_id": n}``; after a reconnect it resumes from there.
4. ``{"op": "reload"}`` means the queue or the events it needed are gone (or access changed):
   register again and refetch state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from swarmdesk.accounts import service as accounts_service
from swarmdesk.accounts.models import User
from swarmdesk.auth import service as auth_service
from swarmdesk.auth.dependencies import (
    PORTAL_COOKIE,
    SESSION_COOKIE,
    RuntimeDep,
    Uow,
    current_customer,
    current_staff,
)
from swarmdesk.auth.principals import CustomerPrincipal, StaffPrincipal
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations import service as conversations_service
from swarmdesk.core.errors import NotAuthenticated
from swarmdesk.core.security import CUSTOMER_TOKEN_PREFIX
from swarmdesk.events.base import RoutedEvent
from swarmdesk.realtime.hub import STREAM_CONTROL, Client, connection_hooks, includes
from swarmdesk.realtime.queues import QueueInfo, new_queue_id
from swarmdesk.realtime.wire import HEARTBEAT, WRITE_FRAME, WriteFrame, events_payload
from swarmdesk.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/realtime", tags=["realtime"])

HEARTBEAT_SECONDS = 25.0
PRINCIPAL_HEADER = "x-swarmdesk-principal"
RELOAD = b'{"op":"reload"}'


async def any_principal(request: Request, uow: Uow) -> StaffPrincipal | CustomerPrincipal:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer ") and header[7:].strip().startswith(CUSTOMER_TOKEN_PREFIX):
        return await current_customer(request, uow)
    # The customer portal's cookie. A browser signed in as staff too (an agent trying the portal)
    # sends both cookies: the portal's pages say which they are with X-Swarmdesk-Principal.
    if not header and request.cookies.get(PORTAL_COOKIE) and (
            SESSION_COOKIE not in request.cookies or request.headers.get(PRINCIPAL_HEADER) == "customer"):
        return await current_customer(request, uow)
    return await current_staff(request, uow)


class RegisterOut(BaseModel):
    queue_id: str
    last_event_id: int
    state: dict[str, Any]


@router.post("/register", response_model=RegisterOut)
async def register(principal: Annotated[StaffPrincipal | CustomerPrincipal, Depends(any_principal)], uow: Uow,
                   runtime: RuntimeDep) -> RegisterOut:
    if isinstance(principal, StaffPrincipal):
        # The stream carries conversations and messages: a token that may not read them gets none.
        principal.require_scope("conversations:read")
    # Read the head first: anything after it is replayed on connect, so nothing falls between. A new
    # queue starts there (the state covers what came before), so connecting without an id is safe.
    last_event_id = await runtime.bus.head_id()
    if isinstance(principal, StaffPrincipal):
        info = QueueInfo(queue_id=new_queue_id(), account_id=principal.account_id, principal_kind="user",
                         principal_id=principal.user_id, role=str(principal.role), team_ids=principal.team_ids,
                         last_acked=last_event_id, credential=principal.credential)
        user = await accounts_service.get_user(uow.session, principal.account_id, principal.user_id)
        state: dict[str, Any] = {
            "user": (await accounts_service.users_out(uow.session, [user]))[0].model_dump(mode="json"),
            "teams": [t.model_dump(mode="json") for t in await accounts_service.teams_out(
                uow.session, await accounts_service.list_teams(uow.session, principal.account_id))],
            "conversation_counts": await conversations_service.count_by_status(uow.session, principal),
        }
    else:
        info = QueueInfo(queue_id=new_queue_id(), account_id=principal.account_id, principal_kind="contact",
                         principal_id=principal.contact_id, last_acked=last_event_id,
                         credential=principal.credential)
        conversations = await conversations_service.list_for_contact(uow.session, principal.account_id,
                                                                     principal.contact_id,
                                                                     inbox_id=principal.inbox_id)
        state = {"contact_id": principal.contact_id,
                 "conversations": [conversations_service.customer_conversation_out(c).model_dump(mode="json")
                                   for c in conversations]}
    await runtime.queues.put(info)
    return RegisterOut(queue_id=info.queue_id, last_event_id=last_event_id, state=state)


async def _still_allowed(runtime: Runtime, info: QueueInfo) -> bool:
    """Whether a queue may be resumed: its principal as it was, its credential still good."""
    async with runtime.uow() as uow:
        if not await auth_service.credential_is_live(uow.session, info.principal_id, info.credential):
            return False
        if info.principal_kind == "user":
            user = await uow.session.get(User, info.principal_id)
            return user is not None and user.is_active and str(user.role) == info.role
        return await uow.session.get(Contact, info.principal_id) is not None


async def _stream(runtime: Runtime, info: QueueInfo, after_id: int,
                  send: Callable[[list[RoutedEvent]], Awaitable[None]],
                  write_frame: WriteFrame | None = None) -> bool:
    """Replay, then stream live events to one client. Returns False when the client must reload.

    With ``write_frame`` (a WebSocket under ``server_protocol``), the hub writes live events straight
    to the socket whenever this task is idle with nothing queued; this task sends what queued up
    meanwhile (during the replay, its own sends, or while the socket's buffer was full)."""
    client = Client(info)
    runtime.hub.attach(client)
    await connection_hooks.fire_connected(runtime, info)
    try:
        missed = await runtime.bus.replay(after_id)
        if missed is None:
            return False
        # The log holds every account's events: replay applies the hub's rule, account included.
        missed = [e for e in missed if includes(e, info)]
        client.last_sent = after_id
        if missed:
            missed, control = _until_control(missed)
            await send(missed)
            client.last_sent, client.last_write = missed[-1].id, time.monotonic()
            if control:
                return False
        client.write_frame = write_frame
        timeout = HEARTBEAT_SECONDS
        while True:
            # Idle: the hub may write to the socket directly. No await between the get returning
            # and ``busy`` going up, so nothing is written directly ahead of what this task took.
            client.busy = False
            try:
                # Not wait_for: in 3.11 it wraps the get in a new task each time, per event per socket.
                async with asyncio.timeout(timeout):
                    first = await client.pending.get()
            except TimeoutError:
                # Direct writes do not wake this task: a heartbeat only after a quiet period.
                quiet = time.monotonic() - client.last_write
                if quiet < HEARTBEAT_SECONDS:
                    timeout = HEARTBEAT_SECONDS - quiet
                    continue
                client.busy = True
                await send([])
                client.last_write, timeout = time.monotonic(), HEARTBEAT_SECONDS
                continue
            client.busy = True
            batch = [first]
            while not client.pending.empty() and len(batch) < 500:
                batch.append(client.pending.get_nowait())
            if None in batch:
                # Overflowed or shutting down: the client reconnects and resumes from its last id.
                return True
            fresh = [e for e in batch if e is not None and e.id > client.last_sent]
            if fresh:
                fresh, control = _until_control(fresh)
                await send(fresh)
                client.last_sent, client.last_write = fresh[-1].id, time.monotonic()
                if control:
                    return False
    finally:
        client.write_frame = None
        runtime.hub.detach(client)
        # Shielded: the stream's task is being cancelled when the socket closes.
        await asyncio.shield(connection_hooks.fire_disconnected(runtime, info))


def _until_control(events: list[RoutedEvent]) -> tuple[list[RoutedEvent], bool]:
    """The events up to and including the first that ends the stream (``hub.STREAM_CONTROL``):
    nothing after an access change is sent under the access it replaced."""
    for i, event in enumerate(events):
        if event.type in STREAM_CONTROL:
            return events[:i + 1], True
    return events, False


def _events_frame(events: list[RoutedEvent]) -> str:
    return (events_payload(events) if events else HEARTBEAT).decode()


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket, queue_id: str = Query(max_length=64),
                             last_event_id: int | None = Query(default=None, ge=0)) -> None:
    runtime: Runtime = websocket.app.state.runtime
    info = await runtime.queues.get(queue_id)
    await websocket.accept()
    if info is None or not await _still_allowed(runtime, info):
        await runtime.queues.delete(queue_id)
        await websocket.send_text(RELOAD.decode())
        await websocket.close(code=4000)
        return
    after = last_event_id if last_event_id is not None else info.last_acked
    write_frame = (websocket.scope.get("extensions") or {}).get(WRITE_FRAME)

    async def send(events: list[RoutedEvent]) -> None:
        await websocket.send_text(_events_frame(events))

    async def read_acks() -> None:
        while True:
            raw = await websocket.receive_text()
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                await websocket.send_text('{"op":"error","detail":"frames must be JSON"}')
                continue
            if isinstance(msg, dict) and msg.get("op") == "ack" and type(msg.get("last_event_id")) is int:
                runtime.acks.note(queue_id, msg["last_event_id"])  # stored about once a second
            elif isinstance(msg, dict) and msg.get("op") == "ping":
                await runtime.acks.flush(queue_id)  # a pong means the acks before it are stored
                await websocket.send_text('{"op":"pong"}')

    reader = asyncio.create_task(read_acks())
    streamer = asyncio.create_task(_stream(runtime, info, after, send, write_frame))
    try:
        done, _ = await asyncio.wait({reader, streamer}, return_when=asyncio.FIRST_COMPLETED)
        if streamer in done and not streamer.cancelled() and streamer.exception() is None:
            if streamer.result() is False:
                # The queue is bound to access that changed or to events that are gone: the
                # client must register again, so the queue must not be resumable.
                await runtime.queues.delete(queue_id)
                await websocket.send_text(RELOAD.decode())
            await websocket.close(code=1012)  # server restart or reload: reconnect
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        for task in (reader, streamer):
            task.cancel()
        await asyncio.gather(reader, streamer, return_exceptions=True)
        # A resume elsewhere finds this socket's last ack (shielded: the socket's task may be
        # being cancelled).
        await asyncio.shield(runtime.acks.flush(queue_id))


@router.get("/events", summary="Server-sent events fallback (same queue protocol)",
            response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
async def sse_endpoint(request: Request, runtime: RuntimeDep, queue_id: str = Query(max_length=64),
                       last_event_id: int | None = Query(default=None, ge=0)) -> StreamingResponse:
    info = await runtime.queues.get(queue_id)
    if info is None or not await _still_allowed(runtime, info):
        await runtime.queues.delete(queue_id)
        raise NotAuthenticated("queue is gone; register again")
    header = request.headers.get("last-event-id", "")
    if header.isascii() and header.isdigit():  # not "²": isdigit() says yes, int() says no
        after = int(header)
    else:
        after = last_event_id if last_event_id is not None else info.last_acked
    outbox: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def send(events: list[RoutedEvent]) -> None:
        if not events:
            outbox.put_nowait(b": heartbeat\n\n")
        for e in events:
            outbox.put_nowait(b"id: %d\ndata: %s\n\n" % (e.id, e.frame))
        if events:
            await runtime.queues.ack(queue_id, events[-1].id)

    async def body() -> AsyncIterator[bytes]:
        async def run() -> None:
            ok = await _stream(runtime, info, after, send)
            if not ok:
                await runtime.queues.delete(queue_id)
                outbox.put_nowait(b"event: reload\ndata: {}\n\n")
            outbox.put_nowait(None)

        task = asyncio.create_task(run())
        try:
            while (chunk := await outbox.get()) is not None:
                yield chunk
        finally:
            task.cancel()

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})
