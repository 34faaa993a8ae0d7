import pytest

from meetings.models import AuditEvent, ClassificationLevel, Meeting
from tests.helpers import booking

pytestmark = pytest.mark.django_db(transaction=True)


def test_forbidding_recording_switches_it_off_audits_it_and_tells_the_host(alice_api, carol_api, tasks_run):
    mailbox = tasks_run
    booked = alice_api.post("/api/v1/meetings/", booking(cloud_recording=True), format="json").json()
    other = alice_api.post(
        "/api/v1/meetings/", booking(title="No recording here", cloud_recording=False), format="json"
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
    booked = alice_api.post("/api/v1/meetings/", booking(classification="secret"), format="json").json()
    carol_api.patch(
        "/api/v1/classifications/secret/",
        {"allow_cloud_recording": True, "allow_dial_in": True, "require_waiting_room": False},
        format="json",
    )
    meeting = Meeting.objects.get(public_id=booked["id"].replace("-", ""))
    assert (meeting.cloud_recording, meeting.dial_in, meeting.waiting_room) == (False, False, True)
    assert not AuditEvent.objects.filter(action="meeting_option_enforced").exists()


def test_tightening_skips_cancelled_meetings(alice_api, carol_api, tasks_run):
    booked = alice_api.post("/api/v1/meetings/", booking(dial_in=True), format="json").json()
    alice_api.post(f"/api/v1/meetings/{booked['id']}/cancel/")
    carol_api.patch("/api/v1/classifications/official/", {"allow_dial_in": False}, format="json")
    assert not AuditEvent.objects.filter(action="meeting_option_enforced").exists()
    assert ClassificationLevel.objects.get(code="official").allow_dial_in is False
