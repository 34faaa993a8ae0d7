"""Sending outbox rows over SMTP: claim a row, send it, record the outcome; a batch of
rows over one SMTP connection."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import DatabaseError, connections, router, transaction
from django.db.models import F
from django.utils import timezone

from meetings import emails, sealing
from meetings.models import OutboundMessage

OUTBOX_MAX_ATTEMPTS = 8
# What a row holds sealed until it is sent, or can no longer be: erased together.
_ERASED = {"sealed_link": "", "sealed_dial_in_code": ""}


@dataclass(frozen=True)
class SendResult:
    sent: bool
    retry_in: float | None = None
    transport_failed: bool = False


def outbox_batches(message_ids: list[int]) -> list[list[int]]:
    """message_ids in batches of ANTECHAMBER_OUTBOX_BATCH, in order: one task each."""
    size = settings.ANTECHAMBER_OUTBOX_BATCH
    return [message_ids[i : i + size] for i in range(0, len(message_ids), size)]


def outbox_send(*, message_id: int) -> SendResult:
    """Send one message if this caller wins the claim (pending -> sending)."""
    return outbox_send_batch(message_ids=[message_id])[message_id]


# Rows claimed per statement, and the most rows sent and not yet recorded as sent. A
# worker that dies leaves at most this many rows "sending" until the stale-claim release
# (ANTECHAMBER_OUTBOX_STALE_CLAIM_SECONDS) puts them back: the unsent ones then go out
# late, and those the SMTP server had accepted go out a second time (at least once).
CLAIM_CHUNK = 20


def outbox_send_batch(*, message_ids: list[int]) -> dict[int, SendResult]:
    """Send many messages over one SMTP connection (opened at the first claimed row).

    Rows are claimed CLAIM_CHUNK at a time by one conditional UPDATE … RETURNING (pending
    and due -> sending), which reads the claimed rows in the same statement: a row another
    worker claimed (or sent) is not returned and is skipped, so no message is sent twice
    whoever else has the same IDs in a batch. The rows sent are recorded as sent by one
    UPDATE per chunk, before the next claim. Before each send the claim is checked for
    age: one older than half the stale-claim timeout is renewed, conditionally, so a row
    the stale-claim release may have handed to another worker is skipped, not sent. A
    failure is recorded on its row alone; the connection is then closed and the next row
    opens a new one.
    """
    return _Batch().send(list(dict.fromkeys(message_ids)))


class _Batch:
    def __init__(self) -> None:
        self.connection: BaseEmailBackend | None = None
        self.claimed: dict[int, OutboundMessage] = {}  # claimed, not yet tried
        self.sent: list[int] = []  # sent, not yet recorded

    def send(self, message_ids: list[int]) -> dict[int, SendResult]:
        results: dict[int, SendResult] = {}
        try:
            for start in range(0, len(message_ids), CLAIM_CHUNK):
                chunk = message_ids[start : start + CLAIM_CHUNK]
                self.claimed = _claim_rows(chunk)
                for message_id in chunk:
                    results[message_id] = self.send_one(message_id)
                self.record_sent()
        finally:
            try:
                self.record_sent()  # first: what reached the SMTP server must not go again
            finally:
                if self.connection is not None:
                    self.connection.close()
                if self.claimed:  # an error left rows claimed and untried: give them back now
                    with contextlib.suppress(DatabaseError):
                        _release(list(self.claimed.values()))
        return results

    def send_one(self, message_id: int) -> SendResult:
        row = self.claimed.pop(message_id, None)
        if row is None or not self.still_ours(row):
            return SendResult(sent=False)
        if self.connection is None:
            self.connection = get_connection(fail_silently=False)
        result = _send_claimed(row, self.connection)
        if result.sent:
            self.sent.append(row.pk)
        if result.transport_failed:
            self.connection.close()  # never reuse a connection that failed
            self.connection = None
        return result

    def record_sent(self) -> None:
        """Sent, and the sealed link and code erased, for the rows sent since the last call."""
        if self.sent:
            OutboundMessage.objects.filter(pk__in=self.sent).update(
                status=OutboundMessage.Status.SENT, sent_at=timezone.now(), last_error="", **_ERASED
            )
            self.sent = []

    def still_ours(self, row: OutboundMessage) -> bool:
        """Whether this caller still holds `row`'s claim, renewing it (and those of the rows
        claimed with it and not yet tried) once it is older than half the stale-claim
        timeout. A row whose claim was released since, and perhaps taken by another
        worker, is not ours to send."""
        assert row.claimed_at is not None
        now = timezone.now()
        stale_claim = timedelta(seconds=settings.ANTECHAMBER_OUTBOX_STALE_CLAIM_SECONDS)
        if now - row.claimed_at < stale_claim / 2:
            return True
        self.record_sent()  # rows sent under this claim must not be released either
        # Rows claimed together share their claimed_at, and are renewed together.
        renewed = set(_renew(ids=[row.pk, *self.claimed], claimed_at=row.claimed_at, now=now))
        row.claimed_at = now
        for pk in list(self.claimed):
            if pk in renewed:
                self.claimed[pk].claimed_at = now
            else:
                del self.claimed[pk]
        return row.pk in renewed


def _claim_rows(message_ids: list[int]) -> dict[int, OutboundMessage]:
    """pending -> sending, for those of these rows that are due and nobody else has; the
    rows as claimed, by ID.

    One statement claims and returns the rows (UPDATE … RETURNING: PostgreSQL, SQLite
    3.35+), and the claim commits only once they are read: were the database lost before,
    no row would stay "sending", unsent, until the stale-claim timeout.
    """
    if not message_ids:
        return {}
    now = timezone.now()
    db = router.db_for_write(OutboundMessage)
    ops = connections[db].ops
    meta = OutboundMessage._meta
    columns = ", ".join(ops.quote_name(field.column) for field in meta.concrete_fields)
    status, claimed_at, attempts = (ops.quote_name(name) for name in ("status", "claimed_at", "attempts"))
    sql = (
        f"UPDATE {ops.quote_name(meta.db_table)} SET {status} = %s, {claimed_at} = %s, {attempts} = {attempts} + 1"  # noqa: S608 - our table and columns; values are parameters
        f" WHERE {ops.quote_name(meta.pk.column)} IN ({', '.join(['%s'] * len(message_ids))})"
        f" AND {status} = %s AND {ops.quote_name('next_attempt_at')} <= %s"
        f" RETURNING {columns}"
    )
    when = ops.adapt_datetimefield_value(now)
    params = [OutboundMessage.Status.SENDING, when, *message_ids, OutboundMessage.Status.PENDING, when]
    with transaction.atomic(using=db):
        return {row.pk: row for row in OutboundMessage.objects.db_manager(db).raw(sql, params)}


def _renew(*, ids: list[int], claimed_at: datetime, now: datetime) -> list[int]:
    """Those of these rows still "sending" under the claim made at `claimed_at`, claimed
    again at `now`."""
    db = router.db_for_write(OutboundMessage)
    ops = connections[db].ops
    meta = OutboundMessage._meta
    pk, column = ops.quote_name(meta.pk.column), ops.quote_name("claimed_at")
    sql = (
        f"UPDATE {ops.quote_name(meta.db_table)} SET {column} = %s"  # noqa: S608 - our table and columns; values are parameters
        f" WHERE {pk} IN ({', '.join(['%s'] * len(ids))}) AND {ops.quote_name('status')} = %s"
        f" AND {column} = %s RETURNING {pk}"
    )
    params = [
        ops.adapt_datetimefield_value(now),
        *ids,
        OutboundMessage.Status.SENDING,
        ops.adapt_datetimefield_value(claimed_at),
    ]
    with transaction.atomic(using=db), connections[db].cursor() as cursor:
        cursor.execute(sql, params)
        return [found for (found,) in cursor.fetchall()]


def _release(rows: list[OutboundMessage]) -> None:
    """Give back rows this caller claimed (together) and did not send. Best effort: what
    this misses, the stale-claim release puts back later."""
    OutboundMessage.objects.filter(
        pk__in=[row.pk for row in rows], status=OutboundMessage.Status.SENDING, claimed_at=rows[0].claimed_at
    ).update(status=OutboundMessage.Status.PENDING, claimed_at=None, attempts=F("attempts") - 1)


def _send_claimed(row: OutboundMessage, connection: BaseEmailBackend) -> SendResult:
    """Send a row this caller has claimed, over `connection`, and record a failure (the
    caller records success, for many rows at once)."""
    if row.sealed_link or row.sealed_dial_in_code:
        try:
            _open_sealed(row)
        except sealing.Unsealable as exc:
            # Nothing to retry: the key that sealed it is gone. The host can resend.
            OutboundMessage.objects.filter(pk=row.pk).update(
                status=OutboundMessage.Status.FAILED, last_error=str(exc), claimed_at=None, **_ERASED
            )
            return SendResult(sent=False)
    email = emails.build_email(row)
    email.connection = connection
    try:
        # Opened here, not by send(): a connection send() opens it also closes after one message.
        connection.open()
        email.send(fail_silently=False)
    except Exception as exc:  # any transport failure: keep the row, retry later
        # Exponential backoff from a configurable base (tests shorten it), capped at an hour.
        delay = min(settings.ANTECHAMBER_OUTBOX_RETRY_BASE_SECONDS * 2 ** (row.attempts - 1), 3600)
        final = row.attempts >= OUTBOX_MAX_ATTEMPTS
        OutboundMessage.objects.filter(pk=row.pk, status=OutboundMessage.Status.SENDING).update(
            status=OutboundMessage.Status.FAILED if final else OutboundMessage.Status.PENDING,
            **(_ERASED if final else {}),
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            claimed_at=None,
        )
        return SendResult(sent=False, retry_in=None if final else delay, transport_failed=True)
    return SendResult(sent=True)


def _open_sealed(row: OutboundMessage) -> None:
    """Put the row's sealed join link and dial-in code into its bodies, in memory only: the
    stored row keeps the placeholders, and sending erases what was sealed."""
    if row.sealed_link:
        link = sealing.unseal(row.sealed_link, row_id=row.message_id)
        row.body_text = sealing.put_link(row.body_text, link)
        row.body_html = sealing.put_link(row.body_html, link)
        row.ics_text = sealing.put_link_in_calendar(row.ics_text, link)
    if row.sealed_dial_in_code:
        code = sealing.unseal(
            row.sealed_dial_in_code, row_id=row.message_id, label=sealing.OUTBOX_DIAL_IN_LABEL
        )
        placeholder = sealing.DIAL_IN_PLACEHOLDER
        row.body_text = row.body_text.replace(placeholder, code)
        row.body_html = row.body_html.replace(placeholder, code)
        row.ics_text = sealing.put_in_calendar(row.ics_text, placeholder, code)


def outbox_release_stale_claims() -> int:
    """Put back to pending the rows whose worker died mid-send; returns how many.

    A message whose worker died after the SMTP server accepted it is sent again:
    delivery is at least once, and the stable Message-ID lets clients drop the copy.
    """
    stale_claim = timedelta(seconds=settings.ANTECHAMBER_OUTBOX_STALE_CLAIM_SECONDS)
    return OutboundMessage.objects.filter(
        status=OutboundMessage.Status.SENDING, claimed_at__lt=timezone.now() - stale_claim
    ).update(status=OutboundMessage.Status.PENDING, claimed_at=None)
