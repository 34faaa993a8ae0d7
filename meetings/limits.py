"""Rate limits for passcode joins, counted in the database (meetings.models.LimitCounter).

A slot is *reserved* (one atomic upsert of its counter's row) before any argon2 work and
released again when the attempt turns out not to be a failure. So a counter is "failures
plus attempts in flight", and however many processes and threads share the database, at
most `limit` verifications can ever run for one meeting within a window: the database
applies each upsert to the row in turn, and each one returns the count it made.

SECURITY: the database, not the cache. Redis evicting keys under memory pressure
(`allkeys-lru`) would reset a locked meeting's count, and a full Redis (`noeviction`)
would refuse to take one. Each statement commits on its own (autocommit), so a failed
attempt's count survives the request's failure: call these outside atomic() (inside one,
a test's, each statement runs in a savepoint). Any database error raises
LimiterUnavailable, and no passcode is checked then.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connection, transaction
from django.utils import timezone

from meetings import sql
from meetings.models import LimitCounter

logger = logging.getLogger(__name__)

# Expired counters deleted by each new window, at most (the retention task takes the rest).
SWEEP_BATCH = 100


class LimiterUnavailable(Exception):
    """The limiter's store (the database) failed: passcode joins must fail closed."""


@dataclass(frozen=True)
class Slot:
    """One counted attempt: its counter and the end of the window that counted it."""

    key: str
    window: Any  # expires_at as the database returned it: a release gives back to it only


@dataclass(frozen=True)
class Reservation:
    """Slots held for one attempt: release them unless the attempt failed."""

    meeting: Slot
    client: Slot
    meeting_count: int  # this attempt's position in the meeting's window


@dataclass(frozen=True)
class Limited:
    scope: str  # "meeting", "client" or "entries"


def _window() -> int:
    return int(settings.ANTECHAMBER_JOIN_WINDOW_SECONDS)


def meeting_key(public_id: str) -> str:
    return f"join:meeting:{public_id}"


def notified_key(public_id: str) -> str:
    return f"join:notified:{public_id}"


def client_key(address: str) -> str:
    return f"join:client:{address}"


# --- The statements ----------------------------------------------------------------


def _names() -> tuple[str, str, str, str]:
    model = LimitCounter
    return (
        sql.table(model),
        sql.column(model, "key"),
        sql.column(model, "count"),
        sql.column(model, "expires_at"),
    )


@functools.cache
def _count_sql() -> str:
    """Count one more under a key: a new row, or a row whose window ended, starts at 1 with
    a new window; a running window counts on. One statement (PostgreSQL, SQLite 3.35+)."""
    table, key, count, expires = _names()
    return (
        f"INSERT INTO {table} ({key}, {count}, {expires}) VALUES (%s, 1, %s) "  # noqa: S608 - names from the model
        f"ON CONFLICT ({key}) DO UPDATE SET "
        f"{count} = CASE WHEN {table}.{expires} <= %s THEN 1 ELSE {table}.{count} + 1 END, "
        f"{expires} = CASE WHEN {table}.{expires} <= %s THEN excluded.{expires} ELSE {table}.{expires} END "
        f"RETURNING {count}, {expires}"
    )


@functools.cache
def _give_back_sql() -> str:
    table, key, count, expires = _names()
    return (
        f"UPDATE {table} SET {count} = {count} - 1 "  # noqa: S608 - names from the model
        f"WHERE {key} = %s AND {expires} = %s AND {count} > 0"
    )


@functools.cache
def _sweep_sql() -> str:
    """Delete some expired counters. On PostgreSQL rows another statement holds are
    skipped, and the outer condition is checked again on the row as it is when locked, so
    a counter that has just started a new window is never deleted."""
    table, key, _count, expires = _names()
    lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    return (
        f"DELETE FROM {table} WHERE {expires} <= %s AND {key} IN ("  # noqa: S608 - names from the model
        f"SELECT {key} FROM {table} WHERE {expires} <= %s LIMIT {SWEEP_BATCH}{lock})"
    )


def _time(value: datetime) -> Any:
    return sql.field(LimitCounter, "expires_at").get_db_prep_save(value, connection)


def _execute(statement: str, params: list[Any]) -> tuple[list[Any], int]:
    """Run one statement, committed at once; (its rows, its row count)."""
    own = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with own, connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = list(cursor.fetchall()) if cursor.description else []
        return rows, cursor.rowcount


def _take(key: str, now: datetime) -> tuple[Slot, int]:
    """Count one attempt under `key`; the slot taken and the count it made."""
    end = now + timedelta(seconds=_window())
    [(count, window)] = _execute(_count_sql(), [key, _time(end), _time(now), _time(now)])[0]
    if int(count) == 1:
        _sweep(now)
    return Slot(key=key, window=window), int(count)


def _give_back(slot: Slot) -> None:
    """Uncount a slot, in the window that counted it only (a later window never had it)."""
    _execute(_give_back_sql(), [slot.key, slot.window])


def _sweep(now: datetime) -> None:
    try:
        _execute(_sweep_sql(), [_time(now), _time(now)])
    except DatabaseError as exc:  # the counters are right without it; the task sweeps too
        logger.warning("join limiter could not delete expired counters: %s", exc)


# --- Passcode attempts: per meeting and per client address ---------------------------


def reserve(*, public_id: str, address: str) -> Reservation | Limited:
    """Take one slot per client address and per meeting, or say which limit refuses.

    SECURITY: keyed by the meeting ID as typed (normalised), whether or not such a meeting
    exists, so an unknown ID locks exactly like a real one and the lock reveals nothing.
    An address over its limit is refused before the meeting is counted (nor is a counter
    made for the ID it typed). Raises LimiterUnavailable when the database fails: no
    passcode may be checked then.
    """
    now = timezone.now()
    try:
        client, client_count = _take(client_key(address), now)
        if client_count > settings.ANTECHAMBER_JOIN_CLIENT_FAILURES:
            return Limited("client")
        meeting, count = _take(meeting_key(public_id), now)
        if count > settings.ANTECHAMBER_JOIN_MEETING_FAILURES:
            # Refused before any work: the client slot is not used.
            _give_back(client)
            return Limited("meeting")
    except DatabaseError as exc:
        logger.error("join limiter unavailable: %s", exc)
        raise LimiterUnavailable(str(exc)) from exc
    return Reservation(meeting=meeting, client=client, meeting_count=count)


def release(reservation: Reservation) -> None:
    """The attempt was not a failure (right passcode): give both slots back."""
    try:
        _give_back(reservation.meeting)
        _give_back(reservation.client)
    except DatabaseError as exc:
        # Failing to give a slot back only makes the limit stricter: log, carry on.
        logger.warning("join limiter release failed: %s", exc)


def locks_meeting(reservation: Reservation) -> bool:
    """Whether this failed attempt is the one that used the meeting's last slot."""
    return reservation.meeting_count >= settings.ANTECHAMBER_JOIN_MEETING_FAILURES


def claim_lockout_notice(public_id: str) -> bool:
    """True for exactly one caller per window: the one that tells the host."""
    try:
        _slot, count = _take(notified_key(public_id), timezone.now())
    except DatabaseError as exc:
        logger.warning("join limiter unavailable for the lockout notice: %s", exc)
        return False
    return count == 1


def meeting_unlock(public_id: str) -> None:
    """Clear the meeting's counter (the host rotated the passcode)."""
    try:
        LimitCounter.objects.filter(key__in=[meeting_key(public_id), notified_key(public_id)]).delete()
    except DatabaseError as exc:
        logger.warning("could not clear the join limit of a meeting: %s", exc)


def limit_counters_purge(*, now: datetime | None = None) -> int:
    """Delete every expired counter (the retention task); how many went."""
    deleted, _by_model = LimitCounter.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted


# --- Entries: how often one browser or address may enter one meeting's waiting room ----


@dataclass(frozen=True)
class EntrySlots:
    """Entry slots held for one passcode attempt: kept if it enters, released if not."""

    slots: tuple[Slot, ...]


def entry_keys(*, public_id: str, address: str, session_key: str) -> tuple[str, ...]:
    keys = [f"join:entries:{public_id}:addr:{address}"]
    if session_key:
        keys.append(f"join:entries:{public_id}:session:{session_key}")
    return tuple(keys)


def reserve_entry(*, public_id: str, address: str, session_key: str) -> EntrySlots | Limited:
    """One entry slot per meeting for this address and this browser session, or Limited.

    SECURITY: a right passcode is not a licence to fill the waiting room (and run argon2)
    as often as one likes: successful entries count too, and stay counted for the window.
    Checked before any argon2 work. Raises LimiterUnavailable when the database fails.
    """
    keys = entry_keys(public_id=public_id, address=address, session_key=session_key)
    limits = [settings.ANTECHAMBER_JOIN_ENTRIES_PER_ADDRESS, settings.ANTECHAMBER_JOIN_ENTRIES_PER_SESSION]
    taken: list[Slot] = []
    now = timezone.now()
    try:
        for key, limit in zip(keys, limits, strict=False):
            slot, count = _take(key, now)
            taken.append(slot)
            if count > limit:
                for held in taken:
                    _give_back(held)
                return Limited("entries")
    except DatabaseError as exc:
        logger.error("join limiter unavailable: %s", exc)
        raise LimiterUnavailable(str(exc)) from exc
    return EntrySlots(slots=tuple(taken))


def release_entry(slots: EntrySlots) -> None:
    """The attempt did not enter (wrong passcode, refused): give the entry slots back."""
    try:
        for slot in slots.slots:
            _give_back(slot)
    except DatabaseError as exc:
        logger.warning("join limiter release failed: %s", exc)
