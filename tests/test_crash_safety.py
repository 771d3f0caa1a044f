"""Crash safety: ``kill -9`` the server while 1,000 signed inbound messages are in flight and
agent replies are waiting to be delivered. After a restart every acknowledged message exists
exactly once, senders' retries create no duplicates, and every pending delivery is made."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from swarmdesk.config import Settings
from swarmdesk.conversations.models import DeliveryStatus, Direction, Message
from swarmdesk.runtime import create_runtime
from tests.conftest import free_port
from tests.support import Harness, Receiver, sign

pytestmark = pytest.mark.slow

N_MESSAGES = 1000
N_REPLIES = 20


def _env(settings: Settings) -> dict[str, str]:
    env = {**os.environ, "SWARMDESK_DATA_DIR": str(settings.data_dir), "SWARMDESK_SECRET_KEY": settings.secret_key,
           "SWARMDESK_LOG_LEVEL": "WARNING", "SWARMDESK_WORKER_POLL_INTERVAL": "0.1",
           "SWARMDESK_JOB_BACKOFF_BASE": "0.05", "SWARMDESK_JOB_BACKOFF_MAX": "0.5",
           # A delivery in flight when the process dies is claimed again once its lease runs out.
           "SWARMDESK_JOB_LEASE_SECONDS": "3"}
    if settings.database_url:
        env["SWARMDESK_DATABASE_URL"] = settings.database_url
    return env


async def _start(settings: Settings, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "swarmdesk", "serve", "--port", str(port), "--no-migrate"],
                            env=_env(settings), stdout=subprocess.DEVNULL, stderr=open(settings.data_dir / "server.log", "ab"))
    async with httpx.AsyncClient() as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                log = (settings.data_dir / "server.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log}")
            await asyncio.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not become ready")


async def test_kill_9_loses_no_acknowledged_message_and_no_pending_delivery(h: Harness, settings: Settings) -> None:
    receiver = Receiver()
    ctx = await h.make_account()
    await h.allowlist_loopback(ctx)
    inbox = await h.make_api_inbox(ctx, callback_url=receiver.url)
    agent = await h.make_user(ctx, "agent")
    await h.runtime.stop()  # the subprocess owns the database from here on

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bodies = [orjson.dumps({"message_id": f"crash-{i}", "contact": {"source_id": f"cust-{i % 50}"},
                            "content": f"message number {i}"}) for i in range(N_MESSAGES)]
    headers = [sign(inbox.secret, b) for b in bodies]
    acknowledged: set[int] = set()
    reply_ids: list[int] = []

    async with receiver.running():
        receiver.gate = asyncio.Event()  # the receiver hangs: deliveries are in flight at the crash
        proc = await _start(settings, port)
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            first = await client.post(inbox.webhook_path, content=bodies[0], headers=headers[0])
            assert first.status_code == 200, first.text
            acknowledged.add(0)
            conversation_id = first.json()["conversation_id"]
            for n in range(N_REPLIES):
                r = await client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=agent.headers,
                                      json={"content": f"reply {n}"})
                assert r.status_code == 201, r.text
                reply_ids.append(r.json()["id"])
            queue = list(range(1, N_MESSAGES))

            async def sender() -> None:
                while queue:
                    i = queue.pop(0)
                    try:
                        r = await client.post(inbox.webhook_path, content=bodies[i], headers=headers[i])
                    except httpx.HTTPError:
                        continue  # in flight when the server died: not acknowledged
                    if r.status_code == 200:
                        acknowledged.add(i)

            senders = [asyncio.create_task(sender()) for _ in range(24)]
            while len(acknowledged) < N_MESSAGES // 3:
                await asyncio.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            await asyncio.gather(*senders, return_exceptions=True)

        assert N_MESSAGES // 3 <= len(acknowledged) < N_MESSAGES, "the kill must land while messages are in flight"
        assert receiver.answered == [], "no delivery may have completed before the crash"

        # Every acknowledged message is in the database exactly once.
        check = create_runtime(settings)
        try:
            async with check.uow() as uow:
                counts = dict((await uow.session.execute(
                    select(Message.external_id, func.count()).where(Message.direction == Direction.incoming)
                    .group_by(Message.external_id))).all())
            assert all(counts.get(f"crash-{i}") == 1 for i in acknowledged)
            assert set(counts.values()) == {1}
        finally:
            await check.stop()

        # Restart: senders retry everything (acknowledged or not); the orphaned deliveries resume.
        receiver.gate.set()
        proc = await _start(settings, port)
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                async def resend(i: int) -> tuple[int, int, bool]:
                    r = await client.post(inbox.webhook_path, content=bodies[i], headers=headers[i])
                    return i, r.status_code, r.status_code == 200 and r.json()["duplicate"]

                results = []
                for start in range(0, N_MESSAGES, 50):
                    results += await asyncio.gather(*(resend(i) for i in range(start, min(start + 50, N_MESSAGES))))
                assert {code for _, code, _ in results} == {200}
                assert {i for i, _, duplicate in results if duplicate} >= acknowledged
                wanted = {f"msg_{rid}": f"reply {n}" for n, rid in enumerate(reply_ids)}
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not set(wanted) <= {r.headers["webhook-id"]
                                                                          for r in receiver.answered}:
                    await asyncio.sleep(0.05)
                delivered = {r.headers["webhook-id"]: orjson.loads(r.body)["data"]["content"] for r in receiver.answered}
                assert {wid: delivered.get(wid) for wid in wanted} == wanted
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0

    check = create_runtime(settings)
    try:
        async with check.uow() as uow:
            incoming = await uow.session.scalar(select(func.count()).select_from(Message).where(
                Message.direction == Direction.incoming))
            distinct = await uow.session.scalar(select(func.count(func.distinct(Message.external_id))).where(
                Message.direction == Direction.incoming))
            statuses = dict((await uow.session.execute(
                select(Message.delivery_status, func.count()).where(Message.id.in_(reply_ids))
                .group_by(Message.delivery_status))).all())
        assert incoming == distinct == N_MESSAGES
        assert statuses == {DeliveryStatus.sent: N_REPLIES}
    finally:
        await check.stop()
