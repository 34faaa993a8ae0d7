"""Issue 21's walk-arounds of a meeting's life, through the API and the pages: a started
meeting runs until its host ends it, however long past its scheduled end, and revoking,
raising and tightening reach it all that time; `/invited/` refuses a revoked holder."""

import re
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from meetings import selectors
from meetings.models import Invitation, LobbyEntry, Meeting, OutboundMessage
from tests.helpers import booking_body, future, token_of
from tests.join_helpers import join_data

pytestmark = pytest.mark.django_db

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
OPEN = (LobbyEntry.Status.WAITING, LobbyEntry.Status.ADMITTED)


class Running:
    """Alice's OFFICIAL meeting, started, with Ann (invited, through her link) and Dana (a
    passcode guest) admitted; each browser holds its own seat."""

    def __init__(self, alice_api):
        self.api = alice_api
        booked = alice_api.post(
            "/api/v1/meetings/",
            booking_body(starts_at=future(1), invitees=["ann@example.org"]),
            format="json",
        )
        assert booked.status_code == 201, booked.content
        self.id = booked.json()["id"]
        self.meeting = Meeting.objects.get(public_id=self.id.replace("-", ""))
        self.invitation = Invitation.objects.get(meeting=self.meeting)
        assert alice_api.post(f"/api/v1/meetings/{self.id}/start/").status_code == 200

        self.ann = Client()
        token = token_of(OutboundMessage.objects.get(kind="invitation"))
        page = self.ann.get(f"/j/{token}/")
        csrf = CSRF_RE.search(page.content.decode()).group(1)
        redeemed = self.ann.post(f"/j/{token}/", {"csrfmiddlewaretoken": csrf, "display_name": "Ann"})
        assert redeemed.status_code == 302, redeemed.content
        self.invited_url = redeemed["Location"]
        assert self.ann.get(self.invited_url).status_code == 302
        self.ann_entry = LobbyEntry.objects.get(meeting=self.meeting, display_name="Ann")

        self.dana = Client()
        joined = self.dana.post("/join/", join_data(self.id, booked.json()["passcode"], "Dana"))
        assert joined.status_code == 302, joined.content
        self.dana_entry = LobbyEntry.objects.get(meeting=self.meeting, display_name="Dana")
        for entry in (self.ann_entry, self.dana_entry):
            admitted = alice_api.post(f"/api/v1/meetings/{self.id}/lobby/{entry.pk}/admit/")
            assert admitted.status_code == 200, admitted.content
            assert self.room_page(entry).status_code == 200

    def browser_of(self, entry: LobbyEntry) -> Client:
        return self.ann if entry.pk == self.ann_entry.pk else self.dana

    def room_page(self, entry: LobbyEntry):
        return self.browser_of(entry).get(f"/join/{entry.pk}/room/")

    def past_its_end(self, *, beyond_grace: bool) -> None:
        """The clock past the scheduled end (and the joining grace), nobody having ended it."""
        grace = django_settings.ANTECHAMBER_JOIN_GRACE_MINUTES
        ends = timezone.now() - timedelta(minutes=(grace + 30) if beyond_grace else 1)
        Meeting.objects.filter(pk=self.meeting.pk).update(starts_at=ends - timedelta(hours=1), ends_at=ends)
        self.meeting.refresh_from_db()
        assert self.meeting.started_at is not None and self.meeting.ended_at is None

    def revoke_ann(self):
        return self.api.post(f"/api/v1/meetings/{self.id}/invitations/{self.invitation.pk}/revoke/")

    def assert_out(self, entry: LobbyEntry) -> None:
        """Out of the room: the entry ended, no room page, no media configuration."""
        entry.refresh_from_db()
        assert entry.status not in OPEN, entry.status
        assert selectors.media_for_entry(entry) is None
        assert self.room_page(entry).status_code in (302, 404)


@pytest.mark.parametrize("when", ["started", "past its scheduled end", "past the joining grace"])
def test_invited_refuses_a_revoked_holder_while_the_meeting_runs(alice_api, tasks_in_process, when):
    running = Running(alice_api)
    if when != "started":
        running.past_its_end(beyond_grace=when == "past the joining grace")
    revoked = running.revoke_ann()
    assert revoked.status_code == 200, revoked.content
    running.assert_out(running.ann_entry)
    back = running.ann.get(running.invited_url)
    assert back.status_code == 410, back.status_code
    assert not LobbyEntry.objects.filter(
        meeting=running.meeting, display_name="Ann", status__in=OPEN
    ).exists()
    running.meeting.refresh_from_db()
    assert running.meeting.ended_at is None  # still running, for Dana
    assert running.room_page(running.dana_entry).status_code == 200


def test_after_the_scheduled_end_revoking_and_raising_reach_the_running_meeting(alice_api, tasks_in_process):
    running = Running(alice_api)
    running.past_its_end(beyond_grace=True)

    revoked = running.revoke_ann()
    assert revoked.status_code == 200, revoked.content  # not 409 "has ended"
    running.assert_out(running.ann_entry)

    raised = alice_api.patch(f"/api/v1/meetings/{running.id}/", {"classification": "secret"}, format="json")
    assert raised.status_code == 200, raised.content
    running.meeting.refresh_from_db()
    assert running.meeting.classification.code == "secret"
    running.assert_out(running.dana_entry)  # SECRET admits no passcode guest


def test_past_the_joining_grace_a_tightened_level_reaches_the_running_meeting(
    alice_api, carol_api, tasks_in_process
):
    running = Running(alice_api)
    running.past_its_end(beyond_grace=True)
    tightened = carol_api.patch("/api/v1/classifications/official/", {"allow_guests": False}, format="json")
    assert tightened.status_code == 200, tightened.content
    running.assert_out(running.dana_entry)
    status = running.dana.get(f"/join/{running.dana_entry.pk}/status/").json()
    assert status["room_url"] is None
    # Ann, invited and redeemed as a guest too (a link spent without signing in), is out as well.
    running.assert_out(running.ann_entry)


@pytest.mark.django_db(transaction=True)
def test_past_the_joining_grace_a_tightened_level_takes_the_guests_media_token(alice_api, carol_api, janus):
    """On a real Janus: the guest's media token, working before, is refused after."""
    from meetings.models import ConferenceRoom
    from tests.test_conference import UNAUTHORIZED, join_as, media_token_of

    running = Running(alice_api)
    room = ConferenceRoom.objects.get(meeting=running.meeting)
    dana = running.dana_entry
    dana.refresh_from_db()
    token = media_token_of(dana)
    assert selectors.media_for_entry(dana) is not None
    before, joined = join_as(janus, room, token=token, feed=dana.media_feed_id, name="Dana")
    before.close()
    assert joined.get("videoroom") == "joined", joined
    running.past_its_end(beyond_grace=True)

    tightened = carol_api.patch("/api/v1/classifications/official/", {"allow_guests": False}, format="json")
    assert tightened.status_code == 200, tightened.content
    running.assert_out(dana)
    again, refused = join_as(janus, room, token=token, feed=dana.media_feed_id, name="Dana")
    again.close()
    assert refused.get("error_code") == UNAUTHORIZED, refused
