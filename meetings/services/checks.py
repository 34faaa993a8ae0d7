"""Checks that several services make on a meeting they hold under its lock."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from meetings import errors, policy
from meetings.models import Meeting


def refuse_if_closed(meeting: Meeting, now: datetime, *, action: str = "changed") -> None:
    """409 for a cancelled meeting, or one that has ended (by the clock or by the host)."""
    if meeting.is_cancelled:
        raise errors.meeting_closed(cancelled=True, action=action)
    if meeting.ended_at is not None or meeting.ends_at <= now:
        raise errors.meeting_closed(cancelled=False, action=action)


def require_host_factor(meeting: Meeting, host_has_second_factor: bool) -> None:
    """403 where the meeting's level needs the host to have passed a second factor."""
    if meeting.classification.require_host_mfa and not host_has_second_factor:
        raise errors.Forbidden(
            f"Changing {meeting.classification.name} meetings needs a second factor: "
            "sign in with your authenticator app, or use an API token.",
            code="second_factor_required",
        )


def refuse_if_over(meeting: Meeting, now: datetime, *, action: str = "joined") -> None:
    """409 for a cancelled meeting, or one that is over (ended by the host, or past its
    end plus the joining grace): the waiting room's decisions stop there."""
    if meeting.is_cancelled:
        raise errors.meeting_closed(cancelled=True, action=action)
    if policy.meeting_over(
        ended_at=meeting.ended_at,
        ends_at=meeting.ends_at,
        grace_minutes=settings.ANTECHAMBER_JOIN_GRACE_MINUTES,
        now=now,
    ):
        raise errors.meeting_closed(cancelled=False, action=action)


def refuse_if_unreachable(meeting: Meeting, now: datetime, *, action: str = "changed") -> None:
    """409 only once a meeting is in fact over (policy.meeting_reachable): what takes
    access away (revoking, raising the level) still reaches a meeting that runs past its
    scheduled end with people in it, where refuse_if_closed would already refuse."""
    if meeting.is_cancelled:
        raise errors.meeting_closed(cancelled=True, action=action)
    if not policy.meeting_reachable(
        cancelled=False,
        ended_at=meeting.ended_at,
        started_at=meeting.started_at,
        ends_at=meeting.ends_at,
        grace_minutes=settings.ANTECHAMBER_JOIN_GRACE_MINUTES,
        now=now,
    ):
        raise errors.meeting_closed(cancelled=False, action=action)
