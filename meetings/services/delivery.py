"""Sending outbox rows over SMTP: claim a row, send it, record the outcome; a batch of
rows over one SMTP connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from meetings import emails, sealing
from meetings.models import OutboundMessage

OUTBOX_MAX_ATTEMPTS = 8


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


def outbox_send_batch(*, message_ids: list[int]) -> dict[int, SendResult]:
    """Send many messages over one SMTP connection (opened at the first claimed row).

    Each row is still claimed on its own with one conditional UPDATE, just before it is
    sent: a row another worker claimed (or sent) is skipped, so no message is sent twice
    whoever else has the same IDs in a batch. A failure is recorded on its row alone; the
    connection is then closed and the next row opens a new one.
    """
    results: dict[int, SendResult] = {}
    connection: BaseEmailBackend | None = None
    try:
        for message_id in message_ids:
            row = _claim(message_id)
            if row is None:
                results[message_id] = SendResult(sent=False)
                continue
            if connection is None:
                connection = get_connection(fail_silently=False)
            result = _send_claimed(row, connection)
            if result.transport_failed:
                connection.close()  # never reuse a connection that failed
                connection = None
            results[message_id] = result
    finally:
        if connection is not None:
            connection.close()
    return results


def _claim(message_id: int) -> OutboundMessage | None:
    """pending -> sending, if due and nobody else has it; the row as claimed, or None.

    The claim and the read of the claimed row commit together: were the database lost
    between them, the row would stay "sending", unsent, until the stale-claim timeout.
    """
    now = timezone.now()
    with transaction.atomic():
        won = OutboundMessage.objects.filter(
            pk=message_id, status=OutboundMessage.Status.PENDING, next_attempt_at__lte=now
        ).update(status=OutboundMessage.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1)
        return OutboundMessage.objects.get(pk=message_id) if won == 1 else None


def _send_claimed(row: OutboundMessage, connection: BaseEmailBackend) -> SendResult:
    """Send a row this caller has claimed, over `connection`, and record the outcome."""
    if row.sealed_link:
        try:
            _open_link(row)
        except sealing.Unsealable as exc:
            # Nothing to retry: the key that sealed it is gone. The host can resend.
            OutboundMessage.objects.filter(pk=row.pk).update(
                status=OutboundMessage.Status.FAILED, last_error=str(exc), sealed_link="", claimed_at=None
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
            **({"sealed_link": ""} if final else {}),
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            claimed_at=None,
        )
        return SendResult(sent=False, retry_in=None if final else delay, transport_failed=True)
    OutboundMessage.objects.filter(pk=row.pk).update(
        status=OutboundMessage.Status.SENT, sent_at=timezone.now(), last_error="", sealed_link=""
    )
    return SendResult(sent=True)


def _open_link(row: OutboundMessage) -> None:
    """Put the row's sealed join link into its bodies, in memory only: the stored row keeps
    the placeholder, and sending erases the sealed link."""
    link = sealing.unseal(row.sealed_link, row_id=row.message_id)
    row.body_text = sealing.put_link(row.body_text, link)
    row.body_html = sealing.put_link(row.body_html, link)
    row.ics_text = sealing.put_link_in_calendar(row.ics_text, link)


def outbox_release_stale_claims() -> int:
    """Put back to pending the rows whose worker died mid-send; returns how many.

    A message whose worker died after the SMTP server accepted it is sent again:
    delivery is at least once, and the stable Message-ID lets clients drop the copy.
    """
    stale_claim = timedelta(seconds=settings.ANTECHAMBER_OUTBOX_STALE_CLAIM_SECONDS)
    return OutboundMessage.objects.filter(
        status=OutboundMessage.Status.SENDING, claimed_at__lt=timezone.now() - stale_claim
    ).update(status=OutboundMessage.Status.PENDING, claimed_at=None)
