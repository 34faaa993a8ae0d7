"""Issue 21 (robustness): the passcode limiter and the sign-in lockout when Redis misbehaves.

A red team found that a Redis evicting keys under memory pressure (`allkeys-lru`) reset a
locked meeting's count, so the right passcode was accepted past the limit; that a full
Redis (`noeviction`) answered wrong passwords with a 500 without counting them, while the
right one reached the second-factor step; and that Redis errors other than a lost
connection (out of memory, a bad database index) made sign-out and the E2EE key relay
answer 500. Each test here runs a Redis of its own (small `maxmemory`, the policy under
test) and points the app at it with the settings production has with REDIS_URL set.
"""

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import redis
from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django.test import Client, override_settings
from rest_framework.test import APIClient

from meetings.models import AuditEvent, LobbyEntry
from tests import real_services as real
from tests.helpers import login_password_step
from tests.join_helpers import book, count_verifications, join_data
from tests.test_join import wrong_passcode

pytestmark = pytest.mark.services

MAXMEMORY = 2 * 1024 * 1024
FILL_VALUE = b"x" * 8192
FILL_MAX_KEYS = 4000  # 32 MiB at most, sixteen times maxmemory
FILL_MAX_SECONDS = 30


@functools.cache
def _production() -> dict:
    """AXES_HANDLER, SESSION_ENGINE and the cache as scheduler/settings.py sets them when
    REDIS_URL is set, whatever this test run's own environment is (read in a subprocess)."""
    code = (
        "import json; from scheduler import settings_test as s; "
        "print(json.dumps({'AXES_HANDLER': s.AXES_HANDLER, 'SESSION_ENGINE': s.SESSION_ENGINE, "
        "'CACHE': s.CACHES['default']}))"
    )
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=real.ROOT, capture_output=True, check=True, timeout=60
    )
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


@contextmanager
def app_on(url: str):
    """The app as production runs it with REDIS_URL=url."""
    production = _production()
    cache = {**production["CACHE"], "LOCATION": url, "KEY_PREFIX": f"faults-{time.monotonic_ns()}"}
    with override_settings(
        CACHES={"default": cache},
        SESSION_ENGINE=production["SESSION_ENGINE"],
        AXES_HANDLER=production["AXES_HANDLER"],
    ):
        AxesProxyHandler.get_implementation(force=True)  # it keeps the cache it was made with
        try:
            yield
        finally:
            AxesProxyHandler.implementation = None  # the next caller gets the restored settings'


@dataclass
class SmallRedis:
    client: redis.Redis
    url: str  # database 0


@pytest.fixture
def small_redis():
    """small_redis(policy): a fresh redis-server on a free port with 2 MiB of memory and that
    `maxmemory-policy`, and 2 databases (so index 5 is a bad one)."""
    if not shutil.which("redis-server") and not os.path.exists("/usr/bin/redis-server"):
        real.missing("redis-server is not installed")
    started: list[real.Process] = []

    def start(policy: str) -> SmallRedis:
        port = real.free_port()
        server = real.private_redis(
            port, "--maxmemory", str(MAXMEMORY), "--maxmemory-policy", policy, "--databases", "2"
        )
        started.append(server)
        server.start(ready=b"Ready to accept connections", timeout=20)
        return SmallRedis(redis.Redis(port=port, socket_timeout=5), f"redis://127.0.0.1:{port}/0")

    yield start
    for server in started:
        server.stop()


def fill(server: SmallRedis) -> dict:
    """Fill Redis as a flood of anonymous requests would, bounded in keys and time: until
    it refuses a write (noeviction), or has evicted and taken four times its maxmemory in
    new keys (allkeys-lru), so that anything written before is likely gone. Its stats."""
    client = server.client
    deadline = time.monotonic() + FILL_MAX_SECONDS
    for n in range(FILL_MAX_KEYS):
        try:
            client.set(f"flood:{n}", FILL_VALUE)
        except redis.exceptions.OutOfMemoryError:
            # Full. Keys the app wrote with a lifetime can expire a moment later and bring
            # Redis back under its limit, so that one more write would pass (seen once in
            # a full run): it stays full below half what it holds.
            client.config_set("maxmemory", client.info("memory")["used_memory"] // 2)
            break
        if n * len(FILL_VALUE) > 4 * MAXMEMORY and client.info("stats")["evicted_keys"]:
            break
        if time.monotonic() > deadline:
            break
    memory = client.info("memory")
    return {**client.info("stats"), "used_memory": memory["used_memory"], "maxmemory": memory["maxmemory"]}


def join(meeting_id: str, passcode: str) -> int:
    return APIClient().post("/api/v1/join/", join_data(meeting_id, passcode), format="json").status_code


def sign_in(password: str):
    return login_password_step(Client(), "alice", password)


@pytest.fixture
def alice_device(alice):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.create(user=alice, name="default", confirmed=True)


# --- allkeys-lru: eviction resets nothing ----------------------------------------------


@pytest.mark.django_db
def test_an_evicting_redis_does_not_unlock_a_locked_meeting(alice_api, settings, small_redis, monkeypatch):
    settings.ANTECHAMBER_JOIN_MEETING_FAILURES = 3
    server = small_redis("allkeys-lru")
    meeting_id, passcode = book(alice_api)
    counter = count_verifications(monkeypatch)
    with app_on(server.url):
        wrong = wrong_passcode(passcode)
        assert [join(meeting_id, wrong) for _ in range(4)] == [403, 403, 403, 429]
        stats = fill(server)
        assert stats["evicted_keys"] > 0, stats  # Redis did evict
        # SECURITY: still locked: the right passcode is refused without being checked.
        assert join(meeting_id, passcode) == 429
    assert counter.calls == 3
    assert AuditEvent.objects.filter(action="passcode_join_failed").count() == 3
    assert not LobbyEntry.objects.exists()


@pytest.mark.django_db
def test_an_evicting_redis_does_not_reset_a_sign_in_lockout(alice_device, password, settings, small_redis):
    server = small_redis("allkeys-lru")
    limit = settings.AXES_FAILURE_LIMIT
    with app_on(server.url):
        statuses = [sign_in(f"not-the-password-{n}").status_code for n in range(limit)]
        assert statuses == [200] * (limit - 1) + [429]
        stats = fill(server)
        assert stats["evicted_keys"] > 0, stats
        right = sign_in(password)
        # SECURITY: still locked: the right password does not reach the second factor.
        assert right.status_code == 429
        assert b"token-otp_token" not in right.content
    # Every wrong one counted (and the refused right one too, as django-axes counts).
    assert AccessAttempt.objects.get(username="alice").failures_since_start == limit + 1


# --- noeviction, full: every guess is counted, or refused with a 503; never a 500 -------


@pytest.mark.django_db
def test_a_full_redis_leaves_sign_in_counting_and_locked(alice_device, password, settings, small_redis):
    server = small_redis("noeviction")
    limit = settings.AXES_FAILURE_LIMIT
    with app_on(server.url):
        stats = fill(server)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            server.client.set("one-more", FILL_VALUE)  # full: Redis refuses writes
        statuses = [sign_in(f"not-the-password-{n}").status_code for n in range(limit)]
        assert 500 not in statuses and set(statuses) <= {200, 429, 503}, statuses
        answered = len(statuses) - statuses.count(503)
        attempt = AccessAttempt.objects.filter(username="alice").first()
        assert (attempt.failures_since_start if attempt else 0) == answered  # each one counted
        right = sign_in(password)
        # SECURITY: past the limit the right password never reaches the second factor.
        assert right.status_code in (429, 503), right.status_code
        assert b"token-otp_token" not in right.content
    assert stats["used_memory"] > stats["maxmemory"] * 0.9, stats


@pytest.mark.django_db
def test_a_full_redis_leaves_passcode_joins_counting_and_locked(
    alice_api, settings, small_redis, monkeypatch
):
    """The limiter needs no Redis: a full one changes nothing, the right passcode included."""
    settings.ANTECHAMBER_JOIN_MEETING_FAILURES = 3
    server = small_redis("noeviction")
    meeting_id, passcode = book(alice_api)
    counter = count_verifications(monkeypatch)
    with app_on(server.url):
        fill(server)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            server.client.set("one-more", FILL_VALUE)
        assert join(meeting_id, passcode) == 201  # before the lock: in, with Redis full
        wrong = wrong_passcode(passcode)
        assert [join(meeting_id, wrong) for _ in range(4)] == [403, 403, 403, 429]
        assert join(meeting_id, passcode) == 429
    assert counter.calls == 4  # the right one, then each wrong one until the lock
    assert AuditEvent.objects.filter(action="passcode_join_failed").count() == 3
    assert LobbyEntry.objects.count() == 1


# --- Redis refusing commands: 503, never 500 -----------------------------------------


def _unavailable(response, *, json_body: bool) -> None:
    assert response.status_code == 503, response.status_code
    assert response["Retry-After"]
    if json_body:
        assert response["Content-Type"] == "application/json"
        assert "temporarily unavailable" in response.json()["detail"]
    else:
        assert b"temporarily unavailable" in response.content


@pytest.mark.django_db
def test_signing_out_on_a_bad_redis_database_index_is_a_503(alice, small_redis):
    server = small_redis("noeviction")
    with app_on(server.url):
        browser = Client()
        browser.force_login(alice)
    # The same server, a database index it does not have: every command is a ResponseError.
    with app_on(server.url.replace("/0", "/5")):
        assert browser.get("/meetings/").status_code == 200  # the session, from the database
        _unavailable(browser.post("/accounts/logout/"), json_body=False)


@pytest.mark.django_db(transaction=True)
def test_the_key_relay_on_a_full_or_misconfigured_redis_is_a_json_503(
    janus, alice, small_redis, verified_client
):
    from tests.test_conference import started_meeting
    from tests.test_e2ee_keys import enter_and_admit, post, public_key, url_of

    server = small_redis("noeviction")
    with app_on(server.url):
        meeting, _room = started_meeting(alice, "secret")
        dana, dana_web = enter_and_admit(meeting, alice, "Dana")
        host_web = verified_client(alice)
        host_url = f"/meetings/{meeting.display_id}/room/e2ee/"
        assert post(dana_web, url_of(dana), {"public_key": public_key()}).status_code == 200
        fill(server)
        # Out of memory: a public key cannot be stored.
        _unavailable(post(dana_web, url_of(dana), {"public_key": public_key()}), json_body=True)
        _unavailable(post(host_web, host_url, {"public_key": public_key()}), json_body=True)
    with app_on(server.url.replace("/0", "/5")):
        # A bad database index: nothing can be read either.
        _unavailable(dana_web.get(url_of(dana)), json_body=True)
        _unavailable(host_web.get(host_url), json_body=True)
