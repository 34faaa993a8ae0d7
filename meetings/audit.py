"""The audit log. Every security-relevant action is written through audit_record."""

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.utils import timezone

from meetings.models import AuditEvent, Meeting


def audit_record(
    *,
    action: str,
    actor: User | AnonymousUser | None = None,
    meeting: Meeting | None = None,
    subject: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one row. Call inside the transaction of the action it records.

    SECURITY: never pass a passcode, token or code in `detail`.
    """
    real_actor = actor if actor is not None and actor.is_authenticated else None
    return AuditEvent.objects.create(
        created_at=timezone.now(),
        actor=real_actor,
        actor_label=real_actor.get_username() if real_actor is not None else "",
        action=action,
        meeting_public_id=meeting.public_id if meeting is not None else "",
        subject=subject,
        detail=detail or {},
    )
