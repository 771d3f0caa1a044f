"""Admin pages for automation: the rules in the order they run, and macros.

Both pages list what exists, rendered from the automation service; every change goes through the
JSON API from ``static/js/admin_automation.js``. The rule and macro forms are built in the browser
from the JSON schema of the create models (``RuleCreate``, ``MacroCreate``), embedded in the page
with the account's users, teams, inboxes, canned responses, webhook subscriptions, skills,
organizations and channel kinds for the id fields: a new condition or action type in
``automation/schemas.py`` appears in the builder without a change here. A rule's versions and its
execution log are read from the API when the admin opens them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from swarmdesk.accounts import service as accounts_service
from swarmdesk.accounts.models import User
from swarmdesk.auth.dependencies import Uow
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.automation import service
from swarmdesk.automation.schemas import (
    MAX_CONDITIONS,
    MAX_GROUP_DEPTH,
    MacroCreate,
    MacroUpdate,
    RuleCreate,
    RuleUpdate,
)
from swarmdesk.canned_responses import service as canned_service
from swarmdesk.channels import service as channels_service
from swarmdesk.channels.registry import channels
from swarmdesk.contacts import service as contacts_service
from swarmdesk.core.db import UnitOfWork
from swarmdesk.routing import service as routing_service
from swarmdesk.web.admin import admin_page
from swarmdesk.web.dependencies import PageStaff
from swarmdesk.webhooks import service as webhooks_service

router = APIRouter(prefix="/app/admin", include_in_schema=False)

REF_LIMIT = 500  # objects offered per id select; a saved id beyond them still shows, as "#id"

# The trigger's event names: checkbox labels in the builder, words in the list.
EVENT_LABELS = {
    "conversation_created": "Conversation created",
    "message_received": "Message received from the customer",
    "agent_replied": "Reply sent to the customer (by staff or Swarmdesk)",
    "status_changed": "Status changed",
    "assigned": "Assignee or team changed",
    "tags_changed": "Tags changed",
    "sla_warning": "SLA deadline near",
    "sla_breached": "SLA deadline missed",
}
EVENT_WORDS = {
    "conversation_created": "a conversation is created",
    "message_received": "the customer writes",
    "agent_replied": "someone replies to the customer",
    "status_changed": "the status changes",
    "assigned": "the assignee or team changes",
    "tags_changed": "the tags change",
    "sla_warning": "an SLA deadline is near",
    "sla_breached": "an SLA deadline is missed",
}
# Which list of the account's objects an id field's name (or ``type.field``) refers to.
_REF_KINDS = (("user", "users"), ("team", "teams"), ("inbox", "inboxes"), ("canned_response", "canned_responses"),
              ("subscription", "webhook_subscriptions"), ("skill", "skills"), ("macro", "macros"))


def _field_orders() -> dict[str, list[str]]:
    """Each condition's and action's fields in its model's order (stored JSON may come back in
    another: PostgreSQL's jsonb sorts keys), so the words read the same on every database."""
    orders: dict[str, list[str]] = {}
    for model in (RuleCreate, MacroCreate):
        for definition in model.model_json_schema().get("$defs", {}).values():
            props = definition.get("properties", {})
            kind = props.get("type", {}).get("const")
            if kind is not None:
                orders[kind] = [k for k in props if k != "negate"] + ["negate"]
    return orders


_FIELD_ORDER = _field_orders()


def _ordered(item: dict[str, Any], kind: str | None) -> list[tuple[str, Any]]:
    order = _FIELD_ORDER.get(kind or "", [])
    return sorted(item.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0]))


def _words(key: str) -> str:
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def duration(minutes: int) -> str:
    """45 min, 2 h, 2 h 30 min, 1 day 4 h."""
    days, rest = divmod(int(minutes), 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} day{'s' if days != 1 else ''}" if days else "", f"{hours} h" if hours else "",
             f"{mins} min" if mins else ""]
    return " ".join(p for p in parts if p) or "0 min"


def trigger_words(trigger: dict[str, Any]) -> str:
    kind = trigger.get("type")
    if kind == "event":
        names = [EVENT_WORDS.get(e, _words(str(e)).lower()) for e in trigger.get("events", [])]
        return "When " + (", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names))
    if kind == "status_for":
        return f"After {duration(trigger.get('minutes', 0))} {' or '.join(trigger.get('statuses', []))}"
    if kind == "waiting_for":
        return f"After the customer has waited {duration(trigger.get('minutes', 0))}"
    return f"{_words(str(kind))}: {json.dumps({k: v for k, v in trigger.items() if k != 'type'})}"


def _ref_kind(key: str, owner_type: str | None) -> str | None:
    if key == "ids" and owner_type == "organization":
        return "organizations"
    if key == "kinds" and owner_type == "channel":
        return "channel_kinds"
    for stem, kind in _REF_KINDS:
        if key in (f"{stem}_id", f"{stem}_ids") or key.endswith((f"_{stem}_id", f"_{stem}_ids")):
            return kind
    return None


def _key_words(key: str, owner_type: str | None) -> str:
    """``team_id`` -> "team", ``invite_user_ids`` -> "invite users": ids are shown as names."""
    if _ref_kind(key, owner_type) == "organizations" and key == "ids":
        return "organizations"
    if _ref_kind(key, owner_type):
        key = key[:-4] + "s" if key.endswith("_ids") else key.removesuffix("_id")
    return _words(key).lower()


def _value_words(key: str, value: Any, owner_type: str | None, names: dict[str, dict[Any, str]]) -> str:
    kind = _ref_kind(key, owner_type)
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return "; ".join(_item_words(v, None, names) for v in value)
        return ", ".join(_value_words(key, v, owner_type, names) for v in value)
    if isinstance(value, dict):
        return _item_words(value, None, names)
    if value is None:
        return "none"
    if kind and kind in names:
        return names[kind].get(value, f"#{value}")
    return str(value)


def _item_words(item: dict[str, Any], kind: str | None, names: dict[str, dict[Any, str]]) -> str:
    """One condition or action in words: its type, then its values (ids as names; false and empty left out)."""
    if kind is None and "type" not in item:
        return ", ".join(f"{_key_words(k, None)}: {_value_words(k, v, None, names)}" for k, v in sorted(item.items())
                         if v not in (None, False, [], ""))
    owner = item.get("type") if kind is None else kind
    values = [f"{_key_words(k, owner)}: {_value_words(k, v, owner, names)}" for k, v in _ordered(item, owner)
              if k not in ("type", "negate") and v not in (None, False, [], "")]
    head = ("not " if item.get("negate") else "") + _words(str(owner))
    return f"{head} ({'; '.join(values)})" if values else head


def conditions_words(group: dict[str, Any], names: dict[str, dict[Any, str]]) -> str:
    mode = "all" if "all" in group else "any"
    items = group.get(mode) or []
    if not items:
        return "always"
    joiner = " and " if mode == "all" else " or "
    parts = [f"({conditions_words(i, names)})" if "type" not in i else _item_words(i, None, names) for i in items]
    return joiner.join(parts)


def actions_words(actions: Iterable[dict[str, Any]], names: dict[str, dict[Any, str]]) -> list[str]:
    return [_item_words(a, None, names) for a in actions]


async def references(uow: UnitOfWork, me: StaffPrincipal, users: list[User]) -> dict[str, list[dict[str, Any]]]:
    """What the id fields of a definition may name, as ``{"id", "label"}`` options (active users only)."""
    session, account = uow.session, me.account_id
    return {
        "users": [{"id": u.id, "label": f"{u.name} ({u.email})"} for u in users if u.is_active][:REF_LIMIT],
        "teams": [{"id": t.id, "label": t.name} for t in await accounts_service.list_teams(session, account)][:REF_LIMIT],
        "inboxes": [{"id": i.id, "label": f"{i.name} ({i.channel_kind})"}
                    for i in await channels_service.list_inboxes(session, account)][:REF_LIMIT],
        "canned_responses": [{"id": c.id, "label": f"/{c.short_code} — {c.title}"}
                             for c in await canned_service.search(session, account, None, None, REF_LIMIT)],
        "webhook_subscriptions": [{"id": s.id, "label": s.url + (f" ({s.description})" if s.description else "")}
                                  for s in await webhooks_service.list_subscriptions(session, account)][:REF_LIMIT],
        "skills": [{"id": s.id, "label": s.name} for s in await routing_service.list_skills(session, account)][:REF_LIMIT],
        "organizations": [{"id": o.id, "label": o.name}
                          for o in await contacts_service.list_organizations(session, account, None, REF_LIMIT)],
        "macros": [{"id": m.id, "label": m.name} for m in await service.usable_macros(session, me)][:REF_LIMIT],
        "channel_kinds": [{"id": kind, "label": adapter.title} for kind, adapter in sorted(channels.kinds.items())],
    }


def _names(refs: dict[str, list[dict[str, Any]]], user_names: dict[int, str]) -> dict[str, dict[Any, str]]:
    names = {kind: {o["id"]: o["label"] for o in options} for kind, options in refs.items()}
    names["users"] = dict(user_names)
    return names


def ordered_json(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">``, escaped as ``|tojson`` does (no ``<``, ``>``,
    ``&`` or ``'``), but keeping the keys' order: the builder lays fields out in the schema's order."""
    return htmlsafe_json_dumps(value, dumps=json.dumps)


def _builder(schema: dict[str, Any], update_fields: Iterable[str], refs: dict[str, Any],
             user_names: dict[int, str]) -> Markup:
    return ordered_json({"schema": schema, "update_fields": sorted(update_fields), "refs": refs,
            "user_names": {str(k): v for k, v in user_names.items()},
            "labels": {"events": EVENT_LABELS},
            "limits": {"max_group_depth": MAX_GROUP_DEPTH, "max_conditions": MAX_CONDITIONS}})


async def _lookups(uow: UnitOfWork, me: StaffPrincipal) -> tuple[dict[str, Any], dict[int, str], Any]:
    """The account's objects id fields may name, users' names (deactivated ones too: they wrote
    versions, own macros) and the names the words of rules and macros use."""
    users = await accounts_service.list_users(uow.session, me.account_id)
    refs = await references(uow, me, users)
    user_names = {u.id: u.name for u in users}
    return refs, user_names, _names(refs, user_names)


@router.get("/automation")
async def automation_page(request: Request, me: PageStaff, uow: Uow) -> Response:
    async def context() -> dict[str, Any]:
        assert me is not None
        refs, user_names, names = await _lookups(uow, me)
        rules, editable = [], []
        listed = await service.list_rules(uow.session, me.account_id)
        runs = await service.last_runs(uow.session, me.account_id, [rule.id for rule, _ in listed])
        for rule, version in listed:
            last, fired = runs.get(rule.id, (None, None))
            out = service.rule_out(rule, version).model_dump(mode="json")
            rules.append({**out, "trigger_text": trigger_words(out["trigger"]),
                          "conditions_text": conditions_words(out["conditions"], names),
                          "actions_text": actions_words(out["actions"], names), "updated": rule.updated_at,
                          "last_fired": fired.created_at if fired else None,
                          "last_outcome": str(fired.outcome) if fired else None,
                          "last_evaluated": last.created_at if last else None})
            editable.append({k: out[k] for k in ("id", "version", *RuleCreate.model_fields) if k in out})
        return {"rules": rules, "rules_data": editable,
                "builder": _builder(RuleCreate.model_json_schema(), RuleUpdate.model_fields, refs, user_names)}
    return await admin_page(request, me, "automation", context)


@router.get("/macros")
async def macros_page(request: Request, me: PageStaff, uow: Uow) -> Response:
    async def context() -> dict[str, Any]:
        assert me is not None
        refs, user_names, names = await _lookups(uow, me)
        macros, editable = [], []
        for macro in await service.usable_macros(uow.session, me):
            data = {"id": macro.id, "name": macro.name, "description": macro.description,
                    "actions": macro.actions, "personal": macro.owner_id is not None}
            editable.append(data)
            macros.append({**data, "actions_text": actions_words(macro.actions, names),
                           "owner": user_names.get(macro.owner_id) if macro.owner_id else None,
                           "updated": macro.updated_at})
        return {"macros": macros, "macros_data": editable,
                "builder": _builder(MacroCreate.model_json_schema(), MacroUpdate.model_fields, refs, user_names)}
    return await admin_page(request, me, "macros", context)
