"""Issue 14, part 3 (server side): the key relay of end-to-end encrypted rooms.

The browsers do the cryptography (tests/test_browser_e2ee.py); here: who may publish and
read keys, that only members get wrapped keys, and that nothing key-like reaches the
database or a log.
"""

import base64
import logging
import secrets

import pytest
from django.test import Client

from meetings.models import LobbyEntry
from meetings.services import lobby
from tests.helpers import assert_nowhere_in_database
from tests.join_helpers import entrant
from tests.test_conference import admitted, started_meeting

pytestmark = pytest.mark.django_db(transaction=True)


def public_key() -> str:
    return base64.b64encode(b"\x04" + secrets.token_bytes(64)).decode()


def wrapped() -> dict:
    return {
        "iv": base64.b64encode(secrets.token_bytes(12)).decode(),
        "wrapped": base64.b64encode(secrets.token_bytes(32)).decode(),
    }


def seat_client(entry: LobbyEntry, secret: str) -> Client:
    from importlib import import_module

    from django.conf import settings

    from meetings.authentication import lobby_secret_bind

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    lobby_secret_bind(store, entry.pk, secret)
    store.save()
    client = Client(enforce_csrf_checks=False)
    client.cookies[settings.SESSION_COOKIE_NAME] = store.session_key
    return client


def enter_and_admit(meeting, host, name):
    entered = lobby.lobby_enter(meeting=meeting, display_name=name, **entrant(meeting, name))
    lobby.lobby_admit(meeting=meeting, entry_id=entered.entry.pk, actor=host, host_has_second_factor=True)
    entered.entry.refresh_from_db()
    return entered.entry, seat_client(entered.entry, entered.secret)


def url_of(entry) -> str:
    return f"/join/{entry.pk}/room/e2ee/"


def post(client, url, body):
    return client.post(url, body, content_type="application/json")


def test_members_publish_public_keys_and_receive_only_keys_wrapped_for_them(
    janus, alice, caplog, verified_client
):
    caplog.set_level(logging.DEBUG)
    meeting, room = started_meeting(alice, "secret")
    dana, dana_web = enter_and_admit(meeting, alice, "Dana")
    erin, erin_web = enter_and_admit(meeting, alice, "Erin")
    host_web = verified_client(alice)  # SECRET: the host's room needs the second factor
    host_url = f"/meetings/{meeting.display_id}/room/e2ee/"

    keys = {"dana": public_key(), "erin": public_key(), "host": public_key()}
    assert post(dana_web, url_of(dana), {"public_key": keys["dana"]}).status_code == 200
    assert post(erin_web, url_of(erin), {"public_key": keys["erin"]}).status_code == 200
    assert post(host_web, host_url, {"public_key": keys["host"]}).status_code == 200

    state = dana_web.get(url_of(dana)).json()
    assert state["me"] == dana.media_feed_id
    assert {m["feed"]: m["public_key"] for m in state["members"]} == {
        dana.media_feed_id: keys["dana"],
        erin.media_feed_id: keys["erin"],
        room.host_feed_id: keys["host"],
    }
    assert {m["display"] for m in state["members"]} == {"Dana", "Erin", "alice (host)"}

    # The host wraps its sender key for Dana, for Erin, and for someone who is not in.
    for_dana, for_erin = wrapped(), wrapped()
    answer = post(
        host_web,
        host_url,
        {
            "key_id": 7,
            "keys": [
                {"to": dana.media_feed_id, **for_dana},
                {"to": erin.media_feed_id, **for_erin},
                {"to": 12345, **wrapped()},
            ],
        },
    )
    assert answer.status_code == 200 and answer.json() == {"stored": 2}
    assert dana_web.get(url_of(dana)).json()["wrapped"] == [
        {"from": room.host_feed_id, "key_id": 7, **for_dana}
    ]
    assert erin_web.get(url_of(erin)).json()["wrapped"] == [
        {"from": room.host_feed_id, "key_id": 7, **for_erin}
    ]

    # SECURITY: nothing key-like in the database (every row of every table) or the log,
    # not even public keys: the relay holds them in the cache only.
    everything = [keys[k] for k in keys] + [for_dana["wrapped"], for_erin["wrapped"]]
    assert_nowhere_in_database(*everything)
    assert not any(value in caplog.text for value in everything)


def test_a_removed_participant_loses_the_seat_at_once_and_drops_out_of_the_members(janus, alice):
    meeting, _room = started_meeting(alice, "secret")
    dana, dana_web = enter_and_admit(meeting, alice, "Dana")
    erin, erin_web = enter_and_admit(meeting, alice, "Erin")
    post(dana_web, url_of(dana), {"public_key": public_key()})
    post(erin_web, url_of(erin), {"public_key": public_key()})
    assert len(erin_web.get(url_of(erin)).json()["members"]) == 2

    lobby.lobby_remove(meeting=meeting, entry_id=dana.pk, actor=alice, host_has_second_factor=True)
    assert dana_web.get(url_of(dana)).status_code == 404
    assert post(dana_web, url_of(dana), {"public_key": public_key()}).status_code == 404
    assert [m["feed"] for m in erin_web.get(url_of(erin)).json()["members"]] == [erin.media_feed_id]
    # Nor can anyone still wrap keys for her.
    answer = post(erin_web, url_of(erin), {"key_id": 1, "keys": [{"to": dana.media_feed_id, **wrapped()}]})
    assert answer.json() == {"stored": 0}


def test_leaving_withdraws_the_public_key(janus, alice):
    meeting, _room = started_meeting(alice, "secret")
    dana, dana_web = enter_and_admit(meeting, alice, "Dana")
    post(dana_web, url_of(dana), {"public_key": public_key()})
    assert dana_web.delete(url_of(dana)).status_code == 200
    assert dana_web.get(url_of(dana)).json()["members"] == []


def test_no_relay_for_plain_rooms_or_other_sessions(janus, alice, bob):
    plain, _room = started_meeting(alice, "official")
    dana, dana_web = enter_and_admit(plain, alice, "Dana")
    assert dana_web.get(url_of(dana)).status_code == 404
    secret, _room = started_meeting(alice, "secret")
    erin = admitted(secret, alice, "Erin")
    # Someone else's browser, or no browser session: the same 404.
    assert dana_web.get(url_of(erin)).status_code == 404
    assert Client().get(url_of(erin)).status_code == 404
    bob_web = Client()
    bob_web.force_login(bob)
    assert bob_web.get(f"/meetings/{secret.display_id}/room/e2ee/").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"public_key": "not base64!"},
        {"public_key": base64.b64encode(b"\x02" + bytes(64)).decode()},
        {"public_key": base64.b64encode(b"\x04" + bytes(10)).decode()},
        {"key_id": -1, "keys": []},
        {"key_id": True, "keys": []},
        {"key_id": 1, "keys": [{"to": 1, "iv": "AAAA", "wrapped": "AAAA"}]},
        {"key_id": 1, "keys": [{"to": "x", "iv": "", "wrapped": ""}]},
        {"key_id": 1, "keys": "x"},
        {"something": "else"},
    ],
)
def test_bad_key_material_is_refused(janus, alice, body):
    meeting, _room = started_meeting(alice, "secret")
    dana, dana_web = enter_and_admit(meeting, alice, "Dana")
    assert post(dana_web, url_of(dana), body).status_code == 400


def test_the_room_page_of_an_e2ee_meeting_loads_the_encryption_and_the_relay(janus, alice):
    meeting, _room = started_meeting(alice, "secret")
    dana, dana_web = enter_and_admit(meeting, alice, "Dana")
    page = dana_web.get(f"/join/{dana.pk}/room/").content.decode()
    assert "js/e2ee.js" in page and "js/e2ee-worker.js" in page
    assert f"/join/{dana.pk}/room/e2ee/" in page
    assert "not end-to-end encrypted" not in page
    plain, _room = started_meeting(alice, "official")
    erin, erin_web = enter_and_admit(plain, alice, "Erin")
    page = erin_web.get(f"/join/{erin.pk}/room/").content.decode()
    assert "js/e2ee.js" not in page and "not end-to-end encrypted" in page
