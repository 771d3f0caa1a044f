"""Deciding whether a rule's conditions hold: pure functions over facts loaded beforehand (no I/O),
and the parsed, compiled form of a stored rule version (cached: versions never change)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from pydantic import TypeAdapter

from swarmdesk.automation.schemas import (
    WEEKDAYS,
    Action,
    AssigneeCondition,
    AttributeTest,
    ChannelCondition,
    Condition,
    ConditionGroup,
    CustomerAttributeCondition,
    InboxCondition,
    OrganizationCondition,
    PriorityCondition,
    StatusCondition,
    TagCondition,
    TeamCondition,
    TextContainsCondition,
    TextMatchesCondition,
    TimeOfDayCondition,
    Trigger,
    check_time_zone,
    walk_conditions,
)
from swarmdesk.contacts.models import Contact, Organization
from swarmdesk.conversations.models import Conversation


@dataclass(slots=True)
class Facts:
    """What conditions look at. ``message_text``: the triggering message, or for other triggers the
    customer's latest message; ``at``: when the trigger happened (a time rule: when it came due)."""

    conversation: Conversation
    channel: str
    contact: Contact | None
    organization: Organization | None
    message_text: str | None
    at: datetime
    account_time_zone: str | None


# --- rule definitions ----------------------------------------------------------------------------

_TRIGGER = TypeAdapter(Trigger)
_ACTIONS = TypeAdapter(list[Action])


@dataclass(frozen=True, slots=True)
class Definition:
    trigger: Any  # one of the Trigger models
    conditions: ConditionGroup
    actions: list[Any]  # Action models
    leaves: tuple[Condition, ...]


_CACHE: OrderedDict[tuple[int, bytes], Definition] = OrderedDict()
_CACHE_SIZE = 2000


def parse_definition(trigger: dict[str, Any], conditions: dict[str, Any], actions: list[dict[str, Any]]) -> Definition:
    group = ConditionGroup.model_validate(conditions)
    return Definition(trigger=_TRIGGER.validate_python(trigger), conditions=group,
                      actions=_ACTIONS.validate_python(actions), leaves=tuple(walk_conditions(group)))


def definition_of(version: Any) -> Definition:
    """A stored version parsed (patterns compiled) once per process: versions are immutable. The
    key holds the content too, so a recreated database (tests, a restore) never meets stale entries."""
    key = (version.id, orjson.dumps([version.trigger, version.conditions, version.actions]))
    found = _CACHE.get(key)
    if found is not None:
        _CACHE.move_to_end(key)
        return found
    definition = parse_definition(version.trigger, version.conditions, version.actions)
    _CACHE[key] = definition
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return definition


def parse_actions(actions: list[dict[str, Any]]) -> list[Any]:
    return _ACTIONS.validate_python(actions)


# --- evaluation ----------------------------------------------------------------------------------

def evaluate(group: ConditionGroup, facts: Facts) -> tuple[bool, list[dict[str, Any]]]:
    """Whether the group holds, and each condition's result in tree order (``None``: not
    evaluated, because its group was already decided)."""
    results: list[dict[str, Any]] = []
    return _group(group, facts, results), results


def _group(group: ConditionGroup, facts: Facts, results: list[dict[str, Any]]) -> bool:
    every = group.all is not None
    decided: bool | None = None
    for item in group.items:
        if decided is not None:
            _not_evaluated(item, results)
            continue
        if isinstance(item, ConditionGroup):
            held = _group(item, facts, results)
        else:
            held = test(item, facts) != item.negate
            results.append({"type": item.type, "result": held})
        if every and not held:
            decided = False
        elif not every and held:
            decided = True
    return decided if decided is not None else every


def _not_evaluated(item: Any, results: list[dict[str, Any]]) -> None:
    if isinstance(item, ConditionGroup):
        for leaf in walk_conditions(item):
            results.append({"type": leaf.type, "result": None})
    else:
        results.append({"type": item.type, "result": None})


def test(condition: Condition, facts: Facts) -> bool:
    """One condition, before ``negate``."""
    c = facts.conversation
    match condition:
        case ChannelCondition():
            return facts.channel in condition.kinds
        case InboxCondition():
            return c.inbox_id in condition.inbox_ids
        case TextContainsCondition():
            texts = _texts(condition.field, facts)
            if condition.case_sensitive:
                return any(needle in text for text in texts for needle in condition.any)
            folded = [t.casefold() for t in texts]
            return any(needle.casefold() in text for text in folded for needle in condition.any)
        case TextMatchesCondition():
            return any(condition.compiled.search(text) for text in _texts(condition.field, facts))
        case CustomerAttributeCondition():
            attrs = facts.contact.custom_attributes if facts.contact is not None else {}
            return attribute_holds(attrs or {}, condition)
        case OrganizationCondition():
            org = facts.organization
            if org is None:
                return False
            if condition.ids is not None and org.id not in condition.ids:
                return False
            return condition.attribute is None or attribute_holds(org.custom_attributes or {}, condition.attribute)
        case TimeOfDayCondition():
            return time_of_day_holds(condition, facts.at, condition.timezone or facts.account_time_zone)
        case TagCondition():
            tags = set(c.tag_names or [])
            wanted = set(condition.tags)
            return wanted <= tags if condition.match == "all" else bool(wanted & tags)
        case StatusCondition():
            return c.status in condition.statuses
        case PriorityCondition():
            return c.priority in condition.priorities
        case AssigneeCondition():
            return _set_unset_in(c.assignee_id, condition.op, condition.user_ids)
        case TeamCondition():
            return _set_unset_in(c.team_id, condition.op, condition.team_ids)
    raise AssertionError(f"no test for condition {condition!r}")


def _texts(field: str, facts: Facts) -> list[str]:
    texts = []
    if field in ("message", "message_or_subject") and facts.message_text:
        texts.append(facts.message_text)
    if field in ("subject", "message_or_subject") and facts.conversation.subject:
        texts.append(facts.conversation.subject)
    return texts


def _set_unset_in(value: int | None, op: str, ids: list[int]) -> bool:
    if op == "set":
        return value is not None
    if op == "unset":
        return value is None
    return value in ids


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):  # True is not the number 1 here
        return False
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    return bool(a == b)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def attribute_holds(attrs: dict[str, Any], test: AttributeTest) -> bool:
    present = attrs.get(test.name) is not None
    op, expected = test.op, test.value
    if op == "exists":
        return present
    if op == "not_exists":
        return not present
    if not present:
        return op in ("ne", "not_in")  # a missing attribute is not equal to anything
    value = attrs[test.name]
    if op == "eq":
        return _same(value, expected)
    if op == "ne":
        return not _same(value, expected)
    if op in ("in", "not_in"):
        assert isinstance(expected, list)
        found = any(_same(value, e) for e in expected)
        return found if op == "in" else not found
    if op == "contains":
        if isinstance(value, str) and isinstance(expected, str):
            return expected.casefold() in value.casefold()
        if isinstance(value, list):
            return any(_same(item, expected) for item in value)
        return False
    if not _number(value):
        return False
    assert _number(expected)
    return {"gt": value > expected, "gte": value >= expected, "lt": value < expected,  # type: ignore[operator]
            "lte": value <= expected}[op]  # type: ignore[operator]


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def zone(name: str | None) -> ZoneInfo:
    if not name:
        return ZoneInfo("UTC")
    try:
        return check_time_zone(name)
    except ValueError:
        return ZoneInfo("UTC")  # an account setting gone bad must not stop every rule


def time_of_day_holds(condition: TimeOfDayCondition, at: datetime, time_zone: str | None) -> bool:
    local = at.astimezone(zone(time_zone))
    now = local.hour * 60 + local.minute
    start, end = _minutes(condition.start), _minutes(condition.end)

    def on(day: datetime) -> bool:
        return WEEKDAYS[day.weekday()] in condition.weekdays

    if start == end:  # the whole day
        return on(local)
    if start < end:
        return start <= now < end and on(local)
    # Spans midnight: the early hours belong to the span that started the day before.
    if now >= start:
        return on(local)
    return now < end and on(local - timedelta(days=1))
