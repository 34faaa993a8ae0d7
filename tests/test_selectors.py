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


@pytest.mark.services
def test_postgresql_keeps_only_the_indexes_something_reads_on_the_hot_tables(db):
    """Each audited action writes every index of the audit table (and its seal writes them
    again); each redemption, those of the join link. Django's db_index and unique=True add
    a LIKE index beside each text column's index on PostgreSQL, and a foreign key its own
    index although a composite one starts with it: none of those are read."""
    from django.db import connection

    from tests.real_services import missing

    if connection.vendor != "postgresql":
        missing("needs PostgreSQL (DATABASE_URL=postgres://...)")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname FROM pg_indexes WHERE tablename IN (%s, %s)",
            ["meetings_auditevent", "meetings_joinlink"],
        )
        found = sorted(cursor.fetchall())
    assert found == [
        ("meetings_auditevent", "audit_action"),
        ("meetings_auditevent", "audit_meeting"),
        ("meetings_auditevent", "audit_seal_seq_unique"),
        ("meetings_auditevent", "audit_unsealed"),
        ("meetings_auditevent", "meetings_auditevent_actor_id_4ba494c2"),  # SET NULL when a user goes
        ("meetings_auditevent", "meetings_auditevent_pkey"),
        ("meetings_joinlink", "joinlink_invitation_latest"),
        ("meetings_joinlink", "joinlink_token_hash_unique"),
        ("meetings_joinlink", "meetings_joinlink_pkey"),
    ]
