"""Audit rows are appended without a lock and sealed into the chain by one sealer.

A sealer that fails or is killed mid-seal loses no row and seals nothing twice; two
sealers never both seal; rows that commit out of id order are still all chained.
"""

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from meetings import audit
from meetings.audit import audit_record, audit_seal, verify_chain
from meetings.models import AuditEvent
from tests import real_services as real

pytestmark = pytest.mark.django_db


def _append(count: int, prefix: str = "row") -> list[AuditEvent]:
    return [
        audit_record(action="sealing_test", subject=f"{prefix} {n}", detail={"n": n}) for n in range(count)
    ]


def _assert_sealed_once_each(expected: int) -> None:
    seqs = list(AuditEvent.objects.order_by("seal_seq").values_list("seal_seq", flat=True))
    assert seqs == list(range(1, expected + 1))  # every row once, no gap, no repeat
    prevs = list(AuditEvent.objects.values_list("prev_hash", flat=True))
    assert len(prevs) == len(set(prevs))  # no fork
    report = verify_chain()
    assert report.intact, report
    assert (report.rows, report.unsealed) == (expected, 0)


def test_appending_takes_no_lock_and_reads_no_head(django_assert_num_queries, settings):
    settings.ANTECHAMBER_AUDIT_SEAL_ON_COMMIT = False
    _append(1)  # anything first-time (content types, ...) out of the way
    with django_assert_num_queries(1):  # the INSERT, nothing else
        audit_record(action="sealing_test", subject="one")
    event = AuditEvent.objects.latest("id")
    assert event.seal_seq is None and event.row_hash is None and event.prev_hash is None
    assert event.content_hash == audit.content_hash(audit.row_content(event))


def test_the_sealer_chains_appended_rows_in_id_order():
    first = _append(3, "first")
    assert audit_seal().sealed == 3
    second = _append(2, "second")
    report = verify_chain()
    assert report.intact and (report.rows, report.unsealed) == (3, 2)
    assert audit_seal().sealed == 2
    assert audit_seal().sealed == 0
    _assert_sealed_once_each(5)
    chain = list(AuditEvent.objects.order_by("seal_seq").values_list("id", flat=True))
    assert chain == [e.pk for e in first + second]


def test_verify_audit_reports_the_unsealed_tail_and_fails_after_a_minute(monkeypatch):
    _append(2)
    audit_seal()
    waiting = _append(1)[0]
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert "intact: 2 row(s)" in out.getvalue()
    assert "Unsealed tail: 1 row(s)" in out.getvalue()

    later = timezone.now() + timedelta(seconds=61)
    monkeypatch.setattr(timezone, "now", lambda: later)
    with pytest.raises(CommandError) as failure:
        call_command("verify_audit", stdout=StringIO())
    assert f"id={waiting.pk}" in str(failure.value)
    assert "not sealed" in str(failure.value)
    monkeypatch.undo()
    audit_seal()
    call_command("verify_audit", stdout=StringIO())


def test_a_row_changed_before_it_is_sealed_is_named_and_never_sealed():
    rows = _append(3)
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET subject = %s WHERE id = %s", ["nothing happened", rows[1].pk])
    report = verify_chain()
    assert report.bad_row_id == rows[1].pk
    result = audit_seal()
    assert (result.sealed, result.skipped) == (2, 1)
    assert AuditEvent.objects.get(pk=rows[1].pk).seal_seq is None
    with pytest.raises(CommandError) as failure:
        call_command("verify_audit", stdout=StringIO())
    assert f"row id={rows[1].pk}:" in str(failure.value)


def test_a_sealer_that_fails_mid_seal_loses_nothing_and_seals_nothing_twice(monkeypatch):
    _append(6)
    write = audit._seal_rows

    def crash_halfway(rows):
        write(rows[:3])  # half the batch is written ...
        raise RuntimeError("sealer died")  # ... then the sealer dies

    monkeypatch.setattr(audit, "_seal_rows", crash_halfway)
    with pytest.raises(RuntimeError):
        audit_seal()
    assert AuditEvent.objects.count() == 6
    assert AuditEvent.objects.filter(seal_seq__isnull=True).count() == 6  # the half was rolled back
    monkeypatch.undo()
    assert audit_seal().sealed == 6
    _assert_sealed_once_each(6)


def test_in_process_mode_seals_once_per_transaction_on_commit(settings, django_capture_on_commit_callbacks):
    settings.ANTECHAMBER_AUDIT_SEAL_ON_COMMIT = True
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        _append(4)
    assert len(callbacks) == 1
    _assert_sealed_once_each(4)


def test_beat_runs_the_sealer(settings):
    from meetings import tasks

    entry = settings.CELERY_BEAT_SCHEDULE["audit-seal"]
    assert entry["task"] == "meetings.tasks.audit_seal"
    assert entry["schedule"] <= timedelta(seconds=10)
    _append(2)
    assert tasks.audit_seal() == 2


# --- PostgreSQL: real concurrency --------------------------------------------------


@pytest.fixture(autouse=True)
def _sealed_by_hand(settings):
    """As with a beat: nothing seals on commit unless a test says so."""
    settings.ANTECHAMBER_AUDIT_SEAL_ON_COMMIT = False


def _needs_postgres() -> None:
    if connection.vendor != "postgresql":
        # A failure, not a skip, where ANTECHAMBER_REQUIRE_SERVICES=1 (the PostgreSQL pass).
        real.missing("sealer concurrency needs PostgreSQL (SQLite serialises every writer already)")


class _PausedSealer(threading.Thread):
    """A sealer that stops after writing its batch, before its COMMIT, until released."""

    def __init__(self, monkeypatch) -> None:
        super().__init__()
        self.written = threading.Event()
        self.release = threading.Event()
        self.backend_pid: int | None = None
        self.result: object = None
        write = audit._seal_rows

        def write_then_wait(rows):
            write(rows)
            self.backend_pid = connection.connection.info.backend_pid
            self.written.set()
            assert self.release.wait(30)

        monkeypatch.setattr(audit, "_seal_rows", write_then_wait)

    def run(self) -> None:
        try:
            self.result = audit_seal()
        except BaseException as exc:  # inspected by the test
            self.result = exc
        finally:
            connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_appending_does_not_wait_for_a_sealer(monkeypatch, settings):
    _needs_postgres()
    settings.ANTECHAMBER_AUDIT_SEAL_ON_COMMIT = False  # the deployment with a beat
    _append(3)
    sealer = _PausedSealer(monkeypatch)
    sealer.start()
    assert sealer.written.wait(30)
    appended = threading.Event()

    def append_elsewhere() -> None:
        try:
            with transaction.atomic():
                audit_record(action="sealing_test", subject="during the seal")
            appended.set()
        finally:
            connections.close_all()

    writer = threading.Thread(target=append_elsewhere)
    writer.start()
    try:
        assert appended.wait(10), "an audited write waited for the sealer"
    finally:
        sealer.release.set()
        sealer.join(30)
        writer.join(30)
    assert audit_seal().sealed == 1
    _assert_sealed_once_each(4)


@pytest.mark.django_db(transaction=True)
def test_two_sealers_never_both_seal(monkeypatch):
    _needs_postgres()
    _append(5)
    first = _PausedSealer(monkeypatch)
    first.start()
    assert first.written.wait(30)
    monkeypatch.undo()  # the second sealer runs unpatched
    second = audit_seal()
    assert second.locked_out and second.sealed == 0
    first.release.set()
    first.join(30)
    assert getattr(first.result, "sealed", None) == 5
    _assert_sealed_once_each(5)


@pytest.mark.django_db(transaction=True)
def test_a_killed_sealer_loses_nothing_and_seals_nothing_twice(monkeypatch):
    _needs_postgres()
    _append(5)
    sealer = _PausedSealer(monkeypatch)
    sealer.start()
    assert sealer.written.wait(30)
    with connection.cursor() as cursor:  # the sealer's server process dies mid-seal
        cursor.execute("SELECT pg_terminate_backend(%s)", [sealer.backend_pid])
    sealer.release.set()
    sealer.join(30)
    assert isinstance(sealer.result, OperationalError | Exception) and not hasattr(sealer.result, "sealed")
    monkeypatch.undo()
    assert AuditEvent.objects.count() == 5
    assert AuditEvent.objects.filter(seal_seq__isnull=True).count() == 5
    assert audit_seal().sealed == 5  # the lock died with it
    _assert_sealed_once_each(5)


@pytest.mark.django_db(transaction=True)
def test_rows_committed_out_of_id_order_are_all_chained():
    _needs_postgres()
    in_transaction, may_commit = threading.Event(), threading.Event()
    late: list[int] = []

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                late.append(audit_record(action="sealing_test", subject="lower id, commits late").pk)
                in_transaction.set()
                assert may_commit.wait(30)
        finally:
            connections.close_all()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert in_transaction.wait(30)
    early = _append(2, "higher ids, commit first")
    assert audit_seal().sealed == 2  # the uncommitted row is invisible, not skipped for good
    may_commit.set()
    writer.join(30)
    assert late[0] < early[0].pk
    assert audit_seal().sealed == 1
    _assert_sealed_once_each(3)
    chain = list(AuditEvent.objects.order_by("seal_seq").values_list("id", flat=True))
    assert chain == [early[0].pk, early[1].pk, late[0]]


@pytest.mark.django_db(transaction=True)
def test_a_worker_started_without_queues_runs_the_sealer_from_its_own_queue(tasks_run, settings):
    """With Redis: a real worker process (no -Q) takes audit_seal from the `audit` queue."""
    from meetings import tasks
    from tests.real_services import wait_until

    assert settings.CELERY_TASK_ROUTES["meetings.tasks.audit_seal"] == {"queue": "audit"}
    _append(3)
    backlog = None
    if settings.REDIS_URL:
        import redis

        broker = redis.Redis.from_url(settings.REDIS_URL)
        for _ in range(400):  # a backlog of mail tasks (for rows that do not exist: cheap)
            tasks.outbox_send.delay(0)
        backlog = broker.llen("celery")
    tasks.audit_seal.delay()
    wait_until(
        lambda: not AuditEvent.objects.filter(seal_seq__isnull=True).exists(), timeout=60, what="the seal"
    )
    if backlog is not None:
        # Sealed while most of the mail backlog still waits: it did not queue behind it.
        assert broker.llen("celery") > backlog // 2, (backlog, broker.llen("celery"))
        broker.delete("celery")
    _assert_sealed_once_each(3)
