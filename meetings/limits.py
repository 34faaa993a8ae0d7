"""Rate limits for passcode joins, kept in the shared Django cache (Redis in production).

A slot is *reserved* (an atomic increment) before any argon2 work and released again
when the attempt turns out not to be a failure. So the counter is "failures plus
attempts in flight", and however many processes and threads share the cache, at most
`limit` verifications can ever run for one meeting within a window.

Nothing here touches the database.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class LimiterUnavailable(Exception):
    """The cache cannot be reached: passcode joins must fail closed."""


@dataclass(frozen=True)
class Reservation:
    """Slots held for one attempt: release them unless the attempt failed."""

    meeting_key: str
    client_key: str
    meeting_count: int  # this attempt's position in the meeting's window


@dataclass(frozen=True)
class Limited:
    scope: str  # "meeting" or "client"


def _cache() -> BaseCache:
    return caches["default"]


def _window() -> int:
    return int(settings.ANTECHAMBER_JOIN_WINDOW_SECONDS)


def meeting_key(public_id: str) -> str:
    return f"join:meeting:{public_id}"


def notified_key(public_id: str) -> str:
    return f"join:notified:{public_id}"


def client_key(address: str) -> str:
    return f"join:client:{address}"


def _reserve(key: str) -> int:
    cache = _cache()
    window = _window()
    for _attempt in range(3):
        cache.add(key, 0, window)  # starts the window; does nothing if it already runs
        try:
            count = int(cache.incr(key))
        except ValueError:  # the window expired between add and incr: start a new one
            continue
        if count <= 1:
            # SECURITY: if the key expired between the backend's existence check and its
            # INCR (or a release's DECR), Redis recreates it without a TTL, which would
            # lock the meeting for good. Setting the TTL again whenever the count is at
            # its start covers that (and is harmless otherwise: the window just began).
            cache.touch(key, window)
        return count
    raise LimiterUnavailable("the limiter key kept expiring")


def _release(key: str) -> None:
    with contextlib.suppress(ValueError):  # the window passed meanwhile: nothing to give back
        _cache().decr(key)


def _redis_client() -> Any | None:
    """The raw Redis client behind the cache, or None for other backends (tests, make run)."""
    cache = _cache()
    inner = getattr(cache, "_cache", None)
    get_client = getattr(inner, "get_client", None)
    if not isinstance(cache, RedisCache) or get_client is None:
        return None
    return get_client(write=True)


def _reserve_both(c_key: str, m_key: str) -> tuple[int, int]:
    """Both increments in one round trip where the cache is Redis (the flood benchmark's
    profile: the limiter's round trips were a third of a refused attempt's cost).

    INCR creates a missing key at 1; EXPIRE … NX then starts its window, and only then.
    MULTI makes the pair atomic, so a key can never be left without a TTL.
    """
    client = _redis_client()
    if client is None:
        return _reserve(c_key), _reserve(m_key)
    cache = _cache()
    window = _window()
    keys = [cache.make_and_validate_key(c_key), cache.make_and_validate_key(m_key)]
    pipe = client.pipeline(transaction=True)
    for key in keys:
        pipe.incr(key)
        pipe.expire(key, window, nx=True)
    c_count, _c_ttl, m_count, _m_ttl = pipe.execute()
    return int(c_count), int(m_count)


def reserve(*, public_id: str, address: str) -> Reservation | Limited:
    """Take one slot per meeting and per client address, or say which limit refuses.

    SECURITY: keyed by the meeting ID as typed (normalised), whether or not such a meeting
    exists, so an unknown ID locks exactly like a real one and the lock reveals nothing.
    Raises LimiterUnavailable when the cache is down: no passcode may be checked then.
    """
    m_key, c_key = meeting_key(public_id), client_key(address)
    try:
        client_count, count = _reserve_both(c_key, m_key)
        if client_count > settings.ANTECHAMBER_JOIN_CLIENT_FAILURES:
            # Refused before any work: the meeting slot is not used.
            _release(m_key)
            return Limited("client")
        if count > settings.ANTECHAMBER_JOIN_MEETING_FAILURES:
            # Refused before any work: the client slot is not used.
            _release(c_key)
            return Limited("meeting")
    except (RedisError, OSError) as exc:
        logger.error("join limiter unavailable: %s", exc)
        raise LimiterUnavailable(str(exc)) from exc
    return Reservation(meeting_key=m_key, client_key=c_key, meeting_count=count)


def release(reservation: Reservation) -> None:
    """The attempt was not a failure (right passcode): give both slots back."""
    try:
        _release(reservation.meeting_key)
        _release(reservation.client_key)
    except (RedisError, OSError) as exc:
        # Failing to give a slot back only makes the limit stricter: log, carry on.
        logger.warning("join limiter release failed: %s", exc)


def locks_meeting(reservation: Reservation) -> bool:
    """Whether this failed attempt is the one that used the meeting's last slot."""
    return reservation.meeting_count >= settings.ANTECHAMBER_JOIN_MEETING_FAILURES


def claim_lockout_notice(public_id: str) -> bool:
    """True for exactly one caller per window: the one that tells the host."""
    try:
        return bool(_cache().add(notified_key(public_id), 1, _window()))
    except (RedisError, OSError) as exc:
        logger.warning("join limiter unavailable for the lockout notice: %s", exc)
        return False


def meeting_unlock(public_id: str) -> None:
    """Clear the meeting's counter (the host rotated the passcode)."""
    try:
        _cache().delete_many([meeting_key(public_id), notified_key(public_id)])
    except (RedisError, OSError) as exc:
        logger.warning("could not clear the join limit of a meeting: %s", exc)


# --- Entries: how often one browser or address may enter one meeting's waiting room ----


@dataclass(frozen=True)
class EntrySlots:
    """Entry slots held for one passcode attempt: kept if it enters, released if not."""

    keys: tuple[str, ...]


def entry_keys(*, public_id: str, address: str, session_key: str) -> tuple[str, ...]:
    keys = [f"join:entries:{public_id}:addr:{address}"]
    if session_key:
        keys.append(f"join:entries:{public_id}:session:{session_key}")
    return tuple(keys)


def reserve_entry(*, public_id: str, address: str, session_key: str) -> EntrySlots | Limited:
    """One entry slot per meeting for this address and this browser session, or Limited.

    SECURITY: a right passcode is not a licence to fill the waiting room (and run argon2)
    as often as one likes: successful entries count too, and stay counted for the window.
    Checked before any argon2 work. Raises LimiterUnavailable when the cache is down.
    """
    keys = entry_keys(public_id=public_id, address=address, session_key=session_key)
    limits = [settings.ANTECHAMBER_JOIN_ENTRIES_PER_ADDRESS, settings.ANTECHAMBER_JOIN_ENTRIES_PER_SESSION]
    taken: list[str] = []
    try:
        for key, limit in zip(keys, limits, strict=False):
            count = _reserve(key)
            taken.append(key)
            if count > limit:
                for held in taken:
                    _release(held)
                return Limited("entries")
    except (RedisError, OSError) as exc:
        logger.error("join limiter unavailable: %s", exc)
        raise LimiterUnavailable(str(exc)) from exc
    return EntrySlots(keys=tuple(taken))


def release_entry(slots: EntrySlots) -> None:
    """The attempt did not enter (wrong passcode, refused): give the entry slots back."""
    try:
        for key in slots.keys:
            _release(key)
    except (RedisError, OSError) as exc:
        logger.warning("join limiter release failed: %s", exc)
