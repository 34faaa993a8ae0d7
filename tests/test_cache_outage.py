"""With the cache (Redis) down, sign-in fails closed with a clear 503, never a 500.

django-axes keeps its failure counters in the cache when there is Redis; without them it
cannot tell a locked-out guesser from anyone else, so no password is checked at all.
"""

import json

import pytest
from axes.handlers.proxy import AxesProxyHandler
from django.test import Client, override_settings
from rest_framework.test import APIClient

from meetings.models import LobbyEntry
from tests.helpers import login_password_step, row_counts
from tests.join_helpers import book, join_data
from tests.real_services import unreachable_redis_caches

pytestmark = pytest.mark.django_db


@pytest.fixture
def cache_down():
    """The production set-up (Redis cache, axes counting in it), with nothing on the port."""
    with override_settings(
        CACHES=unreachable_redis_caches(), AXES_HANDLER="axes.handlers.cache.AxesCacheHandler"
    ):
        AxesProxyHandler.get_implementation(force=True)
        try:
            yield
        finally:
            AxesProxyHandler.implementation = None  # the next caller gets the restored settings'


def _sign_in_page_says_unavailable(response) -> None:
    assert response.status_code == 503
    assert response["Retry-After"]
    assert "text/html" in response["Content-Type"]
    assert b"temporarily unavailable" in response.content
    assert b"sessionid" not in response.get("Set-Cookie", "").encode()


def test_password_sign_in_with_the_cache_down_is_a_503_page(alice, password, cache_down):
    browser = Client()
    assert browser.get("/accounts/login/").status_code == 200
    _sign_in_page_says_unavailable(login_password_step(browser, "alice", password))
    # Failed closed: the browser is not signed in, and nothing it can reach says otherwise.
    assert browser.get("/meetings/").status_code == 302


def test_a_wrong_password_with_the_cache_down_is_the_same_503(alice, cache_down):
    _sign_in_page_says_unavailable(login_password_step(Client(), "alice", "not-the-password-at-all"))


def test_the_api_answers_json_503_where_it_needs_the_cache(alice_api, cache_down):
    meeting_id, passcode = book(alice_api)  # token auth and booking need no cache
    before = (*row_counts(), LobbyEntry.objects.count())
    joined = APIClient().post("/api/v1/join/", join_data(meeting_id, passcode), format="json")
    assert joined.status_code == 503
    assert joined["Content-Type"] == "application/json"
    assert "detail" in joined.json()
    assert (*row_counts(), LobbyEntry.objects.count()) == before


def test_any_api_view_failing_on_redis_answers_json_503(rf):
    """No API view needs the cache besides passcode joins today; the next one gets JSON too."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from meetings.middleware import CacheUnavailableMiddleware

    middleware = CacheUnavailableMiddleware(lambda request: None)
    request = rf.get("/api/v1/meetings/")
    response = middleware.process_exception(request, RedisConnectionError("Connection refused"))
    assert response.status_code == 503 and response["Retry-After"]
    assert "temporarily unavailable" in json.loads(response.content)["detail"]
    assert middleware.process_exception(request, ValueError("a bug, not an outage")) is None
