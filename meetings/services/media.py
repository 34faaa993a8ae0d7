"""The media room (meetings.conference): prepare it, and make Janus match the database."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from meetings import conference, policy, selectors
from meetings.audit import audit_record
from meetings.models import ConferenceRoom, LobbyEntry, Meeting
from meetings.services import outbox

SYNC_TASK = "meetings.tasks.media_room_sync"


def media_admission() -> dict[str, Any]:
    """The fields an admission sets: a fresh token and publisher ID for the media room."""
    return {"media_token": conference.new_token(), "media_feed_id": conference.new_feed_id()}


def media_sync_on_commit(meeting_id: int) -> None:
    """Queue a sync of the media room once the caller's rows are committed.

    A Celery task, not a call to Janus inside the host's request: a slow or absent media
    server must not slow or undo a decision that is already committed. The periodic
    task (tasks.media_rooms_sync_open) repairs whatever a lost task left behind.
    """
    outbox.on_commit_dispatch(SYNC_TASK, meeting_id)


def media_room_prepare(meeting: Meeting) -> None:
    """Record the room a started meeting gets (created on the media server after commit).

    Called inside meeting_start's transaction, after the start won.
    """
    record = policy.conference_recording(meeting.classification, meeting.cloud_recording)
    ConferenceRoom.objects.get_or_create(
        meeting=meeting,
        defaults={
            "number": conference.new_room_number(),
            "secret": conference.new_token(),
            "pin": conference.new_token(),
            "record": record,
            "e2ee": meeting.e2ee,
            "host_token": conference.new_token(),
            "host_feed_id": conference.new_feed_id(),
        },
    )
    audit_record(
        action="conference_room_prepared",
        actor=meeting.host,
        meeting=meeting,
        subject=meeting.title,
        detail={"record": record, "e2ee": meeting.e2ee},
    )
    media_sync_on_commit(meeting.pk)


def media_room_sync(*, meeting_id: int) -> None:
    """Make the media room match the database: the database is the truth.

    Idempotent, so it is safe to run after every decision or periodically. Creates the
    room once the meeting has started, destroys it once the meeting has ended or been
    cancelled; in between, the allowed list holds the tokens of admitted people (see
    policy.conference_feeds_allowed), every other token this room ever had is removed,
    and anyone in the room under a publisher ID that is not allowed is kicked.

    SECURITY: runs holding the room row FOR UPDATE (on PostgreSQL), so two syncs of one
    meeting run one after the other and each reads the entries after the other's
    writes: a slow sync cannot put back a token that a later removal took away. Audit
    rows are written last (they take no lock since audit sealing, but the order costs
    nothing). Call it outside any other transaction (a task).
    """
    backend = conference.backend()
    if not backend.configured:
        return
    with transaction.atomic():
        room = (
            ConferenceRoom.objects.select_for_update(of=("self",), no_key=True)
            .select_related("meeting__classification")
            .filter(meeting_id=meeting_id)
            .first()
        )
        if room is None or room.closed_at is not None:
            return
        for action, detail in _sync_locked(backend, room):
            audit_record(action=action, meeting=room.meeting, subject=room.meeting.title, detail=detail)


def _sync_locked(
    backend: conference.ConferenceBackend, room: ConferenceRoom
) -> list[tuple[str, dict[str, Any]]]:
    """media_room_sync's work; returns the audit events to record."""
    meeting = room.meeting
    spec = selectors.room_spec(room)
    now = timezone.now()
    events: list[tuple[str, dict[str, Any]]] = []
    if meeting.is_ended or meeting.is_cancelled:
        backend.end_room(spec)
        ConferenceRoom.objects.filter(pk=room.pk).update(closed_at=now)
        return [("conference_room_destroyed", {})]
    if room.opened_at is not None and meeting.e2ee and not room.e2ee:
        # SECURITY: the level (or the host) now wants E2EE, and Janus cannot add
        # require_e2ee to a live room: it is destroyed (every page is told and must rejoin)
        # and created again below with require_e2ee, before anyone can send plain media
        # into it. Never the other way: switching E2EE off leaves an open room encrypted.
        backend.end_room(spec)
        ConferenceRoom.objects.filter(pk=room.pk).update(e2ee=True, opened_at=None)
        room.e2ee, room.opened_at = True, None
        spec = selectors.room_spec(room)
        events.append(("conference_room_e2ee_enforced", {}))
    if room.opened_at is None:
        backend.create_room(spec)
        backend.admit_participant(spec, room.host_token)
        ConferenceRoom.objects.filter(pk=room.pk).update(opened_at=now)
        events.append(("conference_room_created", {"record": room.record, "e2ee": room.e2ee}))
    if room.record and not policy.conference_recording(meeting.classification, meeting.cloud_recording):
        backend.stop_recording(spec)
        ConferenceRoom.objects.filter(pk=room.pk).update(record=False)
        events.append(("conference_recording_stopped", {}))
    entries = list(
        LobbyEntry.objects.filter(meeting=meeting)
        .exclude(media_token="")
        .values_list("status", "media_token", "media_feed_id")
    )
    present = backend.participants(spec)
    admitted = {
        feed for status, _t, feed in entries if status == LobbyEntry.Status.ADMITTED and feed is not None
    }
    allowed = policy.conference_feeds_allowed(
        locked=meeting.is_locked, admitted=admitted, present=present, host=room.host_feed_id
    )
    for status, token, feed in entries:
        if status == LobbyEntry.Status.ADMITTED and feed in allowed:
            backend.admit_participant(spec, token)
        else:
            # SECURITY: the token goes before the kick, so the kicked page cannot rejoin.
            backend.remove_participant(spec, token, feed if feed in present else None)
    # Anyone else in the room (a client that joined under an ID it was not given) goes too.
    known = allowed | {feed for _s, _t, feed in entries if feed is not None}
    for feed in present - known:
        backend.remove_participant(spec, "", feed)
    return events
