"""Helpers shared by the routing tests (no tests here): a desk with a web chat inbox, a team, agents with
skills, capacity and presence, queues, and customers starting chats."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from swarmdesk.accounts.models import Role
from swarmdesk.conversations.models import Activity
from swarmdesk.core.clock import clock
from swarmdesk.jobs.models import Job, JobStatus
from tests.support import AccountCtx, Harness, Staff

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@dataclass
class Desk:
    ctx: AccountCtx
    team: int
    inbox_id: int
    inbox_key: str
    supervisor: Staff
    agents: dict[str, Staff] = field(default_factory=dict)
    skills: dict[str, int] = field(default_factory=dict)
    visitors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def uid(self, name: str) -> int:
        return self.agents[name].user_id


async def make_desk(h: Harness) -> Desk:
    clock.freeze(T0)
    ctx = await h.make_account()
    team = await h.make_team(ctx, "Support")
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                            json={"name": "Chat", "channel_kind": "webchat", "config": {}})
    assert r.status_code == 201, r.text
    supervisor = await h.make_user(ctx, "sue", Role.supervisor)
    return Desk(ctx, team, r.json()["id"], r.json()["public_key"], supervisor)


async def call(h: Harness, who: Staff, method: str, url: str, status: int = 200, **kw: Any) -> Any:
    r = await h.client.request(method, url, headers=who.headers, **kw)
    assert r.status_code == status, r.text
    return r.json() if r.content else None


async def add_agent(h: Harness, d: Desk, name: str, *, skills: dict[str, int] | None = None,
                    capacity: dict[str, int] | None = None, online: bool = True, team: bool = True) -> Staff:
    staff = await h.make_user(d.ctx, name, Role.agent, teams=(d.team,) if team else ())
    d.agents[name] = staff
    if skills:
        await call(h, d.supervisor, "PUT", f"/api/v1/routing/agents/{staff.user_id}/skills",
                   json={"skills": [{"skill_id": d.skills[k], "proficiency": v} for k, v in skills.items()]})
    if capacity is not None:
        await call(h, d.supervisor, "PUT", f"/api/v1/routing/agents/{staff.user_id}/capacity",
                   json={"capacity": capacity})
    if online:
        await set_presence(h, staff, "online")
    return staff


async def set_presence(h: Harness, who: Staff, status: str) -> dict[str, Any]:
    return await call(h, who, "PUT", "/api/v1/routing/presence", json={"status": status})


async def add_skill(h: Harness, d: Desk, name: str, **body: Any) -> int:
    skill = await call(h, d.supervisor, "POST", "/api/v1/routing/skills", 201, json={"name": name, **body})
    d.skills[name] = skill["id"]
    return skill["id"]


async def add_queue(h: Harness, d: Desk, **body: Any) -> dict[str, Any]:
    payload = {"name": "Support", "team_id": d.team, "inbox_ids": [d.inbox_id], **body}
    return await call(h, d.supervisor, "POST", "/api/v1/routing/queues", 201, json=payload)


async def visitor(h: Harness, d: Desk, name: str) -> dict[str, Any]:
    if name not in d.visitors:
        r = await h.client.post(f"/api/v1/inboxes/{d.inbox_key}/widget-sessions", json={"fields": {"name": name}})
        assert r.status_code == 201, r.text
        d.visitors[name] = r.json()
    return d.visitors[name]


async def chat(h: Harness, d: Desk, name: str = "Visitor", content: str = "hello", *, run: bool = True) -> int:
    """A customer starts a chat; with ``run`` the jobs runnable now (routing among them) run."""
    v = await visitor(h, d, name)
    r = await h.client.post("/api/v1/customer/conversations", headers={"authorization": f"Bearer {v['token']}"},
                            json={"content": content})
    assert r.status_code == 201, r.text
    if run:
        await h.run_jobs()
    return r.json()["id"]


async def assignee(h: Harness, d: Desk, cid: int) -> int | None:
    return (await call(h, d.ctx.admin, "GET", f"/api/v1/conversations/{cid}"))["assignee_id"]


async def routing_of(h: Harness, d: Desk, cid: int) -> dict[str, Any]:
    return await call(h, d.ctx.admin, "GET", f"/api/v1/conversations/{cid}/routing")


async def patch(h: Harness, d: Desk, cid: int, body: dict[str, Any], *, run: bool = True) -> dict[str, Any]:
    out = await call(h, d.ctx.admin, "PATCH", f"/api/v1/conversations/{cid}", json=body)
    if run:
        await h.run_jobs()
    return out


async def advance(h: Harness, seconds: float) -> None:
    clock.advance(timedelta(seconds=seconds))
    await h.run_jobs()


async def activities(h: Harness, cid: int, verb: str) -> list[Activity]:
    async with h.runtime.uow() as uow:
        return list((await uow.session.scalars(select(Activity).where(
            Activity.conversation_id == cid, Activity.verb == verb).order_by(Activity.id))).all())


async def queued_jobs(h: Harness, kind: str) -> list[Job]:
    async with h.runtime.uow() as uow:
        return list((await uow.session.scalars(select(Job).where(
            Job.kind == kind, Job.status == JobStatus.queued).order_by(Job.run_at, Job.id))).all())
