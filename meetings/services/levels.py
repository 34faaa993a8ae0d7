"""Changing a classification level, and carrying a tightening to its meetings."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from meetings import emails, errors, policy, selectors
from meetings.audit import audit_record
from meetings.models import ClassificationLevel, Invitation, JoinLink, Meeting
from meetings.services import invitations, lifecycle, locking, media, outbox, places
from meetings.services.booking import INVITEE_VISIBLE, meeting_options

LEVEL_CHANGEABLE = (
    "name",
    "rank",
    "bookable",
    "allow_cloud_recording",
    "allow_dial_in",
    "require_waiting_room",
    "allow_guests",
    "allow_passcode_join",
    "require_host_mfa",
    "require_participant_mfa",
    "max_link_lifetime_hours",
    "allowed_invitee_domains",
    "min_passcode_bits",
    "retention_days",
    "link_in_calendar",
    "e2ee",
)


def level_create(*, actor: User, code: str, values: dict[str, Any]) -> ClassificationLevel:
    """A new level (policy admins, in the admin), audited like every change of policy."""
    unknown = set(values) - set(LEVEL_CHANGEABLE)
    if unknown:
        raise ValueError(f"not settable: {sorted(unknown)}")
    with transaction.atomic():
        others = _all_levels_for_update()
        level = ClassificationLevel(code=code, **values)
        _refuse_misordered(level, others.values(), changed=set(values))
        level.save()
        audit_record(action="level_created", actor=actor, subject=code, detail=values)
    return level


def level_update(
    *, level: ClassificationLevel, actor: User, changes: dict[str, Any]
) -> tuple[ClassificationLevel, int]:
    """Change a level; a tightening reaches every meeting at it that has not ended.

    Returns the level and the number of meetings changed. Loosening switches nothing on.
    """
    unknown = set(changes) - set(LEVEL_CHANGEABLE)
    if unknown:
        raise ValueError(f"not changeable: {sorted(unknown)}")
    now = timezone.now()
    with transaction.atomic():
        # The levels, then this one's meetings (locking.py): waits for bookings and changes
        # that hold a level FOR SHARE, and they for us. Every level, because a rank edit is
        # checked against all of them (_refuse_misordered).
        levels = _all_levels_for_update()
        level = levels[level.pk]
        diff = {
            name: {"old": getattr(level, name), "new": value}
            for name, value in changes.items()
            if getattr(level, name) != value
        }
        if not diff:
            return level, 0
        for name, value in changes.items():
            setattr(level, name, value)
        _refuse_misordered(level, levels.values(), changed=set(diff))
        level.save()
        audit_record(action="level_changed", actor=actor, subject=level.code, detail=diff)

        touched = 0
        # Every meeting not in fact over (policy.meeting_reachable): a started one runs,
        # with people and media tokens in it, until the host ends it, however long past
        # its scheduled end; one never started is over after its end plus the grace.
        affected = locking.meetings_at_level_for_update(level).filter(
            Q(ends_at__gt=now - timedelta(minutes=settings.ANTECHAMBER_JOIN_GRACE_MINUTES))
            | Q(started_at__isnull=False),
            status=Meeting.Status.SCHEDULED,
            ended_at=None,
        )
        for meeting in affected:
            meeting.classification = level
            if _enforce(meeting=meeting, level=level, actor=actor, now=now):
                touched += 1
    return level, touched


def _all_levels_for_update() -> dict[int, ClassificationLevel]:
    """Every level, locked in ascending id (locking.py's order), so that two rank edits
    cannot each pass the ordering check against the other's old values."""
    return {
        level.pk: level
        for level in ClassificationLevel.objects.select_for_update(of=("self",), no_key=True).order_by("id")
    }


def _refuse_misordered(level: ClassificationLevel, levels: Any, *, changed: set[str]) -> None:
    """400 naming `rank` where the level, as edited, would rank above one it allows more than
    (or below one that allows more than it): policy.rank_order_violation."""
    if not changed & (policy.LEVEL_RULE_FIELDS | {"rank"}):
        return
    violation = policy.rank_order_violation(level, [other for other in levels if other.pk != level.pk])
    if violation is not None:
        raise errors.Refused([violation])


def _enforce(*, meeting: Meeting, level: ClassificationLevel, actor: User, now: datetime) -> bool:
    """Bring one meeting (held under its lock) within its tightened level; True if it changed."""
    if not level.bookable:
        # SECURITY: a level that may no longer be held here closes its meetings: cancelled
        # before they start, ended if running (lifecycle.close_by_policy), the host told.
        closed = lifecycle.close_by_policy(meeting=meeting, actor=actor, now=now)
        _tell_host(meeting, emails.level_tightened(meeting=meeting, changes=[], closed=closed))
        return True
    changes_made = policy.enforce_level(level, meeting_options(meeting))
    links_shortened = _shorten_links(meeting=meeting, level=level, actor=actor)
    refused_emails = [
        inv.email
        for inv in selectors.active_invitations(meeting)
        if policy.invitee_violations(level, [inv.email])
    ]
    weak_passcode = meeting.passcode_bits < policy.required_passcode_bits(level)
    # SECURITY: those already waiting or in are asked again under the tightened level.
    people_ended = places.places_recheck(meeting=meeting, actor=actor, reason="level tightened")
    if not (changes_made or refused_emails or weak_passcode or links_shortened):
        return people_ended > 0
    if refused_emails:
        _revoke_by_policy(meeting=meeting, actor=actor, emails_to_revoke=refused_emails, now=now)
    for change in changes_made:
        setattr(meeting, change.field, change.new)
        audit_record(
            action="meeting_option_enforced",
            actor=actor,
            meeting=meeting,
            subject=change.field,
            detail={"old": change.old, "new": change.new, "reason": change.reason, "level": level.code},
        )
    if not meeting.dial_in:
        meeting.dial_in_code = ""
    invitees_affected = any(change.field in INVITEE_VISIBLE for change in changes_made)
    if invitees_affected:
        meeting.sequence += 1
    meeting.save()
    if invitees_affected:
        changed = {c.field: {"old": c.old, "new": c.new} for c in changes_made}
        invitations.notify_invitees_of_change(meeting=meeting, now=now, changes=changed)
    # A recording media room stops recording once the level forbids it.
    media.media_sync_on_commit(meeting.pk)
    message = emails.level_tightened(
        meeting=meeting,
        changes=changes_made,
        revoked_invitees=refused_emails,
        weak_passcode=weak_passcode,
        links_shortened=links_shortened,
    )
    _tell_host(meeting, message)
    return True


def _tell_host(meeting: Meeting, message: emails.Message) -> None:
    outbox.outbox_enqueue(
        message=message, kind="level_tightened", to_email=meeting.host.email, meeting=meeting
    )


def _shorten_links(*, meeting: Meeting, level: ClassificationLevel, actor: User) -> int:
    """Unspent links outliving the level's (shortened) maximum now expire at it: each at its
    creation plus max_link_lifetime_hours, as policy.link_expiry gives a new link; never
    later than it already expires. Returns how many were shortened."""
    longest = timedelta(hours=level.max_link_lifetime_hours)
    shortened = JoinLink.objects.filter(
        invitation__meeting=meeting,
        redeemed_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=F("created_at") + longest,
    ).update(expires_at=F("created_at") + longest)
    if shortened:
        audit_record(
            action="links_shortened_by_policy",
            actor=actor,
            meeting=meeting,
            subject=meeting.title,
            detail={"links": shortened, "max_link_lifetime_hours": level.max_link_lifetime_hours},
        )
    return shortened


def _revoke_by_policy(*, meeting: Meeting, actor: User, emails_to_revoke: list[str], now: datetime) -> None:
    """A tightened level no longer admits these invitees: their invitations and links die."""
    revoked = list(Invitation.objects.filter(meeting=meeting, email__in=emails_to_revoke, revoked_at=None))
    Invitation.objects.filter(pk__in=[i.pk for i in revoked]).update(revoked_at=now)
    invitations.revoke_links_and_places(
        meeting=meeting, invitations=revoked, actor=actor, now=now, reason="level tightened"
    )
    invitations.sequence_raise(meeting)
    invitations.notify_invitees_of_cancellation(
        meeting=meeting,
        invitations=revoked,
        reason=f"Your invitation was withdrawn: {meeting.classification.name} meetings no longer admit your address.",
    )
    for invitation in revoked:
        audit_record(
            action="invitation_revoked_by_policy",
            actor=actor,
            meeting=meeting,
            subject=invitation.email,
            detail={"level": meeting.classification.code},
        )
