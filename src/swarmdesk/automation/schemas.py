"""Rules and macros as clients write them: triggers, conditions and actions are discriminated
unions on ``type``, so an unknown type, a missing field or a bad pattern is a 422 naming it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    Discriminator,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    Tag,
    field_validator,
    model_serializer,
    model_validator,
)

from swarmdesk.automation.patterns import PatternError, SafePattern
from swarmdesk.channels.registry import channels
from swarmdesk.conversations.models import ConversationStatus, Priority
from swarmdesk.conversations.schemas import ConversationOut, normalize_tags
from swarmdesk.core.schemas import In, Out
from swarmdesk.core.time_zones import known_time_zones

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
MAX_MINUTES = 366 * 24 * 60
MAX_ACTIONS = 20
MAX_CONDITIONS = 50
MAX_GROUP_DEPTH = 3

# Rule trigger names and the event types behind them. SLA events come from the sla domain.
EVENT_TRIGGERS: dict[str, str] = {
    "conversation_created": "conversation.created",
    "message_received": "message.created",  # from the customer
    "agent_replied": "message.created",  # a reply to the customer by staff or by Swarmdesk itself
    "status_changed": "conversation.status_changed",
    "assigned": "conversation.assigned",  # assignee or team changed
    "tags_changed": "conversation.updated",  # with "tags" among the changes
    "sla_warning": "sla.warning",
    "sla_breached": "sla.breached",
}
EventName = Literal["conversation_created", "message_received", "agent_replied", "status_changed", "assigned",
                    "tags_changed", "sla_warning", "sla_breached"]


# --- triggers ----------------------------------------------------------------------------------

class EventTrigger(In):
    """Runs right after one of these happens to a conversation."""

    type: Literal["event"]
    events: list[EventName] = Field(min_length=1, max_length=len(EVENT_TRIGGERS))

    @field_validator("events")
    @classmethod
    def _distinct(cls, events: list[str]) -> list[str]:
        return list(dict.fromkeys(events))


class StatusForTrigger(In):
    """Runs once a conversation has been in one of these statuses for ``minutes`` without leaving it."""

    type: Literal["status_for"]
    statuses: list[ConversationStatus] = Field(min_length=1, max_length=5)
    minutes: int = Field(ge=1, le=MAX_MINUTES)


class WaitingForTrigger(In):
    """Runs once the customer has waited ``minutes`` for an answer (nobody replied since they wrote)."""

    type: Literal["waiting_for"]
    minutes: int = Field(ge=1, le=MAX_MINUTES)


Trigger = Annotated[EventTrigger | StatusForTrigger | WaitingForTrigger, Field(discriminator="type")]


# --- conditions --------------------------------------------------------------------------------

class _Condition(In):
    negate: bool = Field(default=False, description="true: the condition holds when the test fails")


class ChannelCondition(_Condition):
    type: Literal["channel"]
    kinds: list[str] = Field(min_length=1, max_length=20)

    @field_validator("kinds")
    @classmethod
    def _known(cls, kinds: list[str]) -> list[str]:
        known = channels.kinds
        unknown = [k for k in kinds if k not in known]
        if unknown:
            raise ValueError(f"unknown channel kinds {unknown}; known: {sorted(known)}")
        return kinds


class InboxCondition(_Condition):
    type: Literal["inbox"]
    inbox_ids: list[Id] = Field(min_length=1, max_length=100)


TextField = Literal["message", "subject", "message_or_subject"]
_TEXT_FIELD_HELP = ("message: the message that triggered the rule (for other triggers, the customer's latest "
                    "message); subject; or either")


class TextContainsCondition(_Condition):
    type: Literal["text_contains"]
    field: TextField = Field(default="message", description=_TEXT_FIELD_HELP)
    any: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=50)
    case_sensitive: bool = False


class TextMatchesCondition(_Condition):
    """A regular expression in RE2 syntax (no backreferences or lookaround): matched in linear time,
    so no pattern can stall a worker."""

    type: Literal["text_matches"]
    field: TextField = Field(default="message", description=_TEXT_FIELD_HELP)
    pattern: str = Field(min_length=1, max_length=500)
    case_sensitive: bool = False
    _compiled: SafePattern | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _compile(self) -> TextMatchesCondition:
        try:
            self._compiled = SafePattern(self.pattern, case_sensitive=self.case_sensitive)
        except PatternError as exc:
            raise ValueError(f"pattern {self.pattern!r} is not a valid RE2 regular expression: {exc}") from exc
        return self

    @property
    def compiled(self) -> SafePattern:
        assert self._compiled is not None
        return self._compiled


Scalar = str | int | float | bool


class AttributeTest(In):
    name: str = Field(min_length=1, max_length=100)
    op: Literal["eq", "ne", "in", "not_in", "contains", "exists", "not_exists", "gt", "gte", "lt", "lte"]
    value: Scalar | list[Scalar] | None = Field(
        default=None, description="strings compare ignoring case; none for exists/not_exists; a list for in/not_in; "
                                  "a number for gt/gte/lt/lte")

    @model_validator(mode="after")
    def _value_fits_op(self) -> AttributeTest:
        op, value = self.op, self.value
        if op in ("exists", "not_exists"):
            if value is not None:
                raise ValueError(f"op {op!r} takes no value")
        elif op in ("in", "not_in"):
            if not isinstance(value, list) or not value or len(value) > 100:
                raise ValueError(f"op {op!r} needs a list of 1-100 values")
        elif op in ("gt", "gte", "lt", "lte"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"op {op!r} needs a number")
        elif value is None or isinstance(value, list):
            raise ValueError(f"op {op!r} needs one value")
        return self


class CustomerAttributeCondition(_Condition, AttributeTest):
    """A custom attribute of the conversation's customer (contact)."""

    type: Literal["customer_attribute"]


class OrganizationCondition(_Condition):
    """The customer's organization: one of ``ids``, and/or passing ``attribute``; with neither, the
    customer simply belongs to an organization."""

    type: Literal["organization"]
    ids: list[Id] | None = Field(default=None, min_length=1, max_length=100)
    attribute: AttributeTest | None = None


_TIME = r"^([01]\d|2[0-3]):[0-5]\d$"
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TimeOfDayCondition(_Condition):
    """When the trigger happened (a time rule: when it came due), on the wall clock of ``timezone``
    (default: the account's ``time_zone`` setting, else UTC). ``end`` is exclusive; an ``end``
    before ``start`` spans midnight (22:00-06:00), and the weekday is the one the span starts on."""

    type: Literal["time_of_day"]
    start: str = Field(default="00:00", pattern=_TIME)
    end: str = Field(default="00:00", pattern=_TIME, description="00:00 with start 00:00: the whole day")
    weekdays: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1, max_length=7)
    timezone: str | None = Field(default=None, max_length=64, description="an IANA name, e.g. Europe/Lisbon")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str | None) -> str | None:
        if name is not None:
            check_time_zone(name)
        return name


def check_time_zone(name: str) -> ZoneInfo:
    """The zone, if it is one Swarmdesk accepts anywhere (``core.time_zones``)."""
    if name not in known_time_zones():
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Lisbon")
    return ZoneInfo(name)


class TagCondition(_Condition):
    type: Literal["tag"]
    tags: list[str] = Field(min_length=1, max_length=50)
    match: Literal["any", "all"] = "any"

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        return normalize_tags(tags)


class StatusCondition(_Condition):
    type: Literal["status"]
    statuses: list[ConversationStatus] = Field(min_length=1, max_length=5)


class PriorityCondition(_Condition):
    type: Literal["priority"]
    priorities: list[Priority] = Field(min_length=1, max_length=5)


class AssigneeCondition(_Condition):
    """``set``: someone is assigned; ``unset``: nobody; ``in``: one of ``user_ids``."""

    type: Literal["assignee"]
    op: Literal["set", "unset", "in"]
    user_ids: list[Id] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _ids_with_in(self) -> AssigneeCondition:
        if (self.op == "in") != bool(self.user_ids):
            raise ValueError("user_ids go with op 'in' (and only with it)")
        return self


class TeamCondition(_Condition):
    type: Literal["team"]
    op: Literal["set", "unset", "in"]
    team_ids: list[Id] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _ids_with_in(self) -> TeamCondition:
        if (self.op == "in") != bool(self.team_ids):
            raise ValueError("team_ids go with op 'in' (and only with it)")
        return self


class ConditionGroup(In):
    """``{"all": [...]}`` holds when every item does, ``{"any": [...]}`` when at least one does;
    items are conditions or groups. ``{"all": []}`` always holds."""

    all: list[ConditionNode] | None = Field(default=None, max_length=MAX_CONDITIONS)
    any: list[ConditionNode] | None = Field(default=None, max_length=MAX_CONDITIONS)

    @model_validator(mode="after")
    def _one_kind(self) -> ConditionGroup:
        if (self.all is None) == (self.any is None):
            raise ValueError("a condition group has exactly one of 'all' or 'any'")
        return self

    @model_serializer(mode="wrap")
    def _only_its_kind(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}

    @property
    def items(self) -> list[ConditionNode]:
        return self.all if self.all is not None else (self.any or [])


Condition = (ChannelCondition | InboxCondition | TextContainsCondition | TextMatchesCondition
             | CustomerAttributeCondition | OrganizationCondition | TimeOfDayCondition | TagCondition
             | StatusCondition | PriorityCondition | AssigneeCondition | TeamCondition)
CONDITION_TYPES = ("channel", "inbox", "text_contains", "text_matches", "customer_attribute", "organization",
                   "time_of_day", "tag", "status", "priority", "assignee", "team")


def _node_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "type" in value:
            return value["type"] if value["type"] in CONDITION_TYPES else None
        return "group" if ("all" in value or "any" in value) else None
    return "group" if isinstance(value, ConditionGroup) else getattr(value, "type", None)


ConditionNode = Annotated[
    Annotated[ChannelCondition, Tag("channel")] | Annotated[InboxCondition, Tag("inbox")]
    | Annotated[TextContainsCondition, Tag("text_contains")] | Annotated[TextMatchesCondition, Tag("text_matches")]
    | Annotated[CustomerAttributeCondition, Tag("customer_attribute")]
    | Annotated[OrganizationCondition, Tag("organization")] | Annotated[TimeOfDayCondition, Tag("time_of_day")]
    | Annotated[TagCondition, Tag("tag")] | Annotated[StatusCondition, Tag("status")]
    | Annotated[PriorityCondition, Tag("priority")] | Annotated[AssigneeCondition, Tag("assignee")]
    | Annotated[TeamCondition, Tag("team")] | Annotated[ConditionGroup, Tag("group")],
    Discriminator(_node_kind, custom_error_type="unknown_condition",
                  custom_error_message="unknown condition: expected a 'type' among " + ", ".join(CONDITION_TYPES)
                                       + ", or a group {'all': [...]} / {'any': [...]}"),
]
ConditionGroup.model_rebuild()


def walk_conditions(group: ConditionGroup, depth: int = 1) -> list[Condition]:
    """Every condition in the tree; refuses trees deeper or larger than the limits."""
    if depth > MAX_GROUP_DEPTH:
        raise ValueError(f"condition groups nest at most {MAX_GROUP_DEPTH} deep")
    found: list[Condition] = []
    for item in group.items:
        found.extend(walk_conditions(item, depth + 1) if isinstance(item, ConditionGroup) else [item])
    if len(found) > MAX_CONDITIONS:
        raise ValueError(f"at most {MAX_CONDITIONS} conditions in a rule")
    return found


# --- actions -----------------------------------------------------------------------------------

class AssignAction(In):
    type: Literal["assign"]
    user_id: Id | None = Field(description="an active user of the account; null unassigns")


class SetTeamAction(In):
    type: Literal["set_team"]
    team_id: Id | None = Field(description="null removes the team")


class SetPriorityAction(In):
    type: Literal["set_priority"]
    priority: Priority


class _TagsAction(In):
    tags: list[str] = Field(min_length=1, max_length=20)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        return normalize_tags(tags)


class AddTagsAction(_TagsAction):
    type: Literal["add_tags"]


class RemoveTagsAction(_TagsAction):
    type: Literal["remove_tags"]


class ReplyTemplateAction(In):
    """Replies to the customer with a canned response, placeholders filled in."""

    type: Literal["reply_template"]
    canned_response_id: Id


class AddNoteAction(In):
    """An internal note (placeholders are filled in as in canned responses)."""

    type: Literal["add_note"]
    content: str = Field(min_length=1, max_length=5000)


class NotifyAction(In):
    """In-app notifications: an internal note that @mentions the users (who then see the
    conversation) with ``text``."""

    type: Literal["notify"]
    user_ids: list[Id] = Field(default_factory=list, max_length=20)
    notify_assignee: bool = Field(default=False, description="also the conversation's assignee, if any")
    text: str = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _someone(self) -> NotifyAction:
        if not self.user_ids and not self.notify_assignee:
            raise ValueError("notify needs user_ids or notify_assignee")
        self.user_ids = list(dict.fromkeys(self.user_ids))
        return self


class CallWebhookAction(In):
    """A signed POST to a webhook subscription's URL (its secret, the outbound guard, retries)."""

    type: Literal["call_webhook"]
    subscription_id: Id


class StartSwarmAction(In):
    type: Literal["start_swarm"]
    invite_user_ids: list[Id] = Field(default_factory=list, max_length=20)
    note: str = Field(default="", max_length=2000)


class SkillRequirement(In):
    skill_id: Id
    min_proficiency: int = Field(default=1, ge=1, le=5)


class SetRequiredSkillsAction(In):
    """Replaces the skills the conversation's agent must have (beyond its inbox's, tags' and language's)."""

    type: Literal["set_required_skills"]
    skills: list[SkillRequirement] = Field(min_length=1, max_length=20)


class SnoozeAction(In):
    type: Literal["snooze"]
    minutes: int = Field(ge=1, le=MAX_MINUTES)


class ResolveAction(In):
    type: Literal["resolve"]


Action = Annotated[
    AssignAction | SetTeamAction | SetPriorityAction | AddTagsAction | RemoveTagsAction | ReplyTemplateAction
    | AddNoteAction | NotifyAction | CallWebhookAction | StartSwarmAction | SetRequiredSkillsAction
    | SnoozeAction | ResolveAction,
    Field(discriminator="type"),
]
Actions = Annotated[list[Action], Field(min_length=1, max_length=MAX_ACTIONS)]


# --- rules -------------------------------------------------------------------------------------

def _always() -> ConditionGroup:
    return ConditionGroup(all=[])


class RuleDefinition(In):
    """What a rule does; each change to it is a new version."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    trigger: Trigger
    conditions: ConditionGroup = Field(default_factory=_always)
    actions: Actions
    max_runs_per_hour: int = Field(default=10, ge=1, le=1000,
                                   description="per conversation: further runs within the hour are skipped")

    @model_validator(mode="after")
    def _limits(self) -> RuleDefinition:
        walk_conditions(self.conditions)
        return self


class RuleCreate(RuleDefinition):
    enabled: bool = True
    position: int | None = Field(default=None, ge=0, le=1_000_000, description="default: after the others")


class RuleUpdate(In):
    """Fields present change; a change to the definition (all but ``enabled`` and ``position``)
    makes a new version."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    trigger: Trigger | None = None
    conditions: ConditionGroup | None = None
    actions: Actions | None = None
    max_runs_per_hour: int | None = Field(default=None, ge=1, le=1000)
    enabled: bool | None = None
    position: int | None = Field(default=None, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _no_nulls(self) -> RuleUpdate:
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null; leave a field out to keep it")
        if self.conditions is not None:
            walk_conditions(self.conditions)
        return self


class RuleOut(Out):
    id: int
    name: str
    description: str
    enabled: bool
    position: int
    version: int
    trigger: dict[str, Any]
    conditions: dict[str, Any]
    actions: list[dict[str, Any]]
    max_runs_per_hour: int
    created_at: datetime
    updated_at: datetime


class RuleVersionOut(Out):
    rule_id: int
    version: int
    name: str
    description: str
    trigger: dict[str, Any]
    conditions: dict[str, Any]
    actions: list[dict[str, Any]]
    max_runs_per_hour: int
    created_by: int | None
    created_at: datetime


# --- macros ------------------------------------------------------------------------------------

class MacroCreate(In):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    actions: Actions
    personal: bool = Field(default=False, description="yours only; shared macros are for admins and supervisors "
                                                      "to manage")


class MacroUpdate(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    actions: Actions | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> MacroUpdate:
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null; leave a field out to keep it")
        return self


class MacroOut(Out):
    id: int
    name: str
    description: str
    actions: list[dict[str, Any]]
    personal: bool
    owner_id: int | None
    created_at: datetime
    updated_at: datetime


# --- executions --------------------------------------------------------------------------------

class ExecutionOut(Out):
    id: int
    kind: Literal["rule", "macro"]
    rule_id: int | None
    rule_version: int | None
    macro_id: int | None
    name: str = Field(description="the rule's or macro's name when it ran")
    conversation_id: int
    trigger_event_uid: str | None
    trigger_event_type: str | None
    trigger_key: str
    outcome: str = Field(description="applied, partial, failed, not_matched or skipped")
    reason: str | None = Field(description="why it was skipped or failed")
    conditions: dict[str, Any] = Field(description="matched, and each condition's result in order "
                                                   "(null: not evaluated, the group was already decided)")
    actions: list[dict[str, Any]] = Field(description="each action: type, ok, and result or error")
    cause: dict[str, Any] | None = Field(description="what caused the trigger event (the rules behind it)")
    actor_user_id: int | None
    created_at: datetime


class MacroApplied(Out):
    execution: ExecutionOut
    conversation: ConversationOut
