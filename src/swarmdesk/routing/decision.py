"""The routing decision: a pure function over an in-memory snapshot of candidate agents.

No I/O and no clock: the caller (``actions.do_route_conversation``, the bench) loads the snapshot
with indexed queries and says how long the conversation has waited. One pass over the candidates,
so a thousand agents cost well under a millisecond.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

STRATEGIES = ("balanced", "round_robin", "sticky", "manual")

# What a channel's conversations are called in an explanation ("2 of 3 chats").
UNITS = {"webchat": "chats", "email": "emails", "phone": "calls", "twilio_sms": "texts", "telegram": "chats",
         "whatsapp": "chats", "twilio_whatsapp": "chats", "messenger": "chats"}


def unit_for(channel_kind: str) -> str:
    return UNITS.get(channel_kind, "conversations")


@dataclass(slots=True)
class Candidate:
    """An online agent who may serve the queue, as routing sees them at this instant."""

    user_id: int
    name: str
    skills: dict[int, int]  # skill id -> proficiency 1..5
    load: int  # open conversations assigned to them on this channel kind
    capacity: int  # how many they take on this channel kind
    total_load: int = 0  # open conversations on every channel
    last_assigned_at: float = 0.0  # epoch seconds of their last routed conversation; 0: never


@dataclass(frozen=True, slots=True)
class Requirement:
    skill_id: int
    name: str
    min_proficiency: int


@dataclass(frozen=True, slots=True)
class Step:
    """A relaxation step: from ``after_seconds`` of waiting on, each required proficiency is at most
    ``min_proficiency``; with ``any_agent_on_team`` skills no longer matter. Step 0 is the queue's
    strict requirement."""

    index: int = 0
    after_seconds: int = 0
    min_proficiency: int | None = None
    any_agent_on_team: bool = False

    def describe(self) -> str:
        if self.index == 0:
            return ""
        if self.any_agent_on_team:
            return f"after {self.after_seconds} s: any agent on the team"
        return f"after {self.after_seconds} s: proficiency ≥ {self.min_proficiency}"


def steps_from(config: Iterable[dict]) -> list[Step]:
    """The queue's stored steps, with step 0 (strict) first."""
    steps = [Step()]
    for i, raw in enumerate(config, start=1):
        steps.append(Step(index=i, after_seconds=int(raw["after_seconds"]),
                          min_proficiency=raw.get("min_proficiency"),
                          any_agent_on_team=bool(raw.get("any_agent_on_team", False))))
    return steps


def current_step(steps: Sequence[Step], waited_seconds: float) -> Step:
    chosen = steps[0]
    for step in steps[1:]:
        if waited_seconds >= step.after_seconds:
            chosen = step
    return chosen


def next_step(steps: Sequence[Step], waited_seconds: float) -> Step | None:
    for step in steps[1:]:
        if step.after_seconds > waited_seconds:
            return step
    return None


@dataclass(slots=True)
class Decision:
    user_id: int | None
    explanation: str  # why this agent, or why nobody
    strategy: str  # the strategy that chose (sticky falls back to balanced)
    step: int
    # Why nobody: "nobody_online", "at_capacity", "skills"; None when someone was chosen.
    reason: str | None = None
    load_after: int = 0
    capacity: int = 0
    skills: list[tuple[str, int]] = field(default_factory=list)


def _needed(req: Requirement, step: Step) -> int:
    if step.min_proficiency is None:
        return req.min_proficiency
    return min(req.min_proficiency, step.min_proficiency)


def decide(candidates: Sequence[Candidate], requirements: Sequence[Requirement], step: Step, *,
           strategy: str, channel_kind: str = "", rr_cursor: int = 0, sticky_user_id: int | None = None,
           exclude: frozenset[int] | set[int] = frozenset()) -> Decision:
    """Choose an agent for one conversation.

    Qualified: online (every candidate is), below capacity on the channel, and meeting each required
    skill at the step's proficiency (any proficiency, or none, once ``any_agent_on_team``). Among the
    qualified, those who meet the strict requirement come first (the best match); then the strategy:
    balanced takes the fewest open on this channel, then fewest open overall, then the higher skill
    score, then the longest idle; round-robin takes the next user id after the cursor; sticky takes
    the customer's previous agent when they have room (skills aside: they know the customer), else
    balanced. Manual never chooses.
    """
    unit = unit_for(channel_kind)
    if strategy == "manual":
        return Decision(None, "this queue is assigned by hand", "manual", step.index, reason="manual")
    relaxed = step.any_agent_on_team
    needs = [(r.skill_id, _needed(r, step)) for r in requirements]
    strict = [(r.skill_id, r.min_proficiency) for r in requirements]

    seen = free = 0
    sticky: Candidate | None = None
    best: Candidate | None = None
    best_key: tuple | None = None
    # Round-robin: the first qualified user id after the cursor, else the lowest (wrapping), best tier first.
    rr_after: list[Candidate | None] = [None, None]
    rr_wrap: list[Candidate | None] = [None, None]
    for c in candidates:
        if c.user_id in exclude:
            continue
        seen += 1
        if c.load >= c.capacity:
            continue
        free += 1
        if sticky_user_id is not None and c.user_id == sticky_user_id:
            sticky = c
        skills = c.skills
        if not relaxed:
            ok = True
            for skill_id, need in needs:
                if skills.get(skill_id, 0) < need:
                    ok = False
                    break
            if not ok:
                continue
        tier = 0
        for skill_id, need in strict:
            if skills.get(skill_id, 0) < need:
                tier = 1
                break
        if strategy == "round_robin":
            uid = c.user_id
            if uid > rr_cursor:
                cur = rr_after[tier]
                if cur is None or uid < cur.user_id:
                    rr_after[tier] = c
            else:
                cur = rr_wrap[tier]
                if cur is None or uid < cur.user_id:
                    rr_wrap[tier] = c
            continue
        score = 0
        for skill_id, _ in strict:
            score += skills.get(skill_id, 0)
        key = (tier, c.load, c.total_load, -score, c.last_assigned_at, c.user_id)
        if best_key is None or key < best_key:
            best, best_key = c, key

    used = strategy
    chosen: Candidate | None
    if strategy == "round_robin":
        chosen = rr_after[0] or rr_wrap[0] or rr_after[1] or rr_wrap[1]
    elif strategy == "sticky" and sticky is not None:
        chosen = sticky
    else:
        chosen = best
        if strategy == "sticky":
            used = "balanced"

    if chosen is None:
        if seen == 0:
            why, reason = "nobody who serves this queue is online", "nobody_online"
        elif free == 0:
            why, reason = f"everyone online is at capacity ({seen} online)", "at_capacity"
        else:
            wanted = ", ".join(f"{r.name} ≥ {_needed(r, step)}" for r in requirements)
            why, reason = f"nobody online with room has {wanted}", "skills"
        return Decision(None, why, used, step.index, reason=reason)

    skills_shown = [(r.name, chosen.skills.get(r.skill_id, 0)) for r in requirements]
    parts = [f"{name} {level}" if level else f"no {name}" for name, level in skills_shown]
    parts.append(f"{chosen.load + 1} of {chosen.capacity} {unit}")
    explanation = ", ".join(parts)
    if strategy == "sticky" and used == "sticky":
        explanation = f"the customer's previous agent; {explanation}"
    elif strategy == "sticky":
        explanation += "; previous agent unavailable, balanced"
    elif strategy == "round_robin":
        explanation += "; next in turn"
    if step.index:
        explanation += f" (relaxed {step.describe()})"
    return Decision(chosen.user_id, explanation, used, step.index, load_after=chosen.load + 1,
                    capacity=chosen.capacity, skills=skills_shown)
