"""Shared set-up for the join and lobby tests."""

import threading

from meetings import credentials
from tests.helpers import booking_body


def book(api, **overrides) -> tuple[str, str]:
    """Alice books through the API; returns (meeting ID, passcode)."""
    response = api.post("/api/v1/meetings/", booking_body(**overrides), format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"], response.json()["passcode"]


def join_data(meeting_id: str, passcode: str, name: str = "Dana") -> dict[str, str]:
    return {"meeting_id": meeting_id, "passcode": passcode, "display_name": name}


class VerifyCounter:
    """Wraps credentials.verify_passcode and counts calls (and which hashes were used)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.hashes: list[str] = []
        self.real = credentials.verify_passcode

    def __call__(self, passcode_hash: str, passcode: str) -> bool:
        with self.lock:
            self.calls += 1
            self.hashes.append(passcode_hash)
        return self.real(passcode_hash, passcode)


def count_verifications(monkeypatch) -> VerifyCounter:
    counter = VerifyCounter()
    monkeypatch.setattr(credentials, "verify_passcode", counter)
    return counter


def entrant(meeting, name: str) -> dict:
    """lobby_enter's arguments for someone the meeting's level lets in: a passcode guest
    where it may, else an invitee signed in as the invited address with a second factor
    (policy.entry_refusal asks the same at entry, admission and the media room)."""
    from django.contrib.auth.models import User

    from meetings.models import Invitation, LobbyEntry

    level = meeting.classification
    if level.allow_passcode_join and level.allow_guests and not level.require_participant_mfa:
        return {"source": LobbyEntry.Source.PASSCODE}
    email = f"{name.lower()}@example.org"
    user, _ = User.objects.get_or_create(username=f"entrant-{name.lower()}", defaults={"email": email})
    invitation = Invitation.objects.create(meeting=meeting, email=email, invited_by=meeting.host)
    return {
        "source": LobbyEntry.Source.INVITATION,
        "user": user,
        "invitation": invitation,
        "second_factor": True,
    }
