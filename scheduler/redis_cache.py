"""Django's Redis cache, with one redis-py client per connection pool instead of one per call.

Django's RedisCacheClient.get_client builds a new `redis.Redis` for every cache operation,
and redis-py's constructor fills a table of about 170 response callbacks each time: some
80 microseconds, about half of a SET on loopback (measured, docs/BENCHMARKS.md). A client
holds nothing but its pool and that table, and is safe to share between threads (the pool
hands each command its own connection), so one per pool is kept. After a fork the pool
notices the new process and opens new connections, as it does for Django's clients.

SESSION_ENGINE's store and the join limiter (meetings.limits) use it through CACHES.
"""

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class ReusedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined] # Django's, untyped
        client = self._clients.get(id(pool))
        if client is None:
            # Two threads may both build one here: the second simply replaces the first.
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class ReusedClientRedisCache(RedisCache):
    """CACHES backend: django.core.cache.backends.redis.RedisCache otherwise unchanged."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient
