"""Sessions read through Redis (meetings.sessions): with Redis down, a session is still
started and read (from the database); deleting one fails closed. A redemption writes its
session, under a new key, in the redemption's own transaction."""

import re

import pytest
from django.contrib.sessions.backends import cached_db
from django.db import DatabaseError, connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from redis.exceptions import ConnectionError as RedisConnectionError

from meetings import selectors, sessions
from meetings.models import AuditEvent, JoinLink, OutboundMessage, Session
from meetings.services import invitations
from meetings.sessions import SessionStore, open_data, row_id
from tests.helpers import booking_body, token_of
from tests.real_services import free_port, unreachable_redis_caches

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_down():
    with override_settings(CACHES=unreachable_redis_caches()):
        yield


def test_with_redis_down_a_session_is_started_and_read_from_the_database(redis_down):
    started = SessionStore()
    started["invitation"] = 7
    started.save()  # a new key: checked and stored in the database
    assert SessionStore(started.session_key).load() == {"invitation": 7}
    assert SessionStore().exists(started.session_key)


def test_django_cached_db_alone_fails_there(redis_down):
    with pytest.raises(RedisConnectionError):
        cached_db.SessionStore().save()


def test_with_redis_down_deleting_a_session_fails_closed(redis_down):
    started = SessionStore()
    started.save()
    with pytest.raises(RedisConnectionError):
        SessionStore(started.session_key).delete()


def test_with_redis_up_a_session_is_read_from_the_cache(settings, django_assert_num_queries):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    started = SessionStore()
    started["invitation"] = 7
    started.save()
    with django_assert_num_queries(0):
        assert SessionStore(started.session_key).load() == {"invitation": 7}


def test_starting_a_session_does_not_look_its_new_key_up_first(monkeypatch, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

    def looked_up(self, session_key):
        raise AssertionError("a new random key was looked up")

    monkeypatch.setattr(SessionStore, "exists", looked_up)
    started = SessionStore()
    started.create()
    assert started.session_key and len(started.session_key) == 32
    monkeypatch.undo()
    assert SessionStore().exists(started.session_key)


def test_a_colliding_key_is_caught_by_the_database_and_another_is_made(monkeypatch, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    first = SessionStore()
    first.create()
    keys = iter([first.session_key, "k" * 32])
    monkeypatch.setattr(SessionStore, "_get_new_session_key", lambda self: next(keys))
    second = SessionStore()
    second.create()
    assert second.session_key == "k" * 32


# --- A redemption's session: written in the redemption's own transaction, under a new key ---

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def _invite(alice_api) -> tuple[str, str]:
    """Book with two invitees; their two tokens (opened from the sealed outbox rows)."""
    booked = alice_api.post(
        "/api/v1/meetings/",
        booking_body(invitees=["ann@example.org", "bea@example.org"]),
        format="json",
    ).json()
    assert "id" in booked, booked
    first, second = OutboundMessage.objects.filter(kind="invitation").order_by("id")
    return token_of(first), token_of(second)


def _redeem(browser, token: str, name: str = ""):
    page = browser.get(f"/j/{token}/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    return browser.post(f"/j/{token}/", {"csrfmiddlewaretoken": csrf, "display_name": name})


def test_a_redemption_commits_its_session_with_the_spent_link(alice_api, settings):
    """The spent link, its audit row and the session's row commit together (in a test's
    transaction: one savepoint); SessionMiddleware writes nothing to the database after it.
    On PostgreSQL the three are one statement."""
    settings.SESSION_ENGINE = "meetings.sessions"
    settings.CACHES = LOCMEM
    token, _ = _invite(alice_api)
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(f"/j/{token}/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    with CaptureQueriesContext(connection) as captured:
        response = browser.post(f"/j/{token}/", {"csrfmiddlewaretoken": csrf, "display_name": "Ann"})
    assert response.status_code == 302
    statements = [query["sql"].split(None, 1)[0].upper() for query in captured.captured_queries]
    assert statements.count("SAVEPOINT") == 1, statements  # one transaction, not two
    begin, end = statements.index("SAVEPOINT"), statements.index("RELEASE")
    inside = [query["sql"] for query in captured.captured_queries[begin + 1 : end]]
    writes = (
        'UPDATE "meetings_joinlink"',
        'INSERT INTO "meetings_auditevent"',
        'INSERT INTO "meetings_session"',
    )
    if connection.vendor == "postgresql":
        [statement] = inside
        assert all(write in statement for write in writes), statement
    else:
        assert [next(w for w in writes if sql.startswith(w)) for sql in inside] == list(writes)
    after = [query["sql"] for query in captured.captured_queries[end + 1 :]]
    assert not any("meetings_session" in sql for sql in after), after  # (a key it came with: a DELETE)
    # What the middleware put in the cache is what the database has, under the cookie's key.
    key = response.cookies[settings.SESSION_COOKIE_NAME].value
    cached = SessionStore(key).load()
    [invitation_id] = cached["antechamber.invitations"]
    assert cached["antechamber.invited_names"] == {invitation_id: "Ann"}
    assert open_data(key, Session.objects.get(session_key=row_id(key)).session_data) == cached
    waiting = browser.get(response["Location"], follow=True)
    assert waiting.status_code == 200 and "the host will let you in" in waiting.content.decode()


@pytest.mark.parametrize("engine", ["meetings.sessions", "meetings.sessions_db"])
def test_a_redemption_gives_the_browser_session_a_new_key(alice_api, settings, engine):
    """cycle_key at redemption: a session key the browser came with (perhaps planted by
    someone else) never carries the redeemed invitation; the browser keeps what it had."""
    settings.SESSION_ENGINE = engine
    settings.CACHES = LOCMEM
    first_token, second_token = _invite(alice_api)
    browser = Client(enforce_csrf_checks=True)
    first = _redeem(browser, first_token, "Ann")
    assert first.status_code == 302
    first_key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    planted = Client()
    planted.cookies[settings.SESSION_COOKIE_NAME] = first_key  # someone who knows the old key

    second = _redeem(browser, second_token, "Bea")
    assert second.status_code == 302
    second_key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    assert second_key != first_key
    assert not Session.objects.filter(session_key=row_id(first_key)).exists()
    assert planted.get(second["Location"]).status_code == 404  # the old key: nothing
    assert planted.get(first["Location"]).status_code == 404  # not even what it had
    # The browser holds both invitations under its new key.
    assert browser.get(first["Location"]).status_code == 302
    assert browser.get(second["Location"]).status_code == 302


def test_a_fresh_key_that_exists_already_undoes_the_redemption_and_it_is_tried_again(
    alice_api, monkeypatch, settings
):
    """The session's row fails on its key: nothing of that try is kept (on PostgreSQL the
    whole statement fails), and the next try, with a new key, spends the link once."""
    settings.SESSION_ENGINE = "meetings.sessions"
    settings.CACHES = LOCMEM
    token, _ = _invite(alice_api)
    other = SessionStore()
    other["invitation"] = 7
    other.create()
    keys = iter([other.session_key, "k" * 32])
    monkeypatch.setattr(sessions, "new_key", lambda: next(keys))
    browser = Client(enforce_csrf_checks=True)
    assert _redeem(browser, token, "Ann").status_code == 302
    assert browser.cookies[settings.SESSION_COOKIE_NAME].value == "k" * 32
    assert "antechamber.invitations" in SessionStore("k" * 32).load()
    assert SessionStore(other.session_key).load() == {"invitation": 7}  # the other session is untouched
    assert AuditEvent.objects.filter(action="invitation_redeemed").count() == 1
    assert JoinLink.objects.filter(redeemed_at__isnull=False).count() == 1


def test_a_redemption_inside_another_transaction_is_refused_and_spends_nothing(alice_api):
    """The winner's session is applied as soon as the spend returns: inside a transaction
    that could still roll the spend back, a browser would hold a redemption that never
    happened, and the link would stay live for someone else."""
    token, _ = _invite(alice_api)
    link = selectors.link_by_token(token)
    with pytest.raises(RuntimeError), transaction.atomic():
        invitations.invitation_redeem(link=link, user=None, has_second_factor=False)
    link.refresh_from_db()
    assert link.redeemed_at is None
    assert not AuditEvent.objects.filter(action="invitation_redeemed").exists()


def test_a_replaced_key_that_cannot_be_deleted_does_not_undo_the_redemption(alice_api, monkeypatch, settings):
    """The old key is deleted after the commit: a database error there is logged, and the
    browser keeps the redemption under its new key (a 500 would lose the spent link)."""
    settings.SESSION_ENGINE = "meetings.sessions"
    settings.CACHES = LOCMEM
    first_token, second_token = _invite(alice_api)
    browser = Client(enforce_csrf_checks=True)
    first = _redeem(browser, first_token, "Ann")
    first_key = browser.cookies[settings.SESSION_COOKIE_NAME].value

    def failing(self, session_key=None):
        raise DatabaseError("the database went away")

    monkeypatch.setattr(sessions.DatabaseStore, "delete", failing)
    second = _redeem(browser, second_token, "Bea")
    assert second.status_code == 302
    assert browser.cookies[settings.SESSION_COOKIE_NAME].value != first_key
    assert browser.get(first["Location"]).status_code == 302  # both invitations, new key
    assert browser.get(second["Location"]).status_code == 302


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_one_statement_commits_the_session_and_the_old_key_goes(
    alice_api, settings
):
    """As in production (no test transaction around it): the session row committed with
    the spend carries the redemption, and the key the browser came with is deleted."""
    settings.SESSION_ENGINE = "meetings.sessions"
    settings.CACHES = LOCMEM
    first_token, second_token = _invite(alice_api)
    browser = Client(enforce_csrf_checks=True)
    assert _redeem(browser, first_token, "Ann").status_code == 302
    first_key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    assert _redeem(browser, second_token, "Bea").status_code == 302
    second_key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    assert not Session.objects.filter(session_key=row_id(first_key)).exists()
    stored = open_data(second_key, Session.objects.get(session_key=row_id(second_key)).session_data)
    assert len(stored["antechamber.invitations"]) == 2
    assert sorted(stored["antechamber.invited_names"].values()) == ["Ann", "Bea"]
    assert JoinLink.objects.filter(redeemed_at__isnull=False).count() == 2


def test_with_redis_down_a_link_is_still_redeemed_and_its_session_kept(alice_api, settings):
    token, _ = _invite(alice_api)  # booking needs the cache; the outage starts after it
    closed = free_port()
    settings.SESSION_ENGINE = "meetings.sessions"
    settings.CACHES = {
        "default": {
            "BACKEND": "scheduler.redis_cache.ReusedClientRedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    browser = Client(enforce_csrf_checks=True)
    redeemed = _redeem(browser, token, "Ann")
    assert redeemed.status_code == 302
    key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    stored = SessionStore(key).load()  # from the database
    [invitation_id] = stored["antechamber.invitations"]
    assert stored["antechamber.invited_names"] == {invitation_id: "Ann"}
