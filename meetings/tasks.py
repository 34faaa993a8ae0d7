"""Thin Celery tasks: take IDs, call a service. Services queue them by name
(services.outbox.dispatch) and never import this module."""

import logging

from celery import shared_task

from meetings import audit, selectors
from meetings.services import delivery, media, retention

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def outbox_send(message_id: int) -> None:
    result = delivery.outbox_send(message_id=message_id)
    if result.retry_in is not None:
        outbox_send.apply_async(args=[message_id], countdown=result.retry_in)


@shared_task(ignore_result=True)
def outbox_send_batch(message_ids: list[int]) -> None:
    """Send a batch over one SMTP connection; each failed message retries on its own."""
    for message_id, result in delivery.outbox_send_batch(message_ids=message_ids).items():
        if result.retry_in is not None:
            outbox_send.apply_async(args=[message_id], countdown=result.retry_in)


@shared_task(ignore_result=True)
def outbox_flush() -> int:
    """Periodic (celery beat): send what a broker outage or a dead worker left pending."""
    delivery.outbox_release_stale_claims()
    due = selectors.outbox_due()
    for batch in delivery.outbox_batches(due):
        outbox_send_batch.delay(batch)
    return len(due)


@shared_task(ignore_result=True)
def audit_seal() -> int:
    """Periodic (celery beat, every few seconds): chain the audit rows appended since the
    last seal. One sealer at a time: a run that finds another at work returns at once."""
    return audit.audit_seal().sealed


@shared_task(ignore_result=True)
def retention_purge() -> int:
    """Periodic (celery beat, daily): drop records past their level's retention."""
    return retention.retention_purge()


@shared_task(ignore_result=True)
def media_room_sync(meeting_id: int) -> None:
    """After a decision commits: make the meeting's media room match the database."""
    media.media_room_sync(meeting_id=meeting_id)


@shared_task(ignore_result=True)
def media_rooms_sync_open() -> int:
    """Periodic (celery beat): repair media rooms a failed or lost sync left behind."""
    meeting_ids = selectors.media_rooms_open()
    # One answer from the media server about which rooms record, for every room below.
    recording = media.media_rooms_recording() if meeting_ids else None
    for meeting_id in meeting_ids:
        try:
            media.media_room_sync(meeting_id=meeting_id, recording=recording)
        except Exception:  # noqa: BLE001 - one room's media server trouble must not stop the rest
            logger.exception("media room sync failed", extra={"meeting": meeting_id})
    return len(meeting_ids)
