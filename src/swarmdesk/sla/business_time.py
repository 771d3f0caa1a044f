"""Business time: pure functions over a calendar of weekly opening hours and holidays kept in one
IANA time zone. No database, no clock.

Opening hours are wall-clock minutes of a local day, ``[start, end)``, with ``end`` at most 1440
(midnight). A shift that crosses midnight is two intervals (Monday 22:00-24:00 and Tuesday
00:00-06:00): they join seamlessly, because each local day is turned into UTC instants on its own
and walked in order. Holidays close a whole local date or a part of it.

Every local day becomes a short tuple of UTC spans in integer microseconds (cached per calendar),
so adding or measuring business time is a walk over a few integers per day, exact to the
microsecond, whatever DST does:

* a spring-forward day is shorter: a local time inside the gap (02:30 in Berlin on the last Sunday
  of March) means the moment the clocks jump;
* a fall-back day is longer: an ambiguous local time means its first occurrence (PEP 495 fold=0),
  so an interval over the repeated hour counts it twice, as the people working it do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

MINUTES_PER_DAY = 1440
US_PER_MINUTE = 60_000_000
# A calendar must open at least once in this many days after any instant asked about; a calendar
# whose holidays close it for longer cannot place a deadline and raises NeverOpen.
MAX_SCAN_DAYS = 5 * 366
_CACHE_DAYS = 20_000  # compiled local days kept per calendar (about 55 years)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

Span = tuple[int, int]  # minutes from local midnight, [start, end)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class NeverOpen(ValueError):
    """The calendar has no business time within MAX_SCAN_DAYS of the instant asked about."""


def to_us(at: datetime) -> int:
    """An aware instant as integer microseconds since the epoch."""
    if at.tzinfo is None:
        raise ValueError("business time needs aware datetimes")
    return (at - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def normalize_spans(spans: Sequence[Span]) -> tuple[Span, ...]:
    """Sorted, touching spans merged. Raises ValueError on a malformed or overlapping span."""
    ordered = sorted(spans)
    merged: list[list[int]] = []
    for start, end in ordered:
        if not (0 <= start < end <= MINUTES_PER_DAY):
            raise ValueError(f"interval {start}-{end} is not within one day, or ends before it starts")
        if merged and start < merged[-1][1]:
            raise ValueError("intervals of one day overlap")
        if merged and start == merged[-1][1]:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return tuple((s, e) for s, e in merged)


def _subtract(spans: tuple[Span, ...], closed: tuple[Span, ...]) -> tuple[Span, ...]:
    out: list[Span] = []
    for start, end in spans:
        pieces = [(start, end)]
        for c_start, c_end in closed:
            nxt: list[Span] = []
            for s, e in pieces:
                if c_end <= s or c_start >= e:
                    nxt.append((s, e))
                    continue
                if s < c_start:
                    nxt.append((s, c_start))
                if c_end < e:
                    nxt.append((c_end, e))
            pieces = nxt
        out.extend(pieces)
    return tuple(out)


class BusinessCalendar:
    """Weekly opening hours (``weekly[0]`` is Monday) and closed dates in one time zone."""

    __slots__ = ("zone", "always_open", "_weekly", "_closed", "_days")

    def __init__(self, zone: str | ZoneInfo, weekly: Sequence[Sequence[Span]],
                 holidays: Mapping[date, Sequence[Span]] | None = None, *, always_open: bool = False) -> None:
        self.zone = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
        self.always_open = always_open
        if len(weekly) != 7:
            raise ValueError("weekly hours need seven days, Monday first")
        self._weekly = tuple(normalize_spans(day) for day in weekly)
        self._closed = {d: normalize_spans(spans) for d, spans in (holidays or {}).items()}
        if not always_open and not any(self._weekly):
            raise ValueError("a calendar needs opening hours on at least one day of the week")
        self._days: dict[int, tuple[tuple[int, int], ...]] = {}

    @classmethod
    def always(cls) -> BusinessCalendar:
        """24/7: business time is elapsed time."""
        return cls(UTC_ZONE, [((0, MINUTES_PER_DAY),)] * 7, always_open=True)

    # --- compiled days ----------------------------------------------------------------------

    def open_spans(self, day: date) -> tuple[Span, ...]:
        """The local opening hours of one date (holidays applied), in minutes."""
        spans = self._weekly[day.weekday()]
        closed = self._closed.get(day)
        return _subtract(spans, closed) if closed else spans

    def _local_to_us(self, day: date, minute: int) -> int:
        if minute == MINUTES_PER_DAY:
            day, minute = day + timedelta(days=1), 0
        local = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=self.zone)
        at = to_us(local)
        back = from_us(at).astimezone(self.zone)
        if (back.hour, back.minute) == (local.hour, local.minute) and back.date() == day:
            return at
        return self._gap_end(local)

    def _gap_end(self, local: datetime) -> int:
        """A wall-clock time the clocks skip: the instant they jump (between the readings of
        fold=1, which uses the offset after the jump, and fold=0, the offset before)."""
        lo, hi = to_us(local.replace(fold=1)), to_us(local.replace(fold=0))
        after = from_us(hi).astimezone(self.zone).utcoffset()
        while hi - lo > 1_000_000:  # transitions fall on whole seconds
            mid = (lo + hi) // 2 // 1_000_000 * 1_000_000
            if mid <= lo:
                break
            if from_us(mid).astimezone(self.zone).utcoffset() == after:
                hi = mid
            else:
                lo = mid
        return hi

    def _day(self, ordinal: int) -> tuple[tuple[int, int], ...]:
        cached = self._days.get(ordinal)
        if cached is not None:
            return cached
        day = date.fromordinal(ordinal)
        spans = []
        for start, end in self.open_spans(day):
            s, e = self._local_to_us(day, start), self._local_to_us(day, end)
            if e > s:
                spans.append((s, e))
        compiled = tuple(spans)
        if len(self._days) >= _CACHE_DAYS:
            self._days.clear()
        self._days[ordinal] = compiled
        return compiled

    def _ordinal(self, us: int) -> int:
        return from_us(us).astimezone(self.zone).toordinal()

    # --- the two questions ------------------------------------------------------------------

    def add(self, start: datetime, minutes: float) -> datetime:
        """The instant ``minutes`` of business time after ``start`` (counting from the next
        opening when ``start`` is outside business hours)."""
        if minutes < 0:
            raise ValueError("minutes must not be negative")
        if self.always_open:
            return start + timedelta(minutes=minutes)
        left = round(minutes * US_PER_MINUTE)
        if left == 0:
            return start
        t = to_us(start)
        ordinal = self._ordinal(t)
        for _ in range(MAX_SCAN_DAYS):
            for s, e in self._day(ordinal):
                if e <= t:
                    continue
                if s < t:
                    s = t
                if e - s >= left:
                    return from_us(s + left)
                left -= e - s
            ordinal += 1
        raise NeverOpen(f"no business time within {MAX_SCAN_DAYS} days of {start.isoformat()}")

    def between(self, start: datetime, end: datetime) -> float:
        """Business minutes from ``start`` to ``end`` (negative when ``end`` is earlier)."""
        if end < start:
            return -self.between(end, start)
        if self.always_open:
            return (end - start) / timedelta(minutes=1)
        a, b = to_us(start), to_us(end)
        if a == b:
            return 0.0
        total = 0
        for ordinal in range(self._ordinal(a), self._ordinal(b) + 1):
            for s, e in self._day(ordinal):
                lo, hi = (s if s > a else a), (e if e < b else b)
                if hi > lo:
                    total += hi - lo
        return total / US_PER_MINUTE

    def is_open(self, at: datetime) -> bool:
        t = to_us(at)
        return self.always_open or any(s <= t < e for s, e in self._day(self._ordinal(t)))


UTC_ZONE = ZoneInfo("UTC")


def parse_hhmm(value: str) -> int:
    """"09:30" -> 570; "24:00" -> 1440."""
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def format_hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
