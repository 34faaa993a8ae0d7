"""Issue 14, part 2: the media rooms of end-to-end encrypted meetings, on a real Janus.

Transactional tests: the room is changed after each service's commit (on_commit), as in
production.
"""

import secrets

import pytest

from meetings import selectors
from meetings.models import AuditEvent, ClassificationLevel, ConferenceRoom
from meetings.services import levels
from tests.janus_server import JanusParticipant
from tests.test_conference import admitted, join_as, listed_room, media_token_of, started_meeting

pytestmark = pytest.mark.django_db(transaction=True)

UNAUTHORIZED = 433

# The smallest offer Janus's core accepts (ICE credentials, a DTLS fingerprint, one
# audio m-line): enough to reach the VideoRoom's checks without a browser.
PLAIN_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuvwx",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        "a=setup:actpass",
        "a=mid:0",
        "a=sendonly",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "",
    ]
)


def publish_plain(janus, person: JanusParticipant) -> dict:
    """Offer media without saying it is end-to-end encrypted; Janus's answer event."""
    transaction = secrets.token_hex(8)
    person.http.post(
        f"{janus.url}/{person.session_id}/{person.handle_id}",
        json={
            "janus": "message",
            "body": {"request": "configure", "audio": True},
            "jsep": {"type": "offer", "sdp": PLAIN_OFFER},
            "transaction": transaction,
        },
        timeout=10,
    )
    for _ in range(20):
        events = person.http.get(f"{janus.url}/{person.session_id}?maxev=5", timeout=40).json()
        for event in events if isinstance(events, list) else [events]:
            if event.get("transaction") == transaction and event.get("janus") == "event":
                return event["plugindata"]["data"]
    raise AssertionError("no answer from Janus to configure")


def test_an_e2ee_meetings_room_requires_e2ee_and_a_plain_one_does_not(janus, alice):
    secret, secret_room = started_meeting(alice, "secret")
    official, official_room = started_meeting(alice, "official")
    assert secret.e2ee and secret_room.e2ee
    assert not official.e2ee and not official_room.e2ee
    assert listed_room(janus, secret_room)["require_e2ee"] is True
    assert listed_room(janus, official_room)["require_e2ee"] is False
    # The page is told, so that it encrypts (or refuses to join).
    dana = admitted(secret, alice, "Dana")
    assert selectors.media_for_entry(dana)["e2ee"] is True


def test_janus_refuses_plain_media_from_an_admitted_participant_of_an_e2ee_room(janus, alice):
    meeting, room = started_meeting(alice, "secret")
    dana = admitted(meeting, alice, "Dana")
    person, joined = join_as(janus, room, token=media_token_of(dana), feed=dana.media_feed_id, name="Dana")
    try:
        assert joined.get("videoroom") == "joined", joined
        refused = publish_plain(janus, person)
        assert refused.get("error_code") == UNAUTHORIZED, refused
        assert refused["error"] == "Room requires end-to-end encrypted media"
    finally:
        person.close()


def test_requiring_e2ee_makes_an_open_room_encrypted_and_keeps_admitted_people_in(janus, alice, carol):
    meeting, room = started_meeting(alice, "official")
    dana = admitted(meeting, alice, "Dana")
    assert listed_room(janus, room)["require_e2ee"] is False

    level = ClassificationLevel.objects.get(code="official")
    levels.level_update(level=level, actor=carol, changes={"e2ee": "required"})

    room = ConferenceRoom.objects.get(pk=room.pk)
    meeting.refresh_from_db()
    assert meeting.e2ee and room.e2ee and room.opened_at is not None
    assert listed_room(janus, room)["require_e2ee"] is True
    assert AuditEvent.objects.filter(action="conference_room_e2ee_enforced").count() == 1
    # Dana's token was put back on the new room's list: her page can rejoin.
    person, joined = join_as(janus, room, token=media_token_of(dana), feed=dana.media_feed_id, name="Dana")
    try:
        assert joined.get("videoroom") == "joined", joined
        assert publish_plain(janus, person).get("error_code") == UNAUTHORIZED
    finally:
        person.close()


def test_forbidding_e2ee_later_leaves_an_open_encrypted_room_encrypted(janus, alice, carol):
    meeting, room = started_meeting(alice, "official", e2ee=True)
    assert room.e2ee
    level = ClassificationLevel.objects.get(code="official")
    levels.level_update(level=level, actor=carol, changes={"e2ee": "forbidden"})
    meeting.refresh_from_db()
    assert meeting.e2ee is False  # the meeting's option follows the level...
    # ...but the live room is never downgraded: its browsers keep encrypting.
    assert listed_room(janus, ConferenceRoom.objects.get(pk=room.pk))["require_e2ee"] is True
