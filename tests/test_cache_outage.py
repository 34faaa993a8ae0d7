"""With the cache (Redis) down, no attempt goes uncounted, and nothing answers a 500.

Nothing that counts attempts lives in the cache: django-axes and the passcode limiter
count in the database, so with Redis down sign-in and passcode joins still count every
guess and lock as usual. What still needs the cache (signing out: the cached session must
go) answers a clear 503. tests/test_limiter_faults.py has Redis full and misconfigured.
"""

import json

import pytest
from axes.models import AccessAttempt
from django.test import Client, override_settings
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from meetings.models import AuditEvent, LobbyEntry
from tests.helpers import login_password_step
from tests.join_helpers import book, join_data
from tests.real_services import unreachable_redis_caches
from tests.test_join import wrong_passcode

pytestmark = pytest.mark.django_db


@pytest.fixture
def cache_down():
    """The production set-up (Redis cache, sessions read through it), with nothing on the port."""
    with override_settings(CACHES=unreachable_redis_caches(), SESSION_ENGINE="meetings.sessions"):
        yield


@pytest.fixture
def signed_in_then_cache_down(alice):
    """Alice signed in while the cache was up (sessions read through it); then it goes down."""
    with override_settings(SESSION_ENGINE="meetings.sessions"):
        browser = Client()
        browser.force_login(alice)
        with override_settings(CACHES=unreachable_redis_caches()):
            yield browser


def _sign_in_page_says_unavailable(response) -> None:
    assert response.status_code == 503
    assert response["Retry-After"]
    assert "text/html" in response["Content-Type"]
    assert b"temporarily unavailable" in response.content


def test_wrong_passwords_with_the_cache_down_are_counted_and_lock(alice, password, settings, cache_down):
    TOTPDevice.objects.create(user=alice, name="default", confirmed=True)
    limit = settings.AXES_FAILURE_LIMIT
    statuses = [
        login_password_step(Client(), "alice", f"not-the-password-{n}").status_code for n in range(limit)
    ]
    assert statuses == [200] * (limit - 1) + [429]  # the form again, with its error; then locked
    assert AccessAttempt.objects.get(username="alice").failures_since_start == settings.AXES_FAILURE_LIMIT
    # Locked: the right password is refused before it is checked; no token step.
    locked = login_password_step(Client(), "alice", password)
    assert locked.status_code == 429
    assert b"token-otp_token" not in locked.content


def test_a_right_password_with_the_cache_down_reaches_the_token_step(alice, password, cache_down):
    TOTPDevice.objects.create(user=alice, name="default", confirmed=True)
    browser = Client()
    response = login_password_step(browser, "alice", password)
    assert response.status_code == 200
    assert b"token-otp_token" in response.content
    assert browser.get("/meetings/").status_code == 302  # not signed in yet


def test_signing_out_with_the_cache_down_is_a_503_page(signed_in_then_cache_down):
    browser = signed_in_then_cache_down
    assert browser.get("/meetings/").status_code == 200  # read from the database
    # SECURITY: the cached copy of the session cannot be deleted: the person is told so.
    _sign_in_page_says_unavailable(browser.post("/accounts/logout/"))


def test_passcode_joins_with_the_cache_down_are_counted_and_lock(alice_api, settings, cache_down):
    settings.ANTECHAMBER_JOIN_MEETING_FAILURES = 3
    meeting_id, passcode = book(alice_api)
    wrong = [
        APIClient().post("/api/v1/join/", join_data(meeting_id, wrong_passcode(passcode)), format="json")
        for _ in range(3)
    ]
    assert [response.status_code for response in wrong] == [403, 403, 403]
    assert AuditEvent.objects.filter(action="passcode_join_failed").count() == 3
    locked = APIClient().post("/api/v1/join/", join_data(meeting_id, passcode), format="json")
    assert locked.status_code == 429
    assert locked["Content-Type"] == "application/json"
    assert not LobbyEntry.objects.exists()


@pytest.mark.parametrize("error", ["ConnectionError", "ResponseError", "OutOfMemoryError"])
def test_any_api_view_failing_on_redis_answers_json_503(rf, error):
    """Any Redis error (down, full, refusing commands), on any API view, is JSON 503."""
    from redis import exceptions

    from meetings.middleware import CacheUnavailableMiddleware

    middleware = CacheUnavailableMiddleware(lambda request: None)
    request = rf.get("/api/v1/meetings/")
    response = middleware.process_exception(request, getattr(exceptions, error)("from Redis"))
    assert response.status_code == 503 and response["Retry-After"]
    assert "temporarily unavailable" in json.loads(response.content)["detail"]
    assert middleware.process_exception(request, ValueError("a bug, not an outage")) is None
