"""Writing mail to the outbox, in the caller's transaction, and queueing it after commit.

Tasks are queued by their registered name (`dispatch`), so services never import the
task module (which imports services).
"""

from __future__ import annotations

from email.utils import make_msgid
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from meetings import emails, sealing
from meetings.models import Invitation, Meeting, OutboundMessage
from meetings.services import delivery

SEND_BATCH_TASK = "meetings.tasks.outbox_send_batch"


def dispatch(task_name: str, *args: Any) -> None:
    """Queue a task by name (in-process when tasks run eagerly). Call after commit."""
    current_app.tasks[task_name].delay(*args)


def on_commit_dispatch(task_name: str, *args: Any) -> None:
    """Queue a task once the caller's transaction commits.

    robust=True: a broker that is down must not turn a committed write into an error;
    the periodic tasks (outbox_flush, media_rooms_sync_open) pick up what was missed.
    """
    transaction.on_commit(lambda: dispatch(task_name, *args), robust=True)


def outbox_row(
    *,
    message: emails.Message,
    kind: str,
    to_email: str,
    meeting: Meeting | None = None,
    invitation: Invitation | None = None,
    link: str | None = None,
) -> OutboundMessage:
    """A message row. `link`: the one-time join link the bodies name by
    sealing.LINK_PLACEHOLDER; it is stored only sealed (see meetings/sealing.py), and so
    is the message's dial-in code (named by sealing.DIAL_IN_PLACEHOLDER)."""
    domain = settings.SITE_URL.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "localhost"
    message_id = make_msgid(idstring=kind, domain=domain)
    return OutboundMessage(
        meeting=meeting,
        invitation=invitation,
        kind=kind,
        to_email=to_email,
        subject=message.subject,
        body_text=message.text,
        body_html=message.html,
        ics_method=message.ics_method,
        ics_text=message.ics_text,
        message_id=message_id,
        sealed_link=sealing.seal(link, row_id=message_id) if link is not None else "",
        sealed_dial_in_code=(
            sealing.seal(message.dial_in_code, row_id=message_id, label=sealing.OUTBOX_DIAL_IN_LABEL)
            if message.dial_in_code
            else ""
        ),
        next_attempt_at=timezone.now(),
    )


def outbox_write(rows: list[OutboundMessage]) -> list[OutboundMessage]:
    """Write message rows in the caller's transaction; tasks send them after commit.

    If the broker is down the enqueue fails after commit (robust: the request still
    succeeds) and the periodic outbox_flush sends the rows later: nothing is lost.
    """
    if not rows:
        return []
    created = OutboundMessage.objects.bulk_create(rows)
    ids = [row.pk for row in created]

    def enqueue() -> None:
        # One task per batch, each sent over one SMTP connection (delivery.outbox_send_batch).
        for batch in delivery.outbox_batches(ids):
            dispatch(SEND_BATCH_TASK, batch)

    transaction.on_commit(enqueue, robust=True)
    return created


def outbox_enqueue(
    *,
    message: emails.Message,
    kind: str,
    to_email: str,
    meeting: Meeting | None = None,
) -> OutboundMessage | None:
    if not to_email:
        return None
    return outbox_write([outbox_row(message=message, kind=kind, to_email=to_email, meeting=meeting)])[0]
