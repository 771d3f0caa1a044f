"""Helpers shared by tests: accounts and principals, signed intake, job draining, event capture,
and a real HTTP receiver for outbound deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from swarmdesk.accounts.actions import do_create_account_with_admin, do_create_api_token, do_create_user
from swarmdesk.accounts.models import Role, Team, TeamMember
from swarmdesk.accounts.schemas import ApiTokenCreate, UserCreate
from swarmdesk.auth.principals import SCOPES, StaffPrincipal
from swarmdesk.events.base import BaseEvent
from swarmdesk.jobs.worker import Worker
from swarmdesk.runtime import Runtime

PASSWORD = "correct horse battery"


@dataclass
class Staff:
    user_id: int
    email: str
    token: str
    role: Role
    team_ids: tuple[int, ...] = ()

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@dataclass
class AccountCtx:
    account_id: int
    admin: Staff
    users: dict[str, Staff] = field(default_factory=dict)


@dataclass
class ApiInbox:
    id: int
    public_key: str
    secret: str

    @property
    def webhook_path(self) -> str:
        return f"/api/v1/inboxes/{self.public_key}/webhook"


def sign(secret: str, body: bytes, msg_id: str | None = None, at: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers computed with the specification's own SDK."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature,
            "content-type": "application/json"}


def inbound_payload(message_id: str | None = None, source_id: str = "cust-1", content: str = "Hello, my order is late",
                    **extra: Any) -> dict[str, Any]:
    return {"message_id": message_id or uuid.uuid4().hex, "contact": {"source_id": source_id, "name": "Ana Lima"},
            "content": content, **extra}


class Harness:
    def __init__(self, runtime: Runtime, client: httpx.AsyncClient) -> None:
        self.runtime = runtime
        self.client = client
        self.worker = Worker(runtime, runtime.jobs)

    async def make_account(self, name: str = "Acme") -> AccountCtx:
        settings = self.runtime.settings
        async with self.runtime.uow() as uow:
            account, admin = await do_create_account_with_admin(
                uow, settings, account_name=name, email=f"admin-{uuid.uuid4().hex[:8]}@{name.lower()}.test",
                name=f"{name} Admin", password=PASSWORD)
        token = await self._token(account.id, admin.id, Role.admin, admin.email, admin.name)
        return AccountCtx(account.id, Staff(admin.id, admin.email, token, Role.admin))

    async def _token(self, account_id: int, user_id: int, role: Role, email: str, name: str,
                     scopes: list[str] | None = None) -> str:
        principal = StaffPrincipal(user_id=user_id, account_id=account_id, role=role, name=name, email=email,
                                   team_ids=(), scopes=None, via="session")
        allowed = sorted(SCOPES) if role == Role.admin else sorted(set(SCOPES) - {"admin"})
        async with self.runtime.uow() as uow:
            _, token = await do_create_api_token(uow, principal, ApiTokenCreate(name="test", scopes=scopes or allowed))
        return token

    async def make_user(self, ctx: AccountCtx, key: str, role: Role = Role.agent, teams: tuple[int, ...] = (),
                        scopes: list[str] | None = None) -> Staff:
        admin = StaffPrincipal(user_id=ctx.admin.user_id, account_id=ctx.account_id, role=Role.admin, name="admin",
                               email=ctx.admin.email, team_ids=(), scopes=None, via="session")
        async with self.runtime.uow() as uow:
            user = await do_create_user(uow, admin, self.runtime.settings, UserCreate(
                email=f"{key}-{uuid.uuid4().hex[:6]}@example.com", name=key.title(), role=role, password=PASSWORD))
        async with self.runtime.uow() as uow:
            for team_id in teams:
                uow.session.add(TeamMember(team_id=team_id, user_id=user.id))
            await uow.session.commit()
        token = await self._token(ctx.account_id, user.id, role, user.email, user.name, scopes)
        staff = Staff(user.id, user.email, token, role, teams)
        ctx.users[key] = staff
        return staff

    async def make_team(self, ctx: AccountCtx, name: str) -> int:
        async with self.runtime.uow() as uow:
            team = Team(account_id=ctx.account_id, name=name, description="")
            uow.session.add(team)
            await uow.session.commit()
            return team.id

    async def make_api_inbox(self, ctx: AccountCtx, *, callback_url: str | None = None,
                             allow_customer_sessions: bool = True, trust: bool = False) -> ApiInbox:
        config: dict[str, Any] = {"trust_contact_identifiers": trust}
        if callback_url:
            config["callback_url"] = callback_url
        r = await self.client.post("/api/v1/inboxes", headers=ctx.admin.headers, json={
            "name": "App", "channel_kind": "api", "config": config,
            "settings": {"allow_customer_sessions": allow_customer_sessions}})
        assert r.status_code == 201, r.text
        body = r.json()
        return ApiInbox(body["id"], body["public_key"], body["generated_secrets"]["secret"])

    async def deliver(self, inbox: ApiInbox, payload: dict[str, Any], msg_id: str | None = None) -> httpx.Response:
        body = orjson.dumps(payload)
        return await self.client.post(inbox.webhook_path, content=body, headers=sign(inbox.secret, body, msg_id))

    async def customer_session(self, inbox: ApiInbox, name: str = "Visitor") -> dict[str, str]:
        r = await self.client.post(f"/api/v1/inboxes/{inbox.public_key}/customer-sessions", json={"name": name})
        assert r.status_code == 201, r.text
        return {"authorization": f"Bearer {r.json()['token']}"}

    async def allowlist_loopback(self, ctx: AccountCtx) -> None:
        r = await self.client.patch("/api/v1/account", headers=ctx.admin.headers,
                                    json={"settings": {"outbound_allowlist": ["127.0.0.1"]}})
        assert r.status_code == 200, r.text

    async def run_jobs(self, timeout: float = 10.0) -> None:
        await self.worker.drain(timeout)

    @contextlib.contextmanager
    def capture_events(self) -> Iterator[list[BaseEvent]]:
        """Every event published after commit while the block runs."""
        captured: list[BaseEvent] = []
        bus = self.runtime.bus
        original = bus.publish

        async def spy(events):  # noqa: ANN001, ANN202
            captured.extend(events)
            await original(events)

        bus.publish = spy  # type: ignore[method-assign]
        try:
            yield captured
        finally:
            bus.publish = original  # type: ignore[method-assign]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    """A real HTTP server on loopback that records what it is sent and answers as scripted."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answered: list[Received] = []  # requests whose response was actually sent
        self.script: list[tuple[int, dict[str, str]]] = []
        # While set to an unset Event, requests are held open (a receiver that hangs).
        self.gate: asyncio.Event | None = None
        self.arrived = asyncio.Event()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"

        async def hook(request: Request) -> Response:
            received = Received({k.lower(): v for k, v in request.headers.items()}, await request.body())
            self.requests.append(received)
            self.arrived.set()
            if self.gate is not None:
                await self.gate.wait()
                if await request.is_disconnected():
                    return Response(status_code=499)
            status, headers = self.script.pop(0) if self.script else (200, {})
            if 200 <= status < 300:
                self.answered.append(received)
            return Response(status_code=status, headers=headers)

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_config=None,
                                                    lifespan="off"))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Receiver]:
        async with serving(self.server):
            yield self


@contextlib.asynccontextmanager
async def serving(server: uvicorn.Server) -> AsyncIterator[None]:
    """Serve for the duration of the block (test receivers and fake vendor APIs on loopback)."""
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():  # failed to start (port taken): raise its error instead of waiting for ever
            await task
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task
