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

A redemption writes its session inside its own transaction (`write_rotated`): the
session's row commits with the spent link and its audit row, one COMMIT (one WAL flush)
instead of a second transaction after the view; SessionMiddleware's save then finds the
database already has that data and only fills the cache.

SECURITY: deleting a session (sign-out, flush) still fails when the cache is down (a 503,
meetings.middleware): the cache would otherwise keep a session the database no longer has,
to be served again when Redis comes back. The key a redemption replaces is the exception
(see `write_rotated`).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, SessionBase
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
from django.db import connections, router
from django.utils.crypto import get_random_string

logger = logging.getLogger(__name__)


def write_rotated(session: SessionBase) -> None:
    """Call inside the transaction that gives `session` what it now carries (a redeemed
    link): the session gets a new key (cycle_key: a key the browser came with, perhaps
    planted by someone else, never carries the redemption) and is written to the database
    in that transaction, with the data it holds now.

    Other stores (the database store without Redis): Django's cycle_key, inside the same
    transaction; SessionMiddleware then saves once more, as it always did.
    """
    if isinstance(session, SessionStore):
        session.write_rotated()
    else:
        session.cycle_key()


class SessionStore(cached_db.SessionStore):
    # (key, data) as write_rotated wrote them in the caller's transaction; the key replaced.
    _written: tuple[str, dict[str, Any]] | None = None
    _replaced_key: str | None = None

    def write_rotated(self) -> None:
        """See the module's write_rotated: one INSERT under a new key, and the DELETE of
        the key the browser came with (if the database had it), in the caller's transaction.

        A fresh key that exists already (32 random characters: not expected) is skipped by
        ON CONFLICT DO NOTHING, which does not abort the caller's transaction, and another
        is drawn. The old key's cached copy is deleted by save(), after the commit; with
        Redis down that copy stays there until it expires (logged): it holds only what the
        old key held before, never the redemption.
        """
        data = self._data()  # loads the session the browser came with: its key may be unknown
        replaced = self.session_key
        model = self.model
        using = router.db_for_write(model)
        connection = connections[using]
        quote = connection.ops.quote_name
        table = quote(model._meta.db_table)
        key_column = quote(model._meta.get_field("session_key").column)
        data_column = quote(model._meta.get_field("session_data").column)
        expiry_column = quote(model._meta.get_field("expire_date").column)
        encoded = self.encode(data)
        expires = connection.ops.adapt_datetimefield_value(self.get_expiry_date())
        with connection.cursor() as cursor:
            while True:
                key = self._get_new_session_key()
                cursor.execute(
                    f"INSERT INTO {table} ({key_column}, {data_column}, {expiry_column}) "  # noqa: S608 - names from the model
                    f"VALUES (%s, %s, %s) ON CONFLICT ({key_column}) DO NOTHING",
                    [key, encoded, expires],
                )
                if cursor.rowcount == 1:
                    break
            if replaced:
                cursor.execute(f"DELETE FROM {table} WHERE {key_column} = %s", [replaced])  # noqa: S608
        self._session_key = key
        self._written = (key, copy.deepcopy(data))
        self._replaced_key = replaced
        self.modified = True  # SessionMiddleware sets the new cookie (and calls save())

    def save(self, must_create: bool = False) -> None:
        written, self._written = self._written, None
        if written is not None and not must_create and written == (self.session_key, self._data()):
            # The database has exactly this (written in the redemption's transaction).
            try:
                self._session_cache_backend.set(self.cache_key, self._data(), self.get_expiry_age())
            except Exception:  # noqa: BLE001 - as cached_db's save: the database has it
                logger.warning("session cache unavailable, saved to the database only")
        else:
            super().save(must_create)
        replaced, self._replaced_key = self._replaced_key, None
        if replaced:
            try:
                self._session_cache_backend.delete(self.cache_key_prefix + replaced)
            except Exception:  # noqa: BLE001 - see write_rotated
                logger.warning(
                    "session cache unavailable, a replaced session key stays cached until it expires"
                )

    def _data(self) -> dict[str, Any]:
        """The session's data, loaded if need be (Django's `_session`, not in the stubs)."""
        data: dict[str, Any] = self._get_session()  # type: ignore[attr-defined]
        return data

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
