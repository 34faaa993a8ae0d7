"""List pages cost the same number of queries for 10 rows as for 1,000.

My meetings (the API list and the page) here. The other two lists have theirs next to
their features: the lobby in tests/test_lobby.py
(test_lobby_poll_costs_the_same_queries_for_10_and_1000_entries) and the invitee list in
tests/test_invitations.py (test_invitee_list_uses_the_same_queries_for_10_and_1000_rows).
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from meetings import credentials
from meetings.models import ClassificationLevel, Meeting

pytestmark = pytest.mark.django_db


def _add_meetings(host, count: int) -> None:
    """Rows straight into the table: this is a read test, booking's rules are tested elsewhere."""
    level = ClassificationLevel.objects.get(code="official")
    now = timezone.now()
    Meeting.objects.bulk_create(
        Meeting(
            public_id=credentials.new_meeting_id(),
            host=host,
            title=f"Meeting {n}",
            starts_at=now + timedelta(hours=1 + n),
            duration_minutes=30,
            ends_at=now + timedelta(hours=1 + n, minutes=30),
            classification=level,
            passcode_hash="not-a-real-hash",
            passcode_bits=80,
            passcode_rotated_at=now,
        )
        for n in range(count)
    )


def _queries(client, url: str) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries), response


def test_my_meetings_api_costs_the_same_queries_for_10_and_1000_meetings(alice, alice_api):
    _add_meetings(alice, 10)
    alice_api.get("/api/v1/meetings/")  # the token's last-used write happens once a minute
    small, response = _queries(alice_api, "/api/v1/meetings/")
    assert len(response.json()) == 10
    _add_meetings(alice, 990)
    large, response = _queries(alice_api, "/api/v1/meetings/")
    assert len(response.json()) == 1000
    assert small == large


def test_my_meetings_page_costs_the_same_queries_for_10_and_1000_meetings(alice, alice_web):
    _add_meetings(alice, 10)
    alice_web.get("/meetings/")  # warm the session
    small, response = _queries(alice_web, "/meetings/")
    assert response.content.decode().count('class="tag level-') == 10
    _add_meetings(alice, 990)
    large, response = _queries(alice_web, "/meetings/")
    assert response.content.decode().count('class="tag level-') == 1000
    assert small == large


@pytest.mark.services
def test_the_invitee_list_of_5000_uses_the_latest_per_invitation_indexes(meeting_factory):
    """A page of 5,000 invitees timed out on PostgreSQL: each invitee's latest link and
    message were found by walking the primary key backwards. The plan must use the
    (invitation, id) indexes."""
    from meetings import selectors
    from meetings.models import Invitation, JoinLink, OutboundMessage
    from tests import real_services as real

    if connection.vendor != "postgresql":
        real.missing("query plans are PostgreSQL's (set DATABASE_URL=postgres://...)")
    meeting = meeting_factory().meeting
    invitations = Invitation.objects.bulk_create(
        Invitation(meeting=meeting, email=f"p{n}@example.org", invited_by=meeting.host) for n in range(5000)
    )
    expires = timezone.now() + timedelta(days=1)
    JoinLink.objects.bulk_create(
        JoinLink(invitation=inv, token_hash=f"{n:064x}", expires_at=expires)
        for n, inv in enumerate(invitations)
    )
    OutboundMessage.objects.bulk_create(
        OutboundMessage(
            meeting=meeting,
            invitation=inv,
            kind="invitation",
            to_email=inv.email,
            subject="s",
            body_text="b",
            message_id=f"<{n}@example.org>",
            next_attempt_at=expires,
        )
        for n, inv in enumerate(invitations)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    plan = selectors.invitations_for_meeting(meeting).explain()
    assert "joinlink_invitation_latest" in plan and "outbound_invitation_latest" in plan, plan
