"""Issue 21's policy walk-arounds, through the API: each of these passed on the main the
red team attacked (checked at 2fec1c0, before the fixes)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from meetings.models import AuditEvent, ClassificationLevel, JoinLink, Meeting
from tests.helpers import booking_body, future
from tests.join_helpers import book, join_data

pytestmark = pytest.mark.django_db


def _meeting(meeting_id: str) -> Meeting:
    return Meeting.objects.get(public_id=meeting_id.replace("-", ""))


def test_a_passcode_join_is_refused_where_the_level_needs_participant_mfa(alice_api, client):
    # The red team's set-up: passcode joins and guests on, participant MFA still required.
    ClassificationLevel.objects.filter(code="official-sensitive").update(
        allow_passcode_join=True, allow_guests=True, require_participant_mfa=True
    )
    meeting_id, passcode = book(alice_api, classification="official-sensitive")
    response = client.post("/api/v1/join/", join_data(meeting_id, passcode), content_type="application/json")
    assert response.status_code == 403, response.content
    assert not _meeting(meeting_id).lobby_entries.exists()


def test_a_rank_edit_that_puts_a_looser_level_above_a_stricter_one_is_refused(carol_api):
    response = carol_api.patch("/api/v1/classifications/official/", {"rank": 35}, format="json")
    assert response.status_code == 400, response.content
    assert "rank" in response.json()
    assert (
        ClassificationLevel.objects.get(code="official").rank
        < ClassificationLevel.objects.get(code="secret").rank
    )


def test_a_tightened_link_lifetime_shortens_the_links_already_sent(alice_api, carol_api, tasks_in_process):
    starts = (timezone.now() + timedelta(days=9)).isoformat()
    booked = alice_api.post(
        "/api/v1/meetings/", booking_body(starts_at=starts, invitees=["pat@example.org"]), format="json"
    )
    assert booked.status_code == 201, booked.content
    link = JoinLink.objects.get(invitation__meeting__public_id=booked.json()["id"].replace("-", ""))
    assert link.expires_at > timezone.now() + timedelta(days=2)

    response = carol_api.patch(
        "/api/v1/classifications/official/", {"max_link_lifetime_hours": 1}, format="json"
    )
    assert response.status_code == 200, response.content
    link.refresh_from_db()
    assert link.expires_at <= timezone.now() + timedelta(hours=1, minutes=1)


def test_a_level_no_longer_bookable_cancels_its_meetings_not_started(alice_api, carol_api, tasks_in_process):
    meeting_id, passcode = book(alice_api, starts_at=future(2))
    response = carol_api.patch("/api/v1/classifications/official/", {"bookable": False}, format="json")
    assert response.status_code == 200, response.content
    meeting = _meeting(meeting_id)
    assert meeting.status == Meeting.Status.CANCELLED
    assert AuditEvent.objects.filter(
        action="meeting_cancelled_by_policy", meeting_public_id=meeting.public_id
    )
    started = alice_api.post(f"/api/v1/meetings/{meeting_id}/start/")
    assert started.status_code == 409, started.content
