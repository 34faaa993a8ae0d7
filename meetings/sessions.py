"""Sessions in the database, read through Redis (SESSION_ENGINE when REDIS_URL is set).

Django's cached_db store saves to the database and then to the cache (a cache error on
save is logged), but raises when the cache is down while it checks whether a new key
exists or re-caches a session it had to read from the database. This store reads from
the database instead in those two places, so that with Redis down a page that only
reads or starts a session still works, as it did with database sessions.

A new session key is not looked up first (Django asks the cache and the database whether
a fresh random key exists): a collision of 32 random characters is caught anyway by the
database's primary key, which `create()` turns into another try. One database and one
Redis round trip fewer for every session started (each redemption of a join link).

SECURITY: deleting a session (sign-out, flush) still fails when the cache is down (a 503,
meetings.middleware): the cache would otherwise keep a session the database no longer has,
to be served again when Redis comes back.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
from django.utils.crypto import get_random_string

logger = logging.getLogger(__name__)


class SessionStore(cached_db.SessionStore):
    @property
    def _session_cache_backend(self) -> Any:
        return self._cache  # type: ignore[attr-defined] # set by cached_db, not in the stubs

    def _get_new_session_key(self) -> str:
        # save(must_create=True) raises CreateError on a duplicate; create() then retries.
        return get_random_string(32, VALID_KEY_CHARS)

    def exists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        try:
            if (self.cache_key_prefix + session_key) in self._session_cache_backend:
                return True
        except Exception as exc:  # noqa: BLE001 - any cache failure: the database decides
            logger.warning("session cache unavailable, checked the database (%s)", type(exc).__name__)
        return DatabaseStore.exists(self, session_key)

    def load(self) -> dict[str, Any]:
        try:
            data = self._session_cache_backend.get(self.cache_key)
        except Exception:  # noqa: BLE001 - as Django's cached_db: read the database
            data = None
        if data is not None:
            return data
        stored = self._get_session_from_db()  # type: ignore[attr-defined] # Django's, not in the stubs
        if not stored:
            return {}
        data = self.decode(stored.session_data)
        try:
            self._session_cache_backend.set(
                self.cache_key, data, self.get_expiry_age(expiry=stored.expire_date)
            )
        except Exception as exc:  # noqa: BLE001 - served from the database this time
            logger.warning("session cache unavailable, read the database (%s)", type(exc).__name__)
        return data
