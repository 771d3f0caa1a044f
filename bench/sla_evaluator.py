"""SLA evaluator throughput, and the speed of the business-time functions.

In one process, on a throwaway database (a temporary SQLite file, or a PostgreSQL database created
and dropped here): an account with a 24/7 policy (first response 60 min, warning at 80 %),
``--conversations`` conversations with one customer message each (bulk-inserted), half of them
assigned to agents. Then, with the injectable clock:

1. sync: every clock computed from its conversation (the listener's work), two deadline jobs each;
2. warnings: the clock moves past every warning instant and the real job worker drains the
   ``sla.deadline`` jobs: each re-syncs its clock from the conversation, records the warning's
   unique row, publishes ``sla.warning`` and notifies the assignee;
3. breaches: the same at the due instants (``sla.breached`` and an ``sla_breached`` activity);
4. sweep: the same number of fresh conversations whose jobs are deleted, past their deadlines,
   caught by the safety sweep (one breach each, the late warning suppressed).

  python -m bench.sla_evaluator --backend sqlite --conversations 20000
  python -m bench.sla_evaluator --backend postgres --conversations 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import machine
from swarmdesk.accounts.actions import do_create_account_with_admin
from swarmdesk.accounts.models import Role, User
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.channels.actions import do_create_inbox
from swarmdesk.channels.schemas import InboxCreate
from swarmdesk.config import Settings
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations.models import Activity, Conversation, Message
from swarmdesk.core.clock import clock
from swarmdesk.core.migrate import upgrade
from swarmdesk.core.security import hash_password
from swarmdesk.jobs.models import Job
from swarmdesk.jobs.worker import Worker
from swarmdesk.notifications.models import Notification
from swarmdesk.runtime import Runtime, create_runtime
from swarmdesk.sla import actions, service
from swarmdesk.sla.business_time import BusinessCalendar
from swarmdesk.sla.models import SlaAlert
from swarmdesk.sla.schemas import SlaPolicyCreate

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
CHUNK = 500


def business_time_speed(n: int) -> dict:
    """Calls per second of add and between on a Berlin office calendar with holidays (warm cache),
    for targets from an hour to two weeks of business time."""
    h = 60
    holidays = {date(2026, 12, 24): [(12 * h, 24 * h)], date(2026, 12, 25): [(0, 24 * h)],
                date(2026, 12, 26): [(0, 24 * h)], date(2027, 1, 1): [(0, 24 * h)]}
    cal = BusinessCalendar(ZoneInfo("Europe/Berlin"), [((9 * h, 12 * h), (13 * h, 18 * h))] * 5 + [(), ()], holidays)
    rng = random.Random(1)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    starts = [base + timedelta(minutes=rng.randrange(366 * 24 * 60)) for _ in range(n)]
    result = {}
    for minutes in (60, 8 * 60, 10 * 8 * 60):
        for s in starts[:1000]:
            cal.add(s, minutes)  # warm the day cache
        began = time.perf_counter()
        for s in starts:
            cal.add(s, minutes)
        result[f"add_{minutes}min_per_s"] = round(n / (time.perf_counter() - began))
    ends = [s + timedelta(days=rng.randrange(1, 15)) for s in starts]
    began = time.perf_counter()
    for s, e in zip(starts, ends, strict=True):
        cal.between(s, e)
    result["between_1_14_days_per_s"] = round(n / (time.perf_counter() - began))
    cold = BusinessCalendar(ZoneInfo("America/New_York"), [((9 * h, 17 * h),)] * 5 + [(), ()])
    began = time.perf_counter()
    for s in starts[:2000]:
        cold.add(s, 8 * 60)
    result["add_cold_calendar_per_s"] = round(2000 / (time.perf_counter() - began))
    return result


async def _database(backend: str) -> tuple[Settings, Path, str | None]:
    data = Path(tempfile.mkdtemp(prefix="swarmdesk-bench-sla-"))
    url, dbname = "", None
    if backend == "postgres":
        dbname = f"swarmdesk_bench_sla_{uuid.uuid4().hex[:8]}"
        engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{dbname}"'))
        await engine.dispose()
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + dbname
    settings = Settings(data_dir=data, database_url=url, secret_key="b" * 40, run_worker=False, log_json=False,
                        argon2_time_cost=1, argon2_memory_cost=8192)
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    return settings, data, dbname


async def _drop(data: Path, dbname: str | None) -> None:
    shutil.rmtree(data, ignore_errors=True)
    if dbname:
        engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        await engine.dispose()


async def _seed_account(runtime: Runtime, agents: int) -> tuple[int, int, list[int]]:
    settings = runtime.settings
    async with runtime.uow() as uow:
        account, admin = await do_create_account_with_admin(
            uow, settings, account_name="Bench", email=f"bench-{uuid.uuid4().hex[:6]}@bench.test", name="Admin",
            password="bench-password-1")
    principal = StaffPrincipal(user_id=admin.id, account_id=account.id, role=Role.admin, name="Admin",
                               email=admin.email, team_ids=(), scopes=None, via="session")
    async with runtime.uow() as uow:
        inbox, _ = await do_create_inbox(uow, principal, runtime.secretbox,
                                         InboxCreate(name="Bench API", channel_kind="api", config={}))
    async with runtime.uow() as uow:
        pw = hash_password("bench-password-1", time_cost=1, memory_cost=8192)
        users = [User(account_id=account.id, email=f"agent{a}@bench.test", name=f"Agent {a}", role=Role.agent,
                      password_hash=pw, is_active=True) for a in range(agents)]
        uow.session.add_all(users)
        await uow.commit()
    async with runtime.uow() as uow:
        await actions.do_create_policy(uow, principal, SlaPolicyCreate(name="Standard", first_response_minutes=60))
    return account.id, inbox.id, [u.id for u in users]


async def _seed_conversations(runtime: Runtime, account_id: int, inbox_id: int, agents: list[int], n: int,
                              tag: str) -> list[int]:
    """n conversations with one customer message each, written with bulk inserts."""
    now = clock.now()
    ids: list[int] = []
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        async with runtime.uow() as uow:
            s = uow.session
            contact_ids = list((await s.execute(insert(Contact).returning(Contact.id), [
                {"account_id": account_id, "name": f"Customer {tag}{start + i}", "custom_attributes": {},
                 "created_at": now, "updated_at": now} for i in range(size)])).scalars())
            conv_ids = list((await s.execute(insert(Conversation).returning(Conversation.id), [
                {"account_id": account_id, "inbox_id": inbox_id, "contact_id": cid, "subject": "Late order",
                 "status": "open", "priority": "none", "last_activity_at": now, "created_at": now, "updated_at": now,
                 "custom_attributes": {}, "reopen_count": 0, "message_count": 1, "tag_names": [],
                 "participant_ids": [], "waiting_since": now, "last_customer_message_at": now,
                 "assignee_id": agents[(start + i) % len(agents)] if (start + i) % 2 == 0 else None}
                for i, cid in enumerate(contact_ids)])).scalars())
            await s.execute(insert(Message), [
                {"account_id": account_id, "conversation_id": conv, "inbox_id": inbox_id, "direction": "incoming",
                 "private": False, "channel": "api", "sender_type": "contact", "sender_id": contact,
                 "content": "Where is my order?", "delivery_status": "received", "meta": {}, "created_at": now}
                for conv, contact in zip(conv_ids, contact_ids, strict=True)])
            await uow.commit()
        ids.extend(conv_ids)
    return ids


async def _sync_all(runtime: Runtime, account_id: int, ids: list[int]) -> float:
    began = time.perf_counter()
    for start in range(0, len(ids), CHUNK):
        async with runtime.uow() as uow:
            policies = await service.list_policies(uow.session, account_id)
            rows = (await uow.session.scalars(select(Conversation).where(
                Conversation.id.in_(ids[start:start + CHUNK])))).all()
            for conversation in rows:
                await actions.sync_clock(uow, conversation, policies=policies)
            await uow.commit()
    return time.perf_counter() - began


async def _count(runtime: Runtime, model: type, *where: object) -> int:
    async with runtime.uow() as uow:
        return await uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def _drain(runtime: Runtime) -> float:
    worker = Worker(runtime, runtime.jobs)
    began = time.perf_counter()
    await worker.drain(timeout=3600)
    return time.perf_counter() - began


async def main(args: argparse.Namespace) -> dict:
    settings, data, dbname = await _database(args.backend)
    n = args.conversations
    result: dict = {"backend": args.backend, "conversations": n,
                    "load_average_before": os.getloadavg()}
    t0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    clock.freeze(t0)
    runtime = create_runtime(settings)
    await runtime.start(with_worker=False)
    try:
        account_id, inbox_id, agents = await _seed_account(runtime, args.agents)
        await _drain(runtime)  # the policy's re-evaluation (nothing to do yet)
        ids = await _seed_conversations(runtime, account_id, inbox_id, agents, n, "a")

        elapsed = await _sync_all(runtime, account_id, ids)
        jobs = await _count(runtime, Job, Job.kind == actions.DEADLINE_JOB)
        result["sync"] = {"clocks": n, "seconds": round(elapsed, 2), "clocks_per_s": round(n / elapsed),
                          "deadline_jobs": jobs}

        # The deadline jobs alone: the safety sweep (due every 5 minutes) would race them after the jump.
        async with runtime.uow() as uow:
            await uow.session.execute(delete(Job).where(Job.kind == actions.SWEEP_JOB))
            await uow.commit()
        for phase, minutes, what in (("warnings", 50, "sla_warning"), ("breaches", 61, "sla_breached")):
            clock.freeze(t0 + timedelta(minutes=minutes))
            elapsed = await _drain(runtime)
            alerts = await _count(runtime, SlaAlert, SlaAlert.kind == ("warning" if phase == "warnings" else "breach"))
            extra = await _count(runtime, Notification, Notification.kind == "sla_warning") if phase == "warnings" \
                else await _count(runtime, Activity, Activity.verb == "sla_breached")
            result[phase] = {"deadlines": alerts, "seconds": round(elapsed, 2),
                             "deadlines_per_s": round(alerts / elapsed), what: extra}

        # The sweep: fresh conversations whose deadline jobs are lost, found long after their deadlines.
        clock.freeze(t0 + timedelta(hours=2))
        sweep_ids = await _seed_conversations(runtime, account_id, inbox_id, agents, n, "s")
        await _sync_all(runtime, account_id, sweep_ids)
        async with runtime.uow() as uow:
            await uow.session.execute(delete(Job).where(Job.kind == actions.DEADLINE_JOB,
                                                        Job.status == "queued"))
            await uow.commit()
        clock.freeze(t0 + timedelta(hours=4))
        began, swept = time.perf_counter(), 0
        while True:
            async with runtime.uow() as uow:
                done = await actions.do_sweep_sla(uow, limit=200)
            swept += done
            if done < 200:
                break
        elapsed = time.perf_counter() - began
        result["sweep"] = {"clocks": swept, "seconds": round(elapsed, 2), "clocks_per_s": round(swept / elapsed),
                           "breaches_total": await _count(runtime, SlaAlert, SlaAlert.kind == "breach")}
        result["load_average_after"] = os.getloadavg()
        return result
    finally:
        await runtime.stop()
        clock.reset()
        await _drop(data, dbname)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--business-time-calls", type=int, default=50_000)
    args = parser.parse_args()
    print(machine())
    print(orjson.dumps({"business_time": business_time_speed(args.business_time_calls)},
                       option=orjson.OPT_INDENT_2).decode())
    print(orjson.dumps(asyncio.run(main(args)), option=orjson.OPT_INDENT_2).decode())
