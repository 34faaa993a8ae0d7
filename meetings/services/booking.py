"""Booking a meeting, changing it, cancelling it, and rotating its passcode."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from meetings import credentials, errors, limits, policy, selectors
from meetings.audit import audit_record
from meetings.models import ClassificationLevel, Meeting
from meetings.services import invitations, lifecycle, locking, media, places
from meetings.services.checks import refuse_if_closed, refuse_if_unreachable, require_host_factor

BOOKING_HORIZON = timedelta(days=10 * 365)

# Fields a host may change, and the ones invitees must hear about (ICS SEQUENCE).
MEETING_CHANGEABLE = (
    "title",
    "starts_at",
    "duration_minutes",
    "timezone",
    "classification",
    "cloud_recording",
    "dial_in",
    "waiting_room",
    "e2ee",
)
INVITEE_VISIBLE = {"title", "starts_at", "duration_minutes", "classification", "dial_in"}


@dataclass(frozen=True)
class Booked:
    meeting: Meeting
    passcode: str


@dataclass(frozen=True)
class Updated:
    meeting: Meeting
    passcode: str | None  # set when the new level needed a stronger passcode


def meeting_options(meeting: Meeting) -> policy.MeetingOptions:
    return policy.MeetingOptions(
        cloud_recording=meeting.cloud_recording,
        dial_in=meeting.dial_in,
        waiting_room=meeting.waiting_room,
        e2ee=meeting.e2ee,
    )


def _schedule_violations(
    *, starts_at: datetime, duration_minutes: int, tz_name: str, now: datetime
) -> list[policy.Violation]:
    violations = []
    cap = policy.MAX_DURATION_MINUTES
    if timezone.is_naive(starts_at):
        violations.append(policy.Violation("starts_at", "Give the start time with a UTC offset."))
    elif starts_at - now > BOOKING_HORIZON:
        # Also keeps end times, link expiries and grace periods far from datetime.max: a
        # start in the year 9999 used to overflow into a 500 (found by probing the API).
        violations.append(
            policy.Violation("starts_at", f"Book at most {BOOKING_HORIZON.days // 365} years ahead.")
        )
    elif starts_at + timedelta(minutes=min(max(duration_minutes, 0), cap)) <= now:
        violations.append(policy.Violation("starts_at", "This meeting would already have ended."))
    if not 1 <= duration_minutes <= cap:
        violations.append(
            policy.Violation("duration_minutes", f"Duration must be between 1 and {cap} minutes.")
        )
    if tz_name not in zoneinfo.available_timezones():
        violations.append(
            policy.Violation(
                "timezone", f"Unknown time zone {tz_name!r}. Use an IANA name such as Europe/London."
            )
        )
    return violations


def meeting_book(
    *,
    host: User,
    title: str,
    starts_at: datetime,
    duration_minutes: int,
    classification: ClassificationLevel,
    cloud_recording: bool = False,
    dial_in: bool = False,
    waiting_room: bool = True,
    e2ee: bool | None = None,
    timezone_name: str = "UTC",
    invitees: list[str] | None = None,
    host_has_second_factor: bool,
) -> Booked:
    """Book a meeting (and invite people, in the same transaction).

    `e2ee` None: the level's default (on where it requires E2EE). An explicit value the
    level does not allow is refused, never changed.
    """
    wanted = invitations.normalise_emails(invitees or [])
    now = timezone.now()

    def options_for(level: ClassificationLevel) -> policy.MeetingOptions:
        return policy.MeetingOptions(
            cloud_recording=cloud_recording,
            dial_in=dial_in,
            waiting_room=waiting_room,
            e2ee=policy.default_e2ee(level) if e2ee is None else e2ee,
        )

    def violations_for(level: ClassificationLevel) -> list[policy.Violation]:
        return policy.check_meeting(
            level, options_for(level), host_has_second_factor=host_has_second_factor, invitees=wanted
        ) + _schedule_violations(
            starts_at=starts_at, duration_minutes=duration_minutes, tz_name=timezone_name, now=now
        )

    if violations := violations_for(classification):
        raise errors.Refused(violations)
    invitations.check_invite_caps(meeting=None, count=len(wanted), field="invitees", now=now)
    # The argon2 work happens outside the transaction, so no lock is held during it.
    passcode, bits = credentials.new_passcode(policy.required_passcode_bits(classification))
    passcode_hash = credentials.hash_passcode(passcode)

    with transaction.atomic():
        level = locking.level_for_share(classification.pk)
        if violations := violations_for(level):
            raise errors.Refused(violations)
        if bits < policy.required_passcode_bits(level):
            passcode, bits = credentials.new_passcode(policy.required_passcode_bits(level))
            passcode_hash = credentials.hash_passcode(passcode)
        options = options_for(level)
        meeting = Meeting(
            host=host,
            title=title,
            starts_at=starts_at,
            duration_minutes=duration_minutes,
            ends_at=starts_at + timedelta(minutes=duration_minutes),
            timezone=timezone_name,
            classification=level,
            cloud_recording=cloud_recording,
            dial_in=dial_in,
            waiting_room=waiting_room,
            e2ee=options.e2ee,
            passcode_hash=passcode_hash,
            passcode_bits=bits,
            passcode_rotated_at=now,
            dial_in_code=credentials.new_dial_in_code() if dial_in else "",
        )
        for _attempt in range(3):  # an 80-bit collision is a once-in-the-universe event; be safe anyway
            meeting.public_id = credentials.new_meeting_id()
            try:
                with transaction.atomic():
                    meeting.save()
                break
            except IntegrityError:
                if Meeting.objects.filter(public_id=meeting.public_id).exists():
                    continue
                raise
        audit_record(
            action="meeting_booked",
            actor=host,
            meeting=meeting,
            subject=title,
            detail={
                "classification": level.code,
                "starts_at": starts_at.isoformat(),
                "duration_minutes": duration_minutes,
                "cloud_recording": cloud_recording,
                "dial_in": dial_in,
                "waiting_room": waiting_room,
                "e2ee": options.e2ee,
                "passcode_bits": bits,
            },
        )
        if wanted:
            invitations.invite(meeting=meeting, actor=host, emails_to_invite=wanted, now=now)
    return Booked(meeting=meeting, passcode=passcode)


def meeting_update(
    *,
    meeting: Meeting,
    actor: User,
    changes: dict[str, Any],
    host_has_second_factor: bool,
) -> Updated:
    """Change a meeting; every option is re-checked against the (possibly new) level."""
    unknown = set(changes) - set(MEETING_CHANGEABLE)
    if unknown:
        raise ValueError(f"not changeable: {sorted(unknown)}")
    now = timezone.now()
    wanted_level = changes.get("classification")
    with transaction.atomic():
        # SECURITY: both levels, then the meeting (locking.py): a concurrent level change
        # waits for us instead of deadlocking with us.
        meeting = locking.meeting_for_update(
            meeting.pk, other_levels=[wanted_level.pk] if wanted_level is not None else []
        )
        # What takes access away (raising the level) reaches a meeting until it is in fact
        # over; anything else stops at the scheduled end (_refuse_after_end).
        refuse_if_unreachable(meeting, now)
        require_host_factor(meeting, host_has_second_factor)
        level = (
            locking.level_for_share(wanted_level.pk) if wanted_level is not None else meeting.classification
        )
        # SECURITY: lowering is a move to a level that allows anything the current one
        # forbids (policy.level_loosenings), not only one with a lower rank.
        loosened = policy.level_loosenings(meeting.classification, level)
        declassifying = bool(loosened) or level.rank < meeting.classification.rank
        _refuse_after_end(meeting=meeting, changes=changes, declassifying=declassifying, now=now)
        if declassifying:
            _refuse_declassification(
                meeting=meeting, level=level, actor=actor, has_factor=host_has_second_factor
            )
        merged = {name: changes.get(name, getattr(meeting, name)) for name in MEETING_CHANGEABLE}
        if "e2ee" not in changes and level != meeting.classification and policy.default_e2ee(level):
            # Raising a meeting to a level that requires E2EE turns it on, as booking at that
            # level does when the request does not say (the safe direction: a host may raise
            # a level at any time). Saying "e2ee": false is refused, never overridden.
            merged["e2ee"] = True
        options = policy.MeetingOptions(
            cloud_recording=merged["cloud_recording"],
            dial_in=merged["dial_in"],
            waiting_room=merged["waiting_room"],
            e2ee=merged["e2ee"],
        )
        violations = policy.check_meeting(
            level,
            options,
            host_has_second_factor=host_has_second_factor,
            invitees=[inv.email for inv in selectors.active_invitations(meeting)]
            if level != meeting.classification
            else (),
        )
        if any(merged[name] != getattr(meeting, name) for name in SCHEDULE):
            violations += _schedule_violations(
                starts_at=merged["starts_at"],
                duration_minutes=merged["duration_minutes"],
                tz_name=merged["timezone"],
                now=now,
            )
        if violations:
            raise errors.Refused(violations)

        diff: dict[str, Any] = {}
        for name in MEETING_CHANGEABLE:
            old, new = getattr(meeting, name), merged[name]
            if name == "classification":
                old, new = old.code, level.code
            if old != new:
                diff[name] = {"old": _jsonable(old), "new": _jsonable(new)}
        if not diff:
            return Updated(meeting=meeting, passcode=None)

        for name in MEETING_CHANGEABLE:
            setattr(meeting, name, merged[name])
        meeting.classification = level
        meeting.ends_at = meeting.starts_at + timedelta(minutes=meeting.duration_minutes)
        if meeting.dial_in and not meeting.dial_in_code:
            meeting.dial_in_code = credentials.new_dial_in_code()
        elif not meeting.dial_in:
            meeting.dial_in_code = ""
        new_passcode = None
        if meeting.passcode_bits < policy.required_passcode_bits(level):
            new_passcode = _set_new_passcode(meeting, level, now)
            diff["passcode"] = {"rotated": True, "reason": f"{level.name} needs a stronger passcode"}
        if INVITEE_VISIBLE & set(diff):
            meeting.sequence += 1
        meeting.save()
        audit_record(
            action="meeting_changed", actor=actor, meeting=meeting, subject=meeting.title, detail=diff
        )
        if INVITEE_VISIBLE & set(diff):
            invitations.notify_invitees_of_change(meeting=meeting, now=now, changes=diff)
        media.media_sync_on_commit(meeting.pk)
        if "classification" in diff:
            # SECURITY: those already waiting or in are asked again under the new level
            # (a move between levels that each allow what the other forbids also forbids).
            reason = "level changed" if declassifying else "level raised"
            places.places_recheck(meeting=meeting, actor=actor, reason=reason)
        if "classification" in diff:
            audit_record(
                action="meeting_declassified" if declassifying else "meeting_level_changed",
                actor=actor,
                meeting=meeting,
                subject=meeting.title,
                detail={**diff["classification"], **({"loosened": loosened} if declassifying else {})},
            )
    return Updated(meeting=meeting, passcode=new_passcode)


SCHEDULE = ("starts_at", "duration_minutes", "timezone")


def _refuse_after_end(
    *, meeting: Meeting, changes: dict[str, Any], declassifying: bool, now: datetime
) -> None:
    """Past its scheduled end a meeting that still runs may only be raised."""
    if meeting.ends_at > now:
        return
    changed = {name for name, value in changes.items() if value != getattr(meeting, name)}
    if declassifying or changed - {"classification"}:
        raise errors.meeting_closed(cancelled=False, action="changed")


def _refuse_declassification(
    *, meeting: Meeting, level: ClassificationLevel, actor: User, has_factor: bool
) -> None:
    refusal = policy.declassification_refusal(
        from_name=meeting.classification.name,
        to_name=level.name,
        by_staff_with_factor=actor.is_staff and has_factor,
        started=meeting.started_at is not None,
    )
    if refusal is not None:
        error = errors.Forbidden if refusal.code == "declassification_needs_staff" else errors.Conflict
        raise error(refusal.message, code=refusal.code)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _set_new_passcode(meeting: Meeting, level: ClassificationLevel, now: datetime) -> str:
    passcode, bits = credentials.new_passcode(policy.required_passcode_bits(level))
    meeting.passcode_hash = credentials.hash_passcode(passcode)
    meeting.passcode_bits = bits
    meeting.passcode_rotated_at = now
    return passcode


def meeting_cancel(*, meeting: Meeting, actor: User, host_has_second_factor: bool) -> Meeting:
    now = timezone.now()
    with transaction.atomic():
        meeting = locking.meeting_for_update(meeting.pk)
        require_host_factor(meeting, host_has_second_factor)
        if meeting.is_cancelled:
            raise errors.Conflict("This meeting is already cancelled.", code="meeting_cancelled")
        if meeting.ended_at is not None or meeting.ends_at <= now:
            # An ended meeting is history: nothing to cancel, and no mail.
            raise errors.meeting_closed(cancelled=False, action="cancelled")
        lifecycle.cancel_locked(
            meeting=meeting, actor=actor, now=now, reason="The host cancelled this meeting."
        )
        audit_record(action="meeting_cancelled", actor=actor, meeting=meeting, subject=meeting.title)
    return meeting


def meeting_rotate_passcode(*, meeting: Meeting, actor: User, host_has_second_factor: bool) -> str:
    """A new passcode; the old one stops working at once. Returns it: show it once."""
    now = timezone.now()
    with transaction.atomic():
        meeting = locking.meeting_for_update(meeting.pk)
        refuse_if_closed(meeting, now)
        require_host_factor(meeting, host_has_second_factor)
        passcode = _set_new_passcode(meeting, meeting.classification, now)
        meeting.save(update_fields=["passcode_hash", "passcode_bits", "passcode_rotated_at", "updated_at"])
        audit_record(
            action="passcode_rotated",
            actor=actor,
            meeting=meeting,
            subject=meeting.title,
            detail={"passcode_bits": meeting.passcode_bits},
        )
        # The guesses so far were against the old passcode: unlock passcode joins at once.
        public_id = meeting.public_id
        transaction.on_commit(lambda: limits.meeting_unlock(public_id))
    return passcode
