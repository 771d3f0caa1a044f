"""The machine's bare limit, for reading the other figures: a minimal Starlette endpoint that
inserts one row into SQLite (WAL, synchronous=NORMAL, like Swarmdesk) per request, served by the
same uvicorn, driven by the same load generator.

  python -m bench.baseline --messages 5000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from bench.common import RawConnection, cpu_seconds, machine

APP = '''
import sqlite3, sys
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
db = sqlite3.connect(sys.argv[1], isolation_level=None, check_same_thread=False)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS m (id INTEGER PRIMARY KEY, body TEXT)")
async def ingest(request):
    body = await request.body()
    cur = db.execute("INSERT INTO m (body) VALUES (?)", (body.decode(),))
    return JSONResponse({"id": cur.lastrowid})
async def ready(request):
    return JSONResponse({"ok": True})
app = Starlette(routes=[Route("/ingest", ingest, methods=["POST"]), Route("/readyz", ready)])
'''


async def main(n: int, concurrency: int, port: int = 8780) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="swarmdesk-baseline-"))
    (tmp / "app.py").write_text(APP)
    proc = subprocess.Popen([sys.executable, "-c",
                             f"import sys; sys.argv=['x', {str(tmp / 'b.db')!r}]; sys.path.insert(0, {str(tmp)!r});"
                             f"import uvicorn, app; uvicorn.run(app.app, port={port}, log_level='warning')"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        body = orjson.dumps({"message_id": "x", "contact": {"source_id": "c"}, "content": "hello"})
        raw = (f"POST /ingest HTTP/1.1\r\nHost: b\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\n\r\n").encode() + body
        conns = [RawConnection("127.0.0.1", port) for _ in range(concurrency)]
        it = iter(range(n))

        async def run(conn: RawConnection) -> None:
            for _ in it:
                assert await conn.request(raw) == 200

        c0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        await asyncio.gather(*(run(c) for c in conns))
        dt, dc = time.perf_counter() - t0, cpu_seconds(proc.pid) - c0
        rows = sqlite3.connect(tmp / "b.db").execute("SELECT count(*) FROM m").fetchone()[0]
        return {"requests": n, "rows": rows, "req_per_s": round(n / dt, 1),
                "server_cpu_ms_per_req": round(dc / n * 1000, 3)}
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(machine())
    print(orjson.dumps(asyncio.run(main(args.messages, args.concurrency)), option=orjson.OPT_INDENT_2).decode())
