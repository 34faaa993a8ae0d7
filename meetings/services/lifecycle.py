"""A meeting's life once booked: start, lock, unlock, end.

Each is one conditional UPDATE on the meeting's row, whose row count says whether this
call won; a call that lost is told why with a 409 whose code names the state.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from meetings import errors, policy, selectors
from meetings.audit import audit_record
from meetings.models import JoinLink, LobbyEntry, Meeting
from meetings.services import invitations, locking, media
from meetings.services.checks import require_host_factor


def _open(meeting: Meeting) -> QuerySet[Meeting]:
    return Meeting.objects.filter(pk=meeting.pk, status=Meeting.Status.SCHEDULED, ended_at=None)


def _lost(meeting: Meeting, *, action: str) -> errors.Conflict:
    """Why a lifecycle action found the meeting in another state (read after it lost)."""
    if meeting.is_cancelled:
        return errors.meeting_closed(cancelled=True, action=action)
    if meeting.ended_at is not None:
        return errors.meeting_closed(cancelled=False, action=action)
    if action == "started":
        return errors.Conflict("This meeting has already started.", code="already_started")
    if action == "locked":
        return errors.Conflict("This meeting is already locked.", code="already_locked")
    return errors.Conflict("This meeting is not locked.", code="not_locked")


def _transition(
    *, meeting: Meeting, actor: User, host_has_second_factor: bool, action: str, when: Q, values: dict
) -> Meeting:
    """The one conditional UPDATE of a lifecycle action (an open meeting, and `when`), then
    its audit row; a 409 naming the state if another call got there first. Call inside the
    action's transaction. The factor is decided on the meeting and level as locked
    (locking.py), so a level that tightens meanwhile is waited for, not missed."""
    meeting = locking.meeting_for_update(meeting.pk)
    require_host_factor(meeting, host_has_second_factor)
    # A meeting nobody started by its end plus the joining grace is over: tightenings no
    # longer reach it (policy.meeting_reachable), so it must not open now.
    too_late = action == "started" and not policy.meeting_reachable(
        cancelled=meeting.is_cancelled, ended_at=meeting.ended_at, started_at=meeting.started_at,
        ends_at=meeting.ends_at, grace_minutes=settings.ANTECHAMBER_JOIN_GRACE_MINUTES, now=timezone.now(),
    )  # fmt: skip
    if too_late and not meeting.is_cancelled and meeting.ended_at is None:
        raise errors.meeting_closed(cancelled=False, action=action)
    updated = _open(meeting).filter(when).update(**values, updated_at=timezone.now())
    meeting.refresh_from_db()
    if updated != 1:
        raise _lost(meeting, action=action)
    audit_record(action=f"meeting_{action}", actor=actor, meeting=meeting, subject=meeting.title)
    return meeting


def meeting_start(*, meeting: Meeting, actor: User, host_has_second_factor: bool) -> Meeting:
    """Admitted participants move from "waiting for the host" into the meeting room."""
    with transaction.atomic():
        meeting = _transition(
            meeting=meeting, actor=actor, host_has_second_factor=host_has_second_factor,
            action="started", when=Q(started_at=None), values={"started_at": timezone.now()},
        )  # fmt: skip
        media.media_room_prepare(meeting)
    return meeting


def meeting_lock(*, meeting: Meeting, actor: User, host_has_second_factor: bool) -> Meeting:
    """No new entries: passcode joins are refused (those already in stay)."""
    with transaction.atomic():
        meeting = _transition(
            meeting=meeting, actor=actor, host_has_second_factor=host_has_second_factor,
            action="locked", when=Q(locked_at=None), values={"locked_at": timezone.now()},
        )  # fmt: skip
        # Tokens of admitted people not yet in the media room are taken away.
        media.media_sync_on_commit(meeting.pk)
    return meeting


def meeting_unlock(*, meeting: Meeting, actor: User, host_has_second_factor: bool) -> Meeting:
    with transaction.atomic():
        meeting = _transition(
            meeting=meeting, actor=actor, host_has_second_factor=host_has_second_factor,
            action="unlocked", when=~Q(locked_at=None), values={"locked_at": None},
        )  # fmt: skip
        media.media_sync_on_commit(meeting.pk)
    return meeting


def meeting_end(*, meeting: Meeting, actor: User, host_has_second_factor: bool) -> Meeting:
    """End it: everyone waiting or in is moved out (left), and no one can join again."""
    now = timezone.now()
    with transaction.atomic():
        meeting = _transition(
            meeting=meeting, actor=actor, host_has_second_factor=host_has_second_factor,
            action="ended", when=Q(), values={"ended_at": now},
        )  # fmt: skip
        _empty_lobby(meeting=meeting, actor=actor, now=now)
    return meeting


def _empty_lobby(*, meeting: Meeting, actor: User, now: datetime) -> None:
    """An ended meeting's people leave; the media room is destroyed after commit."""
    moved = LobbyEntry.objects.filter(
        meeting=meeting, status__in=[LobbyEntry.Status.WAITING, LobbyEntry.Status.ADMITTED]
    ).update(status=LobbyEntry.Status.LEFT, decided_at=now)
    if moved:
        audit_record(
            action="lobby_emptied",
            actor=actor,
            meeting=meeting,
            subject=meeting.title,
            detail={"moved": moved},
        )
    media.media_room_close(meeting)


def cancel_locked(*, meeting: Meeting, actor: User, now: datetime, reason: str) -> None:
    """Cancel a meeting held under its lock (booking.meeting_cancel, or a level that may no
    longer be held): unspent links die, invitees get METHOD:CANCEL, the room goes."""
    Meeting.objects.filter(pk=meeting.pk).update(
        status=Meeting.Status.CANCELLED, cancelled_at=now, sequence=F("sequence") + 1, updated_at=now
    )
    meeting.refresh_from_db()
    JoinLink.objects.filter(
        invitation__meeting=meeting, redeemed_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now, revoked_reason=JoinLink.Revoked.CANCELLED)
    invitations.notify_invitees_of_cancellation(
        meeting=meeting, invitations=selectors.active_invitations(meeting), reason=reason
    )
    media.media_room_close(meeting)


def close_by_policy(*, meeting: Meeting, actor: User, now: datetime) -> str:
    """A meeting at a level that may no longer be held here (bookable switched off): one
    not started is cancelled, one running is ended. Call holding its lock (levels.py);
    returns "cancelled" or "ended". Audited as the level's doing, not the host's."""
    level = meeting.classification
    if meeting.started_at is None:
        cancel_locked(
            meeting=meeting,
            actor=actor,
            now=now,
            reason=f"{level.name} meetings may no longer be held on this system, so this one was cancelled.",
        )
        closed = "cancelled"
    else:
        Meeting.objects.filter(pk=meeting.pk, ended_at=None).update(ended_at=now, updated_at=now)
        meeting.refresh_from_db()
        _empty_lobby(meeting=meeting, actor=actor, now=now)
        closed = "ended"
    audit_record(
        action=f"meeting_{closed}_by_policy",
        actor=actor,
        meeting=meeting,
        subject=meeting.title,
        detail={"level": level.code, "reason": "level not bookable"},
    )
    return closed
