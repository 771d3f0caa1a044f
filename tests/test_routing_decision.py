"""The pure decision function: exact choices and explanations, without a database."""

from __future__ import annotations

from swarmdesk.routing.decision import Candidate, Requirement, Step, current_step, decide, next_step, steps_from

BILLING, SPANISH = Requirement(1, "billing", 4), Requirement(2, "Spanish", 5)


def agent(uid: int, load: int = 0, capacity: int = 3, idle: float = 0.0, total: int | None = None,
          **skills: int) -> Candidate:
    ids = {"billing": 1, "spanish": 2}
    return Candidate(user_id=uid, name=f"u{uid}", skills={ids[k]: v for k, v in skills.items()}, load=load,
                     capacity=capacity, total_load=load if total is None else total, last_assigned_at=idle)


def test_balanced_order_of_preference() -> None:
    strict = Step()
    pool = [agent(1, load=2, billing=5), agent(2, load=1, billing=4), agent(3, load=1, billing=4, idle=5.0)]
    d = decide(pool, [BILLING], strict, strategy="balanced", channel_kind="webchat")
    assert (d.user_id, d.explanation) == (2, "billing 4, 2 of 3 chats")
    # Same load on the channel: fewer open overall wins, then the higher skill score, then longest idle.
    pool = [agent(1, load=1, total=3, billing=5), agent(2, load=1, total=1, billing=4)]
    assert decide(pool, [BILLING], strict, strategy="balanced").user_id == 2
    pool = [agent(1, load=1, billing=4, idle=1.0), agent(2, load=1, billing=5, idle=9.0)]
    assert decide(pool, [BILLING], strict, strategy="balanced").user_id == 2
    pool = [agent(1, load=1, billing=4, idle=9.0), agent(2, load=1, billing=4, idle=1.0)]
    assert decide(pool, [BILLING], strict, strategy="balanced").user_id == 2


def test_strict_matches_come_before_relaxed_ones() -> None:
    relaxed = Step(1, 60, min_proficiency=2)
    pool = [agent(1, load=0, billing=2), agent(2, load=2, billing=4)]
    d = decide(pool, [BILLING], relaxed, strategy="balanced", channel_kind="email")
    assert (d.user_id, d.step, d.explanation) == (2, 1, "billing 4, 3 of 3 emails (relaxed after 60 s: proficiency ≥ 2)")
    pool = [agent(1, load=0, billing=2), agent(2, load=3, billing=4)]  # the strict match is full
    assert decide(pool, [BILLING], relaxed, strategy="balanced").user_id == 1


def test_nobody_and_why() -> None:
    assert decide([], [BILLING], Step(), strategy="balanced").explanation == "nobody who serves this queue is online"
    full = [agent(1, load=3, billing=5)]
    d = decide(full, [BILLING], Step(), strategy="balanced")
    assert (d.user_id, d.reason, d.explanation) == (None, "at_capacity", "everyone online is at capacity (1 online)")
    d = decide([agent(1, billing=3, spanish=5)], [BILLING, SPANISH], Step(), strategy="balanced")
    assert (d.reason, d.explanation) == ("skills", "nobody online with room has billing ≥ 4, Spanish ≥ 5")
    d = decide([agent(1, billing=5)], [BILLING], Step(), strategy="balanced", exclude={1})
    assert d.reason == "nobody_online"
    d = decide([agent(1)], [BILLING], Step(2, 300, any_agent_on_team=True), strategy="balanced")
    assert (d.user_id, d.explanation) == (1, "no billing, 1 of 3 conversations (relaxed after 300 s: any agent on the team)")


def test_round_robin_takes_turns_and_wraps_best_tier_first() -> None:
    pool = [agent(5, billing=4), agent(9, billing=4), agent(2, billing=4)]
    assert decide(pool, [BILLING], Step(), strategy="round_robin", rr_cursor=0).user_id == 2
    assert decide(pool, [BILLING], Step(), strategy="round_robin", rr_cursor=2).user_id == 5
    assert decide(pool, [BILLING], Step(), strategy="round_robin", rr_cursor=5).user_id == 9
    assert decide(pool, [BILLING], Step(), strategy="round_robin", rr_cursor=9).user_id == 2  # wraps
    # A relaxed-only match waits for the strict ones' turns.
    pool = [agent(3, billing=2), agent(7, billing=4)]
    assert decide(pool, [BILLING], Step(1, 60, 2), strategy="round_robin", rr_cursor=0).user_id == 7


def test_sticky_needs_room_not_skills_and_falls_back_to_balanced() -> None:
    pool = [agent(1, load=2, billing=1), agent(2, load=0, billing=5)]
    d = decide(pool, [BILLING], Step(), strategy="sticky", sticky_user_id=1, channel_kind="webchat")
    assert (d.user_id, d.strategy, d.explanation) == (1, "sticky", "the customer's previous agent; billing 1, 3 of 3 chats")
    pool = [agent(1, load=3, billing=5), agent(2, load=0, billing=5)]
    d = decide(pool, [BILLING], Step(), strategy="sticky", sticky_user_id=1)
    assert (d.user_id, d.strategy) == (2, "balanced")
    assert d.explanation.endswith("; previous agent unavailable, balanced")


def test_manual_never_chooses() -> None:
    d = decide([agent(1)], [], Step(), strategy="manual")
    assert (d.user_id, d.reason) == (None, "manual")


def test_relaxation_timeline() -> None:
    steps = steps_from([{"after_seconds": 60, "min_proficiency": 2}, {"after_seconds": 300, "any_agent_on_team": True}])
    assert [current_step(steps, t).index for t in (0, 59.9, 60, 299, 300, 10_000)] == [0, 0, 1, 1, 2, 2]
    assert [getattr(next_step(steps, t), "after_seconds", None) for t in (0, 60, 299, 300)] == [60, 300, 300, None]
