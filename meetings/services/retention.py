"""Deleting what a level no longer lets us keep."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from meetings import limits, policy
from meetings.audit import audit_record
from meetings.models import ClassificationLevel, JoinLink, Meeting


def retention_purge(*, now: datetime | None = None) -> int:
    """Delete meetings (with their invitations, links, waiting-room entries and messages)
    that ended more than their level's `retention_days` ago. The audit log stays, and
    says what went. Returns the number of meetings deleted. The join limiter's expired
    counters go too (meetings.limits deletes some as it counts)."""
    now = now or timezone.now()
    limits.limit_counters_purge(now=now)
    purged = 0
    for level in ClassificationLevel.objects.all():
        cutoff = policy.retention_cutoff(retention_days=level.retention_days, now=now)
        expired = Meeting.objects.filter(classification=level, ends_at__lt=cutoff).exclude(
            ended_at__gte=cutoff
        )
        for meeting_id in expired.values_list("pk", flat=True).order_by("pk")[:1000]:
            with transaction.atomic():
                # Deleting needs the full FOR UPDATE (the key goes); only the meeting's row.
                meeting = Meeting.objects.select_for_update(of=("self",)).filter(pk=meeting_id).first()
                if meeting is None:
                    continue
                counts = {
                    "invitations": meeting.invitations.count(),
                    "join_links": JoinLink.objects.filter(invitation__meeting=meeting).count(),
                    "lobby_entries": meeting.lobby_entries.count(),
                    "messages": meeting.messages.count(),
                }
                audit_record(
                    action="retention_purged",
                    meeting=meeting,
                    subject=level.code,
                    detail={
                        **counts,
                        "ended": meeting.ends_at.isoformat(),
                        "retention_days": level.retention_days,
                    },
                )
                meeting.delete()
                purged += 1
    return purged
