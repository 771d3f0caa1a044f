"""Business time (sla.business_time) and the pause arithmetic of sla.deadlines: pure functions,
checked across evenings, weekends, holidays and the DST changes of Europe/Berlin and
America/New_York."""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from swarmdesk.sla import business_time
from swarmdesk.sla.business_time import BusinessCalendar, NeverOpen
from swarmdesk.sla.deadlines import reached

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H = 60  # minutes
NINE_TO_FIVE = ((9 * H, 17 * H),)


def office(zone: ZoneInfo, holidays: dict[date, list[tuple[int, int]]] | None = None) -> BusinessCalendar:
    """Monday to Friday, 09:00-17:00."""
    return BusinessCalendar(zone, [NINE_TO_FIVE] * 5 + [(), ()], holidays)


def round_the_clock(zone: ZoneInfo) -> BusinessCalendar:
    """Every local day 00:00-24:00 in a zone (not the UTC fast path): shows each day's real length."""
    return BusinessCalendar(zone, [((0, 24 * H),)] * 7)


def at(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)


def local(moment: datetime, zone: ZoneInfo) -> tuple[int, ...]:
    m = moment.astimezone(zone)
    return (m.year, m.month, m.day, m.hour, m.minute)


# --- business hours, evenings, weekends, holidays --------------------------------------------------

def test_add_within_a_day_overnight_and_over_a_weekend() -> None:
    cal = office(BERLIN)
    # Wednesday 2026-11-25
    assert local(cal.add(at(BERLIN, 2026, 11, 25, 10, 0), 90), BERLIN) == (2026, 11, 25, 11, 30)
    assert local(cal.add(at(BERLIN, 2026, 11, 25, 16, 0), 90), BERLIN) == (2026, 11, 26, 9, 30)
    # Before opening and after closing count from the next opening.
    assert local(cal.add(at(BERLIN, 2026, 11, 25, 6, 0), 30), BERLIN) == (2026, 11, 25, 9, 30)
    assert local(cal.add(at(BERLIN, 2026, 11, 25, 20, 0), 30), BERLIN) == (2026, 11, 26, 9, 30)
    # Friday 16:00 + 2 h -> Monday 10:00; from Saturday -> Monday.
    assert local(cal.add(at(BERLIN, 2026, 11, 27, 16, 0), 120), BERLIN) == (2026, 11, 30, 10, 0)
    assert local(cal.add(at(BERLIN, 2026, 11, 28, 12, 0), 60), BERLIN) == (2026, 11, 30, 10, 0)
    # Exactly a day's worth ends at closing time, not at the next opening.
    assert local(cal.add(at(BERLIN, 2026, 11, 25, 9, 0), 8 * H), BERLIN) == (2026, 11, 25, 17, 0)
    # A week of business time.
    assert local(cal.add(at(BERLIN, 2026, 11, 25, 10, 0), 5 * 8 * H), BERLIN) == (2026, 12, 2, 10, 0)
    assert cal.add(at(BERLIN, 2026, 11, 28, 12, 0), 0) == at(BERLIN, 2026, 11, 28, 12, 0)


def test_between_counts_only_open_time_and_is_signed() -> None:
    cal = office(BERLIN)
    assert cal.between(at(BERLIN, 2026, 11, 25, 10, 0), at(BERLIN, 2026, 11, 25, 11, 30)) == 90
    assert cal.between(at(BERLIN, 2026, 11, 27, 16, 0), at(BERLIN, 2026, 11, 30, 10, 0)) == 120
    assert cal.between(at(BERLIN, 2026, 11, 28, 0, 0), at(BERLIN, 2026, 11, 29, 23, 59)) == 0
    assert cal.between(at(BERLIN, 2026, 11, 30, 10, 0), at(BERLIN, 2026, 11, 27, 16, 0)) == -120
    assert cal.between(at(BERLIN, 2026, 11, 23, 0, 0), at(BERLIN, 2026, 11, 30, 0, 0)) == 5 * 8 * H


def test_holidays_whole_and_partial() -> None:
    cal = office(BERLIN, {date(2026, 12, 24): [(12 * H, 24 * H)],  # closed from noon
                          date(2026, 12, 25): [(0, 24 * H)]})
    # Thursday 24th 11:00 + 2 h: one hour before noon, Friday 25th closed, Monday 28th 10:00.
    assert local(cal.add(at(BERLIN, 2026, 12, 24, 11, 0), 120), BERLIN) == (2026, 12, 28, 10, 0)
    assert cal.between(at(BERLIN, 2026, 12, 24, 0, 0), at(BERLIN, 2026, 12, 28, 0, 0)) == 3 * H
    assert not cal.is_open(at(BERLIN, 2026, 12, 24, 13, 0))
    assert cal.is_open(at(BERLIN, 2026, 12, 24, 11, 59))
    # A partial closure inside the hours splits the day.
    lunch = office(BERLIN, {date(2026, 11, 25): [(12 * H, 13 * H)]})
    assert local(lunch.add(at(BERLIN, 2026, 11, 25, 11, 30), 60), BERLIN) == (2026, 11, 25, 13, 30)


def test_several_intervals_a_day_and_an_overnight_shift_as_two_intervals() -> None:
    split = BusinessCalendar(BERLIN, [((8 * H, 12 * H), (13 * H, 17 * H))] * 5 + [(), ()])
    assert local(split.add(at(BERLIN, 2026, 11, 25, 11, 0), 120), BERLIN) == (2026, 11, 25, 14, 0)
    # Night desk: Monday 22:00-24:00 and Tuesday 00:00-06:00 are one shift.
    night = BusinessCalendar(BERLIN, [((22 * H, 24 * H),), ((0, 6 * H),), (), (), (), (), ()])
    assert local(night.add(at(BERLIN, 2026, 11, 23, 23, 0), 120), BERLIN) == (2026, 11, 24, 1, 0)
    assert night.between(at(BERLIN, 2026, 11, 23, 12, 0), at(BERLIN, 2026, 11, 24, 12, 0)) == 8 * H
    # Touching intervals merge; overlapping ones are refused.
    assert business_time.normalize_spans([(13 * H, 17 * H), (9 * H, 13 * H)]) == ((9 * H, 17 * H),)
    with pytest.raises(ValueError, match="overlap"):
        business_time.normalize_spans([(9 * H, 13 * H), (12 * H, 17 * H)])
    with pytest.raises(ValueError):
        business_time.normalize_spans([(22 * H, 6 * H)])
    with pytest.raises(ValueError, match="at least one day"):
        BusinessCalendar(BERLIN, [()] * 7)


def test_a_calendar_that_never_opens_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(business_time, "MAX_SCAN_DAYS", 60)
    mondays = {date(2026, 11, 23) + timedelta(weeks=n): [(0, 24 * H)] for n in range(10)}
    cal = BusinessCalendar(BERLIN, [NINE_TO_FIVE, (), (), (), (), (), ()], mondays)
    with pytest.raises(NeverOpen):
        cal.add(at(BERLIN, 2026, 11, 23, 8, 0), 1)


def test_round_the_clock_is_elapsed_time() -> None:
    always = BusinessCalendar.always()
    start = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    assert always.add(start, 36 * H) == start + timedelta(hours=36)
    assert always.between(start, start + timedelta(days=2, minutes=5)) == 2 * 24 * H + 5


# --- DST --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("zone", "spring", "fall"), [
    (BERLIN, date(2026, 3, 29), date(2026, 10, 25)),
    (NEW_YORK, date(2026, 3, 8), date(2026, 11, 1)),
])
def test_dst_days_are_23_and_25_hours_long(zone: ZoneInfo, spring: date, fall: date) -> None:
    cal = round_the_clock(zone)
    for day, hours in ((spring, 23), (fall, 25), (spring - timedelta(days=1), 24)):
        start = at(zone, day.year, day.month, day.day, 0, 0)
        end = at(zone, *(day + timedelta(days=1)).timetuple()[:3], 0, 0)
        assert cal.between(start, end) == hours * H
        assert cal.add(start, hours * H) == end
    # 00:00 + 3 h on the spring day is 04:00 local (the clocks skipped an hour) ...
    assert local(cal.add(at(zone, spring.year, spring.month, spring.day, 0, 0), 3 * H), zone)[3:] == (4, 0)
    # ... and 02:00 local on the fall day (the hour repeats).
    assert local(cal.add(at(zone, fall.year, fall.month, fall.day, 0, 0), 3 * H), zone)[3:] == (2, 0)


@pytest.mark.parametrize(("zone", "spring", "fall"), [
    (BERLIN, date(2026, 3, 29), date(2026, 10, 25)),
    (NEW_YORK, date(2026, 3, 8), date(2026, 11, 1)),
])
def test_opening_hours_over_the_change_count_real_time(zone: ZoneInfo, spring: date, fall: date) -> None:
    # A Sunday night shift 01:00-04:00 over the change: 2 real hours in spring, 4 in the fall.
    night = BusinessCalendar(zone, [(), (), (), (), (), (), ((1 * H, 4 * H),)])
    for day, hours in ((spring, 2), (fall, 4)):
        start, end = at(zone, *day.timetuple()[:3], 0, 0), at(zone, *day.timetuple()[:3], 12, 0)
        assert night.between(start, end) == hours * H
        assert local(night.add(start, hours * H), zone)[3:] == (4, 0)
    # An opening inside the skipped hour means the moment the clocks jump: 02:30-04:00 is one hour.
    gap = BusinessCalendar(zone, [(), (), (), (), (), (), ((2 * H + 30, 4 * H),)])
    start = at(zone, *spring.timetuple()[:3], 0, 0)
    assert gap.between(start, start + timedelta(hours=12)) == 60
    assert local(gap.add(start, 1), zone)[3:] == (3, 1)


@pytest.mark.parametrize(("zone", "friday"), [(BERLIN, date(2026, 3, 27)), (BERLIN, date(2026, 10, 23)),
                                              (NEW_YORK, date(2026, 3, 6)), (NEW_YORK, date(2026, 10, 30))])
def test_office_hours_across_a_dst_weekend(zone: ZoneInfo, friday: date) -> None:
    cal = office(zone)
    start = at(zone, *friday.timetuple()[:3], 16, 0)
    due = cal.add(start, 120)
    assert local(due, zone)[3:] == (10, 0) and due.astimezone(zone).weekday() == 0
    # In UTC the weekend was an hour shorter or longer; business time does not care.
    assert cal.between(start, due) == 120
    assert due - start in (timedelta(days=2, hours=17), timedelta(days=2, hours=19))


def test_add_and_between_agree_everywhere() -> None:
    rng = random.Random(5)
    calendars = [office(BERLIN, {date(2026, 12, 25): [(0, 24 * H)], date(2026, 12, 24): [(12 * H, 24 * H)]}),
                 office(NEW_YORK), round_the_clock(BERLIN), round_the_clock(NEW_YORK),
                 BusinessCalendar(NEW_YORK, [((1 * H, 4 * H), (20 * H, 24 * H))] * 7)]
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(2000):
        cal = rng.choice(calendars)
        start = base + timedelta(minutes=rng.randrange(0, 366 * 24 * 60), seconds=rng.randrange(60))
        minutes = rng.choice([1, 15, 60, 240, 480, 3 * 480, 10 * 480]) + rng.random()
        due = cal.add(start, minutes)
        assert due >= start
        assert abs(cal.between(start, due) - minutes) < 1e-6
        assert cal.add(start, minutes / 2) <= due


def test_fast_enough() -> None:
    """The SLA evaluator calls these for every deadline; bench/sla_evaluator.py measures them."""
    cal = office(BERLIN, {date(2026, 12, 25): [(0, 24 * H)]})
    starts = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=37 * n) for n in range(10_000)]
    began = time.perf_counter()
    for start in starts:
        cal.add(start, 480)
        cal.between(start, start + timedelta(days=3))
    assert time.perf_counter() - began < 2.0  # ~0.1 s on a quiet machine; generous for a busy one


# --- pauses (sla.deadlines.reached) -----------------------------------------------------------------

def test_a_pause_moves_the_deadline_by_the_business_time_spent_pending() -> None:
    cal = office(BERLIN)
    start = at(BERLIN, 2026, 11, 25, 10, 0)  # Wednesday, 2 h target -> 12:00
    assert reached(cal, start, 120, []) == at(BERLIN, 2026, 11, 25, 12, 0)
    # Pending 11:00 -> 16:00 (5 business hours): the hour left runs 16:00 -> 17:00.
    pause = [(at(BERLIN, 2026, 11, 25, 11, 0), at(BERLIN, 2026, 11, 25, 16, 0))]
    assert reached(cal, start, 120, pause) == at(BERLIN, 2026, 11, 25, 17, 0)
    # Still pending: no deadline while paused ...
    assert reached(cal, start, 120, [(at(BERLIN, 2026, 11, 25, 11, 0), None)]) is None
    # ... unless it was reached before the pause began.
    assert reached(cal, start, 60, [(at(BERLIN, 2026, 11, 25, 11, 30), None)]) == at(BERLIN, 2026, 11, 25, 11, 0)
    # Pending over the weekend costs no business time beyond Friday's and Monday's share.
    friday = [(at(BERLIN, 2026, 11, 27, 16, 0), at(BERLIN, 2026, 11, 30, 10, 0))]
    assert reached(cal, at(BERLIN, 2026, 11, 27, 15, 0), 120, friday) == at(BERLIN, 2026, 11, 30, 11, 0)
    # Pauses before the start do not count.
    early = [(at(BERLIN, 2026, 11, 24, 9, 0), at(BERLIN, 2026, 11, 24, 17, 0))]
    assert reached(cal, start, 120, early) == at(BERLIN, 2026, 11, 25, 12, 0)
