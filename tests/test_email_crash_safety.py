"""Crash safety of the IMAP ingester: ``kill -9`` ``swarmdesk email poll`` several times while it
is storing 2,000 threaded mails from a real Dovecot, then let it finish. Every mail exists exactly
once (the high-water mark moves only after the commit; re-fetched mails are Message-ID duplicates)
and nothing is quarantined."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from swarmdesk.channels.email.mime import normalize_message_id
from swarmdesk.channels.models import InboundQuarantine
from swarmdesk.config import Settings
from swarmdesk.conversations.models import Direction, Message
from swarmdesk.runtime import create_runtime
from tests.mailservers import Dovecot
from tests.support import Harness
from tests.test_email_channel import DOMAIN, mail, make_email_inbox

pytestmark = pytest.mark.slow

N_MAILS = 2000
KILLS = 5


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot()
    server.start()
    yield server
    server.stop()


def threaded_mails(n: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """``n`` mails, about 40 % from new customers and the rest replies (In-Reply-To/References) to
    an earlier mail of the same customer."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes]] = []
    threads: list[tuple[str, str, list[str]]] = []  # (sender, subject, message ids so far)
    for i in range(n):
        message_id = f"<crash-{i}-{uuid.uuid4().hex[:8]}@example.org>"
        if not threads or rng.random() < 0.4:
            sender, subject = f"cust{i}@example.org", f"Order {1000 + i} question"
            threads.append((sender, subject, [message_id]))
            raw = mail(sender, subject, f"Hello, this is mail {i}.", name=f"Customer {i}", message_id=message_id)
        else:
            sender, subject, ids = rng.choice(threads)
            parent = rng.choice(ids)
            raw = mail(sender, f"Re: {subject}", f"A follow-up, mail {i}.\r\n\r\n> earlier text", name="Customer",
                       message_id=message_id,
                       headers={"In-Reply-To": parent, "References": " ".join(ids[:ids.index(parent) + 1])})
            ids.append(message_id)
        out.append((message_id, raw))
    return out


def _env(settings: Settings) -> dict[str, str]:
    env = {**os.environ, "SWARMDESK_DATA_DIR": str(settings.data_dir), "SWARMDESK_SECRET_KEY": settings.secret_key,
           "SWARMDESK_LOG_LEVEL": "WARNING"}
    if settings.database_url:
        env["SWARMDESK_DATABASE_URL"] = settings.database_url
    return env


def _poll(settings: Settings, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "swarmdesk", "email", "poll", *extra], env=_env(settings),
                            stdout=subprocess.DEVNULL, stderr=open(settings.data_dir / "poller.log", "ab"))


async def test_kill_9_mid_ingest_loses_and_duplicates_no_mail(h: Harness, settings: Settings, dovecot: Dovecot) -> None:
    user = f"crash{uuid.uuid4().hex[:8]}@{DOMAIN}"
    dovecot.add_user(user)
    ctx = await h.make_account()
    await make_email_inbox(h, ctx, imap=dovecot.imap_config(user, batch_size=100))
    mails = threaded_mails(N_MAILS)
    await asyncio.to_thread(dovecot.append_many, user, [raw for _, raw in mails])
    await h.runtime.stop()  # the subprocesses own the database from here on

    check = create_runtime(settings)

    async def stored() -> int:
        async with check.uow() as uow:
            return await uow.session.scalar(select(func.count()).select_from(Message).where(
                Message.direction == Direction.incoming)) or 0

    rng = random.Random(11)
    killed_at: list[int] = []
    try:
        for _ in range(KILLS):
            before = await stored()
            if before >= N_MAILS:
                break
            proc = _poll(settings)
            try:
                # Kill at a random point once this run has stored something (mid-ingest, mid-chunk).
                deadline = time.monotonic() + 60
                while await stored() == before and proc.poll() is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                assert proc.poll() is None, (settings.data_dir / "poller.log").read_text(errors="replace")[-3000:]
                await asyncio.sleep(rng.uniform(0.05, 0.8))
            finally:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
            killed_at.append(await stored())
        mid_ingest = [n for n in killed_at if 0 < n < N_MAILS]
        assert len(mid_ingest) >= 3, f"the kills must land while mails are being stored: {killed_at}"

        # Let it finish: one --once run to completion.
        proc = _poll(settings, "--once")
        assert await asyncio.to_thread(proc.wait, 90) == 0, \
            (settings.data_dir / "poller.log").read_text(errors="replace")[-3000:]

        async with check.uow() as uow:
            incoming = await stored()
            distinct = await uow.session.scalar(select(func.count(func.distinct(Message.external_id))).where(
                Message.direction == Direction.incoming))
            external_ids = set((await uow.session.scalars(select(Message.external_id).where(
                Message.direction == Direction.incoming))).all())
            quarantined = await uow.session.scalar(select(func.count()).select_from(InboundQuarantine))
        assert incoming == distinct == N_MAILS, (killed_at, incoming, distinct)
        assert external_ids == {normalize_message_id(mid) for mid, _ in mails}
        assert quarantined == 0
    finally:
        await check.stop()
