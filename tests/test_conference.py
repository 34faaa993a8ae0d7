"""Media rooms on a real Janus, driven over its HTTP API (no browser, no WebRTC).

Transactional tests: the room is changed after each service's commit (on_commit), as
in production.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from meetings import conference, policy
from meetings.models import ClassificationLevel, ConferenceRoom, LobbyEntry
from meetings.services import booking, levels, lifecycle, lobby, media
from tests.janus_server import JanusParticipant
from tests.join_helpers import entrant

pytestmark = pytest.mark.django_db(transaction=True)

UNAUTHORIZED = 433


def started_meeting(host, level_code: str, cloud_recording: bool = False, e2ee: bool | None = None):
    level = ClassificationLevel.objects.get(code=level_code)
    booked = booking.meeting_book(
        host=host,
        title=f"{level.name} review",
        starts_at=timezone.now() + timedelta(minutes=5),
        duration_minutes=60,
        classification=level,
        cloud_recording=cloud_recording,
        waiting_room=True,
        e2ee=e2ee,
        host_has_second_factor=True,
    )
    meeting = lifecycle.meeting_start(meeting=booked.meeting, actor=host, host_has_second_factor=True)
    return meeting, ConferenceRoom.objects.get(meeting=meeting)


def media_token_of(entry: LobbyEntry) -> str:
    """The person's media token, as Antechamber derives it (it is stored nowhere)."""
    room = ConferenceRoom.objects.get(meeting_id=entry.meeting_id)
    return conference.media_token(room.number, entry_id=entry.pk, feed_id=entry.media_feed_id)


def admitted(meeting, host, name: str) -> LobbyEntry:
    entered = lobby.lobby_enter(meeting=meeting, display_name=name, **entrant(meeting, name))
    lobby.lobby_admit(meeting=meeting, entry_id=entered.entry.pk, actor=host, host_has_second_factor=True)
    entered.entry.refresh_from_db()
    assert entered.entry.media_feed_id
    return entered.entry


def join_as(janus, room: ConferenceRoom, *, token: str | None, feed: int, name: str = "x"):
    person = JanusParticipant(janus.url)
    body = {"request": "join", "ptype": "publisher", "room": room.number, "pin": room.pin, "id": feed}
    body["display"] = name
    if token is not None:
        body["token"] = token
    return person, person.message(body)


def listed_room(janus, room: ConferenceRoom) -> dict | None:
    """The room as Janus lists it to the admin (private rooms need the admin_key)."""
    admin = JanusParticipant(janus.url)
    try:
        rooms = admin.request({"request": "list", "admin_key": janus.admin_key})["list"]
    finally:
        admin.close()
    return next((r for r in rooms if r["room"] == room.number), None)


def exists(janus, room: ConferenceRoom) -> bool:
    someone = JanusParticipant(janus.url)
    try:
        return someone.request({"request": "exists", "room": room.number})["exists"]
    finally:
        someone.close()


def test_secret_meeting_room_exists_private_with_recording_off_and_locked(janus, alice):
    meeting, room = started_meeting(alice, "secret")
    assert room.opened_at is not None and not room.record
    assert exists(janus, room)
    listed = listed_room(janus, room)
    assert listed is not None
    assert listed["record"] is False
    assert listed["pin_required"] is True

    # Not listed to anyone without the admin_key: the room is private.
    outsider = JanusParticipant(janus.url)
    try:
        visible = outsider.request({"request": "list"})["list"]
    finally:
        outsider.close()
    assert room.number not in [r["room"] for r in visible]


def test_official_meeting_with_recording_on_gets_a_recording_room():
    level = ClassificationLevel.objects.get(code="official")
    assert policy.conference_recording(level, True) is True
    assert policy.conference_recording(level, False) is False
    secret = ClassificationLevel.objects.get(code="secret")
    assert policy.conference_recording(secret, True) is False


def test_recording_cannot_be_switched_on_without_the_room_secret(janus, alice):
    meeting, room = started_meeting(alice, "secret")
    dana = admitted(meeting, alice, "Dana")
    person, joined = join_as(janus, room, token=media_token_of(dana), feed=dana.media_feed_id, name="Dana")
    try:
        assert joined.get("videoroom") == "joined", joined
        refused = person.request({"request": "enable_recording", "room": room.number, "record": True})
        assert "error_code" in refused
        wrong = person.request(
            {"request": "enable_recording", "room": room.number, "record": True, "secret": "guess"}
        )
        assert wrong.get("error_code") == UNAUTHORIZED

        # A publisher asking to record itself: lock_record means nothing is recorded.
        configured = person.message({"request": "configure", "record": True, "filename": "leak"})
        assert configured.get("error_code") or configured.get("configured") == "ok", configured
        assert listed_room(janus, room)["record"] is False
        assert not [p for p in janus.workdir.rglob("*") if p.is_file()], "Janus wrote a recording"
    finally:
        person.close()


def test_rtp_forward_is_refused_without_the_admin_key_even_with_the_room_secret(janus, alice):
    meeting, room = started_meeting(alice, "secret")
    dana = admitted(meeting, alice, "Dana")
    person, joined = join_as(janus, room, token=media_token_of(dana), feed=dana.media_feed_id, name="Dana")
    try:
        assert joined.get("videoroom") == "joined", joined
        forward = {
            "request": "rtp_forward",
            "room": room.number,
            "publisher_id": dana.media_feed_id,
            "host": "127.0.0.1",
            "secret": room.secret,
            "streams": [{"mid": "0", "port": 50000}],
        }
        refused = person.request(forward)
        assert "error_code" in refused, refused
        assert "admin_key" in refused["error"] or refused["error_code"] == UNAUTHORIZED
        no_forwarders = person.request(
            {"request": "listforwarders", "room": room.number, "secret": room.secret}
        )
        assert no_forwarders.get("publishers", []) == []
    finally:
        person.close()


def test_only_admitted_tokens_join_and_removal_takes_the_token_and_kicks(janus, alice):
    meeting, room = started_meeting(alice, "secret")
    dana = admitted(meeting, alice, "Dana")
    erin = admitted(meeting, alice, "Erin")

    # No token, or someone else's feed ID with no token: refused.
    nobody, refused = join_as(janus, room, token=None, feed=12345)
    nobody.close()
    assert refused.get("error_code") == UNAUTHORIZED, refused
    forged, refused = join_as(janus, room, token="not-a-token", feed=12346)
    forged.close()
    assert refused.get("error_code") == UNAUTHORIZED, refused

    dana_media, joined = join_as(
        janus, room, token=media_token_of(dana), feed=dana.media_feed_id, name="Dana"
    )
    erin_media, erin_joined = join_as(
        janus, room, token=media_token_of(erin), feed=erin.media_feed_id, name="Erin"
    )
    try:
        assert joined.get("videoroom") == "joined" and erin_joined.get("videoroom") == "joined"
        people = dana_media.request({"request": "listparticipants", "room": room.number})
        in_room = {p["id"] for p in people["participants"]}
        admitted_feeds = set(
            LobbyEntry.objects.filter(meeting=meeting, status=LobbyEntry.Status.ADMITTED).values_list(
                "media_feed_id", flat=True
            )
        )
        assert in_room == admitted_feeds == {dana.media_feed_id, erin.media_feed_id}

        # The host removes Erin: her token goes and she is kicked.
        lobby.lobby_remove(meeting=meeting, entry_id=erin.pk, actor=alice, host_has_second_factor=True)
        people = dana_media.request({"request": "listparticipants", "room": room.number})
        assert {p["id"] for p in people["participants"]} == {dana.media_feed_id}
        again, refused = join_as(
            janus, room, token=media_token_of(erin), feed=erin.media_feed_id, name="Erin"
        )
        again.close()
        assert refused.get("error_code") == UNAUTHORIZED, refused
    finally:
        dana_media.close()
        erin_media.close()


def test_denied_person_never_gets_a_token_and_lock_takes_unused_tokens(janus, alice):
    meeting, room = started_meeting(alice, "secret")
    entered = lobby.lobby_enter(meeting=meeting, display_name="Frank", source=LobbyEntry.Source.PASSCODE)
    lobby.lobby_deny(meeting=meeting, entry_id=entered.entry.pk, actor=alice, host_has_second_factor=True)
    entered.entry.refresh_from_db()
    assert entered.entry.media_feed_id is None

    dana = admitted(meeting, alice, "Dana")
    gina = admitted(meeting, alice, "Gina")
    dana_media, joined = join_as(
        janus, room, token=media_token_of(dana), feed=dana.media_feed_id, name="Dana"
    )
    try:
        assert joined.get("videoroom") == "joined"
        # Locked: Dana (in the room) stays; Gina (admitted, not yet in) cannot come in now.
        lifecycle.meeting_lock(meeting=meeting, actor=alice, host_has_second_factor=True)
        late, refused = join_as(janus, room, token=media_token_of(gina), feed=gina.media_feed_id, name="Gina")
        late.close()
        assert refused.get("error_code") == UNAUTHORIZED, refused
        people = dana_media.request({"request": "listparticipants", "room": room.number})
        assert {p["id"] for p in people["participants"]} == {dana.media_feed_id}
        # Unlocked: Gina's token is back.
        lifecycle.meeting_unlock(meeting=meeting, actor=alice, host_has_second_factor=True)
        back, joined = join_as(janus, room, token=media_token_of(gina), feed=gina.media_feed_id, name="Gina")
        back.close()
        assert joined.get("videoroom") == "joined", joined
    finally:
        dana_media.close()


def test_someone_in_the_room_under_an_id_they_were_not_given_is_kicked_at_the_next_sync(janus, alice):
    meeting, room = started_meeting(alice, "secret")
    dana = admitted(meeting, alice, "Dana")
    # Dana's page chooses a publisher ID of its own (tokens do not bind the ID).
    rogue, joined = join_as(janus, room, token=media_token_of(dana), feed=777, name="Dana")
    try:
        assert joined.get("videoroom") == "joined"
        media.media_room_sync(meeting_id=meeting.pk)
        people = rogue.request({"request": "listparticipants", "room": room.number, "secret": room.secret})
        assert 777 not in {p["id"] for p in people["participants"]}
    finally:
        rogue.close()


def test_ending_the_meeting_destroys_the_room(janus, alice):
    meeting, room = started_meeting(alice, "secret")
    admitted(meeting, alice, "Dana")
    assert exists(janus, room)
    lifecycle.meeting_end(meeting=meeting, actor=alice, host_has_second_factor=True)
    room.refresh_from_db()
    assert room.closed_at is not None
    assert not exists(janus, room)


def test_room_page_hands_the_token_in_the_body_never_the_secret(janus, alice, client):
    meeting, room = started_meeting(alice, "official")
    entered = lobby.lobby_enter(meeting=meeting, display_name="Dana", source=LobbyEntry.Source.PASSCODE)
    lobby.lobby_admit(meeting=meeting, entry_id=entered.entry.pk, actor=alice, host_has_second_factor=True)
    entered.entry.refresh_from_db()
    session = client.session
    from meetings.authentication import lobby_secret_bind

    lobby_secret_bind(session, entered.entry.pk, entered.secret)
    session.save()
    room.refresh_from_db()
    url = f"/join/{entered.entry.pk}/room/"
    response = client.get(url)
    body = response.content.decode()
    assert response.status_code == 200
    assert '<script id="media-config" type="application/json">' in body
    assert media_token_of(entered.entry) in body and room.pin in body
    assert room.secret not in body and janus.admin_key not in body
    assert media_token_of(entered.entry) not in url
    assert response["Cache-Control"].startswith("max-age=0") or "no-store" in response["Cache-Control"]
    assert "end-to-end encrypted" not in body.replace("not end-to-end encrypted", "")


def test_tightening_the_level_stops_a_recording_room(janus, alice, carol):
    meeting, room = started_meeting(alice, "official", cloud_recording=True)
    room.refresh_from_db()
    assert room.record is True
    assert listed_room(janus, room)["record"] is True

    level = ClassificationLevel.objects.get(code="official")
    levels.level_update(level=level, actor=carol, changes={"allow_cloud_recording": False})
    room.refresh_from_db()
    assert room.record is False
    assert listed_room(janus, room)["record"] is False


@pytest.mark.parametrize("ended_by", ["revocation", "tightened level"])
def test_a_revocation_or_a_tightened_level_takes_the_token_and_kicks(janus, alice, carol, ended_by):
    from meetings.models import Invitation
    from meetings.services import invitations

    level = ClassificationLevel.objects.get(code="official")
    booked = booking.meeting_book(
        host=alice,
        title="Review",
        starts_at=timezone.now() + timedelta(minutes=5),
        duration_minutes=60,
        classification=level,
        waiting_room=True,
        invitees=["ann@example.org"],
        host_has_second_factor=True,
    )
    meeting = lifecycle.meeting_start(meeting=booked.meeting, actor=alice, host_has_second_factor=True)
    room = ConferenceRoom.objects.get(meeting=meeting)
    invitation = Invitation.objects.get(meeting=meeting)
    # Ann came by her link as a guest (OFFICIAL admits guests), and was admitted.
    entered = lobby.lobby_enter(
        meeting=meeting, display_name="Ann", source=LobbyEntry.Source.INVITATION, invitation=invitation
    )
    lobby.lobby_admit(meeting=meeting, entry_id=entered.entry.pk, actor=alice, host_has_second_factor=True)
    ann = LobbyEntry.objects.get(pk=entered.entry.pk)
    ann_media, joined = join_as(janus, room, token=media_token_of(ann), feed=ann.media_feed_id, name="Ann")
    observer = JanusParticipant(janus.url)
    try:
        assert joined.get("videoroom") == "joined", joined
        if ended_by == "revocation":
            invitations.invitation_revoke(invitation=invitation, actor=alice, host_has_second_factor=True)
        else:
            levels.level_update(level=level, actor=carol, changes={"allow_guests": False})
        assert LobbyEntry.objects.get(pk=ann.pk).status == LobbyEntry.Status.LEFT
        people = observer.request({"request": "listparticipants", "room": room.number, "secret": room.secret})
        assert ann.media_feed_id not in {p["id"] for p in people["participants"]}
        again, refused = join_as(janus, room, token=media_token_of(ann), feed=ann.media_feed_id, name="Ann")
        again.close()
        assert refused.get("error_code") == UNAUTHORIZED, refused
    finally:
        observer.close()
        ann_media.close()


# --- Issue 21: the media server's credentials at rest, and media that outlives policy -------


def test_room_secret_pin_and_media_tokens_work_on_janus_and_no_row_holds_one(janus, alice, settings):
    from tests.helpers import assert_nowhere_in_database

    meeting, room = started_meeting(alice, "secret")
    dana = admitted(meeting, alice, "Dana")
    room.refresh_from_db()
    credentials = [room.secret, room.pin, room.host_token, media_token_of(dana)]
    assert len(set(credentials)) == 4
    # What Antechamber derives is what Janus was told: the pin and each token join, the
    # secret controls the room, and a wrong secret does not.
    dana_media, joined = join_as(janus, room, token=media_token_of(dana), feed=dana.media_feed_id)
    host_media, host_joined = join_as(janus, room, token=room.host_token, feed=room.host_feed_id)
    try:
        assert joined.get("videoroom") == "joined", joined
        assert host_joined.get("videoroom") == "joined", host_joined
        control = {"request": "allowed", "room": room.number, "action": "remove", "allowed": ["none"]}
        assert dana_media.request({**control, "secret": room.secret}).get("videoroom") == "success"
        assert dana_media.request({**control, "secret": "x" * 64}).get("error_code") == UNAUTHORIZED
    finally:
        dana_media.close()
        host_media.close()
    # SECURITY: a copy of the database recreates none of them: they are keyed by a secret
    # that is not in it (another key, other credentials for the same rows).
    assert_nowhere_in_database(*credentials)
    settings.SECRET_KEY = "another-key-" + "k" * 50
    assert not {room.secret, room.pin, room.host_token, media_token_of(dana)} & set(credentials)


def test_a_recording_switched_on_with_the_room_secret_is_stopped_by_the_sync(janus, alice):
    from meetings import tasks
    from meetings.models import AuditEvent

    meeting, room = started_meeting(alice, "official-sensitive")
    assert room.record is False and listed_room(janus, room)["record"] is False

    def switch_on_out_of_band() -> None:
        # Whoever holds the room secret switches recording on behind Antechamber's back.
        outsider = JanusParticipant(janus.url)
        try:
            switched = outsider.request(
                {"request": "enable_recording", "room": room.number, "secret": room.secret, "record": True}
            )
        finally:
            outsider.close()
        assert "error_code" not in switched, switched
        assert listed_room(janus, room)["record"] is True

    # The periodic sync (one list for every room), then the sync after any decision.
    for sync in (tasks.media_rooms_sync_open, lambda: media.media_room_sync(meeting_id=meeting.pk)):
        switch_on_out_of_band()
        sync()
        assert listed_room(janus, room)["record"] is False
    room.refresh_from_db()
    assert room.record is False
    stopped = AuditEvent.objects.filter(
        action="conference_recording_stopped", subject=meeting.title, detail={"found_on_media_server": True}
    )
    assert stopped.count() == 2


def _bound_participant(client, meeting, host) -> LobbyEntry:
    from meetings.authentication import lobby_secret_bind

    entered = lobby.lobby_enter(meeting=meeting, display_name="Dana", source=LobbyEntry.Source.PASSCODE)
    lobby.lobby_admit(meeting=meeting, entry_id=entered.entry.pk, actor=host, host_has_second_factor=True)
    session = client.session
    lobby_secret_bind(session, entered.entry.pk, entered.secret)
    session.save()
    entered.entry.refresh_from_db()
    return entered.entry


@pytest.mark.parametrize("closed_by", ["cancel", "end"])
def test_cancelling_or_ending_a_started_meeting_closes_its_room_and_pages_at_once(
    janus, alice, client, monkeypatch, closed_by
):
    from meetings.services import outbox

    meeting, room = started_meeting(alice, "official")
    dana = _bound_participant(client, meeting, alice)
    token = media_token_of(dana)
    assert token in client.get(f"/join/{dana.pk}/room/").content.decode()
    # No worker gets to any queued task: only what the cancel itself does happens now.
    queued: list[str] = []
    monkeypatch.setattr(outbox, "dispatch", lambda name, *args: queued.append(name))

    if closed_by == "cancel":
        booking.meeting_cancel(meeting=meeting, actor=alice, host_has_second_factor=True)
    else:
        lifecycle.meeting_end(meeting=meeting, actor=alice, host_has_second_factor=True)

    assert not exists(janus, room)
    room.refresh_from_db()
    assert room.closed_at is not None
    page = client.get(f"/join/{dana.pk}/room/")
    assert page.status_code == 302 and page["Location"] == f"/join/{dana.pk}/"
    waiting = client.get(page["Location"]).content.decode()
    assert token not in waiting and room.pin not in waiting
    assert client.get(f"/join/{dana.pk}/room/people/").status_code == 404
    assert client.get(f"/join/{dana.pk}/status/").json()["meeting_ended"] is True


def test_a_cancelled_meetings_media_config_and_key_relay_go_even_while_janus_is_unreachable(
    janus, alice, client, settings
):
    from meetings import selectors
    from tests import real_services as real

    meeting, room = started_meeting(alice, "official", e2ee=True)
    dana = _bound_participant(client, meeting, alice)
    relay = f"/join/{dana.pk}/room/e2ee/"
    assert client.get(relay).status_code == 200
    settings.JANUS_URL = f"http://127.0.0.1:{real.free_port()}/janus"  # nothing listens there

    booking.meeting_cancel(meeting=meeting, actor=alice, host_has_second_factor=True)

    room.refresh_from_db()
    assert room.closed_at is None  # the media server has not been told yet
    dana.refresh_from_db()
    assert selectors.media_for_entry(dana) is None
    assert selectors.media_for_host(meeting, "Alice") is None
    assert client.get(relay).status_code == 404
    assert client.get(f"/join/{dana.pk}/room/").status_code == 302


def test_migration_0017_ends_rooms_opened_under_stored_secrets_and_the_sync_recreates_them(janus, alice):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from meetings import conference

    meeting, room = started_meeting(alice, "official")
    dana = admitted(meeting, alice, "Dana")
    this = ("meetings", "0017_media_credentials_derived")
    executor = MigrationExecutor(connection)
    before = list(executor.loader.graph.node_map[this].parents)
    leaves = executor.loader.graph.leaf_nodes()
    # The room as a release before 0017 left it: open on Janus under the secret, pin and
    # tokens its rows held in clear.
    backend = conference.backend()
    backend.end_room(conference.Room(number=room.number, secret=room.secret, pin=room.pin))
    stored = conference.Room(number=room.number, secret="stored-secret-" + "s" * 30, pin="stored-pin")
    backend.create_room(stored)
    backend.admit_participant(stored, "stored-dana-token")
    executor.migrate([p.key for p in before])
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE meetings_conferenceroom SET secret = %s, pin = %s, host_token = %s WHERE id = %s",
                [stored.secret, stored.pin, "stored-host-token", room.pk],
            )
            cursor.execute(
                "UPDATE meetings_lobbyentry SET media_token = %s WHERE id = %s",
                ["stored-dana-token", dana.pk],
            )
    finally:
        MigrationExecutor(connection).migrate(leaves)

    assert not exists(janus, room)  # destroyed with the secret its row held
    moved = ConferenceRoom.objects.get(pk=room.pk)
    assert moved.number != room.number and moved.opened_at is None
    media.media_room_sync(meeting_id=meeting.pk)
    moved.refresh_from_db()
    assert moved.opened_at is not None and exists(janus, moved)
    dana_media, joined = join_as(janus, moved, token=media_token_of(dana), feed=dana.media_feed_id)
    dana_media.close()
    assert joined.get("videoroom") == "joined", joined


def test_after_a_key_change_the_sync_ends_the_room_under_the_old_key_and_makes_it_again(
    janus, alice, settings
):
    from meetings.models import AuditEvent

    meeting, room = started_meeting(alice, "official")
    dana = admitted(meeting, alice, "Dana")
    old_secret = room.secret
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the-new-key-" + "n" * 50
    assert room.secret != old_secret

    media.media_room_sync(meeting_id=meeting.pk)

    assert not exists(janus, room)  # not left running under a secret no one derives now
    again = ConferenceRoom.objects.get(pk=room.pk)
    assert again.number != room.number and exists(janus, again)
    dana_media, joined = join_as(janus, again, token=media_token_of(dana), feed=dana.media_feed_id)
    dana_media.close()
    assert joined.get("videoroom") == "joined", joined
    assert AuditEvent.objects.filter(action="conference_room_rekeyed", subject=meeting.title).exists()
