"""Vendor reports on our messages that arrive early — before the delivery job has recorded the id
the vendor gave the message — are kept and applied, never lost; "failed" is never overwritten."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from swarmdesk.channels.base import StatusUpdate
from swarmdesk.channels.inbound import Delivery, do_ingest_delivery
from swarmdesk.channels.models import Inbox
from swarmdesk.conversations import actions
from swarmdesk.conversations.linking import JoinPolicy
from swarmdesk.conversations.models import DeliveryStatus, EarlyStatusReport, Message
from tests.support import Harness


async def _reply(h: Harness) -> tuple[Inbox, int]:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    conv = (await h.deliver(inbox, {"message_id": "m-1", "contact": {"source_id": "ana"}, "content": "hi"})).json()
    r = await h.client.post(f"/api/v1/conversations/{conv['conversation_id']}/messages", headers=ctx.admin.headers,
                            json={"content": "Hello Ana"})
    assert r.status_code == 201, r.text
    async with h.runtime.uow() as uow:
        row = await uow.session.get(Inbox, inbox.id)
    assert row is not None
    return row, r.json()["id"]


async def _report(h: Harness, inbox: Inbox, external_id: str, status: str, error: str | None = None) -> None:
    delivery = Delivery(inbox, f"status-{uuid.uuid4().hex}", uuid.uuid4().hex, [],
                        [StatusUpdate(external_id, status, error)], JoinPolicy())
    assert await do_ingest_delivery(h.runtime, delivery) == []


async def _status(h: Harness, message_id: int) -> tuple[str, str | None, int]:
    async with h.runtime.uow() as uow:
        m = await uow.session.get(Message, message_id)
        assert m is not None
        left = await uow.session.scalar(select(func.count()).select_from(EarlyStatusReport))
        return str(m.delivery_status), m.delivery_error, left


async def test_an_early_delivered_report_is_applied_when_the_id_is_recorded(h: Harness) -> None:
    inbox, message_id = await _reply(h)
    await _report(h, inbox, "SM-early", "delivered")
    await _report(h, inbox, "SM-early", "delivered")  # a vendor retry is kept once
    async with h.runtime.uow() as uow:
        await actions.do_record_delivery(uow, message_id, DeliveryStatus.sent, None, "SM-early")
    assert await _status(h, message_id) == ("delivered", None, 0)


async def test_an_early_failure_is_not_overwritten_by_the_send_answer(h: Harness) -> None:
    inbox, message_id = await _reply(h)
    await _report(h, inbox, "SM-bad", "failed", "30003 unreachable handset")
    async with h.runtime.uow() as uow:
        await actions.do_record_delivery(uow, message_id, DeliveryStatus.sent, None, "SM-bad")
    assert await _status(h, message_id) == ("failed", "30003 unreachable handset", 0)


async def test_reports_for_ids_that_never_come_expire(h: Harness) -> None:
    from datetime import timedelta

    from swarmdesk.core.clock import clock

    inbox, _ = await _reply(h)
    await _report(h, inbox, "SM-stranger", "delivered")
    clock.advance(timedelta(hours=25))
    await _report(h, inbox, "SM-other", "read")
    async with h.runtime.uow() as uow:
        ids = (await uow.session.scalars(select(EarlyStatusReport.external_id))).all()
    assert ids == ["SM-other"]
