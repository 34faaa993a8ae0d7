"""selectors.link_by_token writes its own SQL (the redemption's hot path): it must hand back
what the ORM's select_related would, field for field, on SQLite and on PostgreSQL."""

import pytest
from django.utils import timezone

from meetings import selectors
from meetings.models import ClassificationLevel, JoinLink, OutboundMessage
from tests.helpers import token_of

pytestmark = pytest.mark.django_db


def _every_field(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_the_link_lookup_gives_what_select_related_gives(meeting_factory):
    level = ClassificationLevel.objects.get(code="official")
    level.allowed_invitee_domains = ["example.org", "example.net"]  # JSON, converted on the way in
    level.save()
    booked = meeting_factory(invitees=["ann@example.org", "ben@example.org"])
    rows = OutboundMessage.objects.filter(meeting=booked.meeting).order_by("id")
    live, revoked = (token_of(row) for row in rows)
    JoinLink.objects.filter(invitation__email="ben@example.org").update(
        redeemed_at=timezone.now(), revoked_at=timezone.now(), revoked_reason="revoked"
    )

    for token in (live, revoked):
        found = selectors.link_by_token(token)
        expected = JoinLink.objects.select_related("invitation__meeting__classification").get(pk=found.pk)
        pairs = [
            (found, expected),
            (found.invitation, expected.invitation),
            (found.invitation.meeting, expected.invitation.meeting),
            (found.invitation.meeting.classification, expected.invitation.meeting.classification),
        ]
        for ours, django in pairs:
            assert _every_field(ours) == _every_field(django)
            assert {type(value) for value in _every_field(ours).values()} == {
                type(value) for value in _every_field(django).values()
            }
            assert not ours._state.adding and ours._state.db == django._state.db
        assert found.invitation.meeting.starts_at.tzinfo is not None
        assert found.invitation.meeting.classification.allowed_invitee_domains == [
            "example.org",
            "example.net",
        ]

    assert selectors.link_by_token("x" * 43) is None
    assert selectors.link_by_token("") is None


@pytest.mark.services
def test_postgresql_plans_the_link_lookup_once_per_connection(meeting_factory):
    """DATABASE_PREPARED_STATEMENTS (on by default): the second lookup on a connection runs
    a prepared statement instead of planning the four-table join again."""
    from django.db import connection

    from tests.real_services import missing

    if connection.vendor != "postgresql":
        missing("prepared statements are PostgreSQL's")
    booked = meeting_factory(invitees=["ann@example.org"])
    token = token_of(OutboundMessage.objects.get(meeting=booked.meeting))
    for _ in range(3):
        assert selectors.link_by_token(token) is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("token_hash" in statement and "JOIN" in statement for statement in prepared), prepared
