"""PostgreSQL restarted under load: the same gunicorn and worker processes recover.

Never the machine's PostgreSQL (others use it): a private cluster on a free port, in a
temporary directory, created, migrated, restarted and removed by this test. Its app
processes keep their connections (CONN_MAX_AGE) and check them before use
(CONN_HEALTH_CHECKS), so after the restart they must reconnect by themselves.
"""

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
import requests

from tests import real_services as real
from tests.helpers import booking_body

pytestmark = [pytest.mark.services]

LOAD_CLIENTS = 3
LOAD_SECONDS = 20  # bound in time; each client also stops after MAX_REQUESTS
MAX_REQUESTS = 150
RESTART_AFTER_SECONDS = 5


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A throwaway cluster: initdb refuses root, so its commands run as `postgres`."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = real.free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="antechamber-pg-"))
        self.data = self.dir / "data"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/antechamber"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        subprocess.run(
            [*self.as_postgres, *argv], check=True, timeout=timeout, capture_output=True, cwd=self.dir
        )

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w",
            "-o", options, action, *extra,
        )  # fmt: skip

    def create(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self._ctl("start")
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as c:
            c.execute("CREATE DATABASE antechamber")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._ctl("stop", "-m", "immediate")  # already stopped is fine
        shutil.rmtree(self.dir, ignore_errors=True)

    def query(self, sql: str) -> list[tuple]:
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=antechamber") as c:
            return c.execute(sql).fetchall()


@pytest.fixture
def private_stack():
    real.needs_shared_database()  # the same services pass as the other multi-process tests
    bin_dir = _pg_bin()
    if bin_dir is None or not shutil.which("runuser"):
        real.missing("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed")
    controller, mailbox = real.start_smtp()
    pg = PrivatePostgres(bin_dir)
    redis_port = real.free_port()
    started: list[real.Process] = []
    try:
        pg.create()
        env = {
            **real.app_env(
                redis_url=f"redis://127.0.0.1:{redis_port}/0",
                smtp_port=controller.port,
                ANTECHAMBER_OUTBOX_FLUSH_SECONDS="1",
                ANTECHAMBER_OUTBOX_FLUSH_GRACE_SECONDS="0",
                DJANGO_DEBUG="0",
            ),
            "DATABASE_URL": pg.url,
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=real.ROOT, env=env, check=True,
            capture_output=True, timeout=180,
        )  # fmt: skip
        token = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", _MAKE_HOST],
            cwd=real.ROOT, env=env, check=True, capture_output=True, text=True, timeout=60,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        web_port = real.free_port()
        for process, ready in (
            (real.private_redis(redis_port), b"Ready to accept connections"),
            (real.gunicorn(web_port, env, workers=1, threads=LOAD_CLIENTS + 1), b"Booting worker"),
            (real.celery("worker", env, "pg-restart"), b"ready."),
            (real.celery("beat", env, "pg-restart"), b"beat: Starting"),
        ):
            started.append(process)
            process.start(ready=ready)
        url = f"http://127.0.0.1:{web_port}"
        real.wait_until(lambda: _status(f"{url}/accounts/login/") == 200, timeout=30, what="gunicorn")
        yield pg, url, {"Authorization": f"Token {token}"}, mailbox, started
    finally:
        for process in reversed(started):
            process.stop()
        pg.remove()
        controller.stop()


_MAKE_HOST = (
    "from django.contrib.auth.models import User; from meetings.services import tokens; "
    "u = User.objects.create(username='loadhost', email='loadhost@example.org'); "
    "print(tokens.api_token_create(user=u, label='load')[1])"
)


def _status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return None


def test_postgres_restart_under_load_recovers_without_restarting_the_app(private_stack):
    pg, url, headers, mailbox, processes = private_stack
    pids_before = [p.process.pid for p in processes]
    results: list[tuple[float, float, str, str | None]] = []  # started, finished, outcome, meeting ID
    lock = threading.Lock()
    invited: list[str] = []  # the invitee of each booking that got a 201
    start = time.monotonic()

    def client(n: int) -> None:
        for i in range(MAX_REQUESTS):
            if time.monotonic() - start > LOAD_SECONDS:
                return
            began = time.monotonic()
            invitee = f"load{n}-{i}@example.org"
            try:
                response = requests.post(
                    f"{url}/api/v1/meetings/",
                    json=booking_body(title=f"load {n}-{i}", invitees=[invitee]),
                    headers=headers,
                    timeout=30,
                )
                outcome = str(response.status_code)
                meeting_id = response.json()["id"] if response.status_code == 201 else None
                if meeting_id is not None:
                    invited.append(invitee)
            except requests.RequestException as exc:
                outcome, meeting_id = type(exc).__name__, None
            with lock:
                results.append((began, time.monotonic(), outcome, meeting_id))
            time.sleep(0.05)

    clients = [threading.Thread(target=client, args=(n,)) for n in range(LOAD_CLIENTS)]
    for thread in clients:
        thread.start()
    time.sleep(RESTART_AFTER_SECONDS)
    restart_began = time.monotonic()
    pg.restart()  # -w: returns once the new server accepts connections
    restart_done = time.monotonic()
    for thread in clients:
        thread.join(timeout=LOAD_SECONDS + 60)

    failures = [(b, f, o) for b, f, o, _m in results if o != "201"]
    after = [r for r in results if r[0] >= restart_done]
    first_success_after = min(
        (f for b, f, o, _m in results if o == "201" and f >= restart_began), default=None
    )
    # While the database was down, only server errors or refused connections; none after.
    assert all(o.startswith("5") or not o.isdigit() for _b, _f, o in failures), Counter(
        o for *_x, o in failures
    )
    assert all(o == "201" for _b, _f, o, _m in after), Counter(o for _b, _f, o, _m in after)
    assert after, "no request was made after the restart: the load ended too early"
    assert first_success_after is not None
    # The same processes served throughout: nobody restarted the app.
    assert [p.process.pid for p in processes] == pids_before
    assert all(p.process.poll() is None for p in processes)

    # Nothing lost: every meeting that got a 201 is in the database, and its invitation is sent.
    booked = {m for *_x, m in results if m is not None}
    ids = {row[0] for row in pg.query("SELECT public_id FROM meetings_meeting")}
    from meetings.credentials import normalize_meeting_id

    assert {normalize_meeting_id(m) for m in booked} <= ids
    real.wait_until(
        lambda: set(invited) <= {m["To"] for m in mailbox.messages}, timeout=90, what="every invitation"
    )
    time.sleep(2)  # two more flush periods: a duplicate would show now
    ids_received = Counter(m["Message-ID"] for m in mailbox.messages)
    duplicates = sum(n - 1 for n in ids_received.values())
    assert duplicates == 0, duplicates
    # A message whose "sent" mark the restart swallowed stays "sending" until the stale-claim
    # timeout (10 min) re-sends it: at least once, so it would be counted here as left over.
    outbox = dict(pg.query("SELECT status, count(*) FROM meetings_outboundmessage GROUP BY status"))
    print(
        f"\npostgres restart: {len(results)} bookings from {LOAD_CLIENTS} clients, {len(booked)} got 201, "
        f"{len(failures)} failed during the restart ({dict(Counter(o for *_x, o in failures))}); "
        f"pg_ctl restart took {restart_done - restart_began:.1f}s; first booking succeeded "
        f"{first_success_after - restart_began:.1f}s after the restart began; "
        f"0 errors after; all {len(booked)} booked meetings stored and their mail delivered, duplicates {duplicates}; "
        f"outbox rows by status {outbox}"
    )
