"""The audit log: append-only and hash-chained. Every row is written through audit_record.

Each row's row_hash is SHA-256 over a canonical JSON of its content and prev_hash, the
row_hash of the row before it (GENESIS for the first). verify_chain walks the rows in
id order and names the first one that does not fit, so a row that was changed, removed
or inserted is found.

SECURITY: the chain is unkeyed: it proves that nobody edited the log through the
application, and that a database-level edit was done clumsily. Someone with write access
to the table who knows this scheme can rewrite every hash after an edit; operators who
need more record `verify_audit`'s head hash elsewhere (see docs/SECURITY.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection, transaction
from django.utils import timezone

from meetings.models import AuditEvent, Meeting

GENESIS = "0" * 64
# Any constant will do, as long as nothing else in the database uses it.
CHAIN_LOCK_ID = 0x61756469  # "audi"


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


def chain_hash(content: dict[str, Any], prev_hash: str) -> str:
    canonical = json.dumps(
        {**content, "prev_hash": prev_hash}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def row_content(event: Any) -> dict[str, Any]:
    return event_content(
        created_at=event.created_at,
        actor_label=event.actor_label,
        action=event.action,
        meeting_public_id=event.meeting_public_id,
        subject=event.subject,
        detail=event.detail,
    )


def _lock_chain() -> None:
    """Serialise writers for the rest of the transaction, so two cannot extend the same head.

    PostgreSQL: a transaction-scoped advisory lock, released at commit or rollback.
    SQLite: every write transaction already holds the database's one write lock
    (transaction_mode IMMEDIATE, see settings), taken before the head is read.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_ID])


def audit_record(
    *,
    action: str,
    actor: User | AnonymousUser | None = None,
    meeting: Meeting | None = None,
    subject: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one row. Call inside the transaction of the action it records.

    The chain lock is then held until that transaction ends, so audited actions commit
    one at a time; keep slow work (argon2, mail) outside those transactions.

    SECURITY: never pass a passcode, token or code in `detail`.
    """
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
    with transaction.atomic():
        _lock_chain()
        head = AuditEvent.objects.order_by("-id").values_list("row_hash", flat=True).first()
        prev_hash = head or GENESIS
        return AuditEvent.objects.create(
            actor=real_actor,
            prev_hash=prev_hash,
            row_hash=chain_hash(event_content(**fields), prev_hash),
            **fields,
        )


@dataclass(frozen=True)
class ChainReport:
    rows: int
    head: str
    bad_row_id: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.bad_row_id is None


def verify_chain(events: Iterable[Any] | None = None) -> ChainReport:
    """Walk the log in id order; stop at the first row that does not fit."""
    if events is None:
        events = AuditEvent.objects.order_by("id").iterator(chunk_size=2000)
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
        if chain_hash(row_content(event), event.prev_hash) != event.row_hash:
            return ChainReport(
                rows=rows,
                head=expected_prev,
                bad_row_id=event.pk,
                problem="its content does not match its row_hash (the row was changed or forged)",
            )
        expected_prev = event.row_hash
    return ChainReport(rows=rows, head=expected_prev)


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
