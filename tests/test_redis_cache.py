"""The Redis cache backend (scheduler/redis_cache.py): one redis-py client per pool."""

import uuid

import pytest
import redis
from django.conf import settings

from scheduler.redis_cache import ReusedClientRedisCache
from tests.real_services import missing


@pytest.mark.services
def test_every_cache_operation_uses_the_one_client_of_its_pool(monkeypatch):
    if not settings.REDIS_URL:
        missing("needs REDIS_URL (a real Redis)")
    cache = ReusedClientRedisCache(settings.REDIS_URL, {"KEY_PREFIX": f"test-{uuid.uuid4().hex}"})
    first = cache._cache.get_client()
    built = []
    original = redis.Redis.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting)
    cache.set("session", {"invitation": 7}, 30)
    assert cache.get("session") == {"invitation": 7}
    assert cache.add("session", "other", 30) is False
    cache.delete("session")
    assert cache.get("session") is None
    assert built == []  # Django's own backend builds a client for each of these five
    assert cache._cache.get_client(write=True) is first
