"""Browser sessions (SESSION_ENGINE, always): `DatabaseStore` without Redis, `SessionStore`
(the database, read through Redis) with it.

SECURITY: the cookie's key is the only copy of a session key. At rest a session is
- named by row_id(key), a keyed digest (meetings.sealing.keyed_digest, a key not in the
  database): the database row's primary key and the Redis key name, so a `pg_dump` or a
  Redis dump gives no key a browser could present;
- sealed (AES-GCM) under a key derived from the session key itself and a secret not in
  the database (keyed_digest again, a label of its own): the row and the Redis value say
  nothing of what the session holds (a second factor's enrolment key, an onboarding
  token, a lobby entry's secret, the invitations it redeemed).
Sessions kept by the store before these (django_session, Redis entries named by the raw
key) were ended by migration 0016.

With Redis, Django's cached_db saves to the database and then to the cache (a cache
error on save is logged), but raises when the cache is down while it checks whether a new
key exists or re-caches a session it had to read from the database. This store reads from
the database instead in those two places, so that with Redis down a page that only reads
or starts a session still works.

A new session key is not looked up first (Django asks the cache and the database whether
a fresh random key exists): a collision of 32 random characters is caught anyway by the
database's primary key, which `create()` turns into another try.

A redemption writes its session with the spent link and its audit row (`rotation`): on
PostgreSQL in the very statement that spends the link, elsewhere in its transaction; not
in a second transaction after the view. SessionMiddleware's save then finds the database
already has that data and only fills the cache.

SECURITY: deleting a session (sign-out, flush) still fails when the cache is down (a 503,
meetings.middleware): the cache would otherwise keep a session the database no longer has,
to be served again when Redis comes back. The key a redemption replaces is the exception
(see `DatabaseStore.save`): it is deleted from the database after the commit, and from the
cache when the cache answers.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, SessionBase
from django.core import signing
from django.core.cache import caches
from django.db import DatabaseError
from django.utils import timezone
from django.utils.crypto import get_random_string

from meetings import sql
from meetings.sealing import keyed_digest, subkeys

logger = logging.getLogger(__name__)

ID_LABEL = b"antechamber session id v1"
DATA_LABEL = b"antechamber session data v1"
# Redis key names: prefix + row_id(key), never the key (entries of the store before this
# one, under Django's prefix and the raw key, are not read).
CACHE_PREFIX = "antechamber.session.v1:"
_NONCE_BYTES = 12


def row_id(key: str, index: int = 0) -> str:
    """The name a session is stored under: the keyed digest of its key (under the current
    secret, or with `index` the index-th of meetings.sealing.subkeys)."""
    return keyed_digest(key, label=ID_LABEL, key=subkeys(ID_LABEL)[index])


def row_ids(key: str) -> list[str]:
    """The names a session may be stored under: the current secret's, then the fallbacks'."""
    return [row_id(key, index) for index in range(len(subkeys(ID_LABEL)))]


def _data_key(key: str, index: int) -> bytes:
    return bytes.fromhex(keyed_digest(key, label=DATA_LABEL, key=subkeys(DATA_LABEL)[index]))


def seal_data(key: str, data: dict[str, Any]) -> str:
    """The session's data, encrypted under a key that only its session key (with a secret
    not in the database) gives."""
    nonce = os.urandom(_NONCE_BYTES)
    plain = signing.JSONSerializer().dumps(data)
    return base64.b64encode(nonce + AESGCM(_data_key(key, 0)).encrypt(nonce, plain, None)).decode()


def open_data(key: str, sealed: str, index: int = 0) -> dict[str, Any] | None:
    """The data seal_data sealed, or None when it does not open (another key, altered)."""
    try:
        raw = base64.b64decode(sealed, validate=True)
        plain = AESGCM(_data_key(key, index)).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], None)
        data = signing.JSONSerializer().loads(plain)
    except (InvalidTag, binascii.Error, ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _user_id(data: dict[str, Any]) -> int | None:
    """The signed-in user's id (django.contrib.auth keeps it as text), for the row's user."""
    try:
        return int(data["_auth_user_id"])
    except (KeyError, TypeError, ValueError):
        return None


def new_key() -> str:
    """A session key, not looked up first (see the module's docstring)."""
    return get_random_string(32, VALID_KEY_CHARS)


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
    dropped: Sequence[str] = ()

    def apply(self) -> None:
        session = self.session
        if self.key is None or not isinstance(session, DatabaseStore):
            session.update(self.data)
            for name in self.dropped:
                session.pop(name, None)
            session.cycle_key()
            return
        replaced = session.session_key
        session._session_cache = self.data  # type: ignore[attr-defined] # Django's, not in the stubs
        session._session_key = self.key
        session.modified = True  # SessionMiddleware sets the new cookie (and calls save())
        [row] = self.inserts
        session._written = (self.key, self.data, str(row.values["session_data"]))
        session._replaced_key = replaced


def _delete_replaced(delete: Callable[[], None]) -> None:
    """Delete the key a redemption replaced, after its commit. A database error here is
    logged, not raised: the link is spent and the new key holds it, so a 500 now would
    lose the person their place; the old key keeps only what it held before (never the
    redemption) until it expires."""
    try:
        delete()
    except DatabaseError:
        logger.warning("a replaced session key could not be deleted; it expires on its own")


def rotation(session: SessionBase, updates: dict[str, Any], *, drop: Sequence[str] = ()) -> Rotation:
    """The session with `updates` and without `drop`, under a new key (see Rotation);
    nothing written yet."""
    data = {**session._get_session(), **updates}  # type: ignore[attr-defined] # Django's, not in the stubs
    for name in drop:
        data.pop(name, None)
    if not isinstance(session, DatabaseStore):
        return Rotation(session, data, None, (), tuple(drop))
    key = new_key()
    row = sql.Insert(
        session.model,
        {
            "session_key": row_id(key),
            "session_data": seal_data(key, data),
            "expire_date": session.get_expiry_date(),
            "user_id": _user_id(data),
        },
    )
    return Rotation(session, data, key, (row,), tuple(drop))


class DatabaseStore(db.SessionStore):
    """Sessions in the database only (SESSION_ENGINE without Redis): keys as digests, data
    sealed (the module's docstring)."""

    # (key, data, sealed) as a Rotation wrote them with a redemption; the key replaced.
    _written: tuple[str, dict[str, Any], str] | None = None
    _replaced_key: str | None = None
    # The sealed data last written or read, for the cache (no second encryption).
    _sealed: str | None = None

    @classmethod
    def get_model_class(cls) -> Any:
        from meetings.models import Session

        return Session

    def _get_new_session_key(self) -> str:
        # save(must_create=True) raises CreateError on a duplicate; create() then retries.
        return new_key()

    def create_model_instance(self, data: dict[str, Any]) -> Any:
        key = self._get_or_create_session_key()  # type: ignore[attr-defined] # Django's, not in the stubs
        self._sealed = seal_data(key, data)
        return self.model(
            session_key=row_id(key),
            session_data=self._sealed,
            expire_date=self.get_expiry_date(),
            user_id=_user_id(data),  # type: ignore[misc] # our Session model's, not the base's
        )

    def _get_session_from_db(self) -> Any:
        """The live row for this key (under the current secret or a fallback's), or None."""
        key = self.session_key
        if key is None:
            return None
        ids = row_ids(key)
        found = {
            row.session_key: row
            for row in self.model.objects.filter(session_key__in=ids, expire_date__gt=timezone.now())
        }
        for index, name in enumerate(ids):
            row = found.get(name)
            if row is None:
                continue
            data = open_data(key, row.session_data, index)
            if data is None:
                break
            if index:
                # Made under a fallback secret: stored again under the current one.
                self._sealed = seal_data(key, data)
                self.model.objects.filter(session_key=name).update(
                    session_key=row_id(key), session_data=self._sealed
                )
            else:
                self._sealed = row.session_data
            row.opened = data  # type: ignore[attr-defined] # carried to load(), not a field
            return row
        self._session_key = None
        return None

    def load(self) -> dict[str, Any]:
        row = self._get_session_from_db()
        return dict(row.opened) if row is not None else {}

    def exists(self, session_key: str | None) -> bool:
        return bool(session_key) and self.model.objects.filter(session_key=row_id(str(session_key))).exists()

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self.model.objects.filter(session_key__in=row_ids(session_key)).delete()

    def save(self, must_create: bool = False) -> None:
        written, self._written = self._written, None
        if written is not None and not must_create and written[:2] == (self.session_key, self._data()):
            # The database has exactly this (written in the redemption's transaction).
            self._sealed = written[2]
            self._saved_elsewhere()
        else:
            self._save(must_create)
        replaced, self._replaced_key = self._replaced_key, None
        if replaced:
            _delete_replaced(lambda: DatabaseStore.delete(self, replaced))
            self._forget_replaced(replaced)

    def _save(self, must_create: bool) -> None:
        super().save(must_create)

    def _saved_elsewhere(self) -> None:
        """A redemption wrote the row: nothing more for the database alone."""

    def _forget_replaced(self, replaced: str) -> None:
        """Nothing but the database to forget a replaced key in."""

    def _data(self) -> dict[str, Any]:
        """The session's data, loaded if need be (Django's `_session`, not in the stubs)."""
        data: dict[str, Any] = self._get_session()  # type: ignore[attr-defined]
        return data

    # SECURITY: Django's async variants would name rows and cache entries by the raw key.
    async def aload(self) -> dict[str, Any]:
        raise NotImplementedError("sessions are synchronous here")

    async def asave(self, must_create: bool = False) -> None:
        raise NotImplementedError("sessions are synchronous here")

    async def adelete(self, session_key: str | None = None) -> None:
        raise NotImplementedError("sessions are synchronous here")

    async def aexists(self, session_key: str | None) -> bool:
        raise NotImplementedError("sessions are synchronous here")


class SessionStore(DatabaseStore):
    """The database, read through Redis (SESSION_ENGINE with REDIS_URL): the cache holds
    the row's sealed data under CACHE_PREFIX + row_id(key)."""

    cache_key_prefix = CACHE_PREFIX

    def __init__(self, session_key: str | None = None) -> None:
        self._cache = caches[settings.SESSION_CACHE_ALIAS]
        super().__init__(session_key)

    @property
    def cache_key(self) -> str:
        return self.cache_key_prefix + row_id(self._get_or_create_session_key())  # type: ignore[attr-defined]

    def load(self) -> dict[str, Any]:
        key = self.session_key
        if key is None:
            return {}
        try:
            sealed = self._cache.get(self.cache_key)
        except Exception:  # noqa: BLE001 - as Django's cached_db: read the database
            sealed = None
        if isinstance(sealed, str):
            data = open_data(key, sealed)
            if data is not None:
                return data
        row = self._get_session_from_db()
        if row is None:
            return {}
        try:
            self._cache.set(self.cache_key, self._sealed, self.get_expiry_age(expiry=row.expire_date))
        except Exception as exc:  # noqa: BLE001 - served from the database this time
            logger.warning("session cache unavailable, read the database (%s)", type(exc).__name__)
        return dict(row.opened)

    def exists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        try:
            if (self.cache_key_prefix + row_id(session_key)) in self._cache:
                return True
        except Exception as exc:  # noqa: BLE001 - any cache failure: the database decides
            logger.warning("session cache unavailable, checked the database (%s)", type(exc).__name__)
        return DatabaseStore.exists(self, session_key)

    def _save(self, must_create: bool) -> None:
        super()._save(must_create)
        self._saved_elsewhere()

    def _saved_elsewhere(self) -> None:
        try:
            self._cache.set(self.cache_key, self._sealed, self.get_expiry_age())
        except Exception:  # noqa: BLE001 - as cached_db's save: the database has it
            logger.warning("session cache unavailable, saved to the database only")

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        DatabaseStore.delete(self, session_key)
        # SECURITY: raises when the cache is down (the module's docstring).
        self._cache.delete_many([self.cache_key_prefix + name for name in row_ids(session_key)])

    def _forget_replaced(self, replaced: str) -> None:
        try:
            self._cache.delete(self.cache_key_prefix + row_id(replaced))
        except Exception:  # noqa: BLE001 - see the module's SECURITY note
            logger.warning("session cache unavailable, a replaced session key stays cached until it expires")

    def flush(self) -> None:
        self.clear()
        self.delete(self.session_key)
        self._session_key = None


def no_session_on_get(view: Callable[..., Any]) -> Callable[..., Any]:
    """A GET (or HEAD) of `view` by a browser with no session starts none.

    SECURITY: a session starts when the person submits something. A page that writes its
    session while it is merely viewed (the sign-in wizard keeps its step there) would let
    anyone fill the database and Redis with sessions, one per fetch. The page is rendered
    first (a template may still read the session), then what it wrote is dropped, so
    SessionMiddleware saves nothing and sets no cookie.
    """

    @functools.wraps(view)
    def wrapped(request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.method not in ("GET", "HEAD"):
            return view(request, *args, **kwargs)
        had_none = request.session.is_empty() or not request.session.keys()
        response = view(request, *args, **kwargs)
        if had_none and not request.user.is_authenticated:
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
            request.session.clear()
        return response

    return wrapped
