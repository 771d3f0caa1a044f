"""The IANA time zones Swarmdesk accepts (calendars, customers' quiet hours, the account's zone),
from the tz database the interpreter finds: the system's, or the ``tzdata`` package."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import available_timezones

# Not places: the server's own zone (which differs between machines) and tzdata's placeholders.
_NOT_ZONES = {"localtime", "Factory", "posixrules"}
_REGIONS = ("Africa/", "America/", "Antarctica/", "Arctic/", "Asia/", "Atlantic/", "Australia/", "Europe/",
            "Indian/", "Pacific/")


@lru_cache(maxsize=1)
def known_time_zones() -> frozenset[str]:
    """Every zone accepted, legacy aliases such as US/Eastern included."""
    return frozenset((available_timezones() - _NOT_ZONES) | {"UTC"})


@lru_cache(maxsize=1)
def offered_time_zones() -> list[str]:
    """The zones a form offers: "Region/City" names and UTC, sorted."""
    return sorted(z for z in known_time_zones() if z.startswith(_REGIONS)) + ["UTC"]


def check_time_zone(value: str | None) -> str | None:
    """The value, if it is a known zone (or None); else a ValueError naming it, for validators."""
    if value is not None and value not in known_time_zones():
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin, America/New_York)")
    return value
