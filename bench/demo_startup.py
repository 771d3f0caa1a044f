"""``swarmdesk demo`` from an empty data directory: wall time until /readyz answers 200, and the
process's peak RSS (VmHWM), over 3 runs; medians go to bench/results/demo_startup.md.

Target (the demo issue): serving in <= 15 s including seeding, under 300 MB RSS.

    .venv/bin/python -m bench.demo_startup [runs]
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.common import ROOT, cpu_seconds, machine
from swarmdesk.demo.seed import DEMO_PASSWORD, demo_logins

RESULTS = ROOT / "bench" / "results" / "demo_startup.md"
TARGET_SECONDS = 15.0
TARGET_MB = 300.0


@dataclass
class Run:
    ready_s: float
    cpu_s: float  # the process's CPU time (user + system) until ready: the work, whatever the load
    hwm_ready_mb: float  # peak RSS when /readyz first answered: migrations, seeding and startup
    hwm_used_mb: float  # peak RSS after signing in and paging through conversations
    exit_code: int


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_once(*, cold_bytecode: bool = False) -> Run:
    with tempfile.TemporaryDirectory(prefix="swarmdesk-demo-bench-") as tmp:
        data_dir, port = Path(tmp) / "data", _free_port()
        # The defaults a user gets: embedded SQLite, no Redis, normal logging.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMDESK_")}
        if cold_bytecode:  # no compiled bytecode at all, as on a fresh clone (and worse: site-packages too)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        started = time.perf_counter()
        proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "swarmdesk"), "demo", "--data-dir", str(data_dir),
                                 "--port", str(port)], env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = started + 120
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"swarmdesk demo exited with {proc.returncode}")
                if time.perf_counter() > deadline:
                    raise RuntimeError("swarmdesk demo was not ready within 120 s")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
            ready = time.perf_counter() - started
            cpu = cpu_seconds(proc.pid)
            hwm_ready = _status_mb(proc.pid, "VmHWM")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                r = http.post("/api/v1/auth/login", json={"email": demo_logins()[0][1], "password": DEMO_PASSWORD})
                r.raise_for_status()
                cursor = None
                for _ in range(10):
                    params: dict[str, str | int] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
                    r = http.get("/api/v1/conversations", params=params)
                    r.raise_for_status()
                    cursor = r.json()["next_cursor"]
            hwm_used = _status_mb(proc.pid, "VmHWM")
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return Run(ready, cpu, hwm_ready, hwm_used, code)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(runs: int) -> None:
    load_before = _loadavg()
    results = []
    for i in range(runs):
        result = run_once()
        results.append(result)
        print(f"run {i + 1}: ready in {result.ready_s:.2f} s (CPU {result.cpu_s:.2f} s), peak RSS {result.hwm_ready_mb:.0f} MB at ready, "
              f"{result.hwm_used_mb:.0f} MB after use, exit {result.exit_code}", flush=True)
    cold = run_once(cold_bytecode=True)
    print(f"cold bytecode: ready in {cold.ready_s:.2f} s (CPU {cold.cpu_s:.2f} s), peak RSS {cold.hwm_used_mb:.0f} MB", flush=True)
    load_after = _loadavg()
    ready = statistics.median(r.ready_s for r in results)
    cpu = statistics.median(r.cpu_s for r in results)
    hwm = statistics.median(r.hwm_used_mb for r in results)
    hwm_ready = statistics.median(r.hwm_ready_mb for r in results)
    verdict = "meets" if ready <= TARGET_SECONDS and hwm < TARGET_MB else "MISSES"
    print(f"median: ready {ready:.2f} s, peak RSS {hwm:.0f} MB ({verdict} the target)")

    rows = "\n".join(f"| {i + 1} | {r.ready_s:.2f} | {r.cpu_s:.2f} | {r.hwm_ready_mb:.0f} | {r.hwm_used_mb:.0f} "
                     f"| {r.exit_code} |"
                     for i, r in enumerate(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(f"""# `swarmdesk demo` startup

Wall time from launching `.venv/bin/swarmdesk demo --data-dir <empty dir> --port <port>` until
`GET /readyz` answers 200 (creating the data directory, migrating, seeding 2,000 customers and
5,000 conversations, starting the server), and the process's peak resident memory (`VmHWM` in
`/proc/<pid>/status`) when it became ready and after signing in and paging through 1,000
conversations. Default settings (embedded SQLite, no Redis), {runs} runs, warm bytecode cache
(`bench/demo_startup.py`).

- Machine: {machine()}
- Date: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
- Load average (1, 5, 15 min) before and after the runs: {load_before} / {load_after}; niceness
  {os.nice(0)} (on a shared machine, wall time stretches with the load; the CPU column does not)
- Target: serving in <= {TARGET_SECONDS:.0f} s including seeding, under {TARGET_MB:.0f} MB RSS

| run | ready (s) | CPU until ready (s) | peak RSS at ready (MB) | peak RSS after use (MB) | exit code after SIGTERM |
|---:|---:|---:|---:|---:|---:|
{rows}

**Median: ready in {ready:.2f} s (CPU {cpu:.2f} s); peak RSS {hwm_ready:.0f} MB at ready, {hwm:.0f} MB after use — {verdict} the target.**

Without any compiled bytecode (`PYTHONPYCACHEPREFIX` set to an empty directory, so even the
installed libraries are compiled again; a fresh clone only compiles Swarmdesk itself): ready in
{cold.ready_s:.2f} s (CPU {cold.cpu_s:.2f} s), peak RSS {cold.hwm_used_mb:.0f} MB.
""")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
