"""Joining with meeting ID and passcode: one answer for unknown and wrong, limits, fail closed."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from rest_framework.test import APIClient

from meetings import credentials
from meetings.models import AuditEvent, LobbyEntry, Meeting, OutboundMessage
from tests.join_helpers import book, count_verifications, join_data

pytestmark = pytest.mark.django_db

WRONG = {"detail": "Unknown meeting ID or wrong passcode.", "code": "wrong"}


def wrong_passcode(passcode: str) -> str:
    # Same length and alphabet as the real one, certainly different.
    first = "0" if passcode[0] != "0" else "1"
    return first + passcode[1:]


def test_unknown_meeting_and_wrong_passcode_get_the_same_answer_and_the_same_work(alice_api, monkeypatch):
    meeting_id, passcode = book(alice_api)
    counter = count_verifications(monkeypatch)
    unknown = credentials.format_meeting_id(credentials.new_meeting_id())

    wrong = APIClient().post("/api/v1/join/", join_data(meeting_id, wrong_passcode(passcode)), format="json")
    missing = APIClient().post("/api/v1/join/", join_data(unknown, passcode), format="json")

    assert wrong.status_code == missing.status_code == 403
    assert wrong.content == missing.content
    assert wrong.json() == WRONG
    # Both ran argon2: the unknown ID against the cached dummy hash.
    assert counter.calls == 2
    assert counter.hashes[1] == credentials.dummy_passcode_hash()
    assert counter.hashes[0] == Meeting.objects.get().passcode_hash
    assert not LobbyEntry.objects.exists()


def test_right_passcode_enters_the_waiting_room_bound_to_this_browser(alice_api):
    meeting_id, passcode = book(alice_api)
    dana = APIClient()
    response = dana.post(
        "/api/v1/join/", join_data(meeting_id.lower().replace("-", " "), passcode), format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["entry"]["status"] == "waiting" and body["entry"]["source"] == "passcode"
    assert body["entry"]["display_name"] == "Dana"
    assert passcode not in response.content.decode()
    assert response["Cache-Control"] == "no-store" and response["Referrer-Policy"] == "no-referrer"
    # The session holds the secret; the status URL alone opens nothing.
    assert dana.get(body["status_url"]).json()["status"] == "waiting"
    assert APIClient().get(body["status_url"]).status_code == 404
    assert "secret" not in json.dumps(body)


def test_malformed_meeting_id_is_a_400_naming_the_field(alice_api):
    response = APIClient().post("/api/v1/join/", join_data("12345", "x"), format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"meeting_id"}


def test_missing_fields_and_unknown_fields_are_400s(db):
    unknown = APIClient().post("/api/v1/join/", {"meeting_id": "x", "pwd": "y"}, format="json")
    assert unknown.status_code == 400 and set(unknown.json()) == {"pwd"}
    missing = APIClient().post("/api/v1/join/", {"meeting_id": "ABCD-EFGH-JKMN-PQRS"}, format="json")
    assert missing.status_code == 400 and set(missing.json()) == {"passcode", "display_name"}


def test_secret_refuses_passcode_join_only_after_the_right_passcode(alice_api, bob):
    meeting_id, passcode = book(alice_api, classification="secret")
    client = APIClient()
    client.force_authenticate(bob)

    wrong = client.post("/api/v1/join/", join_data(meeting_id, wrong_passcode(passcode)), format="json")
    right = client.post("/api/v1/join/", join_data(meeting_id, passcode), format="json")

    assert wrong.status_code == 403 and wrong.json() == WRONG
    assert right.status_code == 403
    assert "invitation is needed" in right.json()["detail"]
    assert not LobbyEntry.objects.exists()


def test_guests_only_where_the_level_allows_them(alice_api, bob, client):
    meeting_id, passcode = book(alice_api, classification="official-sensitive")
    Meeting.objects.get().classification.__class__.objects.filter(code="official-sensitive").update(
        allow_guests=False
    )

    guest = APIClient().post("/api/v1/join/", join_data(meeting_id, passcode), format="json")
    assert guest.status_code == 403
    assert "Sign in" in guest.json()["detail"]

    page = client.post("/join/", join_data(meeting_id, passcode))
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/?next=/join/")
    assert passcode not in page["Location"]

    signed_in = APIClient()
    signed_in.force_authenticate(bob)
    response = signed_in.post("/api/v1/join/", join_data(meeting_id, passcode), format="json")
    assert response.status_code == 201
    assert LobbyEntry.objects.get().user == bob


def test_a_wrong_guess_at_an_unknown_meeting_counts_like_one_at_a_real_meeting(db, settings, monkeypatch):
    """The lock itself must not reveal which IDs exist."""
    settings.ANTECHAMBER_JOIN_MEETING_FAILURES = 3
    counter = count_verifications(monkeypatch)
    unknown = credentials.format_meeting_id(credentials.new_meeting_id())
    statuses = [
        APIClient().post("/api/v1/join/", join_data(unknown, "AAAA-BBBB"), format="json").status_code
        for _ in range(5)
    ]
    assert statuses == [403, 403, 403, 429, 429]
    assert counter.calls == 3


def test_limiter_down_fails_closed_without_checking_any_passcode(alice_api, monkeypatch):
    from django.db import connection

    from meetings.models import LimitCounter

    meeting_id, passcode = book(alice_api)
    counter = count_verifications(monkeypatch)
    # The limiter's store fails: its table is gone (in the test's transaction only, which
    # is rolled back). Every statement of the limiter's then raises a DatabaseError.
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {connection.ops.quote_name(LimitCounter._meta.db_table)}")
    for attempt in (passcode, wrong_passcode(passcode)):
        response = APIClient().post("/api/v1/join/", join_data(meeting_id, attempt), format="json")
        assert response.status_code == 503
        assert "unavailable" in response.json()["detail"]
    page = APIClient().post("/join/", join_data(meeting_id, passcode), format="multipart")
    assert page.status_code == 503
    assert b"unavailable right now" in page.content
    assert counter.calls == 0
    assert not LobbyEntry.objects.exists()


def test_rotating_the_passcode_unlocks_the_meeting(alice_api, settings):
    settings.ANTECHAMBER_JOIN_MEETING_FAILURES = 2
    meeting_id, passcode = book(alice_api)
    for _ in range(2):
        APIClient().post("/api/v1/join/", join_data(meeting_id, wrong_passcode(passcode)), format="json")
    locked = APIClient().post("/api/v1/join/", join_data(meeting_id, passcode), format="json")
    assert locked.status_code == 429

    new = alice_api.post(f"/api/v1/meetings/{meeting_id}/passcode/").json()["passcode"]
    # The test's transaction never commits: run the rotation's on-commit unlock by hand.
    from meetings import limits

    limits.meeting_unlock(Meeting.objects.get().public_id)
    assert APIClient().post("/api/v1/join/", join_data(meeting_id, new), format="json").status_code == 201


def test_join_page_headers_and_no_passcode_echo(alice_api, client):
    meeting_id, passcode = book(alice_api)
    form = client.get("/join/")
    assert form["Referrer-Policy"] == "no-referrer" and "no-store" in form["Cache-Control"]
    wrong = client.post("/join/", join_data(meeting_id, wrong_passcode(passcode)))
    assert wrong.status_code == 403
    assert "Unknown meeting ID or wrong passcode." in wrong.content.decode()
    assert wrong_passcode(passcode) not in wrong.content.decode()
    right = client.post("/join/", join_data(meeting_id, passcode))
    assert right.status_code == 302
    waiting = client.get(right["Location"])
    assert waiting.status_code == 200 and "Please wait" in waiting.content.decode()
    assert waiting["Referrer-Policy"] == "no-referrer"


# --- Brute force ----------------------------------------------------------------------


def _post_json(url: str, data: dict[str, str]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(data).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _guess_in_parallel(urls: list[str], meeting_id: str, passcode: str, guesses: int = 1000) -> list[int]:
    wrong = wrong_passcode(passcode)
    with ThreadPoolExecutor(max_workers=10) as pool:
        return list(
            pool.map(
                lambda i: _post_json(urls[i % len(urls)], join_data(meeting_id, wrong, f"guess {i}")),
                range(guesses),
            )
        )


@pytest.mark.django_db(transaction=True)
def test_a_thousand_guesses_from_ten_threads_get_at_most_ten_verifications(
    alice_api, live_server, tasks_run, monkeypatch
):
    meeting_id, passcode = book(alice_api)
    counter = count_verifications(monkeypatch)

    statuses = _guess_in_parallel([f"{live_server.url}/api/v1/join/"], meeting_id, passcode)

    assert len(statuses) == 1000
    assert counter.calls <= 10
    assert statuses.count(403) == counter.calls
    assert statuses.count(429) == 1000 - counter.calls
    assert set(statuses) == {403, 429}
    # The right passcode is refused while the window lasts, without being checked.
    assert _post_json(f"{live_server.url}/api/v1/join/", join_data(meeting_id, passcode)) == 429
    assert counter.calls <= 10
    assert not LobbyEntry.objects.exists()

    meeting = Meeting.objects.get()
    assert (
        AuditEvent.objects.filter(meeting_public_id=meeting.public_id, action="passcode_join_locked").count()
        == 1
    )
    assert OutboundMessage.objects.filter(kind="passcode_lockout").count() == 1
    messages = tasks_run.wait_for(1)
    assert len(messages) == 1
    assert messages[0]["To"] == "alice@example.org"
    assert "locked" in messages[0]["Subject"]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_limit_holds_across_two_server_processes_sharing_redis(alice_api, tasks_run, settings):
    from tests import real_services as real

    if not settings.REDIS_URL:
        real.missing("the two-process limit test needs Redis (set REDIS_URL)")
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        real.missing("the two-process limit test needs PostgreSQL (set DATABASE_URL)")
    meeting_id, passcode = book(alice_api)
    # Both servers count under this test's key prefix, in the same Redis database.
    servers = [real.WebServer(real.web_server_env(settings)) for _ in range(2)]
    try:
        for server in servers:
            server.start()
        statuses = _guess_in_parallel([f"{s.url}/api/v1/join/" for s in servers], meeting_id, passcode)
        public_id = Meeting.objects.get().public_id
        verifications = AuditEvent.objects.filter(
            meeting_public_id=public_id, action="passcode_join_failed"
        ).count()
        assert 1 <= verifications <= 10
        assert statuses.count(403) == verifications
        assert statuses.count(429) == 1000 - verifications
        for server in servers:
            assert _post_json(f"{server.url}/api/v1/join/", join_data(meeting_id, passcode)) == 429
    finally:
        for server in servers:
            server.stop()
    assert AuditEvent.objects.filter(meeting_public_id=public_id, action="passcode_join_locked").count() == 1
    assert len(tasks_run.wait_for(1)) == 1


def test_the_limiter_counts_both_keys_in_the_database_and_always_sets_a_window():
    from datetime import timedelta

    from django.utils import timezone

    from meetings import limits
    from meetings.models import LimitCounter

    public_id, address = "TTLTESTTTLTEST00", "192.0.2.7"
    before = timezone.now()
    first = limits.reserve(public_id=public_id, address=address)
    second = limits.reserve(public_id=public_id, address=address)
    assert isinstance(first, limits.Reservation) and isinstance(second, limits.Reservation)
    assert (first.meeting_count, second.meeting_count) == (1, 2)
    for key in (limits.meeting_key(public_id), limits.client_key(address)):
        row = LimitCounter.objects.get(key=key)
        assert row.count == 2
        assert before < row.expires_at <= timezone.now() + timedelta(seconds=limits._window())
    limits.release(second)
    assert LimitCounter.objects.get(key=limits.meeting_key(public_id)).count == 1
    limits.meeting_unlock(public_id)
    assert not LimitCounter.objects.filter(key=limits.meeting_key(public_id)).exists()


def test_a_window_that_ended_starts_again_and_expired_counters_are_deleted(settings):
    from datetime import timedelta

    from django.utils import timezone

    from meetings import limits
    from meetings.models import LimitCounter
    from meetings.services import retention

    settings.ANTECHAMBER_JOIN_MEETING_FAILURES = 2
    public_id, address = "EXPIRESEXPIRES00", "192.0.2.8"
    for _ in range(2):
        assert isinstance(limits.reserve(public_id=public_id, address=address), limits.Reservation)
    assert limits.reserve(public_id=public_id, address=address) == limits.Limited("meeting")
    held = limits.reserve(public_id=public_id, address="192.0.2.9")
    assert held == limits.Limited("meeting")

    # The window ends: the next attempt counts from 1 again, in a new window.
    ended = timezone.now() - timedelta(seconds=1)
    LimitCounter.objects.filter(key=limits.meeting_key(public_id)).update(expires_at=ended)
    again = limits.reserve(public_id=public_id, address=address)
    assert isinstance(again, limits.Reservation) and again.meeting_count == 1
    assert LimitCounter.objects.get(key=limits.meeting_key(public_id)).expires_at > timezone.now()

    # A slot of the window that ended is not given back to the new one.
    stale = limits.Slot(key=limits.meeting_key(public_id), window=ended)
    limits.release(limits.Reservation(meeting=stale, client=again.client, meeting_count=2))
    assert LimitCounter.objects.get(key=limits.meeting_key(public_id)).count == 1

    # Expired counters go: some with each new window, the rest with the retention task.
    LimitCounter.objects.update(expires_at=ended)
    limits.reserve(public_id="SWEEPSWEEPSWEEP0", address="192.0.2.10")
    assert set(LimitCounter.objects.values_list("key", flat=True)) == {
        limits.meeting_key("SWEEPSWEEPSWEEP0"),
        limits.client_key("192.0.2.10"),
    }
    LimitCounter.objects.update(expires_at=ended)
    retention.retention_purge()
    assert not LimitCounter.objects.exists()


def test_entries_are_limited_per_browser_and_per_address_and_successes_count(
    alice_api, settings, monkeypatch
):
    settings.ANTECHAMBER_JOIN_ENTRIES_PER_SESSION = 3
    settings.ANTECHAMBER_JOIN_ENTRIES_PER_ADDRESS = 5
    meeting_id, passcode = book(alice_api)
    counter = count_verifications(monkeypatch)
    first = APIClient()  # keeps its session cookie, as a browser does
    answers = [
        first.post("/api/v1/join/", join_data(meeting_id, passcode), format="json").status_code
        for _ in range(4)
    ]
    assert answers == [201, 201, 201, 429]
    limited = first.post("/api/v1/join/", join_data(meeting_id, passcode), format="json")
    assert limited.status_code == 429 and "too often" in limited.json()["detail"]
    assert counter.calls == 3  # refused before any argon2 work

    # A wrong guess does not use an entry slot: another browser still gets the address's last two.
    second = APIClient()
    assert (
        second.post(
            "/api/v1/join/", join_data(meeting_id, wrong_passcode(passcode)), format="json"
        ).status_code
        == 403
    )
    assert [
        second.post("/api/v1/join/", join_data(meeting_id, passcode), format="json").status_code
        for _ in range(3)
    ] == [201, 201, 429]
    assert LobbyEntry.objects.filter(meeting__public_id=meeting_id.replace("-", "")).count() == 5
