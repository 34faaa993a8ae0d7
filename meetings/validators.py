"""Input checks the serializers and forms share: what a value may look like, not what it may do."""

import unicodedata
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

# Cc: C0 and C1 controls (line breaks, tab, escape, NUL, NEL); Zl and Zp: the Unicode line
# and paragraph separators, which some mail and terminal software also treat as line breaks.
# Cf: invisible format characters, among them the bidi controls (U+202A-U+202E,
# U+2066-U+2069, U+200E, U+200F, U+061C) and the zero-width ones (U+200B-U+200D, U+2060,
# U+FEFF); Cs: lone surrogates, which are not text at all (PostgreSQL refuses them).
_CONTROL_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}

# The longest address RFC 5321 lets a mail path carry, and the length of every e-mail
# column (Django's EmailField, auth_user.email). Django's validate_email allows 320.
EMAIL_MAX_LENGTH = 254

# The wall-clock times a form may name: a time in year 1 or 9999 can leave the calendar
# when read in a zone with an offset (OverflowError converting to UTC).
EARLIEST_WALL_CLOCK = datetime(2, 1, 1)
LATEST_WALL_CLOCK = datetime(9998, 12, 31, 23, 59)


def validate_no_control_characters(value: str) -> None:
    """SECURITY: titles and names go into mail headers (a line break there is header
    injection, and Django refuses to send it) and into log lines; and they are shown to
    other people, whom a right-to-left override or a zero-width character would mislead
    (a name that reads as someone else's, "Alice" that is not "Alice")."""
    if any(unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in value):
        raise ValidationError(
            "Must be one line of plain text: control characters (line breaks, tabs and the like) and "
            "invisible formatting characters (bidirectional overrides, zero-width characters) are not allowed.",
            code="control_characters",
        )


def validate_email_length(value: str) -> None:
    if len(value) > EMAIL_MAX_LENGTH:
        raise ValidationError(
            f"An e-mail address has at most {EMAIL_MAX_LENGTH} characters (this one has {len(value)}).",
            code="max_length",
        )


def address_problems(addresses: list[str]) -> list[str]:
    """Why each address a page was given cannot be mailed, for the pages' lists of invitees."""
    problems = []
    for address in addresses:
        if len(address) > EMAIL_MAX_LENGTH:
            problems.append(f"{address[:40]}… is longer than {EMAIL_MAX_LENGTH} characters.")
            continue
        try:
            validate_email(address)
        except ValidationError:
            problems.append(f"{address} is not an e-mail address.")
    return problems


def validate_wall_clock_range(wall_clock: datetime) -> None:
    """A wall-clock time every zone can read (see EARLIEST_WALL_CLOCK)."""
    if not EARLIEST_WALL_CLOCK <= wall_clock.replace(tzinfo=None) <= LATEST_WALL_CLOCK:
        raise ValidationError(
            "Choose a time between 0002-01-01 00:00 and 9998-12-31 23:59 (further out, a time zone's "
            "offset can take it off the calendar).",
            code="out_of_range",
        )


def nul_message(value: str) -> str | None:
    """Why PostgreSQL would refuse `value` as text (a NUL, a lone surrogate), or None."""
    if "\x00" in value:
        return "NUL characters (%00, \\u0000) are not allowed."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Must be valid Unicode text: lone surrogates are not allowed."
    return None


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


def validate_plain_text_fields(instance: object, *names: str) -> None:
    """For a model's clean(): validate_no_control_characters on each named field (so the
    admin, and anything else that calls full_clean, refuses what the API and pages do)."""
    errors = {}
    for name in names:
        try:
            validate_no_control_characters(str(getattr(instance, name) or ""))
        except ValidationError as error:
            errors[name] = error.messages
    if errors:
        raise ValidationError(errors)
