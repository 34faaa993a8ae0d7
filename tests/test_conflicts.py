"""A state that refuses an action answers 409 with a stable code, in the API and on the pages:
cancelled or ended meetings, lobby entries already decided, invitations already revoked."""

import pytest
from django.utils import timezone

from meetings.models import Invitation, LobbyEntry, Meeting
from meetings.services import lobby

pytestmark = pytest.mark.django_db


def _waiting(meeting, name="Dana") -> LobbyEntry:
    return lobby.lobby_enter(meeting=meeting, display_name=name, source=LobbyEntry.Source.PASSCODE).entry


def _page_code(response) -> str:
    body = response.content.decode()
    marker = 'data-code="'
    return body[body.index(marker) + len(marker) :].split('"', 1)[0]


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ({"status": Meeting.Status.CANCELLED, "cancelled_at": "now"}, "meeting_cancelled"),
        ({"ended_at": "now"}, "meeting_ended"),
    ],
)
def test_lobby_decisions_on_a_closed_meeting_are_409_in_the_api_and_on_the_page(
    meeting_factory, alice_api, alice_web, state, code
):
    meeting = meeting_factory().meeting
    entry = _waiting(meeting)
    Meeting.objects.filter(pk=meeting.pk).update(
        **{k: (timezone.now() if v == "now" else v) for k, v in state.items()}
    )
    base = f"/api/v1/meetings/{meeting.display_id}/lobby"
    for decision in ("admit", "deny"):
        answer = alice_api.post(f"{base}/{entry.pk}/{decision}/")
        assert answer.status_code == 409 and answer.json()["code"] == code, decision
    answer = alice_api.post(f"{base}/admit-all/")
    assert answer.status_code == 409 and answer.json()["code"] == code

    page = alice_web.post(f"/meetings/{meeting.display_id}/lobby/{entry.pk}/admit/")
    assert page.status_code == 409 and _page_code(page) == code
    page = alice_web.post(f"/meetings/{meeting.display_id}/lobby/admit-all/")
    assert page.status_code == 409 and _page_code(page) == code
    entry.refresh_from_db()
    assert entry.status == LobbyEntry.Status.WAITING  # nothing changed


def test_an_entry_already_decided_is_409_already_decided_on_the_page(meeting_factory, alice_web):
    meeting = meeting_factory().meeting
    entry = _waiting(meeting)
    assert alice_web.post(f"/meetings/{meeting.display_id}/lobby/{entry.pk}/deny/").status_code == 302
    page = alice_web.post(f"/meetings/{meeting.display_id}/lobby/{entry.pk}/admit/")
    assert page.status_code == 409 and _page_code(page) == "already_decided"
    assert "Dana is denied." in page.content.decode()
    entry.refresh_from_db()
    assert entry.status == LobbyEntry.Status.DENIED


def test_host_actions_on_a_cancelled_meeting_are_409_pages(meeting_factory, alice_web):
    meeting = meeting_factory().meeting
    base = f"/meetings/{meeting.display_id}"
    assert alice_web.post(f"{base}/cancel/").status_code == 302
    for action in ("cancel", "passcode", "start", "lock", "end"):
        page = alice_web.post(f"{base}/{action}/")
        assert page.status_code == 409 and _page_code(page) == "meeting_cancelled", action
        assert "cancelled" in page.content.decode()


def test_an_ended_meeting_refuses_lifecycle_actions_with_409(meeting_factory, alice_api):
    meeting = meeting_factory().meeting
    base = f"/api/v1/meetings/{meeting.display_id}"
    assert alice_api.post(f"{base}/start/").status_code == 200
    again = alice_api.post(f"{base}/start/")
    assert again.status_code == 409 and again.json()["code"] == "already_started"
    assert alice_api.post(f"{base}/lock/").status_code == 200
    again = alice_api.post(f"{base}/lock/")
    assert again.status_code == 409 and again.json()["code"] == "already_locked"
    assert alice_api.post(f"{base}/end/").status_code == 200
    for action in ("start", "lock", "unlock", "end", "cancel", "passcode"):
        answer = alice_api.post(f"{base}/{action}/")
        assert answer.status_code == 409 and answer.json()["code"] == "meeting_ended", action


def test_revoking_twice_is_409_already_revoked_in_the_api_and_on_the_page(
    meeting_factory, alice_api, alice_web
):
    meeting = meeting_factory(invitees=["ann@example.org", "ben@example.org"]).meeting
    ann, ben = Invitation.objects.filter(meeting=meeting).order_by("email")
    api = f"/api/v1/meetings/{meeting.display_id}/invitations"
    assert alice_api.post(f"{api}/{ann.pk}/revoke/").status_code == 200
    again = alice_api.post(f"{api}/{ann.pk}/revoke/")
    assert again.status_code == 409 and again.json()["code"] == "already_revoked"

    page = f"/meetings/{meeting.display_id}/invitations/{ben.pk}/revoke/"
    assert alice_web.post(page).status_code == 302
    again_page = alice_web.post(page)
    assert again_page.status_code == 409 and _page_code(again_page) == "already_revoked"
