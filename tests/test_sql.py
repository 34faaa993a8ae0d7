"""meetings/sql.py: a conditional UPDATE and the rows that commit only with it."""

import pytest
from django.db import DataError, connection
from django.utils import timezone

from meetings import sql
from meetings.audit import audit_event, audit_insert
from meetings.models import AuditEvent, Session
from tests.real_services import missing

pytestmark = pytest.mark.django_db

KEY = "a" * 32


def _update() -> str:
    data, key = sql.column(Session, "session_data"), sql.column(Session, "session_key")
    return f"UPDATE {sql.table(Session)} SET {data} = %s WHERE {key} = %s"  # noqa: S608 - names from the model


def _session(key: str, data: str = "new") -> sql.Insert:
    return sql.Insert(Session, {"session_key": key, "session_data": data, "expire_date": timezone.now()})


def test_the_rows_are_written_only_when_the_update_changes_a_row():
    Session.objects.create(session_key=KEY, session_data="old", expire_date=timezone.now())
    event = audit_event(action="sql_test", subject="row")
    rows = [_session("b" * 32), audit_insert(event)]

    assert sql.update_then_insert(_update(), ["changed", "no such key"], rows) == (0, [None, None])
    assert not Session.objects.filter(session_key="b" * 32).exists()
    assert not AuditEvent.objects.filter(action="sql_test").exists()

    changed, (session_id, audit_id) = sql.update_then_insert(_update(), ["changed", KEY], rows)
    assert (changed, session_id) == (1, None)
    assert Session.objects.get(session_key=KEY).session_data == "changed"
    assert Session.objects.get(session_key="b" * 32).session_data == "new"
    stored = AuditEvent.objects.get(pk=audit_id)
    assert (stored.action, stored.subject, stored.content_hash) == ("sql_test", "row", event.content_hash)
    assert stored.created_at == event.created_at


@pytest.mark.services
def test_postgresql_refuses_a_value_too_long_for_its_column_and_undoes_the_update():
    """The values are CAST before their INSERT; a CAST to varchar(64) would cut a longer key
    silently, so text is cast without its length and the INSERT refuses it."""
    if connection.vendor != "postgresql":
        missing("needs PostgreSQL (SQLite does not enforce a column's length)")
    Session.objects.create(session_key=KEY, session_data="old", expire_date=timezone.now())
    with pytest.raises(DataError):
        too_long = "c" * (Session._meta.get_field("session_key").max_length + 1)
        sql.update_then_insert(_update(), ["changed", KEY], [_session(too_long)])
    assert Session.objects.get(session_key=KEY).session_data == "old"
    assert not Session.objects.filter(session_key__startswith="c").exists()
