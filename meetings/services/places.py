"""Ending people's places in a meeting from outside the waiting room: a revoked invitation,
or a level that rose or tightened while they waited or were in. Waiting entries are
denied, admitted ones leave, each is audited, and the media room drops their tokens and
kicks them after commit. Call holding the meeting's lock (locking.meeting_for_update).
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from meetings import policy
from meetings.audit import audit_record
from meetings.models import LobbyEntry, Meeting
from meetings.services import media


def places_end_by_revocation(*, meeting: Meeting, invitation_ids: list[int], actor: User, reason: str) -> int:
    """Revoked invitations end their holders' places: waiting entries are denied, admitted
    ones removed, and the media room drops their tokens and kicks them (after commit).

    Call holding the meeting's lock (locking.meeting_for_update). Returns how many ended.
    """
    entries = LobbyEntry.objects.filter(meeting=meeting, invitation_id__in=invitation_ids)
    return _end_entries(
        meeting=meeting, entries=entries, actor=actor, reason=reason, action="lobby_ended_by_revocation"
    )


def places_recheck(*, meeting: Meeting, actor: User, reason: str) -> int:
    """After the meeting's level rose, or its level tightened: everyone waiting or in who
    would not be let in now (policy.entry_refusal) leaves, as a revocation ends a place.

    Call holding the meeting's lock, with `meeting.classification` the level as it is now.
    Returns how many ended.
    """
    level = meeting.classification
    open_entries = LobbyEntry.objects.filter(
        meeting=meeting, status__in=[LobbyEntry.Status.WAITING, LobbyEntry.Status.ADMITTED]
    ).select_related("user", "invitation")
    refused = [entry.pk for entry in open_entries if policy.entrant_refusal(level, entry) is not None]
    if not refused:
        return 0
    entries = LobbyEntry.objects.filter(pk__in=refused)
    return _end_entries(
        meeting=meeting, entries=entries, actor=actor, reason=reason, action="lobby_ended_by_policy"
    )


def _end_entries(
    *, meeting: Meeting, entries: QuerySet[LobbyEntry], actor: User, reason: str, action: str
) -> int:
    now = timezone.now()
    ended = list(
        entries.filter(status__in=[LobbyEntry.Status.WAITING, LobbyEntry.Status.ADMITTED]).values_list(
            "pk", "display_name", "status"
        )
    )
    if not ended:
        return 0
    LobbyEntry.objects.filter(pk__in=[pk for pk, _n, s in ended if s == LobbyEntry.Status.WAITING]).update(
        status=LobbyEntry.Status.DENIED, decided_at=now
    )
    LobbyEntry.objects.filter(pk__in=[pk for pk, _n, s in ended if s == LobbyEntry.Status.ADMITTED]).update(
        status=LobbyEntry.Status.LEFT, decided_at=now
    )
    for entry_id, display_name, status in ended:
        audit_record(
            action=action,
            actor=actor,
            meeting=meeting,
            subject=display_name,
            detail={"entry_id": entry_id, "was": status, "reason": reason},
        )
    media.media_sync_on_commit(meeting.pk)
    return len(ended)
