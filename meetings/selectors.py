"""Reads. Anything beyond a plain get lives here, with its joins."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import QuerySet

from meetings.credentials import normalize_meeting_id
from meetings.models import ApiToken, ClassificationLevel, Meeting


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


def api_tokens_for_user(user: User) -> QuerySet[ApiToken]:
    """The user's tokens, newest first, revoked ones included (they say when)."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")
