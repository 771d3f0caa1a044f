"""Admin pages for skills-based routing: skills, agents' skills and capacity (``/app/admin/skills``)
and routing queues (``/app/admin/queues``).

The pages render what exists from the routing service (the same shapes the JSON API returns);
every change goes through ``/api/v1/routing/...`` from ``static/js/admin_routing.js``. An agent's
editor is built in the browser from the page's JSON only when its row is opened, so an account with
hundreds of agents gets a compact table rather than hundreds of forms."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from swarmdesk.accounts import service as accounts_service
from swarmdesk.auth.dependencies import Uow
from swarmdesk.channels import service as channels_service
from swarmdesk.channels.registry import channels
from swarmdesk.routing import service as routing_service
from swarmdesk.routing.models import Strategy
from swarmdesk.routing.schemas import BUILTIN_LIFTS, DEFAULT_LIFTS, AgentOut, QueueOut
from swarmdesk.web.admin import admin_page
from swarmdesk.web.dependencies import PageStaff

router = APIRouter(prefix="/app/admin", include_in_schema=False)

PROFICIENCIES = ((1, "1 · can help"), (2, "2"), (3, "3"), (4, "4"), (5, "5 · the expert"))
STRATEGIES = (
    (Strategy.balanced, "Balanced",
     "The agent with the fewest open conversations on the channel, then the longest idle."),
    (Strategy.round_robin, "Round-robin", "Qualified agents take turns, in a fixed order."),
    (Strategy.sticky, "Sticky",
     "The customer's previous agent if they are online with room (within the sticky window), else balanced."),
    (Strategy.manual, "Manual", "Nobody is assigned automatically: conversations wait for a person to assign them."),
)
LIFT_LABELS = {"urgent": "Urgent priority", "high": "High priority", "vip": "VIP organization",
               "sla": "SLA about to breach"}
ROUTED_ROLES = {str(r) for r in routing_service.ROUTABLE_ROLES}


def _lift_keys() -> list[str]:
    """Every reason a queue accepts points for: the built-in ones, then the registered providers'."""
    keys = list(BUILTIN_LIFTS) + sorted((set(DEFAULT_LIFTS) | set(routing_service.lift_providers.keys()))
                                        - set(BUILTIN_LIFTS))
    return list(dict.fromkeys(keys))


def _channel_kinds() -> list[dict[str, str]]:
    return [{"kind": kind, "title": cls.title}
            for kind, cls in sorted(channels.kinds.items(), key=lambda item: item[1].title.lower())]


def _agent_row(agent: AgentOut) -> dict[str, Any]:
    """One line of the agents table: load against capacity for each channel kind named in either,
    then what every other kind takes."""
    default = agent.capacity.get("default", routing_service.DEFAULT_CAPACITY)
    kinds = sorted((set(agent.load) | set(agent.capacity)) - {"default", ""})
    loads = [{"kind": kind, "load": agent.load.get(kind, 0),
              "capacity": routing_service.capacity_for(agent.capacity, kind)} for kind in kinds]
    for item in loads:
        item["over"] = item["load"] > item["capacity"]
    routed = agent.role in ROUTED_ROLES
    search = " ".join([agent.name, agent.role, *(s.name for s in agent.skills)]).lower()
    return {"agent": agent, "loads": loads, "default": default, "open": sum(agent.load.values()),
            "routed": routed, "search": search}


def _agent_data(agent: AgentOut) -> dict[str, Any]:
    """What the browser needs to build the agent's editor."""
    return {"user_id": agent.user_id, "name": agent.name, "role": agent.role,
            "routed": agent.role in ROUTED_ROLES, "capacity": agent.capacity,
            "skills": {str(s.skill_id): s.proficiency for s in agent.skills}}


def _step_text(step: dict[str, Any]) -> str:
    parts = []
    if step.get("min_proficiency") is not None:
        parts.append(f"proficiency ≥ {step['min_proficiency']}")
    if step.get("any_agent_on_team"):
        parts.append("any agent on the team")
    return f"after {_duration(int(step.get('after_seconds') or 0))}: {', '.join(parts) or 'no change'}"


def _duration(seconds: int) -> str:
    """60 -> "1 min", 5400 -> "90 min", 604800 -> "7 days"; plain seconds otherwise."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "min")):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}" + ("s" if n != 1 and unit != "min" else "")
    return f"{seconds} s"


def _queue_view(queue: QueueOut) -> dict[str, Any]:
    lifts = {**DEFAULT_LIFTS, **queue.lifts}
    return {"queue": queue, "lifts": lifts, "steps": [_step_text(s) for s in queue.relaxation]}


@router.get("/skills")
async def skills_page(request: Request, me: PageStaff, uow: Uow) -> Response:
    async def context() -> dict[str, Any]:
        assert me is not None
        session = uow.session
        skills = await routing_service.list_skills(session, me.account_id)
        agents = await routing_service.agents_out(session, me.account_id)
        inboxes = await channels_service.list_inboxes(session, me.account_id)
        holders: dict[int, int] = {}
        for agent in agents:
            for s in agent.skills:
                holders[s.skill_id] = holders.get(s.skill_id, 0) + 1
        return {"skills": skills, "inboxes": inboxes, "inbox_names": {i.id: i.name for i in inboxes},
                "holders": holders, "proficiencies": PROFICIENCIES,
                "agent_rows": [_agent_row(a) for a in agents],
                "agent_data": [_agent_data(a) for a in agents],
                "skill_data": [{"id": s.id, "name": s.name} for s in skills],
                "kind_data": _channel_kinds(), "default_capacity": routing_service.DEFAULT_CAPACITY}
    return await admin_page(request, me, "skills", context)


@router.get("/queues")
async def queues_page(request: Request, me: PageStaff, uow: Uow) -> Response:
    async def context() -> dict[str, Any]:
        assert me is not None
        session = uow.session
        # In position order, with how many conversations wait in each (one grouped count).
        queues = await routing_service.queues_out(session, me.account_id,
                                                  await routing_service.list_queues(session, me.account_id))
        teams = await accounts_service.list_teams(session, me.account_id)
        inboxes = await channels_service.list_inboxes(session, me.account_id)
        return {"queues": [_queue_view(q) for q in queues], "teams": teams,
                "team_names": {t.id: t.name for t in teams}, "inboxes": inboxes,
                "inbox_names": {i.id: i.name for i in inboxes}, "strategies": STRATEGIES,
                "strategy_names": {str(s): label for s, label, _ in STRATEGIES},
                "proficiencies": PROFICIENCIES, "lift_keys": _lift_keys(), "lift_labels": LIFT_LABELS,
                "default_lifts": DEFAULT_LIFTS, "duration": _duration}
    return await admin_page(request, me, "queues", context)
