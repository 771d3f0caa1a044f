"""Email intake: threaded mails ingested by IMAP from a real Dovecot.

N mails (about 40 % from new customers, the rest replies threading to an earlier mail of the same
customer by In-Reply-To/References) are appended to a private Dovecot's INBOX. Then one ingester
run (``poll_once`` until everything is fetched, what ``swarmdesk email poll --once`` does) is
timed from the first fetch to the last mail stored. CPU is the ingester process's (it does the
MIME parsing, quote stripping, identity resolution and storing) and the whole machine's (Dovecot
and PostgreSQL included).

  python -m bench.email_imap --mails 2000
  python -m bench.email_imap --mails 2000 --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_email
  python -m bench.email_imap --profile /tmp/email.txt   # py-spy over the timed run only

``--database-url`` must name an empty (or already migrated) database; migrations are applied.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from sqlalchemy import func, select

from bench.common import machine
from swarmdesk.accounts.actions import do_create_account_with_admin
from swarmdesk.accounts.models import Role
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.channels.actions import do_create_inbox
from swarmdesk.channels.email.imap import active_email_inboxes, poll_once
from swarmdesk.channels.models import InboundQuarantine
from swarmdesk.channels.schemas import InboxCreate
from swarmdesk.config import Settings
from swarmdesk.conversations.models import Conversation, Direction, Message
from swarmdesk.core.migrate import upgrade
from swarmdesk.runtime import create_runtime
from tests.mailservers import Dovecot

DOMAIN = "help.example.com"
AUTHSERV = "mx.help.example.com"
BODY = ("Hello,\r\n\r\nmy order has not arrived yet and the tracking page has not changed for three days. "
        "Could you tell me where it is and when I can expect it?\r\n\r\nThanks,\r\n{name}\r\n")
QUOTE = "\r\nOn Mon, 23 Nov 2026 at 10:00, Example Support <support@help.example.com> wrote:\r\n" + \
        "> Thanks for writing. We are looking into it.\r\n> \r\n> Kind regards,\r\n> Support\r\n"


def _mail(sender: str, name: str, subject: str, body: str, message_id: str, extra: dict[str, str]) -> bytes:
    domain = sender.rsplit("@", 1)[1]
    lines = [f"Authentication-Results: {AUTHSERV}; dkim=pass header.d={domain}; spf=pass smtp.mailfrom={sender}; "
             f"dmarc=pass header.from={domain}",
             f"From: {name} <{sender}>", f"To: Example Support <support@{DOMAIN}>", f"Subject: {subject}",
             f"Message-ID: {message_id}", "Date: Mon, 23 Nov 2026 10:00:00 +0000",
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def threaded_mails(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    threads: list[tuple[str, str, str, list[str]]] = []
    out = []
    run = uuid.uuid4().hex[:6]
    for i in range(n):
        message_id = f"<bench-{run}-{i}@mail.example.org>"
        if not threads or rng.random() < 0.4:
            sender, name, subject = f"customer{i}@example.org", f"Customer {i}", f"Order {10000 + i} has not arrived"
            threads.append((sender, name, subject, [message_id]))
            out.append(_mail(sender, name, subject, BODY.format(name=name), message_id, {}))
        else:
            sender, name, subject, ids = rng.choice(threads)
            out.append(_mail(sender, name, f"Re: {subject}", f"Any news on this?\r\n\r\n{name}\r\n{QUOTE}", message_id,
                             {"In-Reply-To": ids[-1], "References": " ".join(ids[-10:])}))
            ids.append(message_id)
    return out


def _machine_busy() -> float:
    """Busy CPU-seconds of the whole machine so far (all cores)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def main(args: argparse.Namespace) -> dict:
    data = Path(tempfile.mkdtemp(prefix="swarmdesk-bench-email-"))
    settings = Settings(data_dir=data, database_url=args.database_url, secret_key="b" * 40, log_level="WARNING")
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    dovecot = Dovecot()
    dovecot.start()
    runtime = create_runtime(settings)
    try:
        user = f"bench{uuid.uuid4().hex[:6]}@{DOMAIN}"
        dovecot.add_user(user)
        async with runtime.uow() as uow:
            account, admin = await do_create_account_with_admin(
                uow, settings, account_name="Bench", email=f"bench-{uuid.uuid4().hex[:6]}@bench.test",
                name="Bench Admin", password="bench-password-1")
        async with runtime.uow() as uow:  # Dovecot listens on loopback, which is refused unless allowed
            row = await uow.session.get(type(account), account.id)
            row.settings = {**(row.settings or {}), "outbound_allowlist": ["127.0.0.1"]}
            await uow.commit()
        principal = StaffPrincipal(user_id=admin.id, account_id=account.id, role=Role.admin, name="a",
                                   email=admin.email, team_ids=(), scopes=None, via="session")
        async with runtime.uow() as uow:
            inbox, _ = await do_create_inbox(uow, principal, runtime.secretbox, InboxCreate(
                name="Support mail", channel_kind="email", config={
                    "address": f"support@{DOMAIN}", "trusted_authserv_ids": [AUTHSERV],
                    "imap": dovecot.imap_config(user, batch_size=args.batch_size)}))
        t = time.perf_counter()
        await asyncio.to_thread(dovecot.append_many, user, threaded_mails(args.mails))
        append_s = time.perf_counter() - t

        await runtime.start(with_worker=False)
        (target, config, policy), = [x for x in await active_email_inboxes(runtime) if x[0].id == inbox.id]
        profiler = None
        if args.profile:
            profiler = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(os.getpid()), "-r", "200", "-f", "raw",
                                         "-o", args.profile, "--nonblocking"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
            await asyncio.sleep(1.0)
        cpu0, busy0, t0 = time.process_time(), _machine_busy(), time.perf_counter()
        fetched = stored = 0
        while fetched < args.mails:
            report = await poll_once(runtime, target, config, policy=policy)
            if not report.fetched:
                break
            fetched += report.fetched
            stored += report.stored
        elapsed = time.perf_counter() - t0
        cpu, busy = time.process_time() - cpu0, _machine_busy() - busy0
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(30)
        assert (await poll_once(runtime, target, config, policy=policy)).fetched == 0
        async with runtime.uow() as uow:
            messages = await uow.session.scalar(select(func.count()).select_from(Message).where(
                Message.direction == Direction.incoming))
            conversations = await uow.session.scalar(select(func.count()).select_from(Conversation))
            quarantined = await uow.session.scalar(select(func.count()).select_from(InboundQuarantine))
        assert messages == args.mails and quarantined == 0, (messages, quarantined)
        return {"backend": "postgresql" if args.database_url else "sqlite", "mails": args.mails,
                "batch_size": args.batch_size, "conversations": conversations, "append_s": round(append_s, 2),
                "ingest_s": round(elapsed, 2), "mails_per_s": round(args.mails / elapsed, 1),
                "ingester_cpu_s": round(cpu, 2), "ingester_cpu_ms_per_mail": round(cpu * 1000 / args.mails, 2),
                "machine_busy_cpu_s": round(busy, 2), "machine": machine()}
    finally:
        await runtime.stop()
        dovecot.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=200, help="IMAP FETCH batch (the inbox's batch_size)")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: SQLite in a temp data dir)")
    parser.add_argument("--profile", default="", help="write a py-spy raw profile of the timed run here")
    result = asyncio.run(main(parser.parse_args()))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
