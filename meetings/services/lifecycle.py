"""A meeting's life once booked: start, lock, unlock, end.

Each is one conditional UPDATE on the meeting's row, whose row count says whether this
call won; a call that lost is told why with a 409 whose code names the state.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from meetings import errors
from meetings.audit import audit_record
from meetings.models import LobbyEntry, Meeting
from meetings.services import media
from meetings.services.checks import require_host_factor


def _open(meeting: Meeting) -> QuerySet[Meeting]:
    return Meeting.objects.filter(pk=meeting.pk, status=Meeting.Status.SCHEDULED, ended_at=None)


def _current(meeting: Meeting) -> Meeting:
    """The meeting with its level as they are now (a level may have tightened meanwhile)."""
    return Meeting.objects.select_related("classification").get(pk=meeting.pk)


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


def _won(*, meeting: Meeting, actor: User, audit_action: str, updated: int, action: str) -> Meeting:
    meeting.refresh_from_db()
    if updated != 1:
        raise _lost(meeting, action=action)
    audit_record(action=audit_action, actor=actor, meeting=meeting, subject=meeting.title)
    return meeting


def meeting_start(*, meeting: Meeting, actor: User, host_has_second_factor: bool) -> Meeting:
    """Admitted participants move from "waiting for the host" into the meeting room."""
    now = timezone.now()
    with transaction.atomic():
        require_host_factor(_current(meeting), host_has_second_factor)
        won = _open(meeting).filter(started_at=None).update(started_at=now, updated_at=now)
        meeting = _won(
            meeting=meeting, actor=actor, audit_action="meeting_started", updated=won, action="started"
        )
        media.media_room_prepare(meeting)
    return meeting


def meeting_lock(*, meeting: Meeting, actor: User, host_has_second_factor: bool) -> Meeting:
    """No new entries: passcode joins are refused (those already in stay)."""
    now = timezone.now()
    with transaction.atomic():
        require_host_factor(_current(meeting), host_has_second_factor)
        won = _open(meeting).filter(locked_at=None).update(locked_at=now, updated_at=now)
        meeting = _won(
            meeting=meeting, actor=actor, audit_action="meeting_locked", updated=won, action="locked"
        )
        # Tokens of admitted people not yet in the media room are taken away.
        media.media_sync_on_commit(meeting.pk)
    return meeting


def meeting_unlock(*, meeting: Meeting, actor: User, host_has_second_factor: bool) -> Meeting:
    now = timezone.now()
    with transaction.atomic():
        require_host_factor(_current(meeting), host_has_second_factor)
        won = _open(meeting).exclude(locked_at=None).update(locked_at=None, updated_at=now)
        meeting = _won(
            meeting=meeting, actor=actor, audit_action="meeting_unlocked", updated=won, action="unlocked"
        )
        media.media_sync_on_commit(meeting.pk)
    return meeting


def meeting_end(*, meeting: Meeting, actor: User, host_has_second_factor: bool) -> Meeting:
    """End it: everyone waiting or in is moved out (left), and no one can join again."""
    now = timezone.now()
    with transaction.atomic():
        require_host_factor(_current(meeting), host_has_second_factor)
        won = _open(meeting).update(ended_at=now, updated_at=now)
        meeting = _won(
            meeting=meeting, actor=actor, audit_action="meeting_ended", updated=won, action="ended"
        )
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
        # The media room is destroyed after commit.
        media.media_sync_on_commit(meeting.pk)
    return meeting
