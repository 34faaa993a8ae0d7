"""Sending outbox rows over SMTP: claim a row, send it, record the outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from meetings import emails, sealing
from meetings.models import OutboundMessage

OUTBOX_MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class SendResult:
    sent: bool
    retry_in: float | None = None


def outbox_send(*, message_id: int) -> SendResult:
    """Send one message if this caller wins the claim (pending -> sending)."""
    now = timezone.now()
    won = OutboundMessage.objects.filter(
        pk=message_id, status=OutboundMessage.Status.PENDING, next_attempt_at__lte=now
    ).update(status=OutboundMessage.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if won != 1:
        return SendResult(sent=False)
    row = OutboundMessage.objects.get(pk=message_id)
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
    try:
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
        return SendResult(sent=False, retry_in=None if final else delay)
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
