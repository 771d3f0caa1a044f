"""Agent replies on an API inbox: a durable job POSTs each one to the inbox's callback_url, signed
with the inbox secret (Standard Webhooks), webhook-id ``msg_<message id>``; the message's
delivery_status follows it (pending -> sent | failed) and agents hear about it as message.updated."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from swarmdesk.accounts.models import Role
from swarmdesk.channels.models import Inbox
from swarmdesk.config import Settings
from swarmdesk.conversations.actions import DELIVER_JOB
from swarmdesk.conversations.models import DeliveryStatus, Message
from swarmdesk.core.clock import clock, utcnow
from swarmdesk.core.security import SecretBox
from swarmdesk.events.base import Audience, BaseEvent
from swarmdesk.jobs import service as jobs_service
from swarmdesk.jobs.models import Job, JobStatus
from tests.support import AccountCtx, ApiInbox, Harness, Received, Receiver, Staff, inbound_payload

LATER = timedelta(hours=2)  # past any backoff step of these settings
STAFF = Audience(roles=("admin", "supervisor"), all_agents=True)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Backoff steps of at least a second, so a retry never runs inside the same drain unless the
    # test moves the clock; a cap above the Retry-After the receivers send.
    return settings.model_copy(update={"job_backoff_base": 1.0, "job_backoff_max": 3600.0})


class Scene:
    def __init__(self, h: Harness, ctx: AccountCtx, agent: Staff, inbox: ApiInbox, conversation_id: int,
                 contact_id: int) -> None:
        self.h, self.ctx, self.agent, self.inbox = h, ctx, agent, inbox
        self.conversation_id, self.contact_id = conversation_id, contact_id

    async def reply(self, content: str, **extra: Any) -> dict[str, Any]:
        r = await self.h.client.post(f"/api/v1/conversations/{self.conversation_id}/messages",
                                     headers=self.agent.headers, json={"content": content, **extra})
        assert r.status_code == 201, r.text
        return r.json()

    async def message(self, message_id: int) -> dict[str, Any]:
        r = await self.h.client.get(f"/api/v1/conversations/{self.conversation_id}/messages",
                                    headers=self.agent.headers)
        assert r.status_code == 200, r.text
        (found,) = [m for m in r.json()["items"] if m["id"] == message_id]
        return found

    async def jobs(self, status: str | None = None) -> list[dict[str, Any]]:
        r = await self.h.client.get("/api/v1/jobs", headers=self.ctx.admin.headers,
                                    params={"status": status} if status else {})
        assert r.status_code == 200, r.text
        return [j for j in r.json()["items"] if j["kind"] == DELIVER_JOB]


async def _scene(h: Harness, callback_url: str | None, *, allowlist: bool = True) -> Scene:
    ctx = await h.make_account()
    if allowlist:
        await h.allowlist_loopback(ctx)
    agent = await h.make_user(ctx, "agent", Role.agent)
    inbox = await h.make_api_inbox(ctx, callback_url=callback_url)
    r = await h.deliver(inbox, inbound_payload(message_id="in-1", source_id="cust-42", conversation_key="thread-9"))
    assert r.status_code == 200, r.text
    return Scene(h, ctx, agent, inbox, r.json()["conversation_id"], r.json()["contact_id"])


def _verified(inbox: ApiInbox, request: Received) -> dict[str, Any]:
    return Webhook(inbox.secret).verify(request.body, request.headers)


def _updates(events: list[BaseEvent]) -> list[tuple[int, str, str | None]]:
    out = []
    for e in events:
        assert e.type == "message.updated", e.type
        assert e.audience == STAFF  # staff only: never the customer's widget
        message = e.message  # type: ignore[attr-defined]
        out.append((message.id, str(message.delivery_status), message.delivery_error))
    return out


async def test_reply_is_delivered_signed_with_the_inbox_secret(h: Harness) -> None:
    async with Receiver().running() as receiver:
        scene = await _scene(h, receiver.url)
        sent = await scene.reply("We are on it")
        assert (sent["delivery_status"], sent["delivery_error"], sent["private"]) == ("pending", None, False)
        assert receiver.requests == []  # a job delivers it, not the request

        with h.capture_events() as events:
            await h.run_jobs()
        (request,) = receiver.requests
        assert request.headers["webhook-id"] == f"msg_{sent['id']}"
        assert request.headers["content-type"] == "application/json"
        body = _verified(scene.inbox, request)
        data = body.pop("data")
        assert body["type"] == "message.created"
        assert datetime.fromisoformat(data.pop("created_at")) == datetime.fromisoformat(sent["created_at"])
        assert data == {
            "message_id": sent["id"], "conversation_id": scene.conversation_id, "conversation_key": "thread-9",
            "contact": {"id": scene.contact_id, "source_id": "cust-42"}, "sender": {"name": "Agent"},
            "content": "We are on it", "content_html": None, "attachments": []}
        with pytest.raises(WebhookVerificationError):  # the inbox's secret, no other
            Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(request.body, request.headers)

        assert _updates(events) == [(sent["id"], "sent", None)]
        message = await scene.message(sent["id"])
        assert (message["delivery_status"], message["delivery_error"]) == ("sent", None)
        (job,) = await scene.jobs()
        assert (job["status"], job["attempts"], job["payload"]) == ("done", 1, {"message_id": sent["id"]})

        clock.advance(LATER)
        with h.capture_events() as events:
            await h.run_jobs()
        assert len(receiver.requests) == 1
        assert events == []


async def test_reply_attachments_are_delivered(h: Harness) -> None:
    async with Receiver().running() as receiver:
        scene = await _scene(h, receiver.url)
        label = base64.b64encode(b"RMA-7\n").decode()
        sent = await scene.reply("Print this label", content_html="<p>Print <b>this</b> label</p>", attachments=[
            {"filename": "label.txt", "content_type": "text/plain", "data_base64": label}])
        await h.run_jobs()
        (request,) = receiver.requests
        data = _verified(scene.inbox, request)["data"]
        assert (data["content"], data["content_html"]) == ("Print this label", "<p>Print <b>this</b> label</p>")
        assert data["attachments"] == [{"filename": "label.txt", "content_type": "text/plain", "data_base64": label}]
        assert (await scene.message(sent["id"]))["delivery_status"] == "sent"


async def test_internal_note_is_never_delivered(h: Harness) -> None:
    async with Receiver().running() as receiver:
        scene = await _scene(h, receiver.url)
        note = await scene.reply("customer sounds upset, refund?", private=True)
        assert (note["private"], note["delivery_status"]) == (True, "not_sent")
        with h.capture_events() as events:
            await h.run_jobs()
        assert receiver.requests == []
        assert events == []
        assert await scene.jobs() == []
        assert (await scene.message(note["id"]))["delivery_status"] == "not_sent"

        public = await scene.reply("Refund issued")
        await h.run_jobs()
        (request,) = receiver.requests
        assert request.headers["webhook-id"] == f"msg_{public['id']}"
        assert _verified(scene.inbox, request)["data"]["content"] == "Refund issued"
        assert b"upset" not in request.body
        assert [j["payload"] for j in await scene.jobs()] == [{"message_id": public["id"]}]
        assert (await scene.message(note["id"]))["delivery_status"] == "not_sent"


async def test_transient_failures_are_retried_with_the_same_webhook_id(h: Harness) -> None:
    async with Receiver().running() as receiver:
        receiver.script = [(503, {}), (429, {"retry-after": "30"})]
        scene = await _scene(h, receiver.url)
        sent = await scene.reply("Tracking: 1Z999")
        with h.capture_events() as events:
            await h.run_jobs()
            assert len(receiver.requests) == 1
            message = await scene.message(sent["id"])
            assert (message["delivery_status"], message["delivery_error"]) == ("pending", None)

            clock.advance(LATER)
            before = utcnow()
            await h.run_jobs()
            after = utcnow()
            assert len(receiver.requests) == 2
            (job,) = await scene.jobs()
            assert (job["status"], job["attempts"]) == ("queued", 2)
            run_at = datetime.fromisoformat(job["run_at"])
            assert before + timedelta(seconds=30) <= run_at <= after + timedelta(seconds=30)
            assert "receiver answered 429" in job["last_error"]
            assert (await scene.message(sent["id"]))["delivery_status"] == "pending"
            assert events == []  # no news for agents while it is still pending

            clock.advance(timedelta(seconds=31))
            await h.run_jobs()
        assert len(receiver.requests) == 3
        assert [r.headers["webhook-id"] for r in receiver.requests] == [f"msg_{sent['id']}"] * 3
        for request in receiver.requests:
            assert _verified(scene.inbox, request)["data"]["message_id"] == sent["id"]
        assert _updates(events) == [(sent["id"], "sent", None)]
        assert (await scene.message(sent["id"]))["delivery_status"] == "sent"


@pytest.mark.parametrize("case", ["gone", "no_callback", "not_allowlisted"])
async def test_permanent_failure_marks_the_message_failed(h: Harness, case: str) -> None:
    async with Receiver().running() as receiver:
        receiver.script = [(410, {})]
        scene = await _scene(h, None if case == "no_callback" else receiver.url, allowlist=case != "not_allowlisted")
        sent = await scene.reply("Hello?")
        with h.capture_events() as events:
            await h.run_jobs()
            clock.advance(LATER)
            await h.run_jobs()  # permanent: never retried
        error = {
            "gone": "receiver answered 410 Gone",
            "no_callback": "this API inbox has no callback_url to deliver replies to",
            "not_allowlisted":
                "127.0.0.1 resolves to a non-public address (127.0.0.1); an admin can allowlist the host",
        }[case]
        assert len(receiver.requests) == (1 if case == "gone" else 0)
        message = await scene.message(sent["id"])
        assert (message["delivery_status"], message["delivery_error"]) == ("failed", error)
        assert _updates(events) == [(sent["id"], "failed", error)]
        (dead,) = await scene.jobs("dead")
        assert (dead["attempts"], dead["payload"]) == (1, {"message_id": sent["id"]})
        assert error in dead["last_error"]


async def test_exhausted_retries_fail_the_message_and_a_manual_retry_sends_it(h: Harness) -> None:
    async with Receiver().running() as receiver:
        receiver.script = [(500, {})] * 8
        scene = await _scene(h, receiver.url)
        sent = await scene.reply("Your replacement ships today")
        with h.capture_events() as events:
            await h.run_jobs()
            for attempt in range(2, 9):
                assert (await scene.message(sent["id"]))["delivery_status"] == "pending"
                clock.advance(LATER)
                await h.run_jobs()
                assert len(receiver.requests) == attempt
        error = "gave up after 8 attempts: receiver answered 500"
        message = await scene.message(sent["id"])
        assert (message["delivery_status"], message["delivery_error"]) == ("failed", error)
        assert _updates(events) == [(sent["id"], "failed", error)]
        (dead,) = await scene.jobs("dead")
        assert (dead["attempts"], dead["max_attempts"]) == (8, 8)

        r = await h.client.post(f"/api/v1/jobs/{dead['id']}/retry", headers=scene.ctx.admin.headers)
        assert r.status_code == 200, r.text
        with h.capture_events() as events:
            await h.run_jobs()
        assert len(receiver.requests) == 9
        assert {r.headers["webhook-id"] for r in receiver.requests} == {f"msg_{sent['id']}"}
        _verified(scene.inbox, receiver.requests[-1])
        message = await scene.message(sent["id"])
        assert (message["delivery_status"], message["delivery_error"]) == ("sent", None)
        assert _updates(events) == [(sent["id"], "pending", None), (sent["id"], "sent", None)]
        (job,) = await scene.jobs()
        assert (job["id"], job["status"]) == (dead["id"], "done")


async def test_an_unexpected_error_fails_the_message_once_the_job_gives_up(h: Harness) -> None:
    async with Receiver().running() as receiver:
        scene = await _scene(h, receiver.url)
        sent = await scene.reply("Hello")
        # The inbox config no longer decrypts (SECRET_KEY rotated without re-encrypting).
        async with h.runtime.uow() as uow:
            await uow.session.execute(update(Inbox).where(Inbox.id == scene.inbox.id).values(
                config_encrypted=SecretBox("another key " * 4).encrypt("{}")))
            await uow.session.commit()
        with h.capture_events() as events:
            await h.run_jobs()
            for _ in range(7):
                assert (await scene.message(sent["id"]))["delivery_status"] == "pending"
                clock.advance(LATER)
                await h.run_jobs()
        error = "gave up after 8 attempts: stored secret cannot be decrypted with the current SECRET_KEY"
        message = await scene.message(sent["id"])
        assert (message["delivery_status"], message["delivery_error"]) == ("failed", error)
        assert _updates(events) == [(sent["id"], "failed", error)]
        assert receiver.requests == []
        (dead,) = await scene.jobs("dead")
        assert dead["attempts"] == 8


async def test_a_crash_between_sending_and_recording_resends_with_the_same_webhook_id(h: Harness) -> None:
    async with Receiver().running() as receiver:
        scene = await _scene(h, receiver.url)
        sent = await scene.reply("Sorry for the wait")
        await h.run_jobs()
        (first,) = receiver.requests
        (job,) = await scene.jobs()

        # The worker POSTed and died before recording anything: the message is still pending
        # and the job still leased to the dead worker.
        async with h.runtime.uow() as uow:
            await uow.session.execute(update(Message).where(Message.id == sent["id"])
                                      .values(delivery_status=DeliveryStatus.pending))
            await uow.session.execute(update(Job).where(Job.id == job["id"]).values(
                status=JobStatus.running, locked_by="crashed-worker", finished_at=None,
                locked_until=utcnow() + timedelta(seconds=h.runtime.settings.job_lease_seconds)))
            await uow.session.commit()
        await h.run_jobs()
        assert len(receiver.requests) == 1  # the lease still holds

        clock.advance(timedelta(seconds=h.runtime.settings.job_lease_seconds + 1))
        with h.capture_events() as events:
            await h.run_jobs()
        assert len(receiver.requests) == 2
        second = receiver.requests[1]
        assert second.headers["webhook-id"] == first.headers["webhook-id"] == f"msg_{sent['id']}"
        assert _verified(scene.inbox, second)["data"] == _verified(scene.inbox, first)["data"]
        assert _updates(events) == [(sent["id"], "sent", None)]
        (job,) = await scene.jobs()
        assert (job["status"], job["attempts"]) == ("done", 2)

        # Once recorded, running the job again sends nothing.
        async with h.runtime.uow() as uow:
            jobs_service.enqueue(uow.session, DELIVER_JOB, {"message_id": sent["id"]},
                                 account_id=scene.ctx.account_id)
            await uow.session.commit()
        with h.capture_events() as events:
            await h.run_jobs()
        assert len(receiver.requests) == 2
        assert events == []
        assert [j["status"] for j in await scene.jobs()] == ["done", "done"]
