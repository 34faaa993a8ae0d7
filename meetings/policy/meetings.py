"""Pure policy decisions about meetings and levels: a level and requested options in,
violations or changes out (booking, changes, tightening, declassification, retention, the
media room's recording and feeds).

No I/O here (nor in policy/people.py). The web form, the API and level propagation all
decide through these functions, so a rule cannot be enforced in one place and forgotten
in another.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

__all__ = [
    "PASSCODE_FLOOR_BITS",
    "MAX_DURATION_MINUTES",
    "Level",
    "E2EE_FORBIDDEN",
    "E2EE_OPTIONAL",
    "E2EE_REQUIRED",
    "MeetingOptions",
    "Violation",
    "Lock",
    "Change",
    "default_e2ee",
    "option_locks",
    "e2ee_conflicts",
    "domain_of",
    "invitee_violations",
    "check_meeting",
    "enforce_level",
    "required_passcode_bits",
    "Refusal",
    "declassification_refusal",
    "LevelRules",
    "level_loosenings",
    "rank_order_violation",
    "LEVEL_RULE_FIELDS",
    "retention_cutoff",
    "conference_recording",
    "conference_feeds_allowed",
]


# Never a passcode under this many bits, whatever a level says (the spec's floor).
PASSCODE_FLOOR_BITS = 60
# The longest meeting, in minutes (a day).
MAX_DURATION_MINUTES = 1440


class Level(Protocol):
    code: str
    name: str
    bookable: bool
    allow_cloud_recording: bool
    allow_dial_in: bool
    require_waiting_room: bool
    allow_guests: bool
    allow_passcode_join: bool
    require_host_mfa: bool
    require_participant_mfa: bool
    allowed_invitee_domains: list[str]
    min_passcode_bits: int
    e2ee: str  # E2EE_FORBIDDEN, E2EE_OPTIONAL or E2EE_REQUIRED


# A level's `e2ee` (models.ClassificationLevel.E2ee holds the same values).
E2EE_FORBIDDEN = "forbidden"
E2EE_OPTIONAL = "optional"
E2EE_REQUIRED = "required"


@dataclass(frozen=True)
class MeetingOptions:
    cloud_recording: bool
    dial_in: bool
    waiting_room: bool
    e2ee: bool = False


@dataclass(frozen=True)
class Violation:
    field: str
    message: str


@dataclass(frozen=True)
class Lock:
    """An option the level decides for the host: its forced value and why."""

    value: bool
    reason: str


@dataclass(frozen=True)
class Change:
    field: str
    old: bool
    new: bool
    reason: str


def _forbidden_recording(level: Level) -> str:
    return f"Cloud recording is not allowed for {level.name} meetings."


def _forbidden_dial_in(level: Level) -> str:
    return f"Telephone dial-in is not allowed for {level.name} meetings."


def _required_waiting_room(level: Level) -> str:
    return f"The waiting room cannot be turned off for {level.name} meetings."


def _required_e2ee(level: Level) -> str:
    return f"End-to-end encryption cannot be turned off for {level.name} meetings."


def _forbidden_e2ee(level: Level) -> str:
    return f"End-to-end encryption is not allowed for {level.name} meetings."


def _e2ee_excludes(what: str) -> str:
    # SECURITY: the server can neither record nor bridge to a telephone what it cannot decrypt.
    return f"{what} is not possible in an end-to-end encrypted meeting: the server cannot decrypt its media."


def default_e2ee(level: Level) -> bool:
    """What a booking that does not say gets: on only where the level requires it."""
    return level.e2ee == E2EE_REQUIRED


def option_locks(level: Level) -> dict[str, Lock]:
    """Which options the level fixes, with the value it fixes them to and the reason."""
    locks: dict[str, Lock] = {}
    e2ee_required = level.e2ee == E2EE_REQUIRED
    if not level.allow_cloud_recording:
        locks["cloud_recording"] = Lock(False, _forbidden_recording(level))
    elif e2ee_required:
        locks["cloud_recording"] = Lock(
            False, _e2ee_excludes("Cloud recording") + " " + _required_e2ee(level)
        )
    if not level.allow_dial_in:
        locks["dial_in"] = Lock(False, _forbidden_dial_in(level))
    elif e2ee_required:
        locks["dial_in"] = Lock(False, _e2ee_excludes("Telephone dial-in") + " " + _required_e2ee(level))
    if level.require_waiting_room:
        locks["waiting_room"] = Lock(True, _required_waiting_room(level))
    if e2ee_required:
        locks["e2ee"] = Lock(True, _required_e2ee(level))
    elif level.e2ee == E2EE_FORBIDDEN:
        locks["e2ee"] = Lock(False, _forbidden_e2ee(level))
    return locks


def e2ee_conflicts(options: MeetingOptions) -> list[Violation]:
    """What an end-to-end encrypted meeting cannot also have, whatever its level allows."""
    if not options.e2ee:
        return []
    violations = []
    if options.cloud_recording:
        violations.append(Violation("cloud_recording", _e2ee_excludes("Cloud recording")))
    if options.dial_in:
        violations.append(Violation("dial_in", _e2ee_excludes("Telephone dial-in")))
    return violations


def domain_of(email: str) -> str:
    return email.rsplit("@", 1)[-1].strip().lower()


def invitee_violations(level: Level, emails: Iterable[str], field: str = "invitees") -> list[Violation]:
    allowed = [d.lower() for d in level.allowed_invitee_domains]
    if not allowed:
        return []
    listed = ", ".join(allowed)
    return [
        Violation(
            field,
            f"{email}: invitees of {level.name} meetings must have an address at {listed}.",
        )
        for email in emails
        if domain_of(email) not in allowed
    ]


def check_meeting(
    level: Level,
    options: MeetingOptions,
    *,
    host_has_second_factor: bool,
    invitees: Iterable[str] = (),
) -> list[Violation]:
    """Every reason the level refuses this booking or change, all at once (empty: allowed)."""
    violations: list[Violation] = []
    if not level.bookable:
        violations.append(
            Violation(
                "classification",
                f"{level.name} meetings may not be held on this system. Use an accredited system.",
            )
        )
    if level.require_host_mfa and not host_has_second_factor:
        violations.append(
            Violation(
                "classification",
                f"Booking or changing {level.name} meetings needs a second factor: "
                "sign in with your authenticator app, or use an API token.",
            )
        )
    locks = option_locks(level)
    for field, lock in locks.items():
        if getattr(options, field) != lock.value:
            violations.append(Violation(field, lock.reason))
    # A lock already names the field when the level itself rules it out.
    violations.extend(
        v
        for v in e2ee_conflicts(options)
        if not (v.field in locks and getattr(options, v.field) != locks[v.field].value)
    )
    violations.extend(invitee_violations(level, invitees))
    return violations


def enforce_level(level: Level, options: MeetingOptions) -> list[Change]:
    """What a tightened level switches on an existing meeting: only ever towards the safe side.

    Loosening a level yields no change, because a lock only ever forces the safe value.
    A level that comes to require E2EE switches it on, and with it recording and dial-in
    off (option_locks); one that comes to forbid it switches it off (a forbidden option).
    """
    return [
        Change(field, getattr(options, field), lock.value, lock.reason)
        for field, lock in option_locks(level).items()
        if getattr(options, field) != lock.value
    ]


def required_passcode_bits(level: Level) -> int:
    return max(PASSCODE_FLOOR_BITS, level.min_passcode_bits)


@dataclass(frozen=True)
class Refusal:
    """Why an action may not proceed: a stable code and a sentence for people."""

    code: str
    message: str


def declassification_refusal(
    *, from_name: str, to_name: str, by_staff_with_factor: bool, started: bool
) -> Refusal | None:
    """Whether a meeting may be lowered from one level to another (None: it may).

    Raising a level is always allowed and never asks. Lowering needs a policy admin (staff)
    who has passed a second factor, and only before the meeting starts: what was said under
    the higher level stays there.
    """
    if not by_staff_with_factor:
        return Refusal(
            "declassification_needs_staff",
            f"Lowering a meeting from {from_name} to {to_name} needs a policy admin (staff) who has "
            "passed a second factor. Raising the level is always allowed.",
        )
    if started:
        return Refusal(
            "already_started",
            f"This meeting has started: its level can be raised, but no longer lowered below {from_name}.",
        )
    return None


# --- Comparing levels ----------------------------------------------------------------


class LevelRules(Level, Protocol):
    rank: int
    max_link_lifetime_hours: int
    link_in_calendar: bool


def _domains_widen(current: list[str], target: list[str]) -> bool:
    """An empty list admits every address; otherwise only the domains listed."""
    if not current:
        return False
    return not target or not {d.lower() for d in target} <= {d.lower() for d in current}


# What each field of a level allows, as "does `target` allow something `current` forbids?".
# Every rule of a level is here but its name, its rank (what is compared is what the levels
# allow, never the number an admin gives them) and retention_days (how long records are
# kept once a meeting is over, not what a meeting may do).
_LOOSER: dict[str, Callable[[LevelRules, LevelRules], bool]] = {
    "bookable": lambda c, t: t.bookable and not c.bookable,
    "allow_cloud_recording": lambda c, t: t.allow_cloud_recording and not c.allow_cloud_recording,
    "allow_dial_in": lambda c, t: t.allow_dial_in and not c.allow_dial_in,
    "require_waiting_room": lambda c, t: c.require_waiting_room and not t.require_waiting_room,
    "allow_guests": lambda c, t: t.allow_guests and not c.allow_guests,
    "allow_passcode_join": lambda c, t: t.allow_passcode_join and not c.allow_passcode_join,
    "require_host_mfa": lambda c, t: c.require_host_mfa and not t.require_host_mfa,
    "require_participant_mfa": lambda c, t: c.require_participant_mfa and not t.require_participant_mfa,
    "max_link_lifetime_hours": lambda c, t: t.max_link_lifetime_hours > c.max_link_lifetime_hours,
    "allowed_invitee_domains": lambda c, t: _domains_widen(
        c.allowed_invitee_domains, t.allowed_invitee_domains
    ),
    "min_passcode_bits": lambda c, t: required_passcode_bits(t) < required_passcode_bits(c),
    # Only "required" forbids plain media; "forbidden" allows no more than "optional" does.
    "e2ee": lambda c, t: c.e2ee == E2EE_REQUIRED and t.e2ee != E2EE_REQUIRED,
    "link_in_calendar": lambda c, t: t.link_in_calendar and not c.link_in_calendar,
}
LEVEL_RULE_FIELDS = frozenset(_LOOSER)


def level_loosenings(current: LevelRules, target: LevelRules) -> list[str]:
    """The rules under which `target` allows something `current` forbids (empty: moving a
    meeting from `current` to `target` takes nothing away). Non-empty means the move
    lowers the meeting (a declassification), whatever the ranks say."""
    return [name for name, looser in _LOOSER.items() if looser(current, target)]


def _strictly_looser(a: LevelRules, b: LevelRules) -> bool:
    """`a` allows something `b` forbids, and `b` nothing that `a` forbids."""
    return bool(level_loosenings(b, a)) and not level_loosenings(a, b)


def rank_order_violation(level: LevelRules, others: Iterable[LevelRules]) -> Violation | None:
    """Refuse ranks that put a less restrictive level above a more restrictive one.

    Ranks order the levels for people (and for "raising"), so a level that allows
    strictly more must never rank above one that allows strictly less. Two levels each
    allowing something the other forbids may stand in either order: a move between them
    counts as lowering both ways (level_loosenings).
    """
    for other in others:
        if other.code == level.code:
            continue
        if level.rank > other.rank and _strictly_looser(level, other):
            looser, stricter = level, other
        elif level.rank < other.rank and _strictly_looser(other, level):
            looser, stricter = other, level
        else:
            continue
        return Violation(
            "rank",
            f"{looser.name} (rank {looser.rank}) would rank above {stricter.name} (rank {stricter.rank}), "
            f"but it allows more ({', '.join(level_loosenings(stricter, looser))}). "
            "A level that allows more must rank lower.",
        )
    return None


# --- Retention -----------------------------------------------------------------------


def retention_cutoff(*, retention_days: int, now: datetime) -> datetime:
    """Meetings that ended (by schedule and, if ended early or late, in fact) before this
    instant are past their level's retention: their records go, the audit stays."""
    return now - timedelta(days=retention_days)


def conference_recording(level: Level, meeting_cloud_recording: bool) -> bool:
    """Whether the media server may record this meeting's room.

    Both must say yes: the level allows cloud recording and the host turned it on. The
    room is created with this value and recording locked, so no participant can start it.
    """
    return level.allow_cloud_recording and meeting_cloud_recording


def conference_feeds_allowed(*, locked: bool, admitted: set[int], present: set[int], host: int) -> set[int]:
    """Which publisher IDs may hold a token in the media room now.

    Admitted people may (re)join; once the meeting is locked, only those already in the
    room (and the host) keep their token, so no one new enters the media either.
    """
    allowed = admitted & present if locked else set(admitted)
    return allowed | {host}
