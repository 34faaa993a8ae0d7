"""The waiting room and the meeting's lifecycle, through the API and the pages."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from meetings import credentials, policy
from meetings.models import ClassificationLevel, LobbyEntry, Meeting
from tests.helpers import booking_body
from tests.join_helpers import book, join_data

pytestmark = pytest.mark.django_db


def join(meeting_id: str, passcode: str, name: str) -> tuple[APIClient, dict]:
    client = APIClient()
    response = client.post("/api/v1/join/", join_data(meeting_id, passcode, name), format="json")
    assert response.status_code == 201, response.content
    return client, response.json()


def lobby(api, meeting_id: str) -> dict[str, str]:
    response = api.get(f"/api/v1/meetings/{meeting_id}/lobby/")
    assert response.status_code == 200
    return {entry["display_name"]: entry["status"] for entry in response.json()}


def test_host_admits_denies_removes_and_participants_see_it(alice_api):
    meeting_id, passcode = book(alice_api)
    dana, dana_joined = join(meeting_id, passcode, "Dana")
    erin, erin_joined = join(meeting_id, passcode, "Erin")
    _frank, frank_joined = join(meeting_id, passcode, "Frank")
    assert lobby(alice_api, meeting_id) == {"Dana": "waiting", "Erin": "waiting", "Frank": "waiting"}

    base = f"/api/v1/meetings/{meeting_id}/lobby"
    admitted = alice_api.post(f"{base}/{dana_joined['entry']['id']}/admit/")
    assert admitted.status_code == 200 and admitted.json()["status"] == "admitted"
    assert alice_api.post(f"{base}/{erin_joined['entry']['id']}/deny/").json()["status"] == "denied"
    assert alice_api.post(f"{base}/{frank_joined['entry']['id']}/remove/").json()["status"] == "left"
    assert lobby(alice_api, meeting_id) == {"Dana": "admitted", "Erin": "denied", "Frank": "left"}

    # A decision already taken is not taken twice: one conditional UPDATE decides.
    again = alice_api.post(f"{base}/{erin_joined['entry']['id']}/admit/")
    assert again.status_code == 409 and "denied" in again.json()["detail"]
    assert again.json()["code"] == "already_decided"
    assert alice_api.post(f"{base}/999999/admit/").status_code == 404

    dana_state = dana.get(dana_joined["status_url"]).json()
    assert dana_state == {
        "status": "admitted",
        "meeting_started": False,
        "meeting_ended": False,
        "room_url": None,
    }
    assert erin.get(erin_joined["status_url"]).json()["status"] == "denied"
    # Before the host starts, the room sends admitted people back to wait for the host.
    room = f"/join/{dana_joined['entry']['id']}/room/"
    assert dana.get(room).status_code == 302
    assert "Waiting for the host" in dana.get(dana_joined["waiting_url"]).content.decode()

    assert alice_api.post(f"/api/v1/meetings/{meeting_id}/start/").json()["started_at"] is not None
    assert dana.get(dana_joined["status_url"]).json()["room_url"] == room
    page = dana.get(room)
    html = page.content.decode()
    assert page.status_code == 200 and page["Referrer-Policy"] == "no-referrer"
    assert 'class="banner level-official"' in html and "data-media-container" in html
    assert (
        '<li data-person data-role="participant"><span class="name">Dana</span></li>' in html
        and "Erin" not in html
    )
    assert "Cloud recording: off" in html and "Telephone dial-in: off" in html
    assert erin.get(f"/join/{erin_joined['entry']['id']}/room/").status_code == 302


def test_admit_all_admits_only_the_waiting(alice_api):
    meeting_id, passcode = book(alice_api)
    ids = [join(meeting_id, passcode, name)[1]["entry"]["id"] for name in ("A", "B", "C")]
    alice_api.post(f"/api/v1/meetings/{meeting_id}/lobby/{ids[0]}/deny/")
    response = alice_api.post(f"/api/v1/meetings/{meeting_id}/lobby/admit-all/")
    assert response.json() == {"admitted": 2}
    assert lobby(alice_api, meeting_id) == {"A": "denied", "B": "admitted", "C": "admitted"}


def test_locked_meeting_refuses_new_entries_and_unlock_reopens(alice_api):
    meeting_id, passcode = book(alice_api)
    assert alice_api.post(f"/api/v1/meetings/{meeting_id}/lock/").json()["locked_at"] is not None
    refused = APIClient().post("/api/v1/join/", join_data(meeting_id, passcode), format="json")
    assert (
        refused.status_code == 409
        and refused.json()["code"] == "locked"
        and "locked" in refused.json()["detail"]
    )
    alice_api.post(f"/api/v1/meetings/{meeting_id}/unlock/")
    join(meeting_id, passcode, "Dana")


def test_ending_moves_everyone_out_and_stops_joins(alice_api):
    meeting_id, passcode = book(alice_api)
    dana, joined = join(meeting_id, passcode, "Dana")
    alice_api.post(f"/api/v1/meetings/{meeting_id}/lobby/{joined['entry']['id']}/admit/")
    join(meeting_id, passcode, "Erin")
    alice_api.post(f"/api/v1/meetings/{meeting_id}/start/")

    ended = alice_api.post(f"/api/v1/meetings/{meeting_id}/end/")
    assert ended.status_code == 200 and ended.json()["ended_at"] is not None
    assert lobby(alice_api, meeting_id) == {"Dana": "left", "Erin": "left"}
    assert dana.get(joined["status_url"]).json()["meeting_ended"] is True
    late = APIClient().post("/api/v1/join/", join_data(meeting_id, passcode), format="json")
    assert late.status_code == 409 and late.json()["code"] == "ended" and "ended" in late.json()["detail"]
    again = alice_api.post(f"/api/v1/meetings/{meeting_id}/end/")
    assert again.status_code == 409 and again.json()["code"] == "meeting_ended"


def test_cancelled_meeting_answers_conflict_after_the_right_passcode(alice_api):
    meeting_id, passcode = book(alice_api)
    alice_api.post(f"/api/v1/meetings/{meeting_id}/cancel/")
    response = APIClient().post("/api/v1/join/", join_data(meeting_id, passcode), format="json")
    assert response.status_code == 409 and response.json()["code"] == "cancelled"
    assert "cancelled" in response.json()["detail"]


def test_bob_gets_404_from_every_lobby_and_lifecycle_endpoint(alice_api, bob_api, bob, client):
    meeting_id, passcode = book(alice_api)
    _dana, joined = join(meeting_id, passcode, "Dana")
    entry = joined["entry"]["id"]
    base = f"/api/v1/meetings/{meeting_id}"
    assert bob_api.get(f"{base}/lobby/").status_code == 404
    for path in (
        f"{base}/lobby/{entry}/admit/",
        f"{base}/lobby/{entry}/deny/",
        f"{base}/lobby/{entry}/remove/",
        f"{base}/lobby/admit-all/",
        f"{base}/start/",
        f"{base}/lock/",
        f"{base}/unlock/",
        f"{base}/end/",
    ):
        assert bob_api.post(path).status_code == 404, path
    client.force_login(bob)
    assert client.get(f"/meetings/{meeting_id}/lobby/").status_code == 404
    assert client.post(f"/meetings/{meeting_id}/lobby/{entry}/admit/").status_code == 404
    assert client.post(f"/meetings/{meeting_id}/start/").status_code == 404
    assert LobbyEntry.objects.get().status == "waiting"
    assert Meeting.objects.get().started_at is None


def test_an_entry_of_another_meeting_cannot_be_decided_through_mine(alice_api):
    mine, _ = book(alice_api, title="Mine")
    other, passcode = book(alice_api, title="Other")
    _c, joined = join(other, passcode, "Dana")
    response = alice_api.post(f"/api/v1/meetings/{mine}/lobby/{joined['entry']['id']}/admit/")
    assert response.status_code == 404
    assert LobbyEntry.objects.get().status == "waiting"


def _fill_lobby(meeting: Meeting, count: int) -> None:
    LobbyEntry.objects.bulk_create(
        LobbyEntry(
            meeting=meeting,
            display_name=f"Person {i}",
            source="passcode",
            secret_digest=credentials.token_digest(credentials.new_token()),
        )
        for i in range(count)
    )


def test_lobby_poll_costs_the_same_queries_for_10_and_1000_entries(alice_api, alice_web):
    meeting_id, _ = book(alice_api)
    meeting = Meeting.objects.get()
    url = f"/api/v1/meetings/{meeting_id}/lobby/"
    _fill_lobby(meeting, 10)
    alice_web.get(url)  # warm the session
    with CaptureQueriesContext(connection) as small:
        assert len(alice_web.get(url).json()) == 10
    _fill_lobby(meeting, 990)
    with CaptureQueriesContext(connection) as large:
        assert len(alice_web.get(url).json()) == 1000
    assert len(small.captured_queries) == len(large.captured_queries)
    lobby_queries = [q["sql"] for q in large.captured_queries if "meetings_lobbyentry" in q["sql"]]
    assert len(lobby_queries) == 1


def test_host_lobby_page_renders_entries_and_buttons(alice_api, alice_web):
    meeting_id, passcode = book(alice_api)
    join(meeting_id, passcode, "<b>Dana</b>")
    page = alice_web.get(f"/meetings/{meeting_id}/lobby/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "&lt;b&gt;Dana&lt;/b&gt;" in html and "<b>Dana</b>" not in html
    assert "js/lobby.js" in html and "<script>" not in html
    assert ">Admit</button>" in html


def test_host_meeting_page_has_lifecycle_buttons_that_work(alice_api, alice_web):
    meeting_id, _ = book(alice_api)
    html = alice_web.get(f"/meetings/{meeting_id}/").content.decode()
    assert "Start the meeting" in html and "Lock (no one new)" in html and "End the meeting" in html
    assert alice_web.post(f"/meetings/{meeting_id}/start/").status_code == 302
    assert alice_web.post(f"/meetings/{meeting_id}/lock/").status_code == 302
    meeting = Meeting.objects.get()
    assert meeting.started_at is not None and meeting.locked_at is not None
    assert alice_web.post(f"/meetings/{meeting_id}/end/").status_code == 302
    assert Meeting.objects.get().ended_at is not None


# --- Policy ---------------------------------------------------------------------------


def test_at_secret_the_passcode_path_is_refused_and_the_waiting_room_stays_on(alice_api, bob):
    secret = ClassificationLevel.objects.get(code="secret")
    official = ClassificationLevel.objects.get(code="official")
    assert (
        alice_api.post(
            "/api/v1/meetings/", booking_body(classification="secret", waiting_room=False), format="json"
        ).status_code
        == 400
    )
    assert (
        alice_api.post(
            "/api/v1/meetings/", booking_body(classification="official", waiting_room=False), format="json"
        ).status_code
        == 201
    )
    # Invitees skip the waiting room only at a level that lets the host turn it off, and did.
    assert policy.lobby_bypass(secret, False, "invitation") is False
    assert policy.lobby_bypass(official, False, "invitation") is True
    assert policy.lobby_bypass(official, True, "invitation") is False
    # Passcode joiners always wait.
    assert policy.lobby_bypass(official, False, "passcode") is False
    refusal = policy.passcode_join_refusal(
        secret,
        signed_in_email="bob@example.org",
        cancelled=False,
        ended=False,
        locked=False,
        passcode_bits=80,
    )
    assert refusal is not None and refusal.code == "invitation_needed"
    assert (
        policy.passcode_join_refusal(
            official, signed_in_email=None, cancelled=False, ended=False, locked=False, passcode_bits=80
        )
        is None
    )


def test_passcode_joiners_wait_even_when_the_host_turned_the_waiting_room_off(alice_api):
    meeting_id, passcode = book(alice_api, waiting_room=False)
    _client, joined = join(meeting_id, passcode, "Dana")
    assert joined["entry"]["status"] == "waiting"
