"""Quick gauge: inbound messages/s and server CPU per message (no sockets)."""

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.common import RawConnection, cpu_seconds, seed, signed_request, start_server, stop_server
from swarmdesk.config import Settings


async def main(n: int, concurrency: int) -> None:
    data = Path(tempfile.mkdtemp())
    settings = Settings(data_dir=data, secret_key="b" * 40)
    fx = await seed(settings, agents=1, teams=1)
    env = {"SWARMDESK_DATA_DIR": str(data), "SWARMDESK_SECRET_KEY": "b" * 40, "SWARMDESK_LOG_LEVEL": "WARNING"}
    proc = start_server(env, 8765)
    try:
        reqs = [signed_request(fx.inbox_public_key, fx.inbox_secret,
                               {"message_id": f"m{i}", "contact": {"source_id": f"c{i % 500}"}, "content": "hi"},
                               "127.0.0.1:8765") for i in range(n)]
        conns = [RawConnection("127.0.0.1", 8765) for _ in range(concurrency)]
        it = iter(reqs)
        statuses: list[int] = []

        async def run(conn: RawConnection) -> None:
            for raw in it:
                statuses.append(await conn.request(raw))

        c0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        await asyncio.gather(*(run(c) for c in conns))
        dt, dc = time.perf_counter() - t0, cpu_seconds(proc.pid) - c0
        print(f"{n} msgs: {n / dt:.0f} msg/s, server CPU {dc / n * 1000:.2f} ms/msg, "
              f"non-200: {sum(s != 200 for s in statuses)}")
    finally:
        stop_server(proc)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000, int(sys.argv[2]) if len(sys.argv) > 2 else 16))
