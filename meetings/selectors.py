"""Reads. Anything beyond a plain get lives here, with its joins."""

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import connection
from django.db.models import F, Model, OuterRef, QuerySet, Subquery
from django.db.models.functions import Lower
from django.http import Http404
from django.utils import timezone

from meetings import conference, policy, sql
from meetings.credentials import normalize_meeting_id, token_digest
from meetings.models import (
    ApiToken,
    ClassificationLevel,
    ConferenceRoom,
    HostProfile,
    Invitation,
    JoinLink,
    LobbyEntry,
    Meeting,
    OutboundMessage,
)

LOBBY_FIELDS = ("id", "display_name", "status", "source", "created_at")
ROOM_FIELDS = ("id", "display_name", "status")
OUTBOX_FLUSH_BATCH = 500


def levels() -> QuerySet[ClassificationLevel]:
    return ClassificationLevel.objects.order_by("rank")


def level_by_code(code: str) -> ClassificationLevel | None:
    return ClassificationLevel.objects.filter(code=code).first()


def meetings_for_host(host: AbstractBaseUser | AnonymousUser) -> QuerySet[Meeting]:
    return (
        Meeting.objects.filter(host_id=host.pk).select_related("classification").order_by("starts_at", "id")
    )


def meeting_for_host_or_404(host: AbstractBaseUser | AnonymousUser, raw_meeting_id: str) -> Meeting:
    """For views: the host's meeting, or Http404.

    SECURITY: 404 for an unknown meeting and for someone else's alike, never 403, so
    meeting IDs cannot be probed.
    """
    meeting = meeting_for_host(host, raw_meeting_id)
    if meeting is None:
        raise Http404("No such meeting.")
    return meeting


def meeting_for_host(host: AbstractBaseUser | AnonymousUser, raw_meeting_id: str) -> Meeting | None:
    """The host's meeting with this ID, or None: callers answer 404 either way, so IDs cannot be probed."""
    public_id = normalize_meeting_id(raw_meeting_id)
    if public_id is None or not host.is_authenticated:
        return None
    return meetings_for_host(host).filter(public_id=public_id).first()


def meeting_for_staff(raw_meeting_id: str) -> Meeting | None:
    """Any host's meeting with this ID (for policy admins: callers check is_staff), or None."""
    public_id = normalize_meeting_id(raw_meeting_id)
    if public_id is None:
        return None
    return Meeting.objects.select_related("classification").filter(public_id=public_id).first()


def invitations_for_meeting(meeting: Meeting) -> QuerySet[Invitation]:
    """Every invitee with its latest delivery and link state, in one query."""
    latest_message = OutboundMessage.objects.filter(invitation=OuterRef("pk")).order_by("-id")
    latest_link = JoinLink.objects.filter(invitation=OuterRef("pk")).order_by("-id")
    return (
        Invitation.objects.filter(meeting=meeting)
        .annotate(
            delivery_status=Subquery(latest_message.values("status")[:1]),
            delivered_at=Subquery(latest_message.values("sent_at")[:1]),
            delivery_error=Subquery(latest_message.values("last_error")[:1]),
            link_redeemed_at=Subquery(latest_link.values("redeemed_at")[:1]),
            link_revoked_reason=Subquery(latest_link.values("revoked_reason")[:1]),
            link_expires_at=Subquery(latest_link.values("expires_at")[:1]),
            # A resend replaces a spent link too: "redeemed" means any of its links was spent.
            first_redeemed_at=Subquery(
                JoinLink.objects.filter(invitation=OuterRef("pk"), redeemed_at__isnull=False)
                .order_by("redeemed_at")
                .values("redeemed_at")[:1]
            ),
        )
        .order_by("id")
    )


def invitation_for_host(meeting: Meeting, invitation_id: str | int) -> Invitation | None:
    try:
        pk = int(invitation_id)
    except (TypeError, ValueError):
        return None
    return Invitation.objects.filter(meeting=meeting, pk=pk).first()


# A join link and what deciding on it needs: each model after the first is joined by the
# foreign key of the one before it (link.invitation, invitation.meeting, meeting.classification).
LINK_CHAIN: tuple[type[Model], ...] = (JoinLink, Invitation, Meeting, ClassificationLevel)
LINK_KEYS = ("invitation", "meeting", "classification")


@functools.cache
def _link_lookup_sql(vendor: str) -> str:
    """One SELECT of every column of the four models, the link found by its digest (cached
    per database vendor, whose quoting it uses)."""
    columns = [
        f"t{n}.{sql.column(model, field.name)}"
        for n, model in enumerate(LINK_CHAIN)
        for field in model._meta.concrete_fields
    ]
    joins = [
        f"JOIN {sql.table(model)} t{n} ON t{n}.{sql.column(model, 'id')}"
        f" = t{n - 1}.{sql.column(LINK_CHAIN[n - 1], key)}"
        for n, (model, key) in enumerate(zip(LINK_CHAIN[1:], LINK_KEYS, strict=True), start=1)
    ]
    return (
        f"SELECT {', '.join(columns)} FROM {sql.table(JoinLink)} t0 {' '.join(joins)}"  # noqa: S608 - names from the models
        f" WHERE t0.{sql.column(JoinLink, 'token_hash')} = %s"
    )


@functools.cache
def _link_converted_columns(vendor: str) -> list[tuple[int, Any]]:
    """(column index, column) of the lookup's columns whose values the backend or the field
    converts on the way in (JSON everywhere; dates, booleans and UUIDs on SQLite), as
    Django's compiler would."""
    columns = [
        field.get_col(f"t{n}") for n, model in enumerate(LINK_CHAIN) for field in model._meta.concrete_fields
    ]
    return [
        (index, column)
        for index, column in enumerate(columns)
        if connection.ops.get_db_converters(column) or column.get_db_converters(connection)
    ]


def link_by_token(token: str) -> JoinLink | None:
    """The link with this token, its invitation, meeting and level loaded with it.

    SQL written once per process instead of the ORM's select_related: compiling that
    four-table query took longer than running it, and every redemption (the busiest write
    there is, a whole mailing list clicking at nine o'clock) starts here. The rows become
    model instances the way the ORM makes them (Model.from_db, with the backend's and the
    fields' converters), so callers get the same objects (tests/test_selectors.py compares
    every field with select_related's). The host is read only when a page shows it (the
    confirmation), never on the redemption itself.
    """
    if not token or len(token) > 100:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_link_lookup_sql(connection.vendor), [token_digest(token)])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, expression in _link_converted_columns(connection.vendor):
        value = values[index]
        for convert in (
            *connection.ops.get_db_converters(expression),
            *expression.get_db_converters(connection),
        ):
            value = convert(value, expression, connection)
        values[index] = value
    objects: list[Any] = []
    start = 0
    for model in LINK_CHAIN:
        fields = model._meta.concrete_fields
        objects.append(
            model.from_db(
                connection.alias, [field.attname for field in fields], values[start : start + len(fields)]
            )
        )
        start += len(fields)
    link, invitation, meeting, level = objects
    meeting.classification = level
    invitation.meeting = meeting
    link.invitation = invitation
    return link


def lobby_for_host(meeting: Meeting) -> QuerySet[LobbyEntry, dict[str, Any]]:
    """The host's live lobby: one query on the (meeting, created_at) index, plain values."""
    return (
        LobbyEntry.objects.filter(meeting_id=meeting.pk)
        .order_by("created_at", "id")
        .values(*LOBBY_FIELDS)
        .annotate(invited_email=F("invitation__email"))
    )


def room_for_host(meeting: Meeting) -> list[dict[str, Any]]:
    """The host's room list: who is in and who waits, in the lobby's (stable) order."""
    return list(
        LobbyEntry.objects.filter(
            meeting_id=meeting.pk, status__in=(LobbyEntry.Status.WAITING, LobbyEntry.Status.ADMITTED)
        )
        .order_by("created_at", "id")
        .values(*ROOM_FIELDS)
    )


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


def invitation_link_stands(invitation: Invitation, link_id: int) -> bool:
    """Whether a browser that redeemed this link may still come back with it: neither the
    invitation nor the link was revoked (a revocation or a resend revokes every link)."""
    return (
        invitation.revoked_at is None
        and JoinLink.objects.filter(pk=link_id, invitation=invitation, revoked_at__isnull=True).exists()
    )


def lobby_entry_of_invitation_for_session(
    invitation: Invitation, secret_for: Callable[[int], str | None]
) -> LobbyEntry | None:
    """The invitee's current entry (not one they left) whose secret this session holds."""
    for entry in (
        LobbyEntry.objects.filter(invitation=invitation)
        .exclude(status=LobbyEntry.Status.LEFT)
        .order_by("-id")
    ):
        secret = secret_for(entry.pk)
        if secret and entry.secret_digest == token_digest(secret):
            return entry
    return None


def api_tokens_for_user(user: User) -> QuerySet[ApiToken]:
    """The user's tokens, newest first, revoked ones included (they say when)."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def _open_room(meeting: Meeting) -> ConferenceRoom | None:
    """The media room people may be told about now.

    SECURITY: a cancelled or ended meeting's room is closed for its pages at once, from
    the meeting's own row: not only once the media server has destroyed it.
    """
    if not conference.backend().configured:
        return None
    return (
        ConferenceRoom.objects.select_related("meeting")
        .filter(meeting_id=meeting.pk, closed_at=None, meeting__ended_at=None)
        .exclude(opened_at=None)
        .exclude(meeting__status=Meeting.Status.CANCELLED)
        .first()
    )


def room_spec(room: ConferenceRoom) -> conference.Room:
    """What the media server and the browsers are told about a room."""
    return conference.Room(
        number=room.number,
        secret=room.secret,
        pin=room.pin,
        record=room.record,
        description=room.meeting.title,
        e2ee=room.e2ee,
    )


def media_for_entry(entry: LobbyEntry) -> dict[str, Any] | None:
    """What an admitted person's room page needs to join the media room, or None.

    Callers have checked that this session holds the entry and that it is admitted.
    """
    room = _open_room(entry.meeting)
    if room is None or entry.media_feed_id is None:
        return None
    if policy.entrant_refusal(entry.meeting.classification, entry) is not None:
        # SECURITY: the level as it is now decides, as at the door (policy.entry_refusal).
        return None
    return conference.browser_config(
        room=room_spec(room),
        token=conference.media_token(room.number, entry_id=entry.pk, feed_id=entry.media_feed_id),
        feed_id=entry.media_feed_id,
        display=entry.display_name,
    )


def media_for_host(meeting: Meeting, display: str) -> dict[str, Any] | None:
    room = _open_room(meeting)
    if room is None:
        return None
    return conference.browser_config(
        room=room_spec(room), token=room.host_token, feed_id=room.host_feed_id, display=display
    )


def media_configured() -> bool:
    return conference.backend().configured


def active_invitations(meeting: Meeting) -> list[Invitation]:
    return list(Invitation.objects.filter(meeting=meeting, revoked_at__isnull=True).order_by("id"))


def outbox_due() -> list[int]:
    """Pending messages due now (for the periodic flush), oldest first, at most a batch."""
    now = timezone.now()
    grace = timedelta(seconds=settings.ANTECHAMBER_OUTBOX_FLUSH_GRACE_SECONDS)
    return list(
        OutboundMessage.objects.filter(
            status=OutboundMessage.Status.PENDING,
            next_attempt_at__lte=now,
            created_at__lte=now - grace,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:OUTBOX_FLUSH_BATCH]
    )


def media_rooms_open() -> list[int]:
    """Meetings whose media room may need syncing (for the periodic task)."""
    return list(ConferenceRoom.objects.filter(closed_at=None).values_list("meeting_id", flat=True))


def host_zone(user: AbstractBaseUser | AnonymousUser) -> str:
    """The zone the signed-in person chose in their profile, or "" (pages then use the browser's)."""
    if not user.is_authenticated:
        return ""
    return HostProfile.objects.filter(user_id=user.pk).values_list("timezone", flat=True).first() or ""


def invitees_without_second_factor(meeting: Meeting) -> list[str]:
    """Where the level requires participant MFA: the active invitees with no account that
    has a confirmed authenticator (TOTP) device, who therefore cannot get in. Else []."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if not meeting.classification.require_participant_mfa:
        return []
    emails = [inv.email for inv in active_invitations(meeting)]
    ready = {
        email
        for email in TOTPDevice.objects.filter(confirmed=True, user__is_active=True)
        .annotate(email=Lower("user__email"))
        .filter(email__in=emails)
        .values_list("email", flat=True)
    }
    return [email for email in emails if email.lower() not in ready]
