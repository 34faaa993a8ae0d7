"""Issue 14, part 1: the level field `e2ee`, the meeting option `e2ee`, and what E2EE rules out."""

import re

import pytest

from meetings import policy
from meetings.models import AuditEvent, ClassificationLevel, Meeting
from tests.helpers import booking_body, row_counts

pytestmark = pytest.mark.django_db

# The spec's table, written out here so the test fails if the seed drifts from it.
SEEDED = {
    "official": "optional",
    "official-sensitive": "optional",
    "secret": "required",
    "top-secret": "required",
}

E2EE_RECORDING = (
    "Cloud recording is not possible in an end-to-end encrypted meeting: the server cannot decrypt its media."
)
E2EE_DIAL_IN = "Telephone dial-in is not possible in an end-to-end encrypted meeting: the server cannot decrypt its media."


def test_levels_are_seeded_with_the_specs_e2ee(alice_api):
    assert dict(ClassificationLevel.objects.values_list("code", "e2ee")) == SEEDED
    listed = {row["code"]: row["e2ee"] for row in alice_api.get("/api/v1/classifications/").json()}
    assert listed == SEEDED


def test_a_secret_meeting_is_end_to_end_encrypted_without_asking(alice_api):
    response = alice_api.post("/api/v1/meetings/", booking_body(classification="secret"), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["e2ee"] is True
    assert Meeting.objects.get().e2ee is True
    event = AuditEvent.objects.get(action="meeting_booked")
    assert event.detail["e2ee"] is True


def test_an_official_meeting_is_not_encrypted_unless_the_host_asks(alice_api):
    plain = alice_api.post("/api/v1/meetings/", booking_body(), format="json").json()
    assert plain["e2ee"] is False
    asked = alice_api.post("/api/v1/meetings/", booking_body(e2ee=True), format="json")
    assert asked.status_code == 201, asked.content
    assert asked.json()["e2ee"] is True
    assert alice_api.get(f"/api/v1/meetings/{asked.json()['id']}/").json()["e2ee"] is True


def test_secret_meeting_refuses_e2ee_off_naming_the_field(alice_api):
    before = row_counts()
    response = alice_api.post(
        "/api/v1/meetings/", booking_body(classification="secret", e2ee=False), format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"e2ee": ["End-to-end encryption cannot be turned off for SECRET meetings."]}
    assert row_counts() == before


def test_a_level_that_forbids_e2ee_refuses_it(alice_api, carol_api):
    response = carol_api.patch("/api/v1/classifications/official/", {"e2ee": "forbidden"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["e2ee"] == "forbidden"
    refused = alice_api.post("/api/v1/meetings/", booking_body(e2ee=True), format="json")
    assert refused.status_code == 400
    assert refused.json() == {"e2ee": ["End-to-end encryption is not allowed for OFFICIAL meetings."]}
    assert alice_api.post("/api/v1/meetings/", booking_body(), format="json").status_code == 201


def test_a_level_e2ee_must_be_one_of_three_values(carol_api):
    response = carol_api.patch("/api/v1/classifications/official/", {"e2ee": "sometimes"}, format="json")
    assert response.status_code == 400 and "e2ee" in response.json()


@pytest.mark.parametrize(
    ("option", "message"), [("cloud_recording", E2EE_RECORDING), ("dial_in", E2EE_DIAL_IN)]
)
def test_e2ee_refuses_recording_and_dial_in_where_the_level_allows_them(alice_api, option, message):
    before = row_counts()
    response = alice_api.post("/api/v1/meetings/", booking_body(e2ee=True, **{option: True}), format="json")
    assert response.status_code == 400
    assert response.json() == {option: [message]}
    assert row_counts() == before


def test_patch_turning_e2ee_on_is_refused_while_recording_is_on(alice_api):
    booked = alice_api.post("/api/v1/meetings/", booking_body(cloud_recording=True), format="json").json()
    response = alice_api.patch(f"/api/v1/meetings/{booked['id']}/", {"e2ee": True}, format="json")
    assert response.status_code == 400
    assert response.json() == {"cloud_recording": [E2EE_RECORDING]}
    response = alice_api.patch(
        f"/api/v1/meetings/{booked['id']}/", {"e2ee": True, "cloud_recording": False}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["e2ee"] is True and response.json()["cloud_recording"] is False
    changed = AuditEvent.objects.get(action="meeting_changed")
    assert changed.detail["e2ee"] == {"old": False, "new": True}


def test_patch_cannot_turn_e2ee_off_on_a_secret_meeting(alice_api):
    booked = alice_api.post("/api/v1/meetings/", booking_body(classification="secret"), format="json").json()
    response = alice_api.patch(f"/api/v1/meetings/{booked['id']}/", {"e2ee": False}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"e2ee"}
    assert Meeting.objects.get().e2ee is True


def test_raising_a_meeting_to_secret_turns_e2ee_on_unless_the_host_says_off(alice_api):
    booked = alice_api.post("/api/v1/meetings/", booking_body(), format="json").json()
    refused = alice_api.patch(
        f"/api/v1/meetings/{booked['id']}/", {"classification": "secret", "e2ee": False}, format="json"
    )
    assert refused.status_code == 400 and set(refused.json()) == {"e2ee"}
    response = alice_api.patch(
        f"/api/v1/meetings/{booked['id']}/", {"classification": "secret"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["e2ee"] is True
    changed = AuditEvent.objects.get(action="meeting_changed")
    assert changed.detail["e2ee"] == {"old": False, "new": True}


def test_the_database_refuses_e2ee_with_recording(alice):
    from django.db import IntegrityError, transaction

    level = ClassificationLevel.objects.get(code="official")
    meeting = Meeting(
        host=alice,
        title="x",
        starts_at="2030-01-01T10:00:00Z",
        duration_minutes=60,
        ends_at="2030-01-01T11:00:00Z",
        classification=level,
        cloud_recording=True,
        e2ee=True,
        passcode_hash="x",
        passcode_bits=60,
        passcode_rotated_at="2030-01-01T09:00:00Z",
        public_id="ABCDEFGHJKMNPQRS",
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        meeting.save()


# --- policy: pure ------------------------------------------------------------------------


class Level:
    def __init__(self, e2ee: str, **overrides):
        self.code, self.name, self.bookable = "x", "X", True
        self.allow_cloud_recording = self.allow_dial_in = True
        self.require_waiting_room = self.allow_guests = self.allow_passcode_join = False
        self.require_host_mfa = False
        self.allowed_invitee_domains: list[str] = []
        self.min_passcode_bits = 60
        self.e2ee = e2ee
        self.__dict__.update(overrides)


def options(**overrides) -> policy.MeetingOptions:
    values = {"cloud_recording": False, "dial_in": False, "waiting_room": True, "e2ee": False, **overrides}
    return policy.MeetingOptions(**values)


def test_requiring_e2ee_locks_it_on_and_recording_and_dial_in_off():
    locks = policy.option_locks(Level("required"))
    assert locks["e2ee"].value is True
    assert locks["cloud_recording"].value is False and locks["dial_in"].value is False
    assert "end-to-end" in locks["cloud_recording"].reason


def test_forbidding_e2ee_locks_it_off_and_optional_locks_nothing():
    assert policy.option_locks(Level("forbidden"))["e2ee"].value is False
    assert policy.option_locks(Level("optional")) == {}


def test_tightening_to_required_switches_e2ee_on_and_recording_and_dial_in_off():
    changes = policy.enforce_level(Level("required"), options(cloud_recording=True, dial_in=True))
    assert {(c.field, c.new) for c in changes} == {
        ("e2ee", True),
        ("cloud_recording", False),
        ("dial_in", False),
    }


def test_forbidding_e2ee_switches_it_off_and_loosening_switches_nothing():
    assert [(c.field, c.new) for c in policy.enforce_level(Level("forbidden"), options(e2ee=True))] == [
        ("e2ee", False)
    ]
    assert policy.enforce_level(Level("optional"), options(e2ee=True)) == []
    assert policy.enforce_level(Level("optional"), options()) == []


def test_check_meeting_names_each_field_once():
    violations = policy.check_meeting(
        Level("required", allow_cloud_recording=False, name="SECRET"),
        options(cloud_recording=True, e2ee=True),
        host_has_second_factor=True,
    )
    assert [v.field for v in violations] == ["cloud_recording"]
    assert violations[0].message == "Cloud recording is not allowed for SECRET meetings."


# --- the booking page ----------------------------------------------------------------------


def test_booking_page_locks_e2ee_on_for_secret_and_sends_it(alice_web_verified):
    page = alice_web_verified.get("/meetings/new/?level=secret").content.decode()
    assert 'name="e2ee"' in page
    assert '<input type="hidden" name="e2ee" value="on" data-lock-carrier>' in page
    assert "End-to-end encryption cannot be turned off for SECRET meetings." in page
    official = alice_web_verified.get("/meetings/new/?level=official").content.decode()
    assert '<input type="hidden" name="e2ee" value="on"' not in official


def test_booking_form_books_an_encrypted_official_meeting_and_refuses_it_with_recording(alice_web_verified):
    from tests.test_views import form_data

    refused = alice_web_verified.post("/meetings/new/", form_data("official", e2ee=True, dial_in=True))
    assert refused.status_code == 400
    assert E2EE_DIAL_IN in refused.content.decode()
    assert not Meeting.objects.exists()
    booked = alice_web_verified.post("/meetings/new/", form_data("official", e2ee=True))
    assert booked.status_code == 302, booked.content.decode()[:2000]
    assert Meeting.objects.get().e2ee is True


def test_meeting_page_says_whether_it_is_end_to_end_encrypted(alice_web_verified, alice_api):
    booked = alice_api.post("/api/v1/meetings/", booking_body(classification="secret"), format="json").json()
    page = alice_web_verified.get(f"/meetings/{booked['id']}/").content.decode()
    assert "End-to-end encryption: on" in page


def test_the_edit_page_shows_e2ee_as_it_is_and_keeps_it(alice_web_verified, meeting_factory):
    from tests.test_pages import edit_data

    meeting = meeting_factory(e2ee=True).meeting
    page = alice_web_verified.get(f"/meetings/{meeting.display_id}/edit/").content.decode()
    [box] = re.findall(r'<input type="checkbox" name="e2ee"[^>]*>', page)
    assert " checked" in box
    response = alice_web_verified.post(
        f"/meetings/{meeting.display_id}/edit/", {**edit_data(meeting, title="Renamed"), "e2ee": "on"}
    )
    assert response.status_code == 302
    meeting.refresh_from_db()
    assert meeting.title == "Renamed" and meeting.e2ee is True
