import pytest

from meetings.models import AuditEvent, ClassificationLevel, Meeting
from tests.helpers import booking_body
from tests.test_invitations import parts_of

pytestmark = pytest.mark.django_db(transaction=True)


def sequence_of(calendar: str) -> int:
    return int(next(line for line in calendar.splitlines() if line.startswith("SEQUENCE:")).split(":")[1])


def test_forbidding_recording_switches_it_off_audits_it_and_tells_the_host(alice_api, carol_api, tasks_run):
    mailbox = tasks_run
    booked = alice_api.post("/api/v1/meetings/", booking_body(cloud_recording=True), format="json").json()
    other = alice_api.post(
        "/api/v1/meetings/", booking_body(title="No recording here", cloud_recording=False), format="json"
    ).json()
    assert booked["cloud_recording"] is True

    response = carol_api.patch(
        "/api/v1/classifications/official/", {"allow_cloud_recording": False}, format="json"
    )
    assert response.status_code == 200, response.content

    meeting = Meeting.objects.get(public_id=booked["id"].replace("-", ""))
    assert meeting.cloud_recording is False
    enforced = AuditEvent.objects.filter(action="meeting_option_enforced")
    assert [(e.meeting_public_id, e.subject, e.detail["old"], e.detail["new"]) for e in enforced] == [
        (meeting.public_id, "cloud_recording", True, False)
    ]
    messages = mailbox.wait_for(1)
    assert len(messages) == 1
    message = messages[0]
    assert message["To"] == "alice@example.org"
    assert "OFFICIAL" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert "Cloud recording is now off" in body and booked["id"] in body
    assert booked["passcode"] not in message.as_string()
    # The meeting without recording was left alone and got no mail.
    assert Meeting.objects.get(public_id=other["id"].replace("-", "")).sequence == 0


def test_loosening_switches_nothing_on(alice_api, carol_api, tasks_run):
    booked = alice_api.post("/api/v1/meetings/", booking_body(classification="secret"), format="json").json()
    carol_api.patch(
        "/api/v1/classifications/secret/",
        {"allow_cloud_recording": True, "allow_dial_in": True, "require_waiting_room": False},
        format="json",
    )
    meeting = Meeting.objects.get(public_id=booked["id"].replace("-", ""))
    assert (meeting.cloud_recording, meeting.dial_in, meeting.waiting_room) == (False, False, True)
    assert not AuditEvent.objects.filter(action="meeting_option_enforced").exists()


def test_tightening_skips_cancelled_meetings(alice_api, carol_api, tasks_run):
    booked = alice_api.post("/api/v1/meetings/", booking_body(dial_in=True), format="json").json()
    alice_api.post(f"/api/v1/meetings/{booked['id']}/cancel/")
    carol_api.patch("/api/v1/classifications/official/", {"allow_dial_in": False}, format="json")
    assert not AuditEvent.objects.filter(action="meeting_option_enforced").exists()
    assert ClassificationLevel.objects.get(code="official").allow_dial_in is False


def test_narrowing_invitee_domains_withdraws_invitations_outside_them(alice_api, carol_api, tasks_run):
    from meetings.models import Invitation, JoinLink

    mailbox = tasks_run
    booked = alice_api.post(
        "/api/v1/meetings/", booking_body(invitees=["in@example.gov", "out@gmail.com"]), format="json"
    ).json()
    messages_before = mailbox.wait_for(2)
    by_address = {m["To"]: i for i, m in enumerate(messages_before)}
    response = carol_api.patch(
        "/api/v1/classifications/official/", {"allowed_invitee_domains": ["example.gov"]}, format="json"
    )
    assert response.status_code == 200
    out = Invitation.objects.get(email="out@gmail.com")
    assert out.revoked_at is not None
    assert Invitation.objects.get(email="in@example.gov").revoked_at is None
    assert not JoinLink.objects.filter(invitation=out, revoked_at__isnull=True).exists()
    assert (
        AuditEvent.objects.filter(action="invitation_revoked_by_policy", subject="out@gmail.com").count() == 1
    )
    messages = mailbox.wait_for(4)[2:]
    by_recipient = {m["To"]: m for m in messages}
    assert set(by_recipient) == {"out@gmail.com", "alice@example.org"}
    calendar = parts_of(by_recipient["out@gmail.com"])["text/calendar"]
    assert "METHOD:CANCEL" in calendar
    # A calendar applies the withdrawal only over the invitation it holds: a higher SEQUENCE.
    invitation_calendar = parts_of(messages_before[by_address["out@gmail.com"]])["text/calendar"]
    assert sequence_of(calendar) > sequence_of(invitation_calendar) == 0
    host_text = by_recipient["alice@example.org"].get_body(("plain",)).get_content()
    assert "out@gmail.com" in host_text and booked["id"] in host_text


def test_a_level_change_is_refused_while_invitees_fall_outside_the_new_levels_domains(alice_api, carol_api):
    carol_api.patch(
        "/api/v1/classifications/secret/", {"allowed_invitee_domains": ["example.gov"]}, format="json"
    )
    booked = alice_api.post(
        "/api/v1/meetings/", booking_body(invitees=["out@gmail.com"]), format="json"
    ).json()
    response = alice_api.patch(
        f"/api/v1/meetings/{booked['id']}/", {"classification": "secret"}, format="json"
    )
    assert response.status_code == 400
    assert "out@gmail.com" in response.json()["invitees"][0]
    assert Meeting.objects.get(public_id=booked["id"].replace("-", "")).classification.code == "official"


def test_raising_the_passcode_minimum_stops_passcode_joins_until_rotation(alice_api, carol_api, tasks_run):
    mailbox = tasks_run
    booked = alice_api.post("/api/v1/meetings/", booking_body(), format="json").json()
    carol_api.patch("/api/v1/classifications/official/", {"min_passcode_bits": 100}, format="json")
    host_mail = mailbox.wait_for(1)[0].get_body(("plain",)).get_content()
    assert "rotate" in host_mail
    from rest_framework.test import APIClient

    join = {"meeting_id": booked["id"], "passcode": booked["passcode"], "display_name": "Guest"}
    refused = APIClient().post("/api/v1/join/", join, format="json")
    assert refused.status_code == 403 and "weaker" in refused.json()["detail"]
    new = alice_api.post(f"/api/v1/meetings/{booked['id']}/passcode/").json()["passcode"]
    assert len(new.replace("-", "")) * 5 >= 100
    assert APIClient().post("/api/v1/join/", {**join, "passcode": new}, format="json").status_code == 201


def test_requiring_e2ee_switches_it_on_and_recording_off_audits_it_and_tells_the_host(
    alice_api, carol_api, tasks_run
):
    mailbox = tasks_run
    booked = alice_api.post("/api/v1/meetings/", booking_body(cloud_recording=True), format="json").json()
    assert booked["e2ee"] is False
    response = carol_api.patch("/api/v1/classifications/official/", {"e2ee": "required"}, format="json")
    assert response.status_code == 200, response.content

    meeting = Meeting.objects.get(public_id=booked["id"].replace("-", ""))
    assert (meeting.e2ee, meeting.cloud_recording) == (True, False)
    enforced = AuditEvent.objects.filter(action="meeting_option_enforced")
    assert {(e.subject, e.detail["old"], e.detail["new"]) for e in enforced} == {
        ("e2ee", False, True),
        ("cloud_recording", True, False),
    }
    body = mailbox.wait_for(1)[0].get_body(("plain",)).get_content()
    assert "End-to-end encryption" in body and "Cloud recording" in body
    # Loosening again switches nothing back.
    carol_api.patch("/api/v1/classifications/official/", {"e2ee": "optional"}, format="json")
    meeting.refresh_from_db()
    assert (meeting.e2ee, meeting.cloud_recording) == (True, False)
