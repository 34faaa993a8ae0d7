"""The audit log: append-only and hash-chained. Every row is written through audit_record.

Two steps, so that no request waits for a global lock:

1. **Append** (`audit_record`, in the transaction of the action it records): the row is
   inserted with `content_hash`, SHA-256 over a canonical JSON of its content. No lock,
   no read of the chain's head: audited writes commit side by side.
2. **Seal** (`audit_seal`, a Celery beat task every few seconds; on commit when tasks
   run in-process): exactly one sealer at a time (a PostgreSQL advisory lock; SQLite's
   one write lock) takes every committed unsealed row in id order and chains it, in one
   short transaction: `seal_seq` (its place in the chain: 1, 2, 3, ...), `prev_hash` (the
   row_hash of the row before it in the chain, GENESIS for the first) and `row_hash`
   (SHA-256 over the content and prev_hash, the scheme of migration 0006, so rows chained
   before sealing existed verify unchanged).

The chain's order is seal order. A transaction that took a lower id but committed after
a later row was sealed is sealed in the next batch, so ids along the chain are increasing
within a batch but not across batches; nothing is left behind and no row moves once sealed.

verify_chain walks the sealed rows in chain order and names the first one that does not
fit (changed, removed or inserted), then checks every unsealed row against its
content_hash and reports how many are waiting and since when. `verify_audit` fails when
a row has waited for more than a minute (the sealer is not running).

SECURITY: what this trades. A row is chained seconds after its action commits instead of
at commit. In that window it is protected by its content_hash (a change to its content
is named by verify_audit and the sealer refuses to chain it) and by everything that
protects the table (the ORM refuses updates and deletes, the admin is read-only); what
the window does not protect against is someone with direct write access to the table
deleting, or inserting with a matching content_hash, a row that is not yet sealed. The
same person could already rewrite the whole chain (see below), so the window adds
little; operators who record the head hash elsewhere record it as of the last seal.

SECURITY: the chain is unkeyed: it proves that nobody edited the log through the
application, and that a database-level edit was done clumsily. Someone with write access
to the table who knows this scheme can rewrite every hash after an edit; operators who
need more record `verify_audit`'s head hash elsewhere (see docs/SECURITY.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection, transaction
from django.utils import timezone

from meetings import sql
from meetings.models import AuditEvent, Meeting

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
# Any constant will do, as long as nothing else in the database uses it.
SEAL_LOCK_ID = 0x61756469  # "audi"
# Rows chained per sealing transaction: keeps each one short; the sealer loops until done.
SEAL_BATCH = 5000
# verify_audit fails when a row has waited longer than this to be chained.
UNSEALED_LIMIT = timedelta(minutes=1)


def _canonical_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def event_content(
    *,
    created_at: datetime,
    actor_label: str,
    action: str,
    meeting_public_id: str,
    subject: str,
    detail: Any,
) -> dict[str, Any]:
    """What a row's hash covers (everything but its id, its actor link and the hashes)."""
    return {
        "created_at": _canonical_time(created_at),
        "actor_label": actor_label,
        "action": action,
        "meeting_public_id": meeting_public_id,
        "subject": subject,
        "detail": detail,
    }


def _digest(value: dict[str, Any]) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def content_hash(content: dict[str, Any]) -> str:
    """A row's own fingerprint, written when it is appended."""
    return _digest(content)


def chain_hash(content: dict[str, Any], prev_hash: str) -> str:
    """A sealed row's row_hash: its content and its place after prev_hash."""
    return _digest({**content, "prev_hash": prev_hash})


def row_content(event: Any) -> dict[str, Any]:
    return event_content(
        created_at=event.created_at,
        actor_label=event.actor_label,
        action=event.action,
        meeting_public_id=event.meeting_public_id,
        subject=event.subject,
        detail=event.detail,
    )


def audit_record(
    *,
    action: str,
    actor: User | AnonymousUser | None = None,
    meeting: Meeting | None = None,
    subject: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one row. Call inside the transaction of the action it records.

    Takes no lock and reads nothing: the row is chained later by audit_seal, so audited
    actions commit side by side. It commits or rolls back with the action.

    SECURITY: never pass a passcode, token or code in `detail`.
    """
    event = audit_event(action=action, actor=actor, meeting=meeting, subject=subject, detail=detail)
    audit_appended(event, _append(event))
    return event


def audit_event(
    *,
    action: str,
    actor: User | AnonymousUser | None = None,
    meeting: Meeting | None = None,
    subject: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """The row audit_record appends, not yet written: for a caller that writes it in a
    statement of its own (audit_insert), then calls audit_appended with its id."""
    real_actor = actor if actor is not None and actor.is_authenticated else None
    # Stored as it will be read back (JSON round trip), so the hash checks out later.
    clean_detail = json.loads(json.dumps(detail or {}, default=str))
    fields: dict[str, Any] = {
        "created_at": timezone.now(),
        "actor_label": real_actor.get_username() if real_actor is not None else "",
        "action": action,
        "meeting_public_id": meeting.public_id if meeting is not None else "",
        "subject": subject[:200],
        "detail": clean_detail,
    }
    return AuditEvent(actor=real_actor, content_hash=content_hash(event_content(**fields)), **fields)


def audit_insert(event: AuditEvent) -> sql.Insert:
    """The INSERT of an unwritten event: what audit_record runs, for a statement of the caller's."""
    return sql.Insert(
        AuditEvent, {name: getattr(event, sql.field(AuditEvent, name).attname) for name in APPENDED}, True
    )


def audit_appended(event: AuditEvent, pk: int | None) -> None:
    """After the event's INSERT (in the caller's transaction): its id, and the seal."""
    if pk is None:
        raise ValueError("an audit row's INSERT gave no id")
    event.pk = pk
    event._state.adding = False
    if settings.ANTECHAMBER_AUDIT_SEAL_ON_COMMIT and not _seal_pending(connection.run_on_commit):
        # No beat without a broker: chain the rows as soon as their action commits (once
        # per transaction however many rows it wrote; a failure is logged, not raised).
        transaction.on_commit(_seal_after_commit, robust=True)


# What an append writes: the content and its hash; the sealer writes the rest.
APPENDED = (
    "created_at", "actor", "actor_label", "action", "meeting_public_id", "subject", "detail", "content_hash"
)  # fmt: skip


def _append(event: AuditEvent) -> int | None:
    """INSERT the new row, its id back. Written once per process rather than compiled by
    the ORM on every audited action: the ORM's insert cost more than the round trip (the
    redemption storm, docs/BENCHMARKS.md)."""
    return sql.insert(audit_insert(event))


def _seal_after_commit() -> None:
    audit_seal(wait=True)


def _seal_pending(callbacks: Iterable[tuple[Any, ...]]) -> bool:
    return any(callback[1] is _seal_after_commit for callback in callbacks)


# --- Sealing ------------------------------------------------------------------------


@dataclass(frozen=True)
class SealResult:
    sealed: int
    skipped: int  # unsealed rows whose content no longer matches their content_hash
    locked_out: bool = False  # another sealer held the lock: this one did nothing


def _take_seal_lock(*, wait: bool) -> bool:
    """The one-sealer-at-a-time lock, held until the sealing transaction ends.

    PostgreSQL: a transaction-scoped advisory lock, so a sealer that dies (exception,
    killed process, lost connection) releases it with its rolled-back transaction.
    SQLite: the transaction already holds the database's one write lock (IMMEDIATE).
    """
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEAL_LOCK_ID])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEAL_LOCK_ID])
        return bool(cursor.fetchone()[0])


def _seal_rows(rows: list[tuple[int, str, str, int]]) -> None:
    """Write (prev_hash, row_hash, seal_seq) of each (id, ...) row; only rows still unsealed.

    Raw SQL: the ORM refuses every update of an audit row, and this is the one allowed.
    """
    table = sql.table(AuditEvent)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET prev_hash = %s, row_hash = %s, seal_seq = %s, sealed_at = %s"  # noqa: S608 - our table name
            " WHERE id = %s AND seal_seq IS NULL",
            [(prev, row_hash, seq, now, pk) for pk, prev, row_hash, seq in rows],
        )


def seal_hook(rows: list[tuple[int, str, str, int]]) -> None:
    """Called with a batch just before it is written (tests use it to crash a sealer)."""


def _seal_batch(*, wait: bool) -> SealResult:
    with transaction.atomic():
        if not _take_seal_lock(wait=wait):
            return SealResult(sealed=0, skipped=0, locked_out=True)
        head = (
            AuditEvent.objects.filter(seal_seq__isnull=False)
            .order_by("-seal_seq")
            .values_list("seal_seq", "row_hash")
            .first()
        )
        seq, prev_hash = 0, GENESIS
        if head is not None:
            seq, prev_hash = int(head[0] or 0), str(head[1])
        pending = list(AuditEvent.objects.filter(seal_seq__isnull=True).order_by("id")[:SEAL_BATCH])
        rows: list[tuple[int, str, str, int]] = []
        skipped = 0
        for event in pending:
            content = row_content(event)
            if event.content_hash != content_hash(content):
                # SECURITY: changed (or forged) before it was sealed: never bless it.
                skipped += 1
                logger.error("audit row id=%s does not match its content_hash: not sealed", event.pk)
                continue
            seq += 1
            row_hash = chain_hash(content, prev_hash)
            rows.append((event.pk, prev_hash, row_hash, seq))
            prev_hash = row_hash
        seal_hook(rows)
        _seal_rows(rows)
    return SealResult(sealed=len(rows), skipped=skipped)


def audit_seal(*, wait: bool = False) -> SealResult:
    """Chain every committed unsealed row, in id order, in batches of SEAL_BATCH.

    With wait=False (the beat task) a sealer that finds another one at work returns at
    once: that one, or the next beat, seals what is left. A failure rolls its batch back
    whole: no row is lost (it stays unsealed) and none is sealed twice (seal_seq is
    unique and only rows still unsealed are written).
    """
    sealed = skipped = 0
    while True:
        result = _seal_batch(wait=wait)
        if result.locked_out:
            return SealResult(sealed=sealed, skipped=skipped, locked_out=sealed == 0)
        sealed += result.sealed
        skipped += result.skipped
        if result.sealed + result.skipped < SEAL_BATCH:
            return SealResult(sealed=sealed, skipped=skipped)


# --- Verifying ----------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    rows: int  # sealed rows checked
    head: str
    bad_row_id: int | None = None
    problem: str = ""
    unsealed: int = 0
    oldest_unsealed_id: int | None = None
    oldest_unsealed_at: datetime | None = None

    @property
    def intact(self) -> bool:
        return self.bad_row_id is None

    def unsealed_for(self, now: datetime) -> timedelta:
        return now - self.oldest_unsealed_at if self.oldest_unsealed_at else timedelta(0)


def verify_chain(events: Iterable[Any] | None = None, unsealed: Iterable[Any] | None = None) -> ChainReport:
    """Walk the sealed rows in chain order; stop at the first that does not fit. Then
    check each unsealed row against its content_hash."""
    if events is None:
        events = (
            AuditEvent.objects.filter(seal_seq__isnull=False).order_by("seal_seq").iterator(chunk_size=2000)
        )
    if unsealed is None:
        unsealed = AuditEvent.objects.filter(seal_seq__isnull=True).order_by("id").iterator(chunk_size=2000)
    expected_prev, rows = GENESIS, 0
    for event in events:
        rows += 1
        if event.prev_hash != expected_prev:
            return ChainReport(
                rows=rows,
                head=expected_prev,
                bad_row_id=event.pk,
                problem="its prev_hash does not match the row before it "
                "(a row before it was removed or inserted, or this one was)",
            )
        content = row_content(event)
        if chain_hash(content, event.prev_hash) != event.row_hash or (
            event.content_hash is not None and event.content_hash != content_hash(content)
        ):
            return ChainReport(
                rows=rows,
                head=expected_prev,
                bad_row_id=event.pk,
                problem="its content does not match its row_hash (the row was changed or forged)",
            )
        expected_prev = event.row_hash
    waiting, oldest_id, oldest_at = 0, None, None
    for event in unsealed:
        waiting += 1
        if event.content_hash != content_hash(row_content(event)):
            return ChainReport(
                rows=rows + 1,
                head=expected_prev,
                bad_row_id=event.pk,
                problem="it is not sealed yet and its content does not match its content_hash "
                "(the row was changed or forged)",
            )
        if oldest_at is None or event.created_at < oldest_at:
            oldest_id, oldest_at = event.pk, event.created_at
    return ChainReport(
        rows=rows,
        head=expected_prev,
        unsealed=waiting,
        oldest_unsealed_id=oldest_id,
        oldest_unsealed_at=oldest_at,
    )


def audit_refusal(
    *, request: Any, code: str, status: int, message: str, meeting: Meeting | None = None
) -> None:
    """Record that a request was refused (a rule, a missing permission, a redemption).

    SECURITY: names the view, never the path (a one-time link's path holds its token).
    Its own transaction: the refused action's was rolled back.
    """
    match = getattr(request, "resolver_match", None)
    audit_record(
        action="request_refused",
        actor=getattr(request, "user", None),
        meeting=meeting,
        subject=code,
        detail={
            "status": status,
            "view": match.view_name if match is not None else "",
            "method": request.method,
            "message": message[:300],
        },
    )
