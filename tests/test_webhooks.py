"""Webhook subscriptions and event deliveries: signing, the delivery log, retries and dead letters,
and the SSRF guard on outbound HTTP. Every delivery goes to a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from swarmdesk.accounts.models import Role
from swarmdesk.config import Settings
from swarmdesk.core.clock import clock, utcnow
from swarmdesk.jobs.models import Job
from swarmdesk.webhooks.http import OutboundBlockedError, _GuardedBackend, is_public_address, retry_after_seconds
from swarmdesk.webhooks.models import WebhookSubscription
from tests.support import AccountCtx, Harness, Received, Receiver, inbound_payload

LATER = timedelta(hours=2)  # past any backoff step of these settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Backoff steps of at least a second, so a retry never runs inside the same drain unless the
    # test moves the clock; a cap above 120 s, so a receiver's Retry-After is honoured as sent.
    # A one-second budget for a whole delivery, so the slow-receiver tests are quick.
    return settings.model_copy(update={"job_backoff_base": 1.0, "job_backoff_max": 3600.0, "webhook_timeout": 1.0})


# A network sandbox below our code: while a test here runs, a connection to anything but loopback
# is recorded and refused, so even a broken guard sends no packet off this machine.
_outside_connects: list[Any] = []
_guarding = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _guarding and event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and not ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback:
            _outside_connects.append(address)
            raise PermissionError(f"test tried to connect to {address}")


sys.addaudithook(_audit)  # process-wide and permanent, so it is switched on per test


@pytest.fixture(autouse=True)
def no_outside_traffic() -> Any:
    global _guarding
    _outside_connects.clear()
    _guarding = True
    try:
        yield _outside_connects
    finally:
        _guarding = False
    assert _outside_connects == []


def _blocked(host: str, addresses: str) -> str:
    return f"{host} resolves to a non-public address ({addresses}); an admin can allowlist the host"


async def _subscribe(h: Harness, ctx: AccountCtx, url: str, event_types: list[str]) -> dict[str, Any]:
    r = await h.client.post("/api/v1/webhooks", headers=ctx.admin.headers,
                            json={"url": url, "event_types": event_types})
    assert r.status_code == 201, r.text
    return r.json()


async def _deliveries(h: Harness, ctx: AccountCtx) -> list[dict[str, Any]]:
    r = await h.client.get("/api/v1/webhooks/deliveries", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def _jobs(h: Harness, ctx: AccountCtx, status: str | None = None, kind: str = "webhooks.deliver"
                ) -> list[dict[str, Any]]:
    r = await h.client.get("/api/v1/jobs", headers=ctx.admin.headers, params={"status": status} if status else {})
    assert r.status_code == 200, r.text
    return [j for j in r.json()["items"] if j["kind"] == kind]


async def _inbound(h: Harness, ctx: AccountCtx, content: str = "Hello, my order is late") -> dict[str, Any]:
    inbox = getattr(ctx, "_inbox", None)
    if inbox is None:
        inbox = await h.make_api_inbox(ctx)
        ctx._inbox = inbox  # type: ignore[attr-defined]
    r = await h.deliver(inbox, inbound_payload(content=content))
    assert r.status_code == 200, r.text
    return r.json()


def _verify(secret: str, request: Received) -> dict[str, Any]:
    """The receiver's side: the Standard Webhooks SDK must accept the request as sent."""
    return Webhook(secret).verify(request.body, request.headers)


# --- subscriptions ---------------------------------------------------------------------------------

async def test_subscription_crud_is_admin_only_and_shows_the_secret_once(h: Harness) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent", Role.agent)
    body = {"url": "https://hooks.example.com/in", "event_types": ["message.created", "conversation.created"],
            "description": "CRM sync"}

    r = await h.client.post("/api/v1/webhooks", headers=agent.headers, json=body)
    assert r.status_code == 403, r.text
    assert (await h.client.get("/api/v1/webhooks", headers=agent.headers)).status_code == 403
    assert (await h.client.get("/api/v1/webhooks", headers=ctx.admin.headers)).json() == []

    r = await h.client.post("/api/v1/webhooks", headers=ctx.admin.headers, json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    sub_id, secret = created["id"], created["secret"]
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 44
    assert {k: v for k, v in created.items() if k not in ("id", "secret", "created_at")} == {
        "url": "https://hooks.example.com/in", "event_types": ["conversation.created", "message.created"],
        "description": "CRM sync", "is_active": True}

    # Never shown again, and not stored in clear.
    listed = (await h.client.get("/api/v1/webhooks", headers=ctx.admin.headers)).json()
    assert [s["id"] for s in listed] == [sub_id]
    assert "secret" not in listed[0]
    one = (await h.client.get(f"/api/v1/webhooks/{sub_id}", headers=ctx.admin.headers)).json()
    assert "secret" not in one
    assert one == listed[0]
    async with h.runtime.uow() as uow:
        row = await uow.session.get(WebhookSubscription, sub_id)
        assert row is not None and secret not in row.secret_encrypted
        assert h.runtime.secretbox.decrypt(row.secret_encrypted) == secret

    for method, kwargs in (("get", {}), ("patch", {"json": {"is_active": False}}), ("delete", {})):
        r = await h.client.request(method, f"/api/v1/webhooks/{sub_id}", headers=agent.headers, **kwargs)
        assert r.status_code == 403, (method, r.text)
    assert (await h.client.get(f"/api/v1/webhooks/{sub_id}", headers=ctx.admin.headers)).json() == one

    r = await h.client.patch(f"/api/v1/webhooks/{sub_id}", headers=ctx.admin.headers,
                             json={"event_types": ["conversation.status_changed"], "is_active": False,
                                   "description": "paused"})
    assert r.status_code == 200, r.text
    assert (r.json()["event_types"], r.json()["is_active"], r.json()["description"]) == (
        ["conversation.status_changed"], False, "paused")
    assert "secret" not in r.json()

    for bad in ({"event_types": ["message.exploded"]}, {"event_types": []}, {"url": None}, {"is_active": None},
                {"event_types": None}, {"description": None}, {"url": "not a url"}):
        r = await h.client.patch(f"/api/v1/webhooks/{sub_id}", headers=ctx.admin.headers, json=bad)
        assert r.status_code == 422, (bad, r.text)
    after = (await h.client.get(f"/api/v1/webhooks/{sub_id}", headers=ctx.admin.headers)).json()
    assert (after["url"], after["event_types"], after["is_active"], after["description"]) == (
        "https://hooks.example.com/in", ["conversation.status_changed"], False, "paused")
    r = await h.client.post("/api/v1/webhooks", headers=ctx.admin.headers,
                            json={"url": "ftp://hooks.example.com/in", "event_types": ["message.created"]})
    assert r.status_code == 422, r.text

    # Another account cannot see or touch it.
    other = await h.make_account("Other")
    assert (await h.client.get(f"/api/v1/webhooks/{sub_id}", headers=other.admin.headers)).status_code == 404
    assert (await h.client.delete(f"/api/v1/webhooks/{sub_id}", headers=other.admin.headers)).status_code == 404
    assert (await h.client.get("/api/v1/webhooks", headers=other.admin.headers)).json() == []

    r = await h.client.delete(f"/api/v1/webhooks/{sub_id}", headers=ctx.admin.headers)
    assert r.status_code == 204, r.text
    assert (await h.client.get(f"/api/v1/webhooks/{sub_id}", headers=ctx.admin.headers)).status_code == 404
    assert (await h.client.get("/api/v1/webhooks", headers=ctx.admin.headers)).json() == []


# --- delivery --------------------------------------------------------------------------------------

async def test_events_are_delivered_signed_and_logged(h: Harness) -> None:
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    async with Receiver().running() as receiver:
        sub = await _subscribe(h, ctx, receiver.url, ["conversation.created", "message.created"])
        quiet = await _subscribe(h, ctx, receiver.url, ["conversation.assigned"])
        paused = await _subscribe(h, ctx, receiver.url, ["message.created"])
        r = await h.client.patch(f"/api/v1/webhooks/{paused['id']}", headers=ctx.admin.headers,
                                 json={"is_active": False})
        assert r.status_code == 200, r.text

        first = await _inbound(h, ctx, "Where is my parcel?")
        await h.run_jobs()
        assert len(receiver.requests) == 2
        bodies = {}
        for request in receiver.requests:
            payload = _verify(sub["secret"], request)
            assert request.headers["content-type"] == "application/json"
            assert request.headers["user-agent"] == "Swarmdesk-Webhooks/1"
            assert request.headers["webhook-id"] == f"evt_{payload['uid']}_{sub['id']}"
            assert "audience" not in payload
            bodies[payload["type"]] = payload
        assert sorted(bodies) == ["conversation.created", "message.created"]
        assert bodies["conversation.created"]["conversation"]["id"] == first["conversation_id"]
        assert bodies["message.created"]["message"]["id"] == first["message_id"]
        assert bodies["message.created"]["message"]["content"] == "Where is my parcel?"
        assert bodies["message.created"]["account_id"] == ctx.account_id
        # Signed with this subscription's secret and no other.
        with pytest.raises(WebhookVerificationError):
            Webhook(quiet["secret"]).verify(receiver.requests[0].body, receiver.requests[0].headers)

        log = await _deliveries(h, ctx)  # newest first: events fan out in the order they were published
        assert [(d["subscription_id"], d["event_type"], d["status"], d["attempts"], d["last_status_code"],
                 d["last_error"], d["url"]) for d in log] == [
            (sub["id"], "message.created", "succeeded", 1, 200, None, receiver.url),
            (sub["id"], "conversation.created", "succeeded", 1, 200, None, receiver.url)]
        assert log[0]["id"] > log[1]["id"]
        assert {d["webhook_id"] for d in log} == {r.headers["webhook-id"] for r in receiver.requests}
        for d in log:
            assert d["delivered_at"] is not None
            assert d["payload"] == bodies[d["event_type"]]

        # The same conversation again: only message.created now.
        second = await _inbound(h, ctx, "Any news?")
        assert second["conversation_id"] == first["conversation_id"]
        await h.run_jobs()
        assert len(receiver.requests) == 3
        assert _verify(sub["secret"], receiver.requests[2])["message"]["content"] == "Any news?"
        log = await _deliveries(h, ctx)
        assert [(d["event_type"], d["status"], d["subscription_id"]) for d in log][0] == (
            "message.created", "succeeded", sub["id"])
        assert len(log) == 3

        # Filtered by subscription, paged with a cursor.
        r = await h.client.get("/api/v1/webhooks/deliveries", headers=ctx.admin.headers,
                               params={"subscription_id": quiet["id"]})
        assert r.json() == {"items": [], "next_cursor": None}
        r = await h.client.get("/api/v1/webhooks/deliveries", headers=ctx.admin.headers, params={"limit": 2})
        page = r.json()
        assert [d["id"] for d in page["items"]] == [d["id"] for d in log[:2]]
        assert page["next_cursor"] == str(log[1]["id"])
        r = await h.client.get("/api/v1/webhooks/deliveries", headers=ctx.admin.headers,
                               params={"limit": 2, "cursor": page["next_cursor"]})
        assert [d["id"] for d in r.json()["items"]] == [log[2]["id"]]

    agent = await h.make_user(ctx, "agent", Role.agent)
    assert (await h.client.get("/api/v1/webhooks/deliveries", headers=agent.headers)).status_code == 403
    other = await h.make_account("Other")
    assert await _deliveries(h, other) == []


# --- retries, Retry-After, dead letters --------------------------------------------------------------

async def test_server_errors_are_retried_with_the_same_webhook_id(h: Harness) -> None:
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    async with Receiver().running() as receiver:
        receiver.script = [(500, {}), (500, {})]
        sub = await _subscribe(h, ctx, receiver.url, ["message.created"])
        sent = await _inbound(h, ctx)
        await h.run_jobs()
        assert len(receiver.requests) == 1
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["attempts"], delivery["last_status_code"], delivery["last_error"],
                delivery["delivered_at"]) == ("retrying", 1, 500, "receiver answered 500", None)
        (job,) = await _jobs(h, ctx)
        assert (job["status"], job["attempts"], job["payload"]) == ("queued", 1, {"delivery_id": delivery["id"]})

        await h.run_jobs()  # the backoff has not elapsed: nothing runs
        assert len(receiver.requests) == 1

        clock.advance(LATER)
        await h.run_jobs()
        assert len(receiver.requests) == 2
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("retrying", 2, 500)

        clock.advance(LATER)
        await h.run_jobs()
        assert len(receiver.requests) == 3
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["attempts"], delivery["last_status_code"], delivery["last_error"]) == (
            "succeeded", 3, 200, None)
        assert delivery["delivered_at"] is not None
        (job,) = await _jobs(h, ctx)
        assert (job["status"], job["attempts"], job["last_error"]) == ("done", 3, None)

        ids = [r.headers["webhook-id"] for r in receiver.requests]
        assert ids == [delivery["webhook_id"]] * 3
        assert len({r.body for r in receiver.requests}) == 1
        for request in receiver.requests:
            assert _verify(sub["secret"], request)["message"]["id"] == sent["message_id"]

        clock.advance(LATER)
        await h.run_jobs()
        assert len(receiver.requests) == 3


async def test_retries_follow_a_corrected_subscription_url(h: Harness) -> None:
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    async with Receiver().running() as wrong, Receiver().running() as right:
        wrong.script = [(404, {})]
        sub = await _subscribe(h, ctx, wrong.url, ["message.created"])
        await _inbound(h, ctx)
        await h.run_jobs()
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["url"], delivery["last_status_code"]) == ("retrying", wrong.url, 404)

        r = await h.client.patch(f"/api/v1/webhooks/{sub['id']}", headers=ctx.admin.headers, json={"url": right.url})
        assert r.status_code == 200, r.text
        clock.advance(LATER)
        await h.run_jobs()
        assert (len(wrong.requests), len(right.requests)) == (1, 1)
        assert right.requests[0].headers["webhook-id"] == wrong.requests[0].headers["webhook-id"]
        _verify(sub["secret"], right.requests[0])
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["url"], delivery["attempts"], delivery["last_status_code"]) == (
            "succeeded", right.url, 2, 200)


async def test_retry_after_is_honoured(h: Harness) -> None:
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    async with Receiver().running() as receiver:
        receiver.script = [(429, {"retry-after": "120"})]
        await _subscribe(h, ctx, receiver.url, ["message.created"])
        await _inbound(h, ctx)
        before = utcnow()
        await h.run_jobs()
        after = utcnow()
        assert len(receiver.requests) == 1
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["attempts"], delivery["last_status_code"], delivery["last_error"]) == (
            "retrying", 1, 429, "receiver answered 429")
        (job,) = await _jobs(h, ctx)
        run_at = datetime.fromisoformat(job["run_at"])
        assert before + timedelta(seconds=120) <= run_at <= after + timedelta(seconds=120)
        assert job["status"] == "queued"
        async with h.runtime.uow() as uow:  # the row the worker claims by, not only the API's view
            row = await uow.session.scalar(select(Job).where(Job.id == job["id"]))
            assert row is not None and row.run_at == run_at

        clock.advance(run_at - utcnow() - timedelta(seconds=2))
        await h.run_jobs()
        assert len(receiver.requests) == 1

        clock.advance(timedelta(seconds=3))
        await h.run_jobs()
        assert len(receiver.requests) == 2
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("succeeded", 2, 200)
        assert receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]


def test_retry_after_parsing() -> None:
    clock.freeze(datetime(2015, 10, 21, 7, 26, 0, tzinfo=UTC))
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(" 7 ") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 120.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:00:00 GMT") == 0.0  # in the past: now
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("") is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-5") is None


async def test_exhausted_delivery_is_dead_lettered_and_can_be_retried(h: Harness) -> None:
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    async with Receiver().running() as receiver:
        receiver.script = [(503, {})] * 8
        sub = await _subscribe(h, ctx, receiver.url, ["message.created"])
        await _inbound(h, ctx)
        await h.run_jobs()
        for attempt in range(2, 9):
            (delivery,) = await _deliveries(h, ctx)
            assert (delivery["status"], delivery["attempts"]) == ("retrying", attempt - 1)
            assert await _jobs(h, ctx, "dead") == []
            clock.advance(LATER)
            await h.run_jobs()
            assert len(receiver.requests) == attempt
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["attempts"], delivery["last_status_code"], delivery["last_error"],
                delivery["delivered_at"]) == ("failed", 8, 503, "receiver answered 503", None)
        (dead,) = await _jobs(h, ctx, "dead")
        assert (dead["attempts"], dead["max_attempts"], dead["payload"]) == (8, 8, {"delivery_id": delivery["id"]})
        assert "receiver answered 503" in dead["last_error"]
        assert dead["finished_at"] is not None
        assert await _jobs(h, ctx, "queued") == []

        clock.advance(LATER)  # dead means nothing runs on its own any more
        await h.run_jobs()
        assert len(receiver.requests) == 8

        agent = await h.make_user(ctx, "agent", Role.agent)
        other = await h.make_account("Other")
        assert (await h.client.get("/api/v1/jobs", headers=agent.headers)).status_code == 403
        assert (await h.client.post(f"/api/v1/jobs/{dead['id']}/retry", headers=agent.headers)).status_code == 403
        assert (await h.client.post(f"/api/v1/jobs/{dead['id']}/retry",
                                    headers=other.admin.headers)).status_code == 404
        assert await _jobs(h, other, "dead") == []
        assert len(await _jobs(h, ctx, "dead")) == 1  # refused retries changed nothing

        r = await h.client.post(f"/api/v1/jobs/{dead['id']}/retry", headers=ctx.admin.headers)
        assert r.status_code == 200, r.text
        assert (r.json()["id"], r.json()["status"], r.json()["attempts"]) == (dead["id"], "queued", 0)
        await h.run_jobs()
        assert len(receiver.requests) == 9
        assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery["webhook_id"]}
        _verify(sub["secret"], receiver.requests[-1])
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["attempts"], delivery["last_status_code"], delivery["last_error"]) == (
            "succeeded", 9, 200, None)
        (job,) = await _jobs(h, ctx)
        assert (job["id"], job["status"], job["attempts"]) == (dead["id"], "done", 1)

        # Only a dead job can be retried: a done one would deliver again.
        r = await h.client.post(f"/api/v1/jobs/{dead['id']}/retry", headers=ctx.admin.headers)
        assert r.status_code == 409, r.text
        await h.run_jobs()
        assert len(receiver.requests) == 9


async def test_gone_is_permanent(h: Harness) -> None:
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    async with Receiver().running() as receiver:
        receiver.script = [(410, {})]
        await _subscribe(h, ctx, receiver.url, ["message.created"])
        await _inbound(h, ctx)
        await h.run_jobs()
        clock.advance(LATER)
        await h.run_jobs()
        assert len(receiver.requests) == 1
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["attempts"], delivery["last_status_code"], delivery["last_error"]) == (
            "failed", 1, 410, "receiver answered 410 Gone")
        (dead,) = await _jobs(h, ctx, "dead")
        assert dead["attempts"] == 1


# --- SSRF guard ------------------------------------------------------------------------------------

def _addresses(host: str) -> str:
    """What the resolver gives for a loopback name on this machine (localhost may include ::1)."""
    infos = socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)
    return ", ".join(str(ipaddress.ip_address(i[4][0])) for i in infos)


async def test_non_public_destinations_are_refused_before_connecting(h: Harness) -> None:
    ctx = await h.make_account()
    async with Receiver().running() as receiver:
        port = receiver.port
        cases = {
            f"http://127.0.0.1:{port}/hook": _blocked("127.0.0.1", "127.0.0.1"),
            f"http://localhost:{port}/hook": _blocked("localhost", _addresses("localhost")),
            f"http://[::ffff:127.0.0.1]:{port}/hook": _blocked("::ffff:7f00:1", "::ffff:7f00:1"),  # stored normalized
            f"http://[::1]:{port}/hook": _blocked("::1", "::1"),
            "http://10.0.0.1/hook": _blocked("10.0.0.1", "10.0.0.1"),
            "http://192.168.1.20:8080/hook": _blocked("192.168.1.20", "192.168.1.20"),
            "http://169.254.169.254/latest/meta-data/": _blocked("169.254.169.254", "169.254.169.254"),
            "http://[fd00::1]/hook": _blocked("fd00::1", "fd00::1"),
            f"http://0.0.0.0:{port}/hook": _blocked("0.0.0.0", "0.0.0.0"),
        }
        subs = {url: await _subscribe(h, ctx, url, ["message.created"]) for url in cases}
        await _inbound(h, ctx)
        await h.run_jobs()
        clock.advance(LATER)
        await h.run_jobs()  # refused is final: nothing is retried

        assert receiver.requests == []
        log = {d["subscription_id"]: d for d in await _deliveries(h, ctx)}
        assert sorted(log) == sorted(s["id"] for s in subs.values())
        for url, error in cases.items():
            d = log[subs[url]["id"]]
            assert d["url"] == subs[url]["url"]
            assert (d["status"], d["attempts"], d["last_status_code"], d["last_error"]) == (
                "failed", 1, None, error), url
        dead = await _jobs(h, ctx, "dead")
        assert sorted(j["payload"]["delivery_id"] for j in dead) == sorted(d["id"] for d in log.values())
        assert {j["attempts"] for j in dead} == {1}
        assert await _jobs(h, ctx, "queued") == []


async def test_allowlisted_host_is_delivered_and_the_allowlist_is_per_account(h: Harness) -> None:
    ctx = await h.make_account()
    other = await h.make_account("Other")
    async with Receiver().running() as receiver:
        sub = await _subscribe(h, ctx, receiver.url, ["message.created"])
        await _inbound(h, ctx)
        await h.run_jobs()
        assert receiver.requests == []
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["last_error"]) == ("failed", _blocked("127.0.0.1", "127.0.0.1"))

        await h.allowlist_loopback(ctx)
        r = await h.client.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/redeliver",
                                headers=ctx.admin.headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "pending"
        await h.run_jobs()
        assert len(receiver.requests) == 1
        assert receiver.requests[0].headers["webhook-id"] == delivery["webhook_id"]
        _verify(sub["secret"], receiver.requests[0])
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["attempts"], delivery["last_status_code"], delivery["last_error"]) == (
            "succeeded", 2, 200, None)

        # The same receiver, a pooled connection to it open: still refused for an account that
        # has not allowlisted it.
        await _subscribe(h, other, receiver.url, ["message.created"])
        await _inbound(h, other)
        await h.run_jobs()
        assert len(receiver.requests) == 1
        (refused,) = await _deliveries(h, other)
        assert (refused["status"], refused["attempts"], refused["last_error"]) == (
            "failed", 1, _blocked("127.0.0.1", "127.0.0.1"))

        # A name is allowlisted as a name, and a host:port entry only opens that port.
        r = await h.client.patch("/api/v1/account", headers=other.admin.headers,
                                 json={"settings": {"outbound_allowlist": [f"localhost:{receiver.port}"]}})
        assert r.status_code == 200, r.text
        await _subscribe(h, other, f"http://localhost:{receiver.port}/hook", ["message.created"])
        await _inbound(h, other, "by name")
        await h.run_jobs()
        assert len(receiver.requests) == 2
        assert orjson.loads(receiver.requests[1].body)["message"]["content"] == "by name"
        statuses = sorted((d["url"], d["status"]) for d in await _deliveries(h, other))
        assert statuses == [
            (receiver.url, "failed"), (receiver.url, "failed"),
            (f"http://localhost:{receiver.port}/hook", "succeeded")]


async def test_redirects_are_checked_against_the_allowlist(h: Harness) -> None:
    ctx = await h.make_account()
    async with Receiver().running() as first, Receiver().running() as second:
        target_by_name = f"http://localhost:{second.port}/hook"
        target_by_port = f"http://127.0.0.1:{second.port}/hook"

        # Allowlisted: 127.0.0.1. Redirected to a name that is not.
        await h.allowlist_loopback(ctx)
        first.script = [(307, {"location": target_by_name})]
        sub = await _subscribe(h, ctx, first.url, ["message.created"])
        await _inbound(h, ctx)
        await h.run_jobs()
        assert (len(first.requests), len(second.requests)) == (1, 0)
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["attempts"], delivery["last_status_code"], delivery["last_error"]) == (
            "failed", 1, None, _blocked("localhost", _addresses("localhost")))
        assert [j["attempts"] for j in await _jobs(h, ctx, "dead")] == [1]

        # Allowlisted: only the first receiver's port. Redirected to another port of the same host.
        r = await h.client.patch("/api/v1/account", headers=ctx.admin.headers,
                                 json={"settings": {"outbound_allowlist": [f"127.0.0.1:{first.port}"]}})
        assert r.status_code == 200, r.text
        first.script = [(308, {"location": target_by_port})]
        await _inbound(h, ctx, "second")
        await h.run_jobs()
        assert (len(first.requests), len(second.requests)) == (2, 0)
        latest = (await _deliveries(h, ctx))[0]
        assert (latest["status"], latest["attempts"], latest["last_status_code"], latest["last_error"]) == (
            "failed", 1, None, _blocked("127.0.0.1", "127.0.0.1"))

        # Both allowed: a 307 is followed with the same method, body and signature.
        await h.allowlist_loopback(ctx)
        first.script = [(307, {"location": target_by_port})]
        await _inbound(h, ctx, "third")
        await h.run_jobs()
        assert (len(first.requests), len(second.requests)) == (3, 1)
        assert second.requests[0].body == first.requests[2].body
        assert _verify(sub["secret"], second.requests[0])["message"]["content"] == "third"
        latest = (await _deliveries(h, ctx))[0]
        assert (latest["status"], latest["attempts"], latest["last_status_code"]) == ("succeeded", 1, 200)

        # A 302 or 303 would turn the POST into a bodiless GET: not followed, and not a success.
        first.script = [(302, {"location": target_by_port}), (303, {"location": target_by_port})]
        await _inbound(h, ctx, "fourth")
        await h.run_jobs()
        latest = (await _deliveries(h, ctx))[0]
        assert (latest["status"], latest["attempts"], latest["last_status_code"], latest["last_error"]) == (
            "retrying", 1, 302, "receiver answered 302")
        clock.advance(LATER)
        await h.run_jobs()
        latest = (await _deliveries(h, ctx))[0]
        assert (latest["status"], latest["attempts"], latest["last_status_code"]) == ("retrying", 2, 303)
        assert (len(first.requests), len(second.requests)) == (5, 1)
        clock.advance(LATER)
        await h.run_jobs()
        latest = (await _deliveries(h, ctx))[0]
        assert (latest["status"], latest["attempts"], latest["last_status_code"]) == ("succeeded", 3, 200)
        assert (len(first.requests), len(second.requests)) == (6, 1)


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True),
    ("1.1.1.1", True),
    ("127.0.0.1", False),
    ("127.255.255.254", False),
    ("10.0.0.1", False),
    ("172.16.0.1", False),
    ("172.31.255.255", False),
    ("192.168.1.1", False),
    ("169.254.169.254", False),  # cloud metadata
    ("100.64.0.1", False),  # carrier-grade NAT
    ("0.0.0.0", False),
    ("255.255.255.255", False),
    ("192.0.2.1", False),  # documentation
    ("198.18.0.1", False),  # benchmarking
    ("224.0.0.1", False),  # multicast
    ("239.255.255.250", False),
    ("2606:4700:4700::1111", True),
    ("2001:4860:4860::8888", True),
    ("::1", False),
    ("::", False),
    ("fe80::1", False),
    ("fd00::1", False),
    ("fc00::1", False),
    ("2001:db8::1", False),
    ("ff02::1", False),
    ("ff0e::1", False),  # global-scope multicast is still multicast
    ("::ffff:127.0.0.1", False),  # IPv4-mapped
    ("::ffff:10.0.0.1", False),
    ("::ffff:169.254.169.254", False),
    ("::ffff:8.8.8.8", True),
    ("::127.0.0.1", False),  # IPv4-compatible (deprecated form)
    ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
    ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
    ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
    ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::1", False),  # 6to4 of 169.254.169.254
    ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
])
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


async def test_the_connect_time_check_stands_on_its_own() -> None:
    """The second line against DNS rebinding: the connection itself re-checks what it dials."""
    backend = _GuardedBackend()
    async with Receiver().running() as receiver:
        for host, port in (("127.0.0.1", receiver.port), ("localhost", receiver.port), ("10.0.0.1", 80),
                           ("169.254.169.254", 80)):
            with pytest.raises(OutboundBlockedError) as refused:
                await backend.connect_tcp(host, port)
            assert str(refused.value).startswith(f"{host} resolves to a non-public address (")
        with pytest.raises(OutboundBlockedError):
            await backend.connect_unix_socket("/run/docker.sock")
        assert receiver.requests == []


# --- slow receivers --------------------------------------------------------------------------------

class SlowReceiver:
    """A raw HTTP server on loopback that answers its status line, then drips the rest one byte at
    a time for ever: the headers (``finish_headers=False``) or an endless body."""

    def __init__(self, finish_headers: bool) -> None:
        self.finish_headers = finish_headers
        self.requests = 0
        self.url = ""
        self._writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            await reader.readexactly(length)
            self.requests += 1
            writer.write(b"HTTP/1.1 200 OK\r\n")
            if self.finish_headers:
                writer.write(b"content-length: 1000000000\r\n\r\n")
            while True:
                writer.write(b"x" if self.finish_headers else b"x-drip: 1\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
        try:
            yield self
        finally:
            server.close()
            for writer in self._writers:
                writer.close()  # ends the drip loops


async def test_a_receiver_that_never_finishes_answering_cannot_hold_a_worker(h: Harness) -> None:
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    async with SlowReceiver(finish_headers=False).running() as slow:
        await _subscribe(h, ctx, slow.url, ["message.created"])
        await _inbound(h, ctx)
        await asyncio.wait_for(h.run_jobs(), 10)  # webhook_timeout is 1 s in these tests
        assert slow.requests == 1
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["attempts"], delivery["last_status_code"], delivery["last_error"]) == (
            "retrying", 1, None, "TimeoutException: no answer within 1 s")


async def test_an_endless_answer_body_is_not_waited_for(h: Harness) -> None:
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    async with SlowReceiver(finish_headers=True).running() as slow:
        await _subscribe(h, ctx, slow.url, ["message.created"])
        await _inbound(h, ctx)
        await asyncio.wait_for(h.run_jobs(), 10)
        assert slow.requests == 1
        (delivery,) = await _deliveries(h, ctx)
        assert (delivery["status"], delivery["attempts"], delivery["last_status_code"], delivery["last_error"]) == (
            "succeeded", 1, 200, None)
