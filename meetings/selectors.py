"""Reads. Anything beyond a plain get lives here, with its joins."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from meetings.credentials import normalize_meeting_id, token_digest
from meetings.models import ClassificationLevel, LobbyEntry, Meeting

LOBBY_FIELDS = ("id", "display_name", "status", "source", "created_at")


def levels() -> QuerySet[ClassificationLevel]:
    return ClassificationLevel.objects.order_by("rank")


def bookable_levels() -> QuerySet[ClassificationLevel]:
    return levels().filter(bookable=True)


def level_by_code(code: str) -> ClassificationLevel | None:
    return ClassificationLevel.objects.filter(code=code).first()


def meetings_for_host(host: AbstractBaseUser | AnonymousUser) -> QuerySet[Meeting]:
    return (
        Meeting.objects.filter(host_id=host.pk).select_related("classification").order_by("starts_at", "id")
    )


def meeting_for_host(host: AbstractBaseUser | AnonymousUser, raw_meeting_id: str) -> Meeting | None:
    """The host's meeting with this ID, or None: callers answer 404 either way, so IDs cannot be probed."""
    public_id = normalize_meeting_id(raw_meeting_id)
    if public_id is None or not host.is_authenticated:
        return None
    return meetings_for_host(host).filter(public_id=public_id).first()


def lobby_for_host(meeting: Meeting) -> QuerySet[LobbyEntry, dict[str, Any]]:
    """The host's live lobby: one query on the (meeting, created_at) index, plain values."""
    return LobbyEntry.objects.filter(meeting_id=meeting.pk).order_by("created_at", "id").values(*LOBBY_FIELDS)


def lobby_entry_for_session(entry_id: int, secret: str | None) -> LobbyEntry | None:
    """The entry this browser session holds the secret of, with its meeting and level; else None.

    SECURITY: the entry ID alone authorises nothing; the session's secret must match.
    """
    if not secret:
        return None
    return (
        LobbyEntry.objects.select_related("meeting__classification")
        .filter(pk=entry_id, secret_digest=token_digest(secret))
        .first()
    )


def people_in(meeting: Meeting) -> list[str]:
    return list(
        LobbyEntry.objects.filter(meeting_id=meeting.pk, status=LobbyEntry.Status.ADMITTED)
        .order_by("decided_at", "id")
        .values_list("display_name", flat=True)
    )
