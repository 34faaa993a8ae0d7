import subprocess
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from meetings.models import AuditEvent, Meeting
from tests.helpers import booking_body, future, row_counts

pytestmark = pytest.mark.django_db

# The spec's table, written out here so the test fails if the seed drifts from it.
SPEC = {
    "official": {"bookable": True, "cloud_recording": True, "dial_in": True, "waiting_room_off": True},
    "official-sensitive": {
        "bookable": True,
        "cloud_recording": False,
        "dial_in": True,
        "waiting_room_off": False,
    },
    "secret": {"bookable": True, "cloud_recording": False, "dial_in": False, "waiting_room_off": False},
    "top-secret": {"bookable": False, "cloud_recording": False, "dial_in": False, "waiting_room_off": False},
}
CASES = {
    "safe options": ({}, None),
    "cloud recording on": ({"cloud_recording": True}, "cloud_recording"),
    "dial-in on": ({"dial_in": True}, "dial_in"),
    "waiting room off": ({"waiting_room": False}, "waiting_room"),
}
MATRIX = [(level, case) for level in SPEC for case in CASES]


def expected_refusals(level: str, case: str) -> set[str]:
    spec = SPEC[level]
    _options, option_field = CASES[case]
    refused = set()
    if not spec["bookable"]:
        refused.add("classification")
    if option_field == "waiting_room" and not spec["waiting_room_off"]:
        refused.add("waiting_room")
    elif option_field in ("cloud_recording", "dial_in") and not spec[option_field]:
        refused.add(option_field)
    return refused


@pytest.mark.parametrize(("level", "case"), MATRIX, ids=[f"{lv}-{c}" for lv, c in MATRIX])
def test_policy_matrix_through_the_api(alice_api, level, case):
    options, _field = CASES[case]
    before = row_counts()
    response = alice_api.post(
        "/api/v1/meetings/", booking_body(classification=level, **options), format="json"
    )
    refused = expected_refusals(level, case)
    if refused:
        assert response.status_code == 400, response.content
        assert set(response.json()) == refused
        for field in refused:
            level_name = {
                "official-sensitive": "OFFICIAL-SENSITIVE",
                "secret": "SECRET",
                "top-secret": "TOP SECRET",
            }[level]
            assert any(level_name in message for message in response.json()[field])
        assert row_counts() == before
    else:
        assert response.status_code == 201, response.content
        body = response.json()
        meeting = Meeting.objects.get(public_id=body["id"].replace("-", ""))
        for name, value in options.items():
            assert body[name] is value
            assert getattr(meeting, name) is value
        assert body["classification"] == level
        assert len(body["passcode"].replace("-", "")) * 5 >= 60


def test_secret_meeting_refuses_cloud_recording_with_the_spec_message(alice_api):
    response = alice_api.post(
        "/api/v1/meetings/", booking_body(classification="secret", cloud_recording=True), format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"cloud_recording": ["Cloud recording is not allowed for SECRET meetings."]}


def test_booking_returns_the_stored_fields_and_a_typable_id(alice_api):
    response = alice_api.post("/api/v1/meetings/", booking_body(dial_in=True), format="json")
    assert response.status_code == 201
    body = response.json()
    assert len(body["id"]) == 19 and body["id"].count("-") == 3
    assert body["title"] == "Quarterly review"
    assert body["duration_minutes"] == 60
    assert body["timezone"] == "Europe/London"
    assert body["dial_in"] is True and body["dial_in_code"].isdigit()
    assert response["Cache-Control"] == "no-store"
    meeting = Meeting.objects.get(public_id=body["id"].replace("-", ""))
    assert (
        AuditEvent.objects.filter(action="meeting_booked", meeting_public_id=meeting.public_id).count() == 1
    )


def test_get_never_shows_the_passcode(alice_api):
    booked = alice_api.post("/api/v1/meetings/", booking_body(), format="json").json()
    one = alice_api.get(f"/api/v1/meetings/{booked['id']}/").json()
    listed = alice_api.get("/api/v1/meetings/").json()
    assert "passcode" not in one and all("passcode" not in m for m in listed)
    assert booked["passcode"] not in str(one) + str(listed)


@pytest.mark.parametrize("spelling", [str.lower, lambda s: s.replace("-", ""), lambda s: s.replace("-", " ")])
def test_meeting_id_in_the_path_accepts_any_case_and_dashes(alice_api, spelling):
    booked = alice_api.post("/api/v1/meetings/", booking_body(), format="json").json()
    response = alice_api.get(f"/api/v1/meetings/{spelling(booked['id'])}/")
    assert response.status_code == 200
    assert response.json()["id"] == booked["id"]


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({"starts_at": "2030-01-01T10:00:00"}, "starts_at", "UTC offset"),
        ({"starts_at": "next tuesday"}, "starts_at", "format"),
        ({"starts_at": "2001-01-01T10:00:00+00:00"}, "starts_at", "already have ended"),
        ({"duration_minutes": 0}, "duration_minutes", "greater than or equal to 1"),
        ({"duration_minutes": 100000}, "duration_minutes", "less than or equal to 1440"),
        ({"timezone": "Mars/Olympus"}, "timezone", "IANA"),
        ({"classification": "cosmic"}, "classification", "Allowed: official, official-sensitive"),
        ({"cloud_recording": "yes"}, "cloud_recording", "true or false"),
        ({"recording": True}, "recording", "Unknown field"),
        ({"title": ""}, "title", "blank"),
    ],
)
def test_bad_input_gets_a_400_naming_the_field_and_writes_nothing(alice_api, payload, field, fragment):
    before = row_counts()
    response = alice_api.post("/api/v1/meetings/", booking_body(**payload), format="json")
    assert response.status_code == 400, response.content
    assert fragment in " ".join(response.json()[field])
    assert row_counts() == before


@pytest.mark.parametrize("body", ["[]", "null", "42", "{not json", '"text"'])
def test_malformed_bodies_get_a_400_not_a_500(alice_api, body):
    response = alice_api.post("/api/v1/meetings/", body, content_type="application/json")
    assert response.status_code == 400


def test_patch_rechecks_every_option_against_a_new_level(alice_api):
    booked = alice_api.post(
        "/api/v1/meetings/",
        booking_body(cloud_recording=True, dial_in=True, waiting_room=False),
        format="json",
    ).json()
    before = row_counts()
    response = alice_api.patch(
        f"/api/v1/meetings/{booked['id']}/", {"classification": "secret"}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()) == {"cloud_recording", "dial_in", "waiting_room"}
    assert row_counts() == before
    response = alice_api.patch(
        f"/api/v1/meetings/{booked['id']}/",
        {"classification": "secret", "cloud_recording": False, "dial_in": False, "waiting_room": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["classification"] == "secret" and body["dial_in_code"] is None
    # SECRET needs an 80-bit passcode; the 60-bit one was replaced and is shown this once.
    assert len(body["passcode"].replace("-", "")) * 5 >= 80
    assert body["sequence"] == 1
    meeting = Meeting.objects.get(public_id=booked["id"].replace("-", ""))
    assert meeting.passcode_bits >= 80
    assert AuditEvent.objects.filter(
        action="meeting_level_changed", meeting_public_id=meeting.public_id
    ).exists()


def test_patch_refuses_options_the_current_level_forbids(alice_api):
    booked = alice_api.post("/api/v1/meetings/", booking_body(classification="secret"), format="json").json()
    response = alice_api.patch(f"/api/v1/meetings/{booked['id']}/", {"dial_in": True}, format="json")
    assert response.status_code == 400
    assert response.json() == {"dial_in": ["Telephone dial-in is not allowed for SECRET meetings."]}
    assert alice_api.get(f"/api/v1/meetings/{booked['id']}/").json()["dial_in"] is False


def test_cancel_then_changes_are_refused(alice_api):
    booked = alice_api.post("/api/v1/meetings/", booking_body(), format="json").json()
    response = alice_api.post(f"/api/v1/meetings/{booked['id']}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    # A state that refuses the action: 409 with a stable code, for every host action.
    again = alice_api.post(f"/api/v1/meetings/{booked['id']}/cancel/")
    assert again.status_code == 409 and again.json()["code"] == "meeting_cancelled"
    response = alice_api.patch(f"/api/v1/meetings/{booked['id']}/", {"title": "x"}, format="json")
    assert response.status_code == 409 and "cancelled" in response.json()["detail"]
    assert response.json()["code"] == "meeting_cancelled"
    rotated = alice_api.post(f"/api/v1/meetings/{booked['id']}/passcode/")
    assert rotated.status_code == 409 and rotated.json()["code"] == "meeting_cancelled"
    invited = alice_api.post(
        f"/api/v1/meetings/{booked['id']}/invitations/", {"emails": ["x@example.org"]}, format="json"
    )
    assert invited.status_code == 409 and invited.json()["code"] == "meeting_cancelled"
    for action in ("start", "lock", "unlock", "end"):
        answer = alice_api.post(f"/api/v1/meetings/{booked['id']}/{action}/")
        assert answer.status_code == 409 and answer.json()["code"] == "meeting_cancelled", action


def test_rotation_returns_a_new_passcode_and_the_old_one_stops_verifying(alice_api):
    from meetings.credentials import verify_passcode

    booked = alice_api.post("/api/v1/meetings/", booking_body(), format="json").json()
    response = alice_api.post(f"/api/v1/meetings/{booked['id']}/passcode/")
    assert response.status_code == 200
    new = response.json()["passcode"]
    meeting = Meeting.objects.get(public_id=booked["id"].replace("-", ""))
    assert new != booked["passcode"]
    assert verify_passcode(meeting.passcode_hash, new)
    assert not verify_passcode(meeting.passcode_hash, booked["passcode"])
    assert AuditEvent.objects.filter(action="passcode_rotated").count() == 1


def test_bob_gets_404_on_every_meeting_scoped_endpoint_of_alices_meeting(alice_api, bob_api):
    booked = alice_api.post("/api/v1/meetings/", booking_body(), format="json").json()
    base = f"/api/v1/meetings/{booked['id']}/"
    assert bob_api.get(base).status_code == 404
    assert bob_api.patch(base, {"title": "mine now"}, format="json").status_code == 404
    assert bob_api.post(base + "cancel/").status_code == 404
    assert bob_api.post(base + "passcode/").status_code == 404
    # An unknown ID answers the same, so IDs cannot be probed.
    assert bob_api.get("/api/v1/meetings/AAAA-BBBB-CCCC-DDDD/").status_code == 404
    assert bob_api.get("/api/v1/meetings/").json() == []
    meeting = Meeting.objects.get(public_id=booked["id"].replace("-", ""))
    assert meeting.title == "Quarterly review" and meeting.status == "scheduled"


def test_anonymous_and_bad_tokens_are_refused(client, alice_api):
    assert client.get("/api/v1/meetings/").status_code in (401, 403)
    from rest_framework.test import APIClient

    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = bad.get("/api/v1/meetings/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_list_uses_a_fixed_number_of_queries(alice_api, django_assert_max_num_queries):
    for n in range(3):
        alice_api.post(
            "/api/v1/meetings/", booking_body(title=f"m{n}", starts_at=future(24 + n)), format="json"
        )
    with django_assert_max_num_queries(4):
        assert len(alice_api.get("/api/v1/meetings/").json()) == 3


@pytest.mark.django_db(transaction=True)
def test_a_booked_passcode_is_nowhere_in_a_dump_of_the_database(alice_api, tmp_path, settings):
    booked = alice_api.post("/api/v1/meetings/", booking_body(dial_in=True), format="json").json()
    alice_api.post(f"/api/v1/meetings/{booked['id']}/passcode/")
    rotated = alice_api.post(f"/api/v1/meetings/{booked['id']}/passcode/").json()["passcode"]
    needles = set()
    for passcode in (booked["passcode"], rotated):
        needles |= {passcode, passcode.replace("-", ""), passcode.lower(), passcode.replace("-", "").lower()}
    dump = StringIO()
    call_command("dumpdata", stdout=dump)  # every table of every app, through the ORM
    text = dump.getvalue()
    if connection.vendor == "postgresql":
        # And the raw database, below the ORM, as an operator's backup would hold it.
        db = settings.DATABASES["default"]
        text += subprocess.run(
            [
                "pg_dump",
                "-h",
                db["HOST"] or "127.0.0.1",
                "-U",
                db["USER"] or "postgres",
                "--data-only",
                db["NAME"],
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    else:
        text += "\n".join(connection.connection.iterdump())
    assert booked["id"].replace("-", "") in text  # the dump really has the meeting
    for needle in needles:
        assert needle not in text
