"""The media room (meetings.conference): prepare it, and make Janus match the database."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from meetings import conference, policy, selectors
from meetings.audit import audit_record
from meetings.models import ConferenceRoom, LobbyEntry, Meeting
from meetings.services import outbox

SYNC_TASK = "meetings.tasks.media_room_sync"

logger = logging.getLogger(__name__)


def media_admission() -> dict[str, Any]:
    """The fields an admission sets: a fresh publisher ID for the media room, from which
    (with the room number) the person's media token is derived (conference.media_token)."""
    return {"media_feed_id": conference.new_feed_id()}


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
            "record": record,
            "e2ee": meeting.e2ee,
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


def media_room_sync(*, meeting_id: int, recording: set[int] | None = None) -> None:
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
    nothing). Call it outside any other transaction (a task). `recording`: the rooms
    the media server said it records, when the caller (the periodic sync) asked once
    for all; else it is asked now.
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
        try:
            events = _sync_locked(backend, room, recording)
        except conference.ConferenceError as exc:
            if exc.code != conference.UNAUTHORIZED:
                raise
            events = _rekey_locked(backend, room)
        for action, detail in events:
            audit_record(action=action, meeting=room.meeting, subject=room.meeting.title, detail=detail)


def _rekey_locked(
    backend: conference.ConferenceBackend, room: ConferenceRoom
) -> list[tuple[str, dict[str, Any]]]:
    """The media server refused the room's secret: the key it is derived from changed.

    The room is destroyed with its secret under a fallback key, and made again under a
    new number, so that everything about it (secret, pin, every token) derives from the
    current key; the pages in it are told the room went and join the new one when
    reloaded. SECURITY: never left running under a secret no one can derive any more,
    out of reach of every later removal.
    """
    for secret in conference.former_room_secrets(room.number):
        try:
            backend.end_room(conference.Room(number=room.number, secret=secret, pin=""))
            break
        except conference.ConferenceError as exc:
            if exc.code != conference.UNAUTHORIZED:
                raise
    else:
        logger.warning("media room %s refuses every key: restart Janus to end it", room.number)
    number = conference.new_room_number()
    ConferenceRoom.objects.filter(pk=room.pk).update(number=number, opened_at=None)
    room.number, room.opened_at = number, None
    return [("conference_room_rekeyed", {}), *_sync_locked(backend, room, None)]


def _sync_locked(
    backend: conference.ConferenceBackend, room: ConferenceRoom, recording: set[int] | None
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
    events += _sync_recording(backend, room, spec, recording)
    # Everyone ever admitted (a publisher ID), with their token derived again.
    rows = LobbyEntry.objects.filter(meeting=meeting).exclude(media_feed_id=None)
    entries: list[tuple[str, str, int]] = [
        (status, conference.media_token(room.number, entry_id=pk, feed_id=feed), feed)
        for pk, status, feed in rows.values_list("pk", "status", "media_feed_id")
        if feed is not None
    ]
    present = backend.participants(spec)
    admitted = {feed for status, _t, feed in entries if status == LobbyEntry.Status.ADMITTED}
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
    known = allowed | {feed for _s, _t, feed in entries}
    for feed in present - known:
        backend.remove_participant(spec, "", feed)
    return events


def _sync_recording(
    backend: conference.ConferenceBackend,
    room: ConferenceRoom,
    spec: conference.Room,
    recording: set[int] | None,
) -> list[tuple[str, dict[str, Any]]]:
    """Recording stops where policy no longer allows it, and wherever the media server
    records a room whose row does not say so.

    SECURITY: the row is what Antechamber decided; the media server is what happens.
    Whoever holds the room secret can switch recording on behind Antechamber's back
    (lock_record stops only participants), so the server's own state is read every
    sync and a recording the row does not say is on is stopped and audited. Recording
    is never started here.
    """
    meeting = room.meeting
    if room.record and not policy.conference_recording(meeting.classification, meeting.cloud_recording):
        backend.stop_recording(spec)
        ConferenceRoom.objects.filter(pk=room.pk).update(record=False)
        room.record = False
        return [("conference_recording_stopped", {})]
    if room.record:
        return []
    if room.number in (backend.recording_rooms() if recording is None else recording):
        backend.stop_recording(spec)
        return [("conference_recording_stopped", {"found_on_media_server": True})]
    return []


def media_rooms_recording() -> set[int] | None:
    """The rooms the media server records now, asked once for a periodic sync of them
    all; None where it cannot answer (each room's sync then asks, and fails, alone)."""
    backend = conference.backend()
    if not backend.configured:
        return set()
    try:
        return backend.recording_rooms()
    except conference.ConferenceError:
        return None


def media_room_close(meeting: Meeting) -> None:
    """A cancelled or ended meeting's media room goes as soon as the caller commits.

    Called inside meeting_cancel's and meeting_end's transactions. The room page and
    its media config stop at once from the meeting's own row (selectors._open_room);
    the media server's room is destroyed right after commit, in this process, not when
    a worker gets to the task.

    SECURITY: a room that outlives its meeting keeps everyone in it talking, out of
    reach of every later removal. If the media server cannot be reached now, the task
    (and the periodic sync after it) tries again.
    """

    def close_now() -> None:
        try:
            media_room_sync(meeting_id=meeting.pk)
        except Exception:  # noqa: BLE001 - the meeting is already closed: the task retries
            logger.warning("media room close failed; queued", extra={"meeting": meeting.pk}, exc_info=True)
            outbox.dispatch(SYNC_TASK, meeting.pk)

    transaction.on_commit(close_now, robust=True)
