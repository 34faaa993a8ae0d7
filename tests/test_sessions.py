"""Sessions read through Redis (meetings.sessions): with Redis down, a session is still
started and read (from the database); deleting one fails closed."""

import pytest
from django.contrib.sessions.backends import cached_db
from django.test import override_settings
from redis.exceptions import ConnectionError as RedisConnectionError

from meetings.sessions import SessionStore
from tests.real_services import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_down():
    closed = free_port()
    with override_settings(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": f"redis://127.0.0.1:{closed}/0",
                "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
            }
        }
    ):
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
