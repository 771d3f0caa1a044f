"""Shared pieces of the benchmarks: a seeded data directory, server processes, pre-signed
requests over raw HTTP/1.1 keep-alive connections (so the load generator costs little CPU), and
per-process CPU accounting from /proc."""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from swarmdesk.accounts.actions import do_create_account_with_admin, do_create_api_token
from swarmdesk.accounts.models import Role, Team, TeamMember, User
from swarmdesk.accounts.schemas import ApiTokenCreate
from swarmdesk.auth.principals import SCOPES, StaffPrincipal
from swarmdesk.channels.actions import do_create_inbox
from swarmdesk.channels.schemas import InboxCreate
from swarmdesk.config import Settings
from swarmdesk.core.migrate import upgrade
from swarmdesk.core.security import hash_password, sign_webhook
from swarmdesk.runtime import create_runtime

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) // 1024 // 1024
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB RAM, Python {platform.python_version()}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Fixture:
    account_id: int
    inbox_public_key: str
    inbox_secret: str
    team_ids: list[int]
    agent_tokens: list[tuple[str, int]]  # (token, team_id)


async def seed(settings: Settings, *, agents: int, teams: int) -> Fixture:
    """An account with one API inbox and ``agents`` agents spread over ``teams`` teams."""
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    runtime = create_runtime(settings)
    try:
        async with runtime.uow() as uow:
            account, admin = await do_create_account_with_admin(
                uow, settings, account_name="Bench", email=f"bench-{uuid.uuid4().hex[:6]}@bench.test",
                name="Bench Admin", password="bench-password-1")
        admin_p = StaffPrincipal(user_id=admin.id, account_id=account.id, role=Role.admin, name="a",
                                 email=admin.email, team_ids=(), scopes=None, via="session")
        async with runtime.uow() as uow:
            inbox, generated = await do_create_inbox(uow, admin_p, runtime.secretbox, InboxCreate(
                name="Bench API", channel_kind="api", config={}))
        team_ids = []
        async with runtime.uow() as uow:
            for t in range(teams):
                team = Team(account_id=account.id, name=f"Team {t}", description="")
                uow.session.add(team)
                await uow.session.flush()
                team_ids.append(team.id)
            pw = hash_password("bench-password-1", time_cost=1, memory_cost=8192)
            users = []
            for a in range(agents):
                user = User(account_id=account.id, email=f"agent{a}-{uuid.uuid4().hex[:6]}@bench.test",
                            name=f"Agent {a}", role=Role.agent, password_hash=pw, is_active=True)
                uow.session.add(user)
                users.append(user)
            await uow.session.flush()
            for a, user in enumerate(users):
                uow.session.add(TeamMember(team_id=team_ids[a % teams], user_id=user.id))
            await uow.commit()
        tokens = []
        for a, user in enumerate(users):
            p = StaffPrincipal(user_id=user.id, account_id=account.id, role=Role.agent, name=user.name,
                               email=user.email, team_ids=(), scopes=None, via="session")
            async with runtime.uow() as uow:
                _, token = await do_create_api_token(uow, p, ApiTokenCreate(
                    name="bench", scopes=sorted(set(SCOPES) - {"admin"})))
            tokens.append((token, team_ids[a % teams]))
        return Fixture(account.id, inbox.public_key, generated["secret"], team_ids, tokens)
    finally:
        await runtime.stop()


def start_server(env: dict[str, str], port: int, *, worker: bool = True) -> subprocess.Popen:
    args = [sys.executable, "-m", "swarmdesk.cli", "serve", "--port", str(port), "--no-migrate"]
    if not worker:
        args.append("--no-worker")
    log = Path(env.get("SWARMDESK_DATA_DIR", "/tmp")) / f"server-{port}.log"
    proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log.open("ab"),
                            cwd=ROOT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server on port {port} did not become ready; see {log}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def signed_request(public_key: str, secret: str, payload: dict, host: str) -> bytes:
    body = orjson.dumps(payload)
    msg_id = f"msg_{uuid.uuid4().hex}"
    ts = int(time.time())
    sig = sign_webhook(secret, msg_id, ts, body)
    head = (f"POST /api/v1/inboxes/{public_key}/webhook HTTP/1.1\r\nHost: {host}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\nwebhook-id: {msg_id}\r\n"
            f"webhook-timestamp: {ts}\r\nwebhook-signature: {sig}\r\n\r\n")
    return head.encode() + body


class RawConnection:
    """One keep-alive HTTP/1.1 connection that sends a request and reads one response."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
