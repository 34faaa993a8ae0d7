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

A redemption writes its session with the spent link and its audit row (`rotation`): on
PostgreSQL in the very statement that spends the link, elsewhere in its transaction; not
in a second transaction after the view. SessionMiddleware's save then finds the database
already has that data and only fills the cache.

SECURITY: deleting a session (sign-out, flush) still fails when the cache is down (a 503,
meetings.middleware): the cache would otherwise keep a session the database no longer has,
to be served again when Redis comes back. The key a redemption replaces is the exception
(see `SessionStore.save`): it is deleted from the database after the commit, and from the
cache when the cache answers.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, SessionBase
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
from django.db import DatabaseError
from django.utils.crypto import get_random_string

from meetings import sql

logger = logging.getLogger(__name__)


@dataclass
class Rotation:
    """A session's next state, written with a redemption (meetings.services.invitations):
    `inserts` holds its row under a new key, for the redemption's own statement; apply()
    (the winner only, after the commit) makes the session object that row, and deletes the
    key the browser came with. A key the browser came with, perhaps planted by someone
    else, never carries the redemption (cycle_key's reason).

    Stores that keep sessions elsewhere than the database: no row; apply() sets the data
    and calls cycle_key, after the commit.
    """

    session: SessionBase
    data: dict[str, Any]
    key: str | None
    inserts: Sequence[sql.Insert]

    def apply(self) -> None:
        session = self.session
        if self.key is None:
            session.update(self.data)
            session.cycle_key()
            return
        replaced = session.session_key
        session._session_cache = self.data  # type: ignore[attr-defined] # Django's, not in the stubs
        session._session_key = self.key
        session.modified = True  # SessionMiddleware sets the new cookie (and calls save())
        if isinstance(session, SessionStore):
            session._written = (self.key, copy.deepcopy(self.data))
            session._replaced_key = replaced
        elif replaced:
            _delete_replaced(lambda: session.delete(replaced))


def _delete_replaced(delete: Callable[[], None]) -> None:
    """Delete the key a redemption replaced, after its commit. A database error here is
    logged, not raised: the link is spent and the new key holds it, so a 500 now would
    lose the person their place; the old key keeps only what it held before (never the
    redemption) until it expires."""
    try:
        delete()
    except DatabaseError:
        logger.warning("a replaced session key could not be deleted; it expires on its own")


def rotation(session: SessionBase, updates: dict[str, Any]) -> Rotation:
    """The session with `updates`, under a new key (see Rotation); nothing written yet."""
    data = {**session._get_session(), **updates}  # type: ignore[attr-defined] # Django's, not in the stubs
    if not isinstance(session, DatabaseStore):
        return Rotation(session, data, None, ())
    key = new_key()
    row = sql.Insert(
        session.model,
        {"session_key": key, "session_data": session.encode(data), "expire_date": session.get_expiry_date()},
    )
    return Rotation(session, data, key, (row,))


def new_key() -> str:
    """A session key, not looked up first (see the module's docstring)."""
    return get_random_string(32, VALID_KEY_CHARS)


class SessionStore(cached_db.SessionStore):
    # (key, data) as a Rotation wrote them with a redemption; the key replaced.
    _written: tuple[str, dict[str, Any]] | None = None
    _replaced_key: str | None = None

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
            _delete_replaced(lambda: DatabaseStore.delete(self, replaced))
            try:
                self._session_cache_backend.delete(self.cache_key_prefix + replaced)
            except Exception:  # noqa: BLE001 - see the module's SECURITY note
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
        return new_key()

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
