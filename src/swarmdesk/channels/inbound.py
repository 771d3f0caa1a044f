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

from swarmdesk.channels.base import ChannelAdapter, InboundMessage, InboundRequest, IngestResult, StatusUpdate
from swarmdesk.channels.models import InboundReceipt, Inbox
from swarmdesk.contacts import actions as contacts_actions
from swarmdesk.contacts.identity import IdentityClaim
from swarmdesk.conversations import actions as conversations_actions
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.linking import JoinPolicy
from swarmdesk.conversations.models import Conversation, Message
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import Conflict
from swarmdesk.core.storage import AttachmentStore

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

log = logging.getLogger(__name__)
MAX_BATCH = 64


Results = list[IngestResult]


@dataclass(slots=True)
class Delivery:
    """One verified, parsed delivery waiting to be stored: zero or more customer messages and
    zero or more reports on messages we sent."""

    inbox: Inbox
    delivery_id: str
    body_sha: str
    messages: list[InboundMessage]
    statuses: list[StatusUpdate]
    policy: JoinPolicy


def prepare(inbox: Inbox, adapter: ChannelAdapter, request: InboundRequest,
            policy: JoinPolicy | None = None) -> Delivery:
    return Delivery(inbox, adapter.delivery_id(request), hashlib.sha256(request.body).hexdigest(),
                    adapter.parse(request), adapter.statuses(request), policy or JoinPolicy())


async def _previous(uow: UnitOfWork, d: Delivery) -> tuple[bool, dict[int, IngestResult]]:
    """Whether this delivery was stored before (same delivery id, same body), and which of its
    messages are stored already, by position (a vendor may resend a message in a new delivery)."""
    session = uow.session
    receipt = await session.scalar(select(InboundReceipt).where(
        InboundReceipt.inbox_id == d.inbox.id, InboundReceipt.delivery_id == d.delivery_id))
    if receipt is not None and receipt.body_sha256 != d.body_sha:
        raise Conflict("this delivery id was already used with a different body (replay refused)")
    found: dict[int, IngestResult] = {}
    for position, m in enumerate(d.messages):
        message = None
        if m.external_id:
            message = await conversations_service.message_by_external_id(session, d.inbox.id, m.external_id)
        elif receipt is not None and receipt.message_id is not None and len(d.messages) == 1:
            message = await session.get(Message, receipt.message_id)
        if message is not None:
            conversation = await session.get(Conversation, message.conversation_id)
            assert conversation is not None
            found[position] = IngestResult(message.id, message.conversation_id, conversation.contact_id,
                                           duplicate=True)
    return receipt is not None, found


_INSERT_RECEIPTS = insert(InboundReceipt.__table__)


async def _store(uow: UnitOfWork, d: Delivery, store: AttachmentStore,
                 known: dict[int, IngestResult] | None = None, *,
                 senders: contacts_actions.KnownSenders | None = None,
                 latest: conversations_service.LatestConversations | None = None) -> Results:
    """Store the delivery's messages in the caller's transaction; ``known`` ones (by position)
    were stored before and are answered as they were. A group commit passes what it looked up
    for the whole batch beforehand (``senders``, ``latest``)."""
    results: Results = []
    for position, m in enumerate(d.messages):
        if known and position in known:
            results.append(known[position])
            continue
        sender = await contacts_actions.resolve_sender(uow, d.inbox.account_id, m.claims, m.sender_name, senders)
        if sender.created and latest is not None:
            latest.new_contact(sender.contact.id)
        received = await conversations_actions.receive_message(
            uow, d.inbox, sender.contact, m, store=store, policy=d.policy, matched=sender.matched,
            new_contact=sender.created, latest=latest)
        results.append(IngestResult(received.message.id, received.conversation.id, sender.contact.id,
                                    duplicate=False))
    for update in d.statuses:
        await conversations_actions.record_vendor_status(uow, d.inbox.id, update.external_id, update.status,
                                                         update.error, account_id=d.inbox.account_id)
    return results


def _receipt(d: Delivery, results: Results, now: object) -> dict[str, object]:
    return {"account_id": d.inbox.account_id, "inbox_id": d.inbox.id, "delivery_id": d.delivery_id,
            "body_sha256": d.body_sha, "message_id": results[0].message_id if results else None, "received_at": now}


async def _look_up(uow: UnitOfWork, batch: list[Delivery]) -> tuple[contacts_actions.KnownSenders,
                                                                    conversations_service.LatestConversations]:
    """What every message of the batch would ask for itself, asked once: who holds its sender's
    verified identifiers (one statement per account) and those contacts' latest conversations in
    the batch's inboxes (one statement). Messages are then stored in order, each seeing what the
    ones before it changed, as if stored one by one."""
    session = uow.session
    senders = contacts_actions.KnownSenders()
    claims_by_account: dict[int, list[IdentityClaim]] = {}
    for d in batch:
        claims_by_account.setdefault(d.inbox.account_id, []).extend(c for m in d.messages for c in m.claims)
    for account_id, claims in claims_by_account.items():
        await senders.prefetch(session, account_id, claims)
    latest = conversations_service.LatestConversations()
    await latest.prefetch(session, [(contact.id, d.inbox.id) for d in batch for m in d.messages
                                    for contact in senders.holders(d.inbox.account_id, m.claims)])
    return senders, latest


async def do_ingest_batch(runtime: Runtime, batch: list[Delivery]) -> list[Results]:
    """Store deliveries in one transaction; raises IntegrityError if any of them conflicts."""
    store = AttachmentStore(runtime.settings.attachments_dir)
    async with runtime.uow() as uow:
        senders, latest = await _look_up(uow, batch)
        results = [await _store(uow, d, store, senders=senders, latest=latest) for d in batch]
        now = utcnow()
        await uow.session.execute(_INSERT_RECEIPTS, [_receipt(d, r, now) for d, r in zip(batch, results, strict=True)])
        await uow.commit()
    return results


async def do_ingest_delivery(runtime: Runtime, d: Delivery) -> Results:
    """Store one delivery. A retry of it gets the first answer; messages stored before (by their
    external id) are answered as duplicates and the rest stored; the loser of a race (two
    deliveries creating the same new contact) tries again and finds the winner's contact."""
    store = AttachmentStore(runtime.settings.attachments_dir)
    for attempt in range(3):
        try:
            async with runtime.uow() as uow:
                seen, known = await _previous(uow, d)
                if seen:  # the receipt is written with the messages, so all of them are stored
                    return [known[i] for i in sorted(known)]
                results = await _store(uow, d, store, known)
                if not seen:
                    await uow.session.execute(_INSERT_RECEIPTS, [_receipt(d, results, utcnow())])
                await uow.commit()
            return results
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class IntakeBatcher:
    """Group commit for one process: one writer task drains what queued up meanwhile."""

    def __init__(self, runtime: Runtime, max_batch: int = MAX_BATCH) -> None:
        self._runtime = runtime
        self._max = max_batch
        self._queue: asyncio.Queue[tuple[Delivery, asyncio.Future[Results]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    async def submit(self, delivery: Delivery) -> Results:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="intake-batcher")
        future: asyncio.Future[Results] = asyncio.get_running_loop().create_future()
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

    async def _process(self, batch: list[tuple[Delivery, asyncio.Future[Results]]]) -> None:
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

    async def _one_by_one(self, batch: list[tuple[Delivery, asyncio.Future[Results]]]) -> None:
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


def _settle(future: asyncio.Future[Results], *, result: Results | None = None,
            exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]
