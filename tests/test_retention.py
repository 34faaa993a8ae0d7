from datetime import timedelta

import pytest
from django.utils import timezone

from meetings.audit import verify_chain
from meetings.models import AuditEvent, Invitation, JoinLink, LobbyEntry, Meeting, OutboundMessage
from meetings.services import retention
from tests.helpers import booking_body

pytestmark = pytest.mark.django_db


def _book(alice_api, title: str) -> Meeting:
    booked = alice_api.post(
        "/api/v1/meetings/", booking_body(title=title, invitees=["ann@example.org"]), format="json"
    )
    assert booked.status_code == 201, booked.content
    meeting = Meeting.objects.get(public_id=booked.json()["id"].replace("-", ""))
    LobbyEntry.objects.create(
        meeting=meeting, display_name="Ann", source="invitation", secret_digest=title * 4
    )
    return meeting


def test_records_past_the_levels_retention_go_and_the_audit_stays(alice_api):
    old, recent = _book(alice_api, "old"), _book(alice_api, "recent")
    now = timezone.now()
    # "official" keeps records 365 days: one meeting ended 400 days ago, one 10 days ago.
    for meeting, days in ((old, 400), (recent, 10)):
        Meeting.objects.filter(pk=meeting.pk).update(
            starts_at=now - timedelta(days=days, hours=1), ends_at=now - timedelta(days=days)
        )
    audit_before = AuditEvent.objects.count()

    assert retention.retention_purge() == 1

    assert list(Meeting.objects.values_list("title", flat=True)) == ["recent"]
    assert Invitation.objects.count() == JoinLink.objects.count() == LobbyEntry.objects.count() == 1
    assert not OutboundMessage.objects.filter(meeting_id=old.pk).exists()
    purge = AuditEvent.objects.get(action="retention_purged")
    assert purge.meeting_public_id == old.public_id
    assert purge.detail["invitations"] == 1 and purge.detail["lobby_entries"] == 1
    # Nothing of the audit was removed, and its chain is whole.
    assert AuditEvent.objects.filter(meeting_public_id=old.public_id, action="meeting_booked").exists()
    assert AuditEvent.objects.count() == audit_before + 1
    assert verify_chain().intact


def test_a_meeting_ended_late_is_kept_from_its_actual_end(alice_api):
    meeting = _book(alice_api, "late")
    now = timezone.now()
    Meeting.objects.filter(pk=meeting.pk).update(
        starts_at=now - timedelta(days=401),
        ends_at=now - timedelta(days=400),
        ended_at=now - timedelta(days=5),
    )
    assert retention.retention_purge() == 0
    assert Meeting.objects.filter(pk=meeting.pk).exists()
