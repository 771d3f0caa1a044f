"""Inbound throughput and inbound -> agent-socket latency through the API channel.

Each message is signed (Standard Webhooks), stored, routed to its conversation (which belongs to
a team) and delivered to the WebSocket of every agent of that team. Server CPU is read from
/proc for the server processes only; the load generator and the socket clients run in their own
processes.

  python -m bench.inbound --backend sqlite --processes 1 --messages 5000 --concurrency 32
  python -m bench.inbound --backend postgres --processes 2 --messages 5000 --concurrency 32
  python -m bench.inbound --backend sqlite --rate 200 --sockets 1000 --teams 20 --seconds 20 --warmup 3

Latency runs start once the servers are quiet after the sockets connected (each connection records
the agent's presence), after ``--warmup`` seconds of the same load that are not measured; the socket
clients (``bench/wsclient.py`` unless ``--client websockets``) run without the garbage collector (the
instrument must not pause) and ack once a second as the workspace's realtime.js does
(``--ack-interval``, 0 for never); ``--timeline`` prints p50/p99/max per second of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
import websockets
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench import wsclient
from bench.common import (
    RawConnection,
    cpu_seconds,
    machine,
    seed,
    signed_request,
    start_server,
    stop_server,
)
from swarmdesk.config import Settings

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14")


def _socket_worker(urls: list[tuple[str, str, int]], ready: mp.Queue, results: mp.Queue, stop: mp.Event,
                   client: str = "lean", ack_interval: float | None = 1.0) -> None:
    """Connects agent sockets and records, per delivered message.created, receive - send time."""

    async def run() -> None:
        latencies: list[tuple[float, float]] = []  # (sent at, latency)
        frames = acks = 0

        def on_frame(raw: bytes, now: float, sample: bool) -> None:
            nonlocal frames
            frames += raw.count(b'"content":"t=')  # measured messages (not the warm-up's)
            if not sample:
                return  # every socket receives; one in ten measures (keeps client CPU low)
            for event in orjson.loads(raw).get("events", ()):
                if event["type"] == "message.created":
                    content = event["message"]["content"]
                    if content.startswith("t="):
                        sent = float(content[2:].split(" ", 1)[0])
                        latencies.append((sent, now - sent))

        async def one(ws_url: str, queue_id: str, last_id: int, sample: bool) -> None:
            nonlocal acks
            url = f"{ws_url}/api/v1/realtime/ws?queue_id={queue_id}&last_event_id={last_id}"
            if client == "lean":
                sock = await wsclient.connect(url, lambda raw, now: on_frame(raw, now, sample),
                                              ack_interval=ack_interval)
                ready.put(1)
                try:
                    await sock.closed
                finally:
                    acks += sock.acks
                    sock.transport.close()
                return
            async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
                ready.put(1)
                # No wait_for per frame (in 3.11 it makes a task each time): run() cancels us.
                async for raw in ws:
                    on_frame(raw.encode(), time.time(), sample)

        # The measuring instrument must not pause: no collector runs while frames are being timed
        # (a full collection over 500 connections' objects stalled the reads for 0.2-0.4 s).
        gc.disable()
        tasks = [asyncio.create_task(one(*u, sample=(i % 10 == 0))) for i, u in enumerate(urls)]
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        results.put((frames, latencies, acks))

    asyncio.run(run())


async def _database(backend: str) -> tuple[Settings, dict[str, str], str | None]:
    data = Path(tempfile.mkdtemp(prefix="swarmdesk-bench-"))
    env = {"SWARMDESK_DATA_DIR": str(data), "SWARMDESK_SECRET_KEY": "b" * 40, "SWARMDESK_LOG_LEVEL": "WARNING",
           "SWARMDESK_ENV": "dev"}
    dbname = None
    url = ""
    if backend == "postgres":
        dbname = f"swarmdesk_bench_{uuid.uuid4().hex[:8]}"
        engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{dbname}"'))
        await engine.dispose()
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + dbname
        env["SWARMDESK_DATABASE_URL"] = url
    return Settings(data_dir=data, database_url=url, secret_key="b" * 40), env, dbname


async def _drop(dbname: str | None) -> None:
    if dbname:
        engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        await engine.dispose()


async def main(args: argparse.Namespace) -> dict:
    settings, env, dbname = await _database(args.backend)
    if args.processes > 1 or args.redis:
        env["SWARMDESK_REDIS_URL"] = REDIS
        env["SWARMDESK_REDIS_PREFIX"] = f"bench{uuid.uuid4().hex[:6]}"
    fx = await seed(settings, agents=max(args.sockets, 1), teams=args.teams)
    ports = [8790 + i for i in range(args.processes)]
    procs = [start_server(env, p) for p in ports]
    result: dict = {"backend": args.backend, "processes": args.processes, "sockets": args.sockets, "client": args.client,
                    "teams": args.teams}
    try:
        admin_headers = await _admin_headers(ports[0], fx)
        # One conversation per contact, each owned by a team (round robin).
        contacts = args.contacts
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}", timeout=30) as client:
            for c in range(contacts):
                raw = signed_request(fx.inbox_public_key, fx.inbox_secret,
                                     {"message_id": f"setup-{c}", "contact": {"source_id": f"cust-{c}"},
                                      "content": "hello"}, "x")
                conn = RawConnection("127.0.0.1", ports[0])
                assert await conn.request(raw) == 200
                conn.close()
            page = (await client.get("/api/v1/conversations", params={"limit": 200}, headers=admin_headers)).json()
            convs = page["items"]
            while page["next_cursor"]:
                page = (await client.get("/api/v1/conversations", params={"limit": 200, "cursor": page["next_cursor"]},
                                         headers=admin_headers)).json()
                convs += page["items"]
            for i, conv in enumerate(convs):
                r = await client.patch(f"/api/v1/conversations/{conv['id']}", headers=admin_headers,
                                       json={"team_id": fx.team_ids[i % len(fx.team_ids)]})
                assert r.status_code == 200, r.text

            # Register every agent's queue (spread over the server processes) and connect sockets.
            urls = []
            for a, (token, _team) in enumerate(fx.agent_tokens[:args.sockets]):
                port = ports[a % len(ports)]
                r = await client.post(f"http://127.0.0.1:{port}/api/v1/realtime/register",
                                      headers={"authorization": f"Bearer {token}"})
                body = r.json()
                urls.append((f"ws://127.0.0.1:{port}", body["queue_id"], body["last_event_id"]))

        ready, results, stop = mp.Queue(), mp.Queue(), mp.Event()
        workers = []
        if urls:
            chunks = [urls[i::args.socket_procs] for i in range(args.socket_procs)]
            workers = [mp.Process(target=_socket_worker, args=(chunk, ready, results, stop, args.client,
                                                                      args.ack_interval or None))
                       for chunk in chunks]
            for w in workers:
                w.start()
            for _ in urls:
                ready.get(timeout=120)
            # Connecting 1,000 agents is work for the servers (each connection records presence):
            # measure the steady state, once they are quiet, and say how long that took.
            t_settle = time.perf_counter()
            result["settled"] = await _settle(procs)
            result["settle_seconds"] = round(time.perf_counter() - t_settle, 2)

        n = args.messages if not args.rate else int(args.rate * args.seconds)
        conns = [RawConnection("127.0.0.1", ports[i % len(ports)]) for i in range(args.concurrency)]
        statuses: list[int] = []

        def request_for(i: int, prefix: str) -> bytes:
            return signed_request(fx.inbox_public_key, fx.inbox_secret,
                                  {"message_id": f"{prefix}-{i}", "contact": {"source_id": f"cust-{i % contacts}"},
                                   "content": f"{prefix}={time.time():.6f} where is my parcel? order #{i}"}, "bench")

        async def load(count: int, prefix: str, into: list[int]) -> None:
            start, it = time.perf_counter(), iter(range(count))

            async def run(conn: RawConnection) -> None:
                for i in it:
                    if args.rate:
                        delay = start + i / args.rate - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    into.append(await conn.request(request_for(i, prefix)))

            await asyncio.gather(*(run(c) for c in conns))

        if args.warmup and args.rate:
            # The same load, unmeasured (content "w=…"): the pools and caches a steady state has.
            warm: list[int] = []
            await load(int(args.rate * args.warmup), "w", warm)
            result["warmup"] = {"seconds": args.warmup, "messages": len(warm), "ok": sum(s == 200 for s in warm)}
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        t0 = time.perf_counter()
        await load(n, "t", statuses)
        elapsed = time.perf_counter() - t0
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
        frames, latencies, acks_sent = 0, [], 0
        if workers:
            await asyncio.sleep(1.0)  # let the last deliveries land
            stop.set()
            for _ in workers:
                f, lat, a = results.get(timeout=60)
                frames += f
                latencies += lat
                acks_sent += a
            for w in workers:
                w.join(10)
        result.update({
            "messages": n, "ok": sum(s == 200 for s in statuses), "seconds": round(elapsed, 2),
            "msg_per_s": round(n / elapsed, 1), "server_cpu_ms_per_msg": round(cpu / n * 1000, 2),
            "socket_deliveries": frames, "deliveries_per_s": round(frames / elapsed, 1),
        })
        if workers:
            result["acks"] = acks_sent
        if latencies and args.timeline:
            # p50/p99/max per second of the run, by when the message was sent: growth means a backlog.
            start = min(sent for sent, _ in latencies)
            by_second: dict[int, list[float]] = {}
            for sent, lat in latencies:
                by_second.setdefault(int(sent - start), []).append(lat)
            result["timeline_ms"] = {str(s): [round(statistics.median(v) * 1000, 1),
                                         round(sorted(v)[int(len(v) * 0.99) - 1] * 1000, 1), round(max(v) * 1000, 1)]
                                     for s, v in sorted(by_second.items())}
        if latencies:
            latencies = sorted(lat for _, lat in latencies)
            result["latency_ms"] = {"p50": round(statistics.median(latencies) * 1000, 1),
                                    "p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
                                    "max": round(latencies[-1] * 1000, 1)}
        return result
    finally:
        for p in procs:
            stop_server(p)
        await _drop(dbname)


async def _settle(procs: list, quiet: float = 0.05, timeout: float = 60.0) -> bool:  # noqa: ANN001
    """Waits until the server processes use under ``quiet`` of a core over half a second; False
    if they never did within ``timeout`` (the run then measures a busy server, and says so)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        before = sum(cpu_seconds(p.pid) for p in procs)
        await asyncio.sleep(0.5)
        if (sum(cpu_seconds(p.pid) for p in procs) - before) / 0.5 < quiet * len(procs):
            return True
    return False


async def _admin_headers(port: int, fx) -> dict[str, str]:  # noqa: ANN001
    # The first agent token is enough to read; assignment needs write scope, which agents have.
    return {"authorization": f"Bearer {fx.agent_tokens[0][0]}"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--redis", action="store_true", help="use Redis even with one process")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--sockets", type=int, default=0)
    parser.add_argument("--socket-procs", type=int, default=2)
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second (0: as fast as possible)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--client", choices=["lean", "websockets"], default="lean",
                        help="socket client: bench.wsclient (little CPU per frame) or the websockets library")
    parser.add_argument("--ack-interval", type=float, default=1.0,
                        help="seconds between a lean socket's acks, as realtime.js (0: never ack)")
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="seconds of the same load before measuring (with --rate)")
    parser.add_argument("--timeline", action="store_true", help="latency p50/p99/max per second of the run")
    args = parser.parse_args()
    print(machine())
    print(orjson.dumps(asyncio.run(main(args)), option=orjson.OPT_INDENT_2).decode())
