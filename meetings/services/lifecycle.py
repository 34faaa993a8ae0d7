"""A meeting's life once booked: start, lock, unlock, end.

Each is one conditional UPDATE on the meeting's row, whose row count says whether this
call won; a call that lost is told why with a 409 whose code names the state.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from meetings import errors
from meetings.audit import audit_record
from meetings.models import LobbyEntry, Meeting
from meetings.services import locking, media
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
        media.media_room_close(meeting)
    return meeting
