"""Ingesting what a channel delivered: verified before anything is stored, idempotent on the
vendor's delivery id and on each message's external id, all of a message's effects in one
transaction.

Under load, deliveries that arrive while a transaction is committing are stored together in the
next one (group commit): the per-transaction costs — BEGIN, COMMIT and its fsync on PostgreSQL,
the outbox check, the bus publish — are paid once per batch instead of once per message. A batch
that hits a unique constraint (a retried delivery, a replayed id, two deliveries creating the same
new contact) is rolled back whole and its deliveries are stored one by one, so each gets its own
answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from swarmdesk.channels.base import ChannelAdapter, InboundMessage, InboundRequest
from swarmdesk.channels.models import InboundReceipt, Inbox
from swarmdesk.contacts import actions as contacts_actions
from swarmdesk.conversations import actions as conversations_actions
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, Message
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import Conflict
from swarmdesk.core.storage import AttachmentStore

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

log = logging.getLogger(__name__)
MAX_BATCH = 64


@dataclass(slots=True)
class IngestResult:
    message_id: int
    conversation_id: int
    contact_id: int
    duplicate: bool


@dataclass(slots=True)
class Delivery:
    """One verified, parsed delivery waiting to be stored."""

    inbox: Inbox
    delivery_id: str
    body_sha: str
    message: InboundMessage


def prepare(inbox: Inbox, adapter: ChannelAdapter, request: InboundRequest) -> Delivery:
    (message,) = adapter.parse(request)
    return Delivery(inbox, adapter.delivery_id(request), hashlib.sha256(request.body).hexdigest(), message)


async def _existing(runtime: Runtime, d: Delivery) -> IngestResult | None:
    async with runtime.uow() as uow:
        receipt = await uow.session.scalar(select(InboundReceipt).where(
            InboundReceipt.inbox_id == d.inbox.id, InboundReceipt.delivery_id == d.delivery_id))
        if receipt is not None and receipt.body_sha256 != d.body_sha:
            raise Conflict("this webhook-id was already delivered with a different body (replay refused)")
        message = None
        if receipt is not None and receipt.message_id is not None:
            message = await uow.session.get(Message, receipt.message_id)
        elif d.message.external_id:
            message = await conversations_service.message_by_external_id(uow.session, d.inbox.id,
                                                                         d.message.external_id)
        if message is None:
            return None
        conversation = await uow.session.get(Conversation, message.conversation_id)
        assert conversation is not None
        return IngestResult(message.id, message.conversation_id, conversation.contact_id, duplicate=True)


_INSERT_RECEIPTS = insert(InboundReceipt.__table__)


async def _store(uow: UnitOfWork, d: Delivery, store: AttachmentStore) -> IngestResult:
    contact = await contacts_actions.resolve_contact(uow, d.inbox.account_id, d.message.claims,
                                                     d.message.sender_name)
    received = await conversations_actions.receive_message(uow, d.inbox, contact, d.message, store=store)
    return IngestResult(received.message.id, received.conversation.id, contact.id, duplicate=False)


async def do_ingest_batch(runtime: Runtime, batch: list[Delivery]) -> list[IngestResult]:
    """Store deliveries in one transaction; raises IntegrityError if any of them conflicts."""
    store = AttachmentStore(runtime.settings.attachments_dir)
    async with runtime.uow() as uow:
        results = [await _store(uow, d, store) for d in batch]
        now = utcnow()
        await uow.session.execute(_INSERT_RECEIPTS, [
            {"account_id": d.inbox.account_id, "inbox_id": d.inbox.id, "delivery_id": d.delivery_id,
             "body_sha256": d.body_sha, "message_id": r.message_id, "received_at": now}
            for d, r in zip(batch, results, strict=True)])
        await uow.commit()
    return results


async def do_ingest_delivery(runtime: Runtime, d: Delivery) -> IngestResult:
    """Store one delivery. A retry of it returns the first result; the loser of a race (two
    deliveries creating the same new contact) tries again and finds the winner's contact."""
    for attempt in range(3):
        try:
            (result,) = await do_ingest_batch(runtime, [d])
            return result
        except IntegrityError:
            existing = await _existing(runtime, d)
            if existing is not None:
                return existing
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class IntakeBatcher:
    """Group commit for one process: one writer task drains what queued up meanwhile."""

    def __init__(self, runtime: Runtime, max_batch: int = MAX_BATCH) -> None:
        self._runtime = runtime
        self._max = max_batch
        self._queue: asyncio.Queue[tuple[Delivery, asyncio.Future[IngestResult]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    async def submit(self, delivery: Delivery) -> IngestResult:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="intake-batcher")
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((delivery, future))
        # shield: a client hanging up must not cancel a store that other deliveries share.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            self._idle.clear()
            while len(batch) < self._max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._process(batch)
            finally:
                if self._queue.empty():
                    self._idle.set()

    async def _process(self, batch: list[tuple[Delivery, asyncio.Future[IngestResult]]]) -> None:
        try:
            results = await do_ingest_batch(self._runtime, [d for d, _ in batch])
        except IntegrityError:
            await self._one_by_one(batch)
            return
        except Exception as exc:  # the whole batch failed: each delivery gets the error
            if len(batch) > 1:
                await self._one_by_one(batch)
                return
            _settle(batch[0][1], exc=exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)

    async def _one_by_one(self, batch: list[tuple[Delivery, asyncio.Future[IngestResult]]]) -> None:
        for delivery, future in batch:
            try:
                _settle(future, result=await do_ingest_delivery(self._runtime, delivery))
            except Exception as exc:
                _settle(future, exc=exc)

    async def stop(self) -> None:
        """Finish what was accepted (queued or being stored), then stop."""
        while self._task is not None and not self._task.done() and not (
                self._queue.empty() and self._idle.is_set()):
            await self._idle.wait()
            await asyncio.sleep(0)  # let the writer pick up what was queued meanwhile
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


def _settle(future: asyncio.Future[IngestResult], *, result: IngestResult | None = None,
            exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]
