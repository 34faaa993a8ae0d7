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
