"""Admin page for business hours and SLA policies (``/app/admin/sla``).

Lists the account's business calendars (each week in one line, its holidays, whether it is open
right now in its own zone) and its SLA policies in the order they are tried. Every change goes
through the SLA JSON API from ``static/js/admin_sla.js``, which builds the structured editors
(weekly hours, holidays, targets in hours and minutes) from the data this page embeds."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from swarmdesk.auth.dependencies import Uow
from swarmdesk.channels import service as channels_service
from swarmdesk.channels.registry import channels
from swarmdesk.conversations.models import Priority
from swarmdesk.core.clock import utcnow
from swarmdesk.sla import service as sla_service
from swarmdesk.sla.business_time import MINUTES_PER_DAY, WEEKDAYS, format_hhmm
from swarmdesk.sla.models import BusinessCalendar, SlaPolicy
from swarmdesk.sla.schemas import CalendarOut, SlaPolicyOut, known_time_zones
from swarmdesk.web.admin import admin_page
from swarmdesk.web.dependencies import PageStaff

router = APIRouter(prefix="/app/admin", include_in_schema=False)

DAY_NAMES = dict(zip(WEEKDAYS, ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), strict=True))
PRIORITY_LABELS = {Priority.urgent: "Urgent", Priority.high: "High", Priority.medium: "Medium", Priority.low: "Low",
                   Priority.none: "No priority"}
TARGETS = (("first_response_minutes", "First response"), ("next_response_minutes", "Next response"),
           ("resolution_minutes", "Resolution"))

# Offered first in the time-zone list (the rest follow alphabetically); any zone the server knows is accepted.
COMMON_ZONES = (
    "UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin", "Europe/Amsterdam",
    "Europe/Brussels", "Europe/Zurich", "Europe/Vienna", "Europe/Madrid", "Europe/Rome", "Europe/Stockholm",
    "Europe/Oslo", "Europe/Copenhagen", "Europe/Warsaw", "Europe/Prague", "Europe/Athens", "Europe/Helsinki",
    "Europe/Istanbul", "Europe/Kyiv", "Europe/Moscow", "Africa/Lagos", "Africa/Cairo", "Africa/Nairobi",
    "Africa/Johannesburg", "Asia/Dubai", "Asia/Karachi", "Asia/Kolkata", "Asia/Bangkok", "Asia/Jakarta",
    "Asia/Singapore", "Asia/Manila", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Seoul", "Asia/Tokyo",
    "Australia/Perth", "Australia/Brisbane", "Australia/Sydney", "Australia/Melbourne", "Pacific/Auckland",
    "Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles", "America/Vancouver", "America/Phoenix",
    "America/Denver", "America/Chicago", "America/Mexico_City", "America/New_York", "America/Toronto",
    "America/Bogota", "America/Lima", "America/Santiago", "America/Sao_Paulo", "America/Argentina/Buenos_Aires",
)


# --- presentation (pure) -------------------------------------------------------------------------

def duration(minutes: int | None) -> str:
    """480 -> "8 h", 90 -> "1 h 30 min", 30 -> "30 min"; business time, so never days."""
    if minutes is None:
        return "—"
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours:,} h" + (f" {rest} min" if rest else "")


def _day_text(ranges: Sequence[tuple[str, str]]) -> str:
    if not ranges:
        return "closed"
    if list(ranges) == [("00:00", "24:00")]:
        return "all day"
    return " and ".join(f"{start}–{end}" for start, end in ranges)


def week_summary(hours: Mapping[str, Any]) -> str:
    """One line for a week of opening hours, consecutive days with the same hours together:
    "Mon–Thu 09:00–17:00, Fri 09:00–12:00 and 13:00–17:00, Sat–Sun closed"."""
    groups: list[list[Any]] = []  # [first day, last day, ranges]
    for day in WEEKDAYS:
        ranges = tuple(sorted((r["start"], r["end"]) for r in hours.get(day) or []))
        if groups and groups[-1][2] == ranges:
            groups[-1][1] = day
        else:
            groups.append([day, day, ranges])
    parts = []
    for first, last, ranges in groups:
        days = DAY_NAMES[first] if first == last else f"{DAY_NAMES[first]}–{DAY_NAMES[last]}"
        parts.append(f"{days} {_day_text(ranges)}")
    return ", ".join(parts)


def _when(day: date, minute: int, today: date) -> str:
    """"17:00" today, "Mon 09:00" within the week, "2026-12-28 09:00" beyond."""
    if minute == MINUTES_PER_DAY:
        day, minute = day + timedelta(days=1), 0
    if day == today:
        return format_hhmm(minute)
    if day - today < timedelta(days=7):
        return f"{DAY_NAMES[WEEKDAYS[day.weekday()]]} {format_hhmm(minute)}"
    return f"{day.isoformat()} {format_hhmm(minute)}"


def now_status(calendar: Any, now: datetime) -> dict[str, Any]:
    """Open or closed at ``now`` (``BusinessCalendar.is_open``, DST-exact), the local time there,
    and when that changes next, read from the local opening hours of the coming days."""
    local = now.astimezone(calendar.zone)
    today, minute = local.date(), local.hour * 60 + local.minute
    is_open = calendar.is_open(now)
    status: dict[str, Any] = {"open": is_open, "local": f"{DAY_NAMES[WEEKDAYS[today.weekday()]]} {format_hhmm(minute)}",
                              "change": ""}
    # (day, start, end) of the next fortnight's opening hours, from the current minute on.
    spans = [(today + timedelta(days=offset), start, end) for offset in range(15)
             for start, end in calendar.open_spans(today + timedelta(days=offset))
             if offset or end > minute]
    if is_open:
        # The current span, and the next days' that carry on from midnight (a 24-hour stretch).
        until: tuple[date, int] | None = None
        for day, start, end in spans:
            if until is not None and not (until[1] == MINUTES_PER_DAY and day == until[0] + timedelta(days=1)
                                          and start == 0):
                break
            until = (day, end)
        status["change"] = "open for two weeks or more" if until is None or until[0] >= today + timedelta(days=14) \
            else f"until {_when(until[0], until[1], today)}"
    else:
        upcoming = next(((day, start) for day, start, _ in spans if day > today or start > minute), None)
        status["change"] = f"opens {_when(upcoming[0], upcoming[1], today)}" if upcoming \
            else "no opening hours in the next two weeks"
    return status


@functools.lru_cache(maxsize=2)
def _zone_options(hour: datetime) -> tuple[tuple[str, str], ...]:
    """(zone, "UTC+01:00") for the time-zone list: common zones first, then every other one the API
    accepts. Offsets are those of ``hour`` (cached per hour: DST moves them)."""
    known = known_time_zones()
    common = [z for z in COMMON_ZONES if z in known]
    rest = sorted(z for z in known if z not in common)  # known: core.time_zones, placeholders left out
    rest.sort(key=lambda z: "/" not in z)  # Area/City first, then the old abbreviations
    options = []
    for zone in (*common, *rest):
        offset = hour.astimezone(ZoneInfo(zone)).utcoffset() or timedelta()
        sign, total = ("-" if offset < timedelta() else "+"), abs(int(offset.total_seconds())) // 60
        options.append((zone, f"UTC{sign}{total // 60:02d}:{total % 60:02d}"))
    return tuple(options)


def _conditions_summary(conditions: Mapping[str, Any], inbox_names: Mapping[int, str],
                        channel_titles: Mapping[str, str]) -> list[tuple[str, str]]:
    """[("Priority", "urgent or high"), ...]; empty: every conversation."""
    parts = []
    if conditions.get("priorities"):
        parts.append(("Priority", " or ".join(PRIORITY_LABELS.get(p, p).lower() for p in conditions["priorities"])))
    if conditions.get("channels"):
        parts.append(("Channel", " or ".join(channel_titles.get(c, c) for c in conditions["channels"])))
    if conditions.get("inbox_ids"):
        parts.append(("Inbox", " or ".join(inbox_names.get(i, f"#{i} (deleted)") for i in conditions["inbox_ids"])))
    if conditions.get("tiers"):
        parts.append(("Tier", " or ".join(conditions["tiers"])))
    return parts


def _warning(policy: SlaPolicy) -> str:
    if policy.warn_percent is not None:
        return f"at {policy.warn_percent} % of each target"
    if policy.warn_before_minutes is not None:
        return f"{duration(policy.warn_before_minutes)} before each deadline"
    return "no warning"


def _calendar_view(row: BusinessCalendar, used_by: Iterable[str], now: datetime) -> dict[str, Any]:
    view: dict[str, Any] = {"id": row.id, "name": row.name, "time_zone": row.time_zone,
                            "week": week_summary(row.hours or {}), "holidays": row.holidays or [],
                            "used_by": list(used_by), "now": None, "next_holiday": None}
    try:
        compiled = sla_service.compile_calendar(row)
    except (ValueError, KeyError):  # a zone this server's tzdata no longer has: show the rest
        return view
    view["now"] = now_status(compiled, now)
    today = now.astimezone(compiled.zone).date().isoformat()
    view["next_holiday"] = next((h for h in view["holidays"] if h["date"] >= today), None)
    return view


# --- the page ------------------------------------------------------------------------------------

@router.get("/sla")
async def sla_page(request: Request, me: PageStaff, uow: Uow) -> Response:
    async def context() -> dict[str, Any]:
        assert me is not None
        session, now = uow.session, utcnow()
        calendars = await sla_service.list_calendars(session, me.account_id)
        policies = await sla_service.list_policies(session, me.account_id)
        inboxes = await channels_service.list_inboxes(session, me.account_id)
        channel_titles = {kind: cls.title for kind, cls in channels.kinds.items()}
        inbox_names = {i.id: i.name for i in inboxes}
        calendar_names = {c.id: c.name for c in calendars}
        used: dict[int, list[str]] = {}
        for p in policies:
            if p.calendar_id is not None:
                used.setdefault(p.calendar_id, []).append(p.name)
        policy_views = [{
            "id": p.id, "name": p.name, "enabled": p.enabled, "position": p.position,
            "calendar": calendar_names.get(p.calendar_id) if p.calendar_id is not None else None,
            "targets": [(label, p_minutes, duration(p_minutes)) for field, label in TARGETS
                        for p_minutes in [getattr(p, field)]],
            "warning": _warning(p),
            "conditions": _conditions_summary(p.conditions or {}, inbox_names, channel_titles),
        } for p in policies]
        data = {
            "calendars": [CalendarOut.model_validate(c).model_dump(mode="json") for c in calendars],
            "policies": [SlaPolicyOut.model_validate(p).model_dump(mode="json") for p in policies],
            "inboxes": [{"id": i.id, "name": i.name, "channel": channel_titles.get(i.channel_kind, i.channel_kind)}
                        for i in inboxes],
            "channels": [{"kind": kind, "title": title}
                         for kind, title in sorted(channel_titles.items(), key=lambda item: item[1].lower())],
            "priorities": [{"value": str(p), "label": label} for p, label in PRIORITY_LABELS.items()],
        }
        return {"calendars": [_calendar_view(c, used.get(c.id, []), now) for c in calendars],
                "policies": policy_views, "sla_data": data,
                "zones": _zone_options(now.replace(minute=0, second=0, microsecond=0))}
    return await admin_page(request, me, "sla", context)
