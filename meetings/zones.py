"""Time zones people choose from, and showing an instant in the viewer's zone with UTC beside it."""

import zoneinfo
from datetime import UTC, datetime
from functools import cache

# First in every list: the zones most of our hosts use. The rest follow alphabetically.
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Paris",
    "Europe/Berlin",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)

# Geographic zones only: tzdata also carries `Factory`, `localtime`, `posixrules`, the
# `Etc/GMT+5` family (whose signs are inverted), `SystemV/...`, `US/...` and other old
# aliases that only confuse a person choosing from a list.
_REGIONS = (
    "Africa/",
    "America/",
    "Antarctica/",
    "Asia/",
    "Atlantic/",
    "Australia/",
    "Europe/",
    "Indian/",
    "Pacific/",
)


@cache
def curated_zones() -> tuple[str, ...]:
    available = zoneinfo.available_timezones()
    common = [zone for zone in COMMON_ZONES if zone in available or zone == "UTC"]
    rest = sorted(z for z in available if z.startswith(_REGIONS) and z not in COMMON_ZONES)
    return (*common, *rest)


def zone_choices(keep: str | None = None) -> list[tuple[str, str]]:
    """Choices for a zone field; `keep` (a zone already stored, e.g. from the API) stays choosable."""
    zones = list(curated_zones())
    if keep and keep not in zones and keep in zoneinfo.available_timezones():
        zones.insert(len(COMMON_ZONES), keep)
    return [(zone, zone.replace("_", " ")) for zone in zones]


def is_known(zone: str) -> bool:
    return zone in zoneinfo.available_timezones()


def in_zone(instant: datetime, zone: str) -> datetime:
    return instant.astimezone(zoneinfo.ZoneInfo(zone) if zone != "UTC" else UTC)
