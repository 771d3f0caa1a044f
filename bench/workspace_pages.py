"""Server time of the inbox and conversation-view requests on the large workspace that
``bench.seed_workspace`` builds (1,000,000 conversations, 10,000,000 messages; issue #4's target:
p95 ≤ 50 ms).

    .venv/bin/python -m bench.workspace_pages [--url postgresql+asyncpg://postgres@127.0.0.1:5432/swarmdesk_bench_ws]
        [--requests 300] [--warmup 20] [--as agent,admin] [--explain] [--wait-quiet 90] [path ...]
    .venv/bin/python -m bench.workspace_pages --as agent --requests 100 --profile /tmp/prof "/app/conversations/{conversation_id}"

The real app (``swarmdesk.main.create_app`` with Settings pointing at the database, no worker) is
served by uvicorn in this process, on a free loopback port, with the same HTTP stack as
``swarmdesk serve`` (httptools, uvloop). The bench signs in through ``POST /api/v1/auth/login``
(session cookie) as the admin and as an agent (the first agent by id: two teams), then requests each
path ``--requests`` times after ``--warmup`` requests that are not counted, one at a time over one
keep-alive connection.

**Server time** is the duration the app's own access log records for the request (the "ms" of
``AccessLogAndHeaders`` in main.py: from the request entering the outermost middleware to the last
byte of the response handed to the server), captured with a logging handler and matched to the
response by its X-Request-Id. Why uvicorn in-process rather than httpx's ASGITransport: both give
the same in-app duration, but only a real server runs the request through the HTTP parser and
socket writes production uses, so the client-side time (also reported, loopback) is meaningful too;
and since requests go one at a time, the client code in this process never runs while the server is
working on a request, so it does not inflate the server time. (``--concurrency`` > 1 measures under
load instead: then the server time includes waiting for the event loop.)

Also per request: the SQL statements the app ran, timed (SQLAlchemy cursor events, attributed to the
request through a context variable), so the table shows how much of the server time is waiting for
the database; and the CPU time this process spent on the request (the app's own work, which other
processes' load on the machine does not inflate the way it inflates wall time). Per path: CPU use
of the whole machine, of the PostgreSQL backends of the bench database, of this process and of
everything else (other people's test suites on a shared machine), and the load average.
``--wait-quiet N`` waits up to N seconds before each measured run until the machine is idle.
``--explain`` runs every SELECT of each path once more under EXPLAIN (ANALYZE, BUFFERS), with the
parameters of its slowest run, to set the database's own execution time and buffers beside the time
the app waited for it, and prints the plans of the statements taking ``--explain-min-ms`` or more.
``--profile DIR`` writes cProfile stats of each measured run (client included; slows everything).

Paths may contain ``{me}`` (the signed-in user's id) and ``{conversation_id}``: a conversation the
signed-in user may see, drawn in turn from four pools of 250: old (created more than 540 days ago),
recent (active in the last 7 days), open, and long (50 messages or more); the table reports the
server p95 per pool for those paths. Default paths: the conversation list and conversation view of
the REST API, plus the inbox API and the HTML workspace pages if they answer 200 (they were being
built when this was written; a path that does not answer 200 is skipped with its status). The data
is warm: the database (5 GB) fits in the OS page cache, not in PostgreSQL's 128 MB of shared buffers.

Before measuring, the database is migrated to head if it is behind (``--no-migrate`` to skip), and
tables or columns the models have but the database lacks (a migration edited in place after the
seed) are listed: re-seed then. Signing in adds a browser_sessions row per run; nothing else is
written.

Results, 2026-11-24 01:31 UTC, 2 cores (AMD EPYC), 23 GiB, Python 3.11.7, PostgreSQL 15, code
1692439 plus other engineers' uncommitted work, ``--wait-quiet 90 --explain``, 300 requests per row
(the view=all rows: a second run at 01:40). Server time in ms; CPU = this process's CPU per
request. Other processes used 0.0-0.06 cores during most rows, 0.4-1 core during the open lists,
the agent's /app and the admin's conversation page. The admin's "mine" views are empty (nobody
assigns to the admin), so they are left out:

| path | as | p50 | p95 | p99 | CPU p50 | SQL/req | target |
|---|---|---:|---:|---:|---:|---:|---|
| /api/v1/conversations?status=open&limit=25 | agent / admin | 6.9 / 5.8 | 10.8 / 8.3 | 13.8 / 9.8 | 5.9 / 5.1 | 5 | met |
| /api/v1/conversations?status=open&assignee_id={me}&limit=25 | agent | 10.2 | 20.9 | 62.2 | 8.4 | 5 | met |
| /api/v1/conversations/{conversation_id} | agent / admin | 5.2 / 4.6 | 7.4 / 5.6 | 8.7 / 6.8 | 4.3 / 3.9 | 5 | met |
| /api/v1/conversations/{conversation_id}/messages?limit=50 | agent / admin | 8.8 / 9.3 | 17.1 / 17.4 | 20.7 / 19.7 | 6.6 / 7.4 | 7 | met |
| /api/v1/inbox/conversations?view=mine | agent | 15.3 | 19.6 | 22.7 | 13.5 | 7 | met |
| /api/v1/inbox/conversations?view=all | agent / admin | 8.8 / 8.3 | 13.2 / 12.9 | 15.8 / 15.3 | 7.6 / 7.3 | 7 | met |
| /api/v1/inbox/counts | agent / admin | 29.0 / 18.2 | 41.6 / 27.9 | 53.1 / 38.5 | 17.1 / 14.2 | 7 | met |
| /app (view "mine") | agent | 23.0 | 39.1 | 54.6 | 20.0 | 11 | met |
| /app?view=all | agent / admin | 19.1 / 14.0 | 28.6 / 22.7 | 33.6 / 25.6 | 16.3 / 12.1 | 11 | met |
| /app/conversations/{conversation_id} | agent / admin | 35.4 / 30.0 | **56.2 / 50.0** | 69.4 / 74.3 | 26.1 / 21.8 | 37.6 | **not met** |

Every statement of these paths executes in under 0.3 ms in PostgreSQL (EXPLAIN), except the inbox
counts' capped window scans (1.3-2.5 ms each, 783-3,314 buffers for the agent): the server time is
the app's CPU and its round trips, not the database. The conversation page makes 37.6 round trips,
16 of them from ``conversations.reply.reply_channels`` (per inbox: the contact's identities and the
contact, which ``session.get`` loads again each time because nothing keeps it alive between calls)
and 4 from listing users and teams twice. With other people's test suites taking 1-1.5 of the 2
cores, every p95 above doubles or triples (the counts reach 63-105 ms, the conversation page 70-88).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import cProfile
import logging
import os
import pstats
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make ``bench`` and ``swarmdesk`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import asyncpg
import httpx
import orjson
import uvicorn
from alembic.script import ScriptDirectory
from sqlalchemy import event

from bench.common import machine
from bench.seed_workspace import ADMIN_EMAIL, DEFAULT_URL, PASSWORD, SECRET_KEY, plain_dsn
from swarmdesk.config import Settings
from swarmdesk.core.migrate import alembic_config, upgrade
from swarmdesk.core.models import Base
from swarmdesk.main import create_app

DEFAULT_PATHS = [
    "/api/v1/conversations?status=open&limit=25",
    "/api/v1/conversations?status=open&assignee_id={me}&limit=25",
    "/api/v1/conversations/{conversation_id}",
    "/api/v1/conversations/{conversation_id}/messages?limit=50",
]
# Measured only if they answer 200 (they are being written).
OPTIONAL_PATHS = [
    "/api/v1/inbox/conversations?view=mine",
    "/api/v1/inbox/conversations?view=all",  # "mine" is empty for an admin nobody assigns to
    "/api/v1/inbox/counts",
    "/app",  # its default view is "mine"
    "/app?view=all",
    "/app/conversations/{conversation_id}",
]
POOLS = {
    "old": "c.created_at < now() - interval '540 days'",
    "recent": "c.last_activity_at > now() - interval '7 days'",
    "open": "c.status = 'open'",
    "long": "c.message_count >= 50",
}
POOL_SIZE = 250
TARGET_P95_MS = 50.0

# The current request's SQL timings: set per request by _Attribute, appended to by the cursor events.
_STATEMENTS: contextvars.ContextVar[list[tuple[str, Any, float]] | None] = contextvars.ContextVar(
    "bench_statements", default=None)


class _Attribute:
    """ASGI wrapper: gives each request its own list of SQL timings, filed under its X-Request-Id with
    the CPU time this process spent while the app handled it (one request at a time: that is the
    request's own CPU)."""

    def __init__(self, app: Any, sink: dict[str, tuple[list[tuple[str, Any, float]], list[float]]]) -> None:
        self.app, self.sink = app, sink

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        statements: list[tuple[str, Any, float]] = []
        cpu: list[float] = []
        _STATEMENTS.set(statements)

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                for key, value in message.get("headers", []):
                    if key == b"x-request-id":
                        self.sink[value.decode()] = (statements, cpu)
            await send(message)

        started = time.process_time()
        try:
            await self.app(scope, receive, sending)
        finally:
            cpu.append((time.process_time() - started) * 1000)


class _AccessLog(logging.Handler):
    """Keeps the ms of each access-log line, by request id."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.ms: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        request_id = getattr(record, "request_id", None)
        if request_id is not None and hasattr(record, "ms"):
            self.ms[request_id] = float(record.ms)  # type: ignore[attr-defined]


def _hook_sql(engine: Any) -> None:
    sync = engine.sync_engine

    @event.listens_for(sync, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        conn.info.setdefault("bench_t0", []).append(time.perf_counter())

    @event.listens_for(sync, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        t0 = conn.info["bench_t0"].pop()
        statements = _STATEMENTS.get()
        if statements is not None:
            statements.append((statement, parameters, (time.perf_counter() - t0) * 1000))


_IN_LIST = re.compile(r"IN \((?:\$\d+(?:::[A-Z]+)?(?:, )?)+\)")


def _normalize(statement: str) -> str:
    """One key per statement shape: whitespace folded, IN-lists of any length alike."""
    return _IN_LIST.sub("IN (…)", " ".join(statement.split()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _machine_busy(seconds: float) -> float:
    """Share of all cores busy over the next ``seconds``."""
    def sample() -> tuple[float, float]:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields) - fields[3] - fields[4], sum(fields)
    b0, t0 = sample()
    time.sleep(seconds)
    b1, t1 = sample()
    return (b1 - b0) / max(1e-9, t1 - t0)


async def wait_quiet(max_seconds: float, threshold: float) -> str:
    """Wait (up to max_seconds) until other processes leave the machine mostly idle; say how it went."""
    if max_seconds <= 0:
        return ""
    deadline = time.monotonic() + max_seconds
    while True:
        busy = await asyncio.to_thread(_machine_busy, 2.0)
        if busy <= threshold:
            return f"quiet ({busy:.0%} busy)"
        if time.monotonic() >= deadline:
            return f"still {busy:.0%} busy after waiting {max_seconds:.0f} s"


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(len(values) * q + 0.5) - 1))]


class CpuWindow:
    """Machine-wide CPU use (all cores), that of the PostgreSQL backends serving the bench database,
    of this process, and of everything else, over a window (from /proc)."""

    def __init__(self, pg_pids: set[int]) -> None:
        self.pg_pids = pg_pids
        self.t0 = time.perf_counter()
        self.machine0 = self._machine()
        self.pg0 = self._postgres()
        self.own0 = time.process_time()
        self.load0 = os.getloadavg()

    @staticmethod
    def _machine() -> tuple[float, float]:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    def _postgres(self) -> dict[int, float]:
        ticks, out = os.sysconf("SC_CLK_TCK"), {}
        for pid in self.pg_pids:
            try:
                f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[pid] = (int(f[11]) + int(f[12])) / ticks
        return out

    def result(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        busy1, total1 = self._machine()
        busy = (busy1 - self.machine0[0]) / max(1e-9, total1 - self.machine0[1])
        pg1 = self._postgres()
        pg = sum(pg1[p] - self.pg0.get(p, 0.0) for p in pg1) / wall
        own = (time.process_time() - self.own0) / wall
        cores = os.cpu_count() or 1
        return {"machine_busy": round(busy, 3), "cores": cores, "bench_postgres_cores": round(pg, 3),
                "bench_process_cores": round(own, 3),
                "other_cores": round(max(0.0, busy * cores - pg - own), 3),
                "loadavg_before": [round(x, 2) for x in self.load0],
                "loadavg_after": [round(x, 2) for x in os.getloadavg()]}


@dataclass
class Principal:
    label: str
    email: str
    user_id: int = 0
    role: str = ""
    team_ids: list[int] = field(default_factory=list)
    pools: dict[str, list[int]] = field(default_factory=dict)
    client: httpx.AsyncClient | None = None


@dataclass
class Measure:
    who: str
    template: str
    statuses: list[int] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    client_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    sql_count: list[int] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    by_pool: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statements: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    slowest: dict[str, tuple[float, str, Any]] = field(default_factory=dict)  # normalized -> (ms, SQL, params)
    seconds: float = 0.0
    skipped: str = ""
    quiet: str = ""
    cpu: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        if self.skipped:
            return {"as": self.who, "path": self.template, "skipped": self.skipped}
        s = self.server_ms
        n = len(s)
        return {
            "as": self.who, "path": self.template, "requests": n,
            "ok": sum(1 for x in self.statuses if x == 200), "statuses": sorted(set(self.statuses)),
            "server_ms": {"p50": round(statistics.median(s), 2), "p95": round(_pct(s, 0.95), 2),
                          "p99": round(_pct(s, 0.99), 2), "max": round(max(s), 2), "mean": round(statistics.fmean(s), 2)},
            "server_cpu_ms": {"p50": round(statistics.median(self.cpu_ms), 2),
                              "p95": round(_pct(self.cpu_ms, 0.95), 2)},
            "client_ms_p50": round(statistics.median(self.client_ms), 2),
            "requests_per_s": round(n / self.seconds, 1),
            "sql_per_request": round(statistics.fmean(self.sql_count), 1),
            "sql_ms_p50": round(statistics.median(self.sql_ms), 2),
            "sql_ms_p95": round(_pct(self.sql_ms, 0.95), 2),
            "response_bytes": round(statistics.fmean(self.sizes)),
            "p95_by_pool": {k: round(_pct(v, 0.95), 2) for k, v in self.by_pool.items()},
            "cpu": self.cpu, "machine_before": self.quiet,
        }


async def check_schema(url: str, migrate: bool) -> list[str]:
    """Migrate to head if behind; list what the models have and the database lacks."""
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        current = await conn.fetchval("SELECT version_num FROM alembic_version")
        heads = ScriptDirectory.from_config(alembic_config(url)).get_heads()
        if current not in heads:
            if not migrate:
                return [f"database at {current}, code head {heads}: run without --no-migrate, or re-seed"]
            print(f"database at {current}, code head {heads}: migrating …", flush=True)
            t0 = time.perf_counter()
            await asyncio.to_thread(upgrade, url)
            print(f"  migrated in {time.perf_counter() - t0:.1f} s", flush=True)
        rows = await conn.fetch("SELECT table_name, column_name FROM information_schema.columns "
                                "WHERE table_schema = 'public'")
    finally:
        await conn.close()
    have: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        have[r["table_name"]].add(r["column_name"])
    problems = []
    for table in Base.metadata.sorted_tables:
        if table.name not in have:
            problems.append(f"table {table.name} is missing")
        else:
            problems += [f"column {table.name}.{c.name} is missing" for c in table.columns if c.name not in have[table.name]]
    return problems


async def resolve(conn: asyncpg.Connection, principal: Principal, seed: int) -> None:
    row = await conn.fetchrow("SELECT id, role, account_id FROM users WHERE email = $1", principal.email)
    if row is None:
        raise SystemExit(f"no user {principal.email}: seed the database with bench.seed_workspace first")
    principal.user_id, principal.role = row["id"], row["role"]
    principal.team_ids = [r["team_id"] for r in await conn.fetch(
        "SELECT team_id FROM team_members WHERE user_id = $1 ORDER BY team_id", principal.user_id)]
    # The visibility rule of conversations.service.visible_to, in SQL.
    participating = "EXISTS (SELECT 1 FROM conversation_participants p WHERE p.conversation_id = c.id AND p.user_id = $2)"
    if principal.role in ("admin", "supervisor"):
        visible = "($2::bigint IS NOT NULL AND $3::bigint[] IS NOT NULL)"
    elif principal.role == "expert":
        visible = f"(c.assignee_id = $2 OR {participating}) AND $3::bigint[] IS NOT NULL"
    else:
        visible = f"(c.team_id IS NULL OR c.team_id = ANY($3::bigint[]) OR c.assignee_id = $2 OR {participating})"
    for name, condition in POOLS.items():
        ids = await conn.fetch(
            f"SELECT c.id FROM conversations c WHERE c.account_id = $1 AND {condition} AND {visible} "
            f"ORDER BY hashint8(c.id + $4) LIMIT {POOL_SIZE}", row["account_id"], principal.user_id,
            principal.team_ids, seed)
        principal.pools[name] = [r["id"] for r in ids]


def _expand(template: str, principal: Principal, rng: random.Random, turn: int) -> tuple[str, str | None]:
    path, pool = template.replace("{me}", str(principal.user_id)), None
    if "{conversation_id}" in path:
        names = [n for n in POOLS if principal.pools.get(n)]
        pool = names[turn % len(names)]
        path = path.replace("{conversation_id}", str(rng.choice(principal.pools[pool])))
    return path, pool


async def measure_path(principal: Principal, template: str, args: argparse.Namespace, access: _AccessLog,
                       sink: dict[str, tuple[list[tuple[str, Any, float]], list[float]]], optional: bool,
                       pg_pids: set[int]) -> Measure:
    assert principal.client is not None
    m = Measure(principal.label, template)
    rng = random.Random(f"{args.seed}:{principal.label}:{template}")
    probe_path, _ = _expand(template, principal, rng, 0)
    probe = await principal.client.get(probe_path)
    if probe.status_code != 200:
        m.skipped = f"{probe_path} answered {probe.status_code}" + ("" if optional else f": {probe.text[:300]}")
        return m
    for i in range(args.warmup):
        await principal.client.get(_expand(template, principal, rng, i)[0])
    m.quiet = await wait_quiet(args.wait_quiet, args.quiet_threshold)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    turns = iter(range(args.requests))
    cpu = CpuWindow(pg_pids)
    t_start = time.perf_counter()

    async def worker(client: httpx.AsyncClient) -> None:
        for i in turns:
            path, pool = _expand(template, principal, rng, i)
            t0 = time.perf_counter()
            r = await client.get(path)
            client_ms = (time.perf_counter() - t0) * 1000
            request_id = r.headers["x-request-id"]
            server = access.ms.pop(request_id)
            statements, cpu_ms = sink.pop(request_id, ([], [0.0]))
            m.cpu_ms.append(cpu_ms[0] if cpu_ms else 0.0)
            m.statuses.append(r.status_code)
            m.server_ms.append(server)
            m.client_ms.append(client_ms)
            m.sizes.append(len(r.content))
            m.sql_count.append(len(statements))
            m.sql_ms.append(sum(ms for _, _, ms in statements))
            if pool is not None:
                m.by_pool[pool].append(server)
            for statement, params, ms in statements:
                key = _normalize(statement)
                m.statements[key].append(ms)
                if ms > m.slowest.get(key, (-1.0, "", None))[0]:
                    m.slowest[key] = (ms, statement, params)

    clients = [principal.client] + [httpx.AsyncClient(base_url=str(principal.client.base_url), timeout=120,
                                                      cookies=principal.client.cookies)
                                    for _ in range(args.concurrency - 1)]
    try:
        await asyncio.gather(*(worker(c) for c in clients))
    finally:
        for c in clients[1:]:
            await c.aclose()
    m.seconds = time.perf_counter() - t_start
    m.cpu = cpu.result()
    if profiler is not None:
        profiler.disable()
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9]+", "_", template).strip("_")
        out = Path(args.profile) / f"{principal.label}-{slug}.pstats"
        profiler.dump_stats(out)
        print(f"profile of the measured requests (client included): {out}")
        pstats.Stats(str(out)).sort_stats("cumulative").print_stats(r"swarmdesk|jinja2|sqlalchemy/orm/(session|loading)", 30)
    return m


async def backend_pids(url: str) -> set[int]:
    """The PostgreSQL backends connected to the bench database (the app's pool)."""
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        return {r["pid"] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")}
    finally:
        await conn.close()


async def explain(url: str, m: Measure, min_ms: float) -> None:
    """Every SELECT the path ran, once more under EXPLAIN (ANALYZE, BUFFERS) with the parameters of its
    slowest run (the second of two runs, so the plan cache and catalog caches are warm): the database's
    own time next to what the app waited for. Plans of statements whose execution takes min_ms or more
    are printed."""
    n = max(1, len(m.server_ms))
    rows, plans = [], []
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        for key, times in sorted(m.statements.items(), key=lambda kv: -sum(kv[1])):
            _, statement, params = m.slowest[key]
            args = list(params) if isinstance(params, (list, tuple)) else []
            execution = planning = hit = read = None
            if statement.lstrip().upper().startswith("SELECT"):
                try:
                    for _ in range(2):
                        raw = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, *args)
                    doc = (orjson.loads(raw) if isinstance(raw, str) else raw)[0]
                    execution, planning = doc["Execution Time"], doc["Planning Time"]
                    hit, read = doc["Plan"].get("Shared Hit Blocks", 0), doc["Plan"].get("Shared Read Blocks", 0)
                    if execution >= min_ms:
                        text = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *args)
                        plans.append((key, args, "\n".join(r[0] for r in text)))
                except (asyncpg.PostgresError, asyncpg.exceptions.DataError, TypeError, ValueError) as exc:
                    execution = f"not explained: {type(exc).__name__}"
            rows.append((key, len(times) / n, statistics.fmean(times), _pct(times, 0.95), execution, planning, hit, read))
    finally:
        await conn.close()
    print(f"\n### {m.who} `{m.template}`: SQL per request ({n} requests)\n")
    print("| statement | runs/req | app ms mean | app ms p95 | EXPLAIN exec ms | plan ms | buffers hit/read |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key, runs, mean, p95, execution, planning, hit, read in rows:
        short = key[:120] + ("…" if len(key) > 120 else "")
        exec_s = f"{execution:.2f}" if isinstance(execution, float) else (execution or "—")
        plan_s = f"{planning:.2f}" if isinstance(planning, float) else "—"
        buffers = f"{hit}/{read}" if hit is not None else "—"
        print(f"| `{short}` | {runs:.1f} | {mean:.2f} | {p95:.2f} | {exec_s} | {plan_s} | {buffers} |")
    for key, args, plan in plans:
        print(f"\n`{key}`\n\nparameters {args!r}\n```\n{plan}\n```")


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| path | as | n | 200 | server p50 | p95 | p99 | max | CPU p50 | req/s | SQL/req | SQL ms p50 | "
             "client p50 | p95 old / recent / open / long | p95 ≤ 50 ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        if "skipped" in r:
            lines.append(f"| `{r['path']}` | {r['as']} | — | — | skipped: {r['skipped']} ||||||||||")
            continue
        s, pools = r["server_ms"], r["p95_by_pool"]
        by_pool = " / ".join(f"{pools[k]:.1f}" for k in POOLS if k in pools) or "—"
        lines.append(
            f"| `{r['path']}` | {r['as']} | {r['requests']} | {r['ok']} | {s['p50']:.1f} | **{s['p95']:.1f}** | "
            f"{s['p99']:.1f} | {s['max']:.1f} | {r['server_cpu_ms']['p50']:.1f} | {r['requests_per_s']:.0f} | "
            f"{r['sql_per_request']:.1f} | "
            f"{r['sql_ms_p50']:.1f} | {r['client_ms_p50']:.1f} | {by_pool} | "
            f"{'met' if s['p95'] <= TARGET_P95_MS and r['ok'] == r['requests'] else '**not met**'} |")
    return "\n".join(lines)


def code_version() -> str:
    """The commit, and how many files others have changed in the working tree (the app runs from it)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{head}" + (f" + {len(dirty)} changed or new files under src/" if dirty else "")


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    print(f"code: {code_version()}")
    problems = await check_schema(args.url, migrate=not args.no_migrate)
    for p in problems:
        print(f"warning: {p}")
    conn = await asyncpg.connect(plain_dsn(args.url))
    try:
        counts = await conn.fetchrow("SELECT (SELECT count(*) FROM conversations) AS c, "
                                     "(SELECT reltuples::bigint FROM pg_class WHERE relname = 'messages') AS m")
        print(f"database: {counts['c']:,} conversations, ~{counts['m']:,} messages; "
              f"{await conn.fetchval('SELECT pg_size_pretty(pg_database_size(current_database()))')}")
        agent_email = args.agent_email or await conn.fetchval(
            "SELECT u.email FROM users u WHERE u.role = 'agent' AND u.is_active "
            "AND EXISTS (SELECT 1 FROM team_members m WHERE m.user_id = u.id) ORDER BY u.id LIMIT 1")
        principals = [Principal(label, ADMIN_EMAIL if label == "admin" else agent_email)
                      for label in args.as_.split(",")]
        for p in principals:
            await resolve(conn, p, args.seed)
            print(f"{p.label}: {p.email} (user {p.user_id}, {p.role}, teams {p.team_ids}); conversation pools: "
                  + ", ".join(f"{k} {len(v)}" for k, v in p.pools.items()))
    finally:
        await conn.close()

    access = _AccessLog()
    http_log = logging.getLogger("swarmdesk.http")
    http_log.setLevel(logging.INFO)
    http_log.addHandler(access)
    http_log.propagate = False
    logging.getLogger().setLevel(logging.WARNING)
    sink: dict[str, tuple[list[tuple[str, Any, float]], list[float]]] = {}
    data = tempfile.mkdtemp(prefix="swarmdesk-ws-pages-")
    settings = Settings(database_url=args.url, secret_key=SECRET_KEY, data_dir=Path(data), run_worker=False,
                        log_level="WARNING", env="dev")
    app = create_app(settings, with_worker=False)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(_Attribute(app, sink), host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.05)
    _hook_sql(app.state.runtime.engine)
    results: list[dict[str, Any]] = []
    measures: list[Measure] = []
    try:
        for p in principals:
            p.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120)
            r = await p.client.post("/api/v1/auth/login", json={"email": p.email, "password": PASSWORD})
            if r.status_code != 200:
                raise SystemExit(f"login as {p.email} failed: {r.status_code} {r.text[:300]}")
        paths = [(t, False) for t in (args.paths or DEFAULT_PATHS)] + \
                ([] if args.paths else [(t, True) for t in OPTIONAL_PATHS])
        for template, optional in paths:
            for p in principals:
                m = await measure_path(p, template, args, access, sink, optional, await backend_pids(args.url))
                summary = m.summary()
                print(orjson.dumps(summary).decode(), flush=True)
                results.append(summary)
                if not m.skipped:
                    measures.append(m)
    finally:
        for p in principals:
            if p.client is not None:
                await p.client.aclose()
        server.should_exit = True
        await serving
    print()
    print(table(results))
    if args.explain:
        for m in measures:
            await explain(args.url, m, args.explain_min_ms)
    return results


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", help="paths to measure (default: the inbox and conversation view set)")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--requests", type=int, default=300, help="measured requests per path and user")
    parser.add_argument("--warmup", type=int, default=20, help="requests per path and user before measuring")
    parser.add_argument("--as", dest="as_", default="agent,admin", help="who signs in: agent, admin or both")
    parser.add_argument("--agent-email", default="", help="default: the first agent (by id) in a team")
    parser.add_argument("--concurrency", type=int, default=1, help="connections in flight (1: server time alone)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN (ANALYZE, BUFFERS) the slowest statements")
    parser.add_argument("--explain-min-ms", type=float, default=1.0,
                        help="print the plans of statements whose EXPLAIN execution time is at least this")
    parser.add_argument("--no-migrate", action="store_true", help="do not migrate the database to head first")
    parser.add_argument("--wait-quiet", type=float, default=0.0,
                        help="before each measured run, wait up to this many seconds for the machine to be idle")
    parser.add_argument("--quiet-threshold", type=float, default=0.25,
                        help="idle means at most this share of all cores busy (over 2 s)")
    parser.add_argument("--profile", default="",
                        help="directory for cProfile stats of each measured run (slows the server down)")
    args = parser.parse_args()
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    if not set(args.as_.split(",")) <= {"agent", "admin"}:
        parser.error("--as takes agent, admin or agent,admin")
    print(machine())
    print("load average before:", " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    try:
        import uvloop
        uvloop.run(main(args))
    except ImportError:
        asyncio.run(main(args))
    print("load average after:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    run()
