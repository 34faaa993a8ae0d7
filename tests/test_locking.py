"""The lock order (meetings/services/locking.py) under real concurrency on PostgreSQL.

Before the order was fixed, PATCH of a meeting locked the meeting and then its level,
while PATCH of the level locked the level and then its meetings: PostgreSQL found the
cycle and aborted one of them, a 500.
"""

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone
from rest_framework.test import APIClient

from meetings.models import ClassificationLevel
from meetings.services import booking, tokens
from tests import real_services as real

ROUNDS = 200
MEETING_WRITERS = 3
TIME_LIMIT_SECONDS = 240


def _client(user) -> APIClient:
    _token, key = tokens.api_token_create(user=user, label="locking")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_meeting_and_level_changes_in_parallel_never_deadlock(alice, carol):
    if connection.vendor != "postgresql":
        real.missing("row locks and deadlocks need PostgreSQL (set DATABASE_URL=postgres://...)")
    level = ClassificationLevel.objects.get(code="official")
    starts = timezone.now() + timedelta(days=2)
    meetings = [
        booking.meeting_book(
            host=alice,
            title=f"Standing meeting {n}",
            starts_at=starts,
            duration_minutes=30,
            classification=level,
            host_has_second_factor=True,
        ).meeting
        for n in range(MEETING_WRITERS)
    ]
    clients = [_client(alice) for _ in meetings]
    staff = _client(carol)
    barrier = threading.Barrier(MEETING_WRITERS + 1, timeout=30)
    deadline = time.monotonic() + TIME_LIMIT_SECONDS
    answers: Counter[int] = Counter()
    problems: list[str] = []
    lock = threading.Lock()

    def record(status: int, body: object) -> None:
        with lock:
            answers[status] += 1
            if status not in (200, 400, 409) or (status != 200 and not body):
                problems.append(f"{status}: {body!r}")

    def call(send) -> None:
        try:
            response = send()
        except Exception as exc:  # the test client raises what would have been a 500
            with lock:
                answers[500] += 1
                problems.append(f"500: {type(exc).__name__}: {exc}")
            return
        record(response.status_code, response.json())

    def change_meeting(index: int) -> None:
        client, meeting = clients[index], meetings[index]
        try:
            for n in range(ROUNDS):
                barrier.wait()
                if time.monotonic() > deadline:
                    return
                body = {"title": f"Standing meeting {index} ({n})", "cloud_recording": n % 2 == 0}
                call(
                    lambda body=body: client.patch(
                        f"/api/v1/meetings/{meeting.display_id}/", body, format="json"
                    )
                )
        finally:
            connections.close_all()

    def change_level() -> None:
        try:
            for n in range(ROUNDS):
                barrier.wait()
                if time.monotonic() > deadline:
                    return
                body = {"allow_cloud_recording": n % 2 == 1}
                call(lambda body=body: staff.patch("/api/v1/classifications/official/", body, format="json"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=change_meeting, args=(i,)) for i in range(MEETING_WRITERS)]
    threads.append(threading.Thread(target=change_level))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIME_LIMIT_SECONDS + 60)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    assert not problems, f"{len(problems)} bad answers, first: {problems[:3]}; all: {dict(answers)}"
    assert sum(answers.values()) == ROUNDS * (MEETING_WRITERS + 1), dict(answers)
    assert answers[200] > 0


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_lifecycle_action_waits_for_a_level_tightening_and_decides_on_it(alice, carol):
    # A staff transaction makes OFFICIAL require the host's second factor and has not
    # committed yet; the host, without a factor, starts a meeting meanwhile. Decided on the
    # level as locked, the start waits for the change and is refused; decided on the level
    # as read without a lock, it would go through under the old rule.
    from meetings import errors
    from meetings.services import lifecycle

    if connection.vendor != "postgresql":
        real.missing("row locks need PostgreSQL (set DATABASE_URL=postgres://...)")
    level = ClassificationLevel.objects.get(code="official")
    meeting = booking.meeting_book(
        host=alice,
        title="Waits for the level",
        starts_at=timezone.now() + timedelta(hours=1),
        duration_minutes=30,
        classification=level,
        host_has_second_factor=True,
    ).meeting
    tightening = threading.Event()
    outcome: list[str] = []

    def staff() -> None:
        from django.db import transaction

        try:
            with transaction.atomic():
                ClassificationLevel.objects.select_for_update(no_key=True).filter(pk=level.pk).update(
                    require_host_mfa=True
                )
                tightening.set()
                time.sleep(1.0)  # the host's start arrives while this is uncommitted
        finally:
            connections.close_all()

    def host() -> None:
        try:
            tightening.wait(timeout=10)
            lifecycle.meeting_start(meeting=meeting, actor=alice, host_has_second_factor=False)
            outcome.append("started")
        except errors.Forbidden as refused:
            outcome.append(refused.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=staff), threading.Thread(target=host)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcome == ["second_factor_required"]
