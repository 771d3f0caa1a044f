"""The automation domain's events: staff only (the conversation's staff audience), so the
conversation view refreshes its activity when a rule or macro ran. Webhooks are not offered them."""

from __future__ import annotations

from typing import Any, Literal

from swarmdesk.events.base import BaseEvent


class RuleApplied(BaseEvent):
    """A rule's conditions held and its actions ran (``outcome``: applied, partial or failed)."""

    type: Literal["automation.rule_applied"] = "automation.rule_applied"
    conversation_id: int
    execution_id: int
    rule_id: int
    rule_version: int
    rule_name: str
    outcome: str
    actions: list[dict[str, Any]]  # each: type, ok


class MacroApplied(BaseEvent):
    type: Literal["automation.macro_applied"] = "automation.macro_applied"
    conversation_id: int
    execution_id: int
    macro_id: int
    macro_name: str
    user_id: int
    actions: list[dict[str, Any]]  # each: type, ok
