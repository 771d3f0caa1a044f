"""Webhook intake per channel: messages/s, server CPU per message and request latency for each
channel kind's webhook, against a real ``swarmdesk serve`` process.

For each channel kind (api, twilio_sms, twilio_whatsapp, whatsapp, messenger, telegram) the bench
takes a fresh data directory (SQLite, or a fresh database on the PostgreSQL server of
``--database-url``), creates an account and an admin token, starts ``swarmdesk serve``, creates the
inbox through the REST API and then:

1. warm-up (not timed): one delivery from each of ``--customers`` customers, so they exist;
2. timed: ``--messages`` deliveries over ``--concurrency`` keep-alive connections; one in five comes
   from a new customer, the others from a random existing one. Every delivery is shaped and signed
   as the vendor does it (Twilio's form and X-Twilio-Signature computed by the ``twilio`` SDK over
   the public ``base_url``; Meta's JSON and X-Hub-Signature-256; Telegram's Update and secret-token
   header; Standard Webhooks for the API channel), each with its own message id. All requests are
   built and signed before the timed window.
3. check: the inbox holds exactly warm-up + timed messages, each external id once.

Server CPU is read from /proc for the server process only. The load generator runs in this process
on the same machine.

  python -m bench.channel_intake --messages 3000 --concurrency 64
  python -m bench.channel_intake --channels twilio_sms,telegram --profile /tmp/intake-prof
  python -m bench.channel_intake --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from twilio.request_validator import RequestValidator

from bench.common import RawConnection, cpu_seconds, machine, signed_request, start_server, stop_server
from swarmdesk.accounts.actions import do_create_account_with_admin, do_create_api_token
from swarmdesk.accounts.models import Role
from swarmdesk.accounts.schemas import ApiTokenCreate
from swarmdesk.auth.principals import SCOPES, StaffPrincipal
from swarmdesk.config import Settings
from swarmdesk.core.migrate import upgrade
from swarmdesk.runtime import create_runtime

KINDS = ["api", "twilio_sms", "twilio_whatsapp", "whatsapp", "messenger", "telegram"]
BASE_URL = "https://desk.example.com"  # the public address vendors call and Twilio signs
SECRET_KEY = "c" * 40

TWILIO_ACCOUNT_SID = "AC" + "3f8e2a9c" * 4
TWILIO_AUTH_TOKEN = "9d1c7b5e3a2f4d6c8b0a1e3f5d7c9b2a"
OUR_NUMBER = "+14155550100"
META_APP_SECRET = "6f1c0a8e4b2d9f7a3c5e8b1d0f2a4c6e"
META_ACCESS_TOKEN = "EAAG-bench-access-token"
PHONE_NUMBER_ID = "106540352242922"
PAGE_ID = "1234567890"
TELEGRAM_BOT_TOKEN = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TELEGRAM_SECRET = "s3cret-token_for-the-webhook-0123456789"

TEXTS = ["Hi, my order #{n} has not arrived yet", "Can I change the delivery address for order {n}?",
         "Thanks! That worked.", "Is the blue one back in stock?", "I was charged twice for invoice {n}",
         "ok", "How do I reset my password? I tried three times and the link has expired every time.",
         "Where is my parcel? Tracking says it left the depot on Monday."]


def _config(kind: str) -> dict[str, Any]:
    twilio = {"account_sid": TWILIO_ACCOUNT_SID, "auth_token": TWILIO_AUTH_TOKEN}
    meta = {"access_token": META_ACCESS_TOKEN, "app_secret": META_APP_SECRET}
    return {"api": {},
            "twilio_sms": {**twilio, "phone_number": OUR_NUMBER},
            "twilio_whatsapp": {**twilio, "whatsapp_number": OUR_NUMBER},
            "whatsapp": {**meta, "phone_number_id": PHONE_NUMBER_ID},
            "messenger": {**meta, "page_id": PAGE_ID},
            "telegram": {"bot_token": TELEGRAM_BOT_TOKEN, "secret_token": TELEGRAM_SECRET}}[kind]


def _raw(path: str, content_type: str, body: bytes, headers: dict[str, str]) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (f"POST {path} HTTP/1.1\r\nHost: desk.example.com\r\ncontent-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\n{extra}\r\n").encode() + body


class Deliveries:
    """Builds one signed delivery per message, shaped as the vendor sends it."""

    def __init__(self, kind: str, public_key: str, secrets: dict[str, str]) -> None:
        self.kind, self.public_key, self.secrets = kind, public_key, secrets
        self.path = f"/api/v1/inboxes/{public_key}/webhook"
        self.validator = RequestValidator(TWILIO_AUTH_TOKEN)
        self.serial = 0

    def build(self, customer: int, n: int) -> tuple[str, bytes]:
        """(the message's external id, the raw HTTP request)."""
        self.serial += 1
        words = TEXTS[n % len(TEXTS)].format(n=1000 + n)
        phone = f"+49151{10_000_000 + customer:08d}"
        return getattr(self, "_" + self.kind)(customer, n, words, phone)

    def _api(self, customer: int, n: int, words: str, phone: str) -> tuple[str, bytes]:
        mid = f"api-{n}-{uuid.uuid4().hex[:8]}"
        payload = {"message_id": mid, "contact": {"source_id": f"cust-{customer}", "name": f"Customer {customer}"},
                   "content": words}
        return mid, signed_request(self.public_key, self.secrets["secret"], payload, "desk.example.com")

    def _twilio(self, params: dict[str, str], mid: str) -> tuple[str, bytes]:
        signature = self.validator.compute_signature(BASE_URL + self.path, params)
        return mid, _raw(self.path, "application/x-www-form-urlencoded", urlencode(params).encode(),
                         {"x-twilio-signature": signature, "i-twilio-idempotency-token": str(uuid.uuid4())})

    def _twilio_sms(self, customer: int, n: int, words: str, phone: str) -> tuple[str, bytes]:
        sid = "SM" + uuid.uuid4().hex
        return self._twilio({
            "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "SAN FRANCISCO",
            "FromZip": "", "SmsSid": sid, "FromState": "", "SmsStatus": "received", "FromCity": "", "Body": words,
            "FromCountry": "DE", "To": OUR_NUMBER, "ToZip": "94105", "NumSegments": "1", "MessageSid": sid,
            "AccountSid": TWILIO_ACCOUNT_SID, "From": phone, "ApiVersion": "2010-04-01"}, sid)

    def _twilio_whatsapp(self, customer: int, n: int, words: str, phone: str) -> tuple[str, bytes]:
        sid = "SM" + uuid.uuid4().hex
        return self._twilio({
            "SmsMessageSid": sid, "NumMedia": "0", "ProfileName": f"Customer {customer}", "MessageType": "text",
            "SmsSid": sid, "WaId": phone.lstrip("+"), "SmsStatus": "received", "Body": words,
            "To": f"whatsapp:{OUR_NUMBER}", "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid,
            "AccountSid": TWILIO_ACCOUNT_SID, "From": f"whatsapp:{phone}", "ApiVersion": "2010-04-01"}, sid)

    def _meta(self, payload: dict[str, Any], mid: str) -> tuple[str, bytes]:
        body = orjson.dumps(payload)
        signature = "sha256=" + hmac.new(META_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return mid, _raw(self.path, "application/json", body, {"x-hub-signature-256": signature})

    def _whatsapp(self, customer: int, n: int, words: str, phone: str) -> tuple[str, bytes]:
        wa_id = phone.lstrip("+")
        wamid = "wamid.HBgN" + uuid.uuid4().hex.upper() + "AA=="
        return self._meta({"object": "whatsapp_business_account", "entry": [{
            "id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
                "contacts": [{"profile": {"name": f"Customer {customer}"}, "wa_id": wa_id}],
                "messages": [{"from": wa_id, "id": wamid, "timestamp": str(int(time.time())), "type": "text",
                              "text": {"body": words}}]}}]}]}, wamid)

    def _messenger(self, customer: int, n: int, words: str, phone: str) -> tuple[str, bytes]:
        psid = str(6283929151000000 + customer)
        mid = "m_" + uuid.uuid4().hex + uuid.uuid4().hex[:16]
        now = int(time.time() * 1000)
        return self._meta({"object": "page", "entry": [{"id": PAGE_ID, "time": now, "messaging": [{
            "sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": now,
            "message": {"mid": mid, "text": words}}]}]}, mid)

    def _telegram(self, customer: int, n: int, words: str, phone: str) -> tuple[str, bytes]:
        user_id = 431100000 + customer
        message_id = 10 + n
        body = orjson.dumps({"update_id": 700000000 + self.serial, "message": {
            "message_id": message_id,
            "from": {"id": user_id, "is_bot": False, "first_name": "Customer", "last_name": str(customer),
                     "username": f"cust_{customer}", "language_code": "en"},
            "chat": {"id": user_id, "first_name": "Customer", "last_name": str(customer),
                     "username": f"cust_{customer}", "type": "private"},
            "date": int(time.time()), "text": words}})
        return f"{user_id}:{message_id}", _raw(self.path, "application/json", body,
                                               {"x-telegram-bot-api-secret-token": TELEGRAM_SECRET})


@dataclass
class Run:
    statuses: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


async def _send(port: int, requests: list[bytes], concurrency: int) -> Run:
    run = Run()
    it = iter(requests)

    async def worker() -> None:
        conn = RawConnection("127.0.0.1", port)
        try:
            for raw in it:
                t = time.perf_counter()
                status = await conn.request(raw)
                run.latencies.append(time.perf_counter() - t)
                run.statuses.append(status)
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _admin_token(settings: Settings) -> str:
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    runtime = create_runtime(settings)
    try:
        async with runtime.uow() as uow:
            account, admin = await do_create_account_with_admin(
                uow, settings, account_name="Bench", email=f"bench-{uuid.uuid4().hex[:6]}@bench.test",
                name="Bench Admin", password="bench-password-1")
        p = StaffPrincipal(user_id=admin.id, account_id=account.id, role=Role.admin, name="a", email=admin.email,
                           team_ids=(), scopes=None, via="session")
        async with runtime.uow() as uow:
            _, token = await do_create_api_token(uow, p, ApiTokenCreate(name="bench", scopes=sorted(SCOPES)))
        return token
    finally:
        await runtime.stop()


async def _count(url: str, inbox_id: int) -> tuple[int, int, int]:
    """Inbound messages in the inbox, distinct external ids among them, contacts in the account."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text(
                "SELECT count(*), count(DISTINCT external_id) FROM messages WHERE inbox_id = :i AND direction = 'incoming'"),
                {"i": inbox_id})).one()
            contacts = await conn.scalar(text("SELECT count(*) FROM contacts"))
        return int(row[0]), int(row[1]), int(contacts or 0)
    finally:
        await engine.dispose()


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(len(values) * q + 0.5) - 1))]


async def bench_channel(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix=f"swarmdesk-intake-{kind}-"))
    env = {"SWARMDESK_DATA_DIR": str(data), "SWARMDESK_SECRET_KEY": SECRET_KEY, "SWARMDESK_LOG_LEVEL": "WARNING",
           "SWARMDESK_ENV": "dev", "SWARMDESK_BASE_URL": BASE_URL}
    dbname = None
    if args.database_url:
        dbname = f"swarmdesk_intake_{kind}_{uuid.uuid4().hex[:6]}"
        admin = create_async_engine(args.database_url, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{dbname}"'))
        await admin.dispose()
        env["SWARMDESK_DATABASE_URL"] = args.database_url.rsplit("/", 1)[0] + "/" + dbname
    settings = Settings(data_dir=data, database_url=env.get("SWARMDESK_DATABASE_URL", ""), secret_key=SECRET_KEY,
                        base_url=BASE_URL)
    token = await _admin_token(settings)
    port = _free_port()
    proc = start_server(env, port)
    profiler = None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                     headers={"authorization": f"Bearer {token}"}) as client:
            r = await client.post("/api/v1/inboxes", json={"name": f"Bench {kind}", "channel_kind": kind,
                                                           "config": _config(kind)})
            assert r.status_code == 201, r.text
            inbox = r.json()
        deliveries = Deliveries(kind, inbox["public_key"], inbox.get("generated_secrets", {}))
        rng = random.Random(f"{args.seed}:{kind}")
        existing = args.customers
        warm = [deliveries.build(c, c)[1] for c in range(existing)]
        timed_ids, timed = [], []
        new = existing
        for i in range(args.messages):
            if i % 5 == 0:  # 20 % new customers
                customer, new = new, new + 1
            else:
                customer = rng.randrange(existing)
            mid, raw = deliveries.build(customer, existing + i)
            timed_ids.append(mid)
            timed.append(raw)
        assert len(set(timed_ids)) == len(timed_ids)

        warm_run = await _send(port, warm, args.concurrency)
        assert all(s == 200 for s in warm_run.statuses), sorted(set(warm_run.statuses))
        await asyncio.sleep(0.5)
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            profiler = subprocess.Popen(
                [shutil.which("py-spy") or "py-spy", "record", "-p", str(proc.pid), "-r", "250", "-f", "raw",
                 "-o", str(Path(args.profile) / f"{kind}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1.0)
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        run = await _send(port, timed, args.concurrency)
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
        stored, distinct, contacts = await _count(settings.effective_database_url, inbox["id"])
        n = args.messages
        expected = existing + n
        return {
            "channel": kind, "messages": n, "ok": sum(s == 200 for s in run.statuses),
            "statuses": sorted(set(run.statuses)), "seconds": round(elapsed, 2),
            "msg_per_s": round(n / elapsed, 1), "server_cpu_ms_per_msg": round(cpu / n * 1000, 3),
            "server_cpu_busy": round(cpu / elapsed, 2),
            "latency_ms": {"p50": round(statistics.median(run.latencies) * 1000, 1),
                           "p99": round(_pct(run.latencies, 0.99) * 1000, 1),
                           "max": round(max(run.latencies) * 1000, 1)},
            "stored": stored, "distinct_external_ids": distinct, "expected": expected,
            "exactly_once": stored == distinct == expected, "contacts": contacts,
            "expected_contacts": existing + (n + 4) // 5,
        }
    finally:
        if profiler is not None and profiler.poll() is None:
            profiler.kill()
        stop_server(proc)
        if dbname:
            admin = create_async_engine(args.database_url, isolation_level="AUTOCOMMIT")
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
            await admin.dispose()
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)


def _table(results: list[dict[str, Any]]) -> str:
    lines = ["| channel | msg/s | server CPU per message | p50 | p99 | stored exactly once |",
             "|---|---:|---:|---:|---:|---|"]
    for r in results:
        once = (f"yes ({r['stored']:,} = {r['expected']:,})" if r["exactly_once"] and r["ok"] == r["messages"]
                else f"**no** ({r['stored']} stored, {r['distinct_external_ids']} distinct, {r['expected']} expected, "
                     f"{r['ok']}/{r['messages']} answered 200)")
        lines.append(f"| {r['channel']} | {r['msg_per_s']:,.0f} | {r['server_cpu_ms_per_msg']:.2f} ms | "
                     f"{r['latency_ms']['p50']:.1f} ms | {r['latency_ms']['p99']:.1f} ms | {once} |")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for kind in args.channels.split(","):
        result = await bench_channel(kind.strip(), args)
        print(orjson.dumps(result).decode(), flush=True)
        results.append(result)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", default=",".join(KINDS), help="comma-separated channel kinds")
    parser.add_argument("--messages", type=int, default=3000, help="timed deliveries per channel")
    parser.add_argument("--customers", type=int, default=300, help="existing customers (one warm-up delivery each)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL maintenance database (e.g. .../postgres): a fresh database is created "
                             "on that server per channel and dropped afterwards; default: SQLite")
    parser.add_argument("--profile", default="", help="directory for py-spy raw profiles of each timed run")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()
    if args.customers < 1 or args.messages < 1:
        parser.error("--customers and --messages must be at least 1")
    print(machine())
    print("load average before:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    out = asyncio.run(main(args))
    print(_table(out))
