"""Faults with real processes: broker outages, a worker killed mid-send, SMTP down.

Each runs gunicorn, Celery worker and beat processes against the PostgreSQL test
database and a Redis of the test's own (so stopping it disturbs nothing else).
"""

import asyncio
import itertools
import time
from collections import Counter

import pytest
import requests
from aiosmtpd.controller import Controller

from meetings.models import OutboundMessage
from meetings.services import tokens
from tests import real_services as real
from tests.helpers import booking_body

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


class SlowMailbox(real.Mailbox):
    """An SMTP server that takes a while per message, so a crash lands mid-send."""

    delay = 0.05

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


class SmtpServer:
    """A loopback SMTP server that can be stopped and started again on the same port."""

    def __init__(self, mailbox: real.Mailbox) -> None:
        self.mailbox = mailbox
        self.port = real.free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def slow_smtp():
    mailbox = SlowMailbox()
    smtp = SmtpServer(mailbox)
    smtp.start()
    yield smtp, mailbox
    smtp.stop()


@pytest.fixture
def stack(alice, slow_smtp):
    """Start and stop processes; everything started is stopped at the end."""
    real.needs_shared_database()
    started: list[real.Process] = []
    smtp, mailbox = slow_smtp
    redis_port = real.free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = real.app_env(
        redis_url=redis_url,
        smtp_port=smtp.port,
        ANTECHAMBER_OUTBOX_FLUSH_SECONDS="1",
        ANTECHAMBER_OUTBOX_FLUSH_GRACE_SECONDS="0",
        ANTECHAMBER_OUTBOX_STALE_CLAIM_SECONDS="3",
        # Retries after 2, 4, 8, 16 s ... instead of 30, 60, 120 s: the SMTP outage test
        # then sees several retries within a 20-second outage.
        ANTECHAMBER_OUTBOX_RETRY_BASE_SECONDS="2",
    )

    class Stack:
        def __init__(self) -> None:
            self.mailbox = mailbox
            self.smtp = smtp
            self.redis = real.private_redis(redis_port)
            self.web_port = real.free_port()
            _token, key = tokens.api_token_create(user=alice, label="faults")
            self.headers = {"Authorization": f"Token {key}"}

        def start(self, process: real.Process, ready: bytes | None) -> real.Process:
            started.append(process)
            return process.start(ready=ready)

        def redis_up(self) -> None:
            self.start(self.redis, b"Ready to accept connections")

        def redis_down(self) -> None:
            self.redis.stop()  # no persistence: whatever was queued in the broker is gone

        def web(self) -> real.Process:
            return self.start(real.gunicorn(self.web_port, env), b"Booting worker")

        def worker(self, name: str) -> real.Process:
            return self.start(real.celery("worker", env, name), b"ready.")

        def beat(self, name: str = "beat") -> real.Process:
            return self.start(real.celery("beat", env, name), b"beat: Starting")

        def url(self, path: str) -> str:
            return f"http://127.0.0.1:{self.web_port}{path}"

        def wait_for_web(self) -> None:
            real.wait_until(lambda: _answers(self.url("/accounts/login/")), timeout=30, what="gunicorn")

    yield Stack()
    for process in reversed(started):
        process.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_broker_outage_loses_no_invitation_and_sends_none_twice(stack):
    stack.web()  # Redis (the broker) is not running
    stack.wait_for_web()
    started = time.monotonic()
    response = requests.post(
        stack.url("/api/v1/meetings/"),
        json=booking_body(invitees=[f"person{i}@example.org" for i in range(20)]),
        headers=stack.headers,
        timeout=60,
    )
    booking_seconds = time.monotonic() - started
    assert response.status_code == 201, response.text
    assert OutboundMessage.objects.filter(status="pending").count() == 20

    stack.redis_up()
    recovered = time.monotonic()
    stack.worker("after-outage")
    stack.beat()
    messages = stack.mailbox.wait_for(20, timeout=60)
    recovery_seconds = time.monotonic() - recovered
    time.sleep(3)  # three more flush periods: anything sent twice would show now
    ids = Counter(m["Message-ID"] for m in stack.mailbox.messages)
    assert len(ids) == 20 and max(ids.values()) == 1, ids
    assert sorted(m["To"] for m in messages) == sorted(f"person{i}@example.org" for i in range(20))
    assert OutboundMessage.objects.filter(status="sent").count() == 20
    print(
        f"\nbroker outage: booking took {booking_seconds:.2f}s with the broker down; "
        f"all 20 delivered {recovery_seconds:.1f}s after Redis came back; duplicates 0"
    )


def test_worker_killed_mid_send_loses_nothing(stack):
    stack.redis_up()
    stack.web()
    stack.wait_for_web()
    first = stack.worker("doomed")
    response = requests.post(
        stack.url("/api/v1/meetings/"),
        json=booking_body(invitees=[f"guest{i}@example.org" for i in range(200)]),
        headers=stack.headers,
        timeout=120,
    )
    assert response.status_code == 201, response.text
    real.wait_until(lambda: len(stack.mailbox.messages) >= 40, timeout=60, what="40 messages")
    first.kill()
    received_at_kill = len(stack.mailbox.messages)
    in_flight = OutboundMessage.objects.filter(status="sending").count()
    assert received_at_kill < 200, "the worker finished before it could be killed: slow the SMTP server"

    restarted = time.monotonic()
    stack.worker("replacement")
    stack.beat()
    real.wait_until(
        lambda: len({m["Message-ID"] for m in stack.mailbox.messages}) >= 200, timeout=120, what="all 200"
    )
    recovery_seconds = time.monotonic() - restarted
    time.sleep(3)
    ids = Counter(m["Message-ID"] for m in stack.mailbox.messages)
    duplicates = sum(count - 1 for count in ids.values())
    assert len(ids) == 200
    assert OutboundMessage.objects.filter(status="sent").count() == 200
    # Only a message the SMTP server accepted before the worker could mark it sent can
    # arrive twice: at most the rows that were mid-send when it died.
    assert duplicates <= in_flight, (duplicates, in_flight)
    print(
        f"\nworker crash: killed after {received_at_kill}/200 with {in_flight} mid-send; "
        f"all 200 delivered {recovery_seconds:.1f}s after a new worker started; duplicates {duplicates}"
    )


def _duplicates(mailbox: real.Mailbox) -> tuple[int, int]:
    """(distinct messages, extra copies) by Message-ID."""
    ids = Counter(m["Message-ID"] for m in mailbox.messages)
    return len(ids), sum(count - 1 for count in ids.values())


def test_redis_stopped_during_a_booking_loop_loses_no_mail(stack):
    """Redis (broker and cache) stops while bookings keep coming, then comes back."""
    bookings, per_booking, stop_at, start_at = 12, 3, 4, 8
    stack.redis_up()
    stack.web()
    stack.wait_for_web()
    worker = stack.worker("through-outage")
    beat = stack.beat()
    statuses, outage_seconds = [], []
    loop_began = time.monotonic()
    for i in range(bookings):  # bounded in count, and each request in time
        if i == stop_at:
            stack.redis_down()
        if i == start_at:
            stack.redis_up()
            back = time.monotonic()
        began = time.monotonic()
        response = requests.post(
            stack.url("/api/v1/meetings/"),
            json=booking_body(invitees=[f"loop{i}-{j}@example.org" for j in range(per_booking)]),
            headers=stack.headers,
            timeout=60,
        )
        if stop_at <= i < start_at:
            outage_seconds.append(time.monotonic() - began)
        statuses.append(response.status_code)
    assert statuses == [201] * bookings, statuses
    expected = bookings * per_booking
    # Celery 5.7's worker (and beat) can exit on a lost Redis connection instead of
    # reconnecting ("Unrecoverable error: AttributeError ... 'hostname'", a kombu close path).
    # In production a supervisor restarts them (README); the test does what systemd would.
    # A supervisor restarts them whenever they exit, not only once: so does the test, while it waits.
    supervised = {"worker": worker, "beat": beat}
    restarts = itertools.count(1)
    restarted: list[str] = []

    def delivered_with_supervision() -> bool:
        for kind, process in list(supervised.items()):
            if process.process is not None and process.process.poll() is not None:
                n = next(restarts)
                restarted.append(process.name)
                supervised[kind] = (
                    stack.worker(f"through-outage-restarted-{n}")
                    if kind == "worker"
                    else stack.beat(f"beat-restarted-{n}")
                )
        return _duplicates(stack.mailbox)[0] >= expected

    real.wait_until(delivered_with_supervision, timeout=90, interval=0.5, what=f"all {expected}")
    recovery_seconds = time.monotonic() - back
    time.sleep(3)  # three more flush periods: anything sent twice would show now
    distinct, duplicates = _duplicates(stack.mailbox)
    assert distinct == expected and duplicates == 0, (distinct, duplicates)
    assert sorted(m["To"] for m in stack.mailbox.messages) == sorted(
        f"loop{i}-{j}@example.org" for i in range(bookings) for j in range(per_booking)
    )
    assert OutboundMessage.objects.filter(status="sent").count() == expected
    print(
        f"\nredis stopped mid-loop: {bookings} bookings in {time.monotonic() - loop_began:.1f}s, all 201 "
        f"({start_at - stop_at} with Redis down, each took at most {max(outage_seconds):.2f}s); "
        f"all {expected} messages delivered {recovery_seconds:.1f}s after Redis came back; duplicates 0; "
        f"restarted after exiting on the lost connection: {restarted or 'none'}"
    )


SMTP_OUTAGE_SECONDS = 20  # the issue says a minute; 20 s shows the same retries in a third of the time


def test_smtp_down_retries_with_backoff_and_delivers_everything_once_back(stack):
    invitees = [f"patient{i}@example.org" for i in range(10)]
    stack.redis_up()
    stack.web()
    stack.wait_for_web()
    stack.worker("smtp-outage")
    stack.beat()
    stack.smtp.stop()
    went_down = time.monotonic()
    response = requests.post(
        stack.url("/api/v1/meetings/"),
        json=booking_body(invitees=invitees),
        headers=stack.headers,
        timeout=60,
    )
    assert response.status_code == 201, response.text
    time.sleep(max(0.0, SMTP_OUTAGE_SECONDS - (time.monotonic() - went_down)))
    during = list(OutboundMessage.objects.values_list("status", "attempts"))
    # Every message is still waiting (none given up, none sent), and has been tried more than once.
    assert {status for status, _attempts in during} <= {"pending", "sending"}, during
    assert min(attempts for _status, attempts in during) >= 2, during

    stack.smtp.start()
    back = time.monotonic()
    real.wait_until(lambda: _duplicates(stack.mailbox)[0] >= len(invitees), timeout=90, what="all 10")
    recovery_seconds = time.monotonic() - back
    time.sleep(3)
    distinct, duplicates = _duplicates(stack.mailbox)
    assert distinct == len(invitees)
    assert sorted(m["To"] for m in stack.mailbox.messages) == sorted(invitees)
    assert duplicates == 0, duplicates
    assert OutboundMessage.objects.filter(status="sent").count() == len(invitees)
    attempts = sorted(OutboundMessage.objects.values_list("attempts", flat=True))
    print(
        f"\nSMTP down {SMTP_OUTAGE_SECONDS}s: attempts per message during the outage "
        f"{min(a for _s, a in during)}-{max(a for _s, a in during)}; all {len(invitees)} delivered "
        f"{recovery_seconds:.1f}s after the server came back (attempts in all {attempts[0]}-{attempts[-1]}); "
        f"duplicates {duplicates}"
    )
