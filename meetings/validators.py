"""Input checks the serializers and forms share: what a value may look like, not what it may do."""

import unicodedata
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError

# Cc: C0 and C1 controls (line breaks, tab, escape, NUL, NEL); Zl and Zp: the Unicode line
# and paragraph separators, which some mail and terminal software also treat as line breaks.
_CONTROL_CATEGORIES = {"Cc", "Zl", "Zp"}


def validate_no_control_characters(value: str) -> None:
    """SECURITY: titles and names go into mail headers (a line break there is header
    injection, and Django refuses to send it) and into log lines."""
    if any(unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in value):
        raise ValidationError(
            "Must be one line of text: control characters (line breaks, tabs and the like) are not allowed.",
            code="control_characters",
        )


@dataclass(frozen=True)
class SkippedTime:
    """A wall-clock time the clocks skip when they go forward (a daylight-saving gap)."""

    wall_clock: datetime
    tz_name: str
    offset_before: timedelta  # the zone's UTC offset just before the change
    offset_after: timedelta
    gap_start: datetime  # wall-clock times from gap_start up to gap_end do not exist
    gap_end: datetime

    @property
    def message(self) -> str:
        return (
            f"{self.wall_clock:%Y-%m-%d %H:%M} does not exist in {self.tz_name}: the clocks go forward "
            f"from {self.gap_start:%H:%M} to {self.gap_end:%H:%M} that night (daylight saving). "
            "Choose a time outside that gap."
        )


def skipped_local_time(wall_clock: datetime, tz_name: str) -> SkippedTime | None:
    """The gap `wall_clock` (naive) falls in, in tz_name; None if it exists (or the zone is unknown).

    zoneinfo would quietly read such a time with the offset from before the change, which
    books the meeting an hour later than the host wrote.
    """
    try:
        zone = zoneinfo.ZoneInfo(tz_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None  # the booking service names an unknown zone
    wall_clock = wall_clock.replace(tzinfo=None)
    local = wall_clock.replace(tzinfo=zone)
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall_clock:
        return None
    # In a gap, fold=0 reads the time with the offset before the change, fold=1 with the one after.
    before, after = local.replace(fold=0).utcoffset(), local.replace(fold=1).utcoffset()
    assert before is not None and after is not None
    # The change is an instant between the two readings; find it to the minute.
    instant = (wall_clock - after).replace(tzinfo=UTC)
    while instant.astimezone(zone).utcoffset() == before:
        instant += timedelta(minutes=1)
    return SkippedTime(
        wall_clock=wall_clock,
        tz_name=tz_name,
        offset_before=before,
        offset_after=after,
        gap_start=(instant + before).replace(tzinfo=None),
        gap_end=(instant + after).replace(tzinfo=None),
    )
