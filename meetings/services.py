"""Every write. Each service is atomic and takes keyword-only arguments."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from meetings import conference, credentials, emails, limits, policy
from meetings.audit import audit_record
from meetings.models import (
    ApiToken,
    ClassificationLevel,
    ConferenceRoom,
    Invitation,
    JoinLink,
    LobbyEntry,
    Meeting,
    OutboundMessage,
)

MAX_DURATION_MINUTES = 1440
BOOKING_HORIZON = timedelta(days=10 * 365)
OUTBOX_MAX_ATTEMPTS = 8
OUTBOX_FLUSH_BATCH = 500


class Refused(Exception):
    """The request breaks a rule. Carries every violation, each naming its field."""

    def __init__(self, violations: list[policy.Violation]):
        super().__init__("; ".join(v.message for v in violations))
        self.violations = violations

    def as_dict(self) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        for violation in self.violations:
            errors.setdefault(violation.field, []).append(violation.message)
        return errors


@dataclass(frozen=True)
class Booked:
    meeting: Meeting
    passcode: str


# Fields a host may change, and the ones invitees must hear about (ICS SEQUENCE).
MEETING_CHANGEABLE = (
    "title",
    "starts_at",
    "duration_minutes",
    "timezone",
    "classification",
    "cloud_recording",
    "dial_in",
    "waiting_room",
)
INVITEE_VISIBLE = {"title", "starts_at", "duration_minutes", "classification", "dial_in"}
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
)


def _lock_level_for_share(pk: int) -> ClassificationLevel:
    """Re-read a level inside the caller's transaction so a concurrent tightening waits for us.

    On PostgreSQL a FOR SHARE lock lets bookings run side by side while
    classification_update's FOR UPDATE waits for them (and they for it). SQLite
    serialises writers anyway (transaction_mode IMMEDIATE).
    """
    if connection.vendor == "postgresql":
        table = ClassificationLevel._meta.db_table
        return ClassificationLevel.objects.raw(
            f'SELECT * FROM "{table}" WHERE id = %s FOR SHARE',  # noqa: S608 - table name is ours
            [pk],
        )[0]
    return ClassificationLevel.objects.get(pk=pk)


def _schedule_violations(
    *, starts_at: datetime, duration_minutes: int, tz_name: str, now: datetime
) -> list[policy.Violation]:
    violations = []
    if timezone.is_naive(starts_at):
        violations.append(policy.Violation("starts_at", "Give the start time with a UTC offset."))
    elif starts_at - now > BOOKING_HORIZON:
        # Also keeps end times, link expiries and grace periods far from datetime.max: a
        # start in the year 9999 used to overflow into a 500 (found by probing the API).
        violations.append(
            policy.Violation("starts_at", f"Book at most {BOOKING_HORIZON.days // 365} years ahead.")
        )
    elif starts_at + timedelta(minutes=min(max(duration_minutes, 0), MAX_DURATION_MINUTES)) <= now:
        violations.append(policy.Violation("starts_at", "This meeting would already have ended."))
    if not 1 <= duration_minutes <= MAX_DURATION_MINUTES:
        violations.append(
            policy.Violation(
                "duration_minutes",
                f"Duration must be between 1 and {MAX_DURATION_MINUTES} minutes.",
            )
        )
    if tz_name not in zoneinfo.available_timezones():
        violations.append(
            policy.Violation(
                "timezone", f"Unknown time zone {tz_name!r}. Use an IANA name such as Europe/London."
            )
        )
    return violations


def _options(meeting: Meeting) -> policy.MeetingOptions:
    return policy.MeetingOptions(
        cloud_recording=meeting.cloud_recording,
        dial_in=meeting.dial_in,
        waiting_room=meeting.waiting_room,
    )


def meeting_book(
    *,
    host: User,
    title: str,
    starts_at: datetime,
    duration_minutes: int,
    classification: ClassificationLevel,
    cloud_recording: bool = False,
    dial_in: bool = False,
    waiting_room: bool = True,
    timezone_name: str = "UTC",
    invitees: list[str] | None = None,
    host_has_second_factor: bool,
) -> Booked:
    """Book a meeting (and invite people, in the same transaction)."""
    wanted = _normalise_emails(invitees or [])
    options = policy.MeetingOptions(
        cloud_recording=cloud_recording, dial_in=dial_in, waiting_room=waiting_room
    )
    now = timezone.now()

    def violations_for(level: ClassificationLevel) -> list[policy.Violation]:
        return policy.check_meeting(
            level, options, host_has_second_factor=host_has_second_factor, invitees=wanted
        ) + _schedule_violations(
            starts_at=starts_at, duration_minutes=duration_minutes, tz_name=timezone_name, now=now
        )

    if violations := violations_for(classification):
        raise Refused(violations)
    # The argon2 work happens outside the transaction, so no lock is held during it.
    passcode, bits = credentials.new_passcode(policy.required_passcode_bits(classification))
    passcode_hash = credentials.hash_passcode(passcode)

    with transaction.atomic():
        level = _lock_level_for_share(classification.pk)
        if violations := violations_for(level):
            raise Refused(violations)
        if bits < policy.required_passcode_bits(level):
            passcode, bits = credentials.new_passcode(policy.required_passcode_bits(level))
            passcode_hash = credentials.hash_passcode(passcode)
        meeting = Meeting(
            host=host,
            title=title,
            starts_at=starts_at,
            duration_minutes=duration_minutes,
            ends_at=starts_at + timedelta(minutes=duration_minutes),
            timezone=timezone_name,
            classification=level,
            cloud_recording=cloud_recording,
            dial_in=dial_in,
            waiting_room=waiting_room,
            passcode_hash=passcode_hash,
            passcode_bits=bits,
            passcode_rotated_at=now,
            dial_in_code=credentials.new_dial_in_code() if dial_in else "",
        )
        for _attempt in range(3):  # an 80-bit collision is a once-in-the-universe event; be safe anyway
            meeting.public_id = credentials.new_meeting_id()
            try:
                with transaction.atomic():
                    meeting.save()
                break
            except IntegrityError:
                if Meeting.objects.filter(public_id=meeting.public_id).exists():
                    continue
                raise
        audit_record(
            action="meeting_booked",
            actor=host,
            meeting=meeting,
            subject=title,
            detail={
                "classification": level.code,
                "starts_at": starts_at.isoformat(),
                "duration_minutes": duration_minutes,
                "cloud_recording": cloud_recording,
                "dial_in": dial_in,
                "waiting_room": waiting_room,
                "passcode_bits": bits,
            },
        )
        if wanted:
            _invite(meeting=meeting, actor=host, emails_to_invite=wanted, now=now)
    return Booked(meeting=meeting, passcode=passcode)


def _refuse_if_closed(meeting: Meeting, now: datetime) -> None:
    if meeting.is_cancelled:
        raise Refused(
            [policy.Violation("detail", "This meeting was cancelled; it can no longer be changed.")]
        )
    if meeting.ends_at <= now:
        raise Refused([policy.Violation("detail", "This meeting has ended; it can no longer be changed.")])


def _refuse_without_factor(meeting: Meeting, host_has_second_factor: bool) -> None:
    if meeting.classification.require_host_mfa and not host_has_second_factor:
        raise Refused(
            [
                policy.Violation(
                    "detail",
                    f"Changing {meeting.classification.name} meetings needs a second factor: "
                    "sign in with your authenticator app, or use an API token.",
                )
            ]
        )


@dataclass(frozen=True)
class Updated:
    meeting: Meeting
    passcode: str | None  # set when the new level needed a stronger passcode


def meeting_update(
    *,
    meeting: Meeting,
    actor: User,
    changes: dict[str, Any],
    host_has_second_factor: bool,
) -> Updated:
    """Change a meeting; every option is re-checked against the (possibly new) level."""
    unknown = set(changes) - set(MEETING_CHANGEABLE)
    if unknown:
        raise ValueError(f"not changeable: {sorted(unknown)}")
    now = timezone.now()
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().select_related("classification").get(pk=meeting.pk)
        _refuse_if_closed(meeting, now)
        _refuse_without_factor(meeting, host_has_second_factor)
        new_level = changes.get("classification", meeting.classification)
        level = _lock_level_for_share(new_level.pk)
        merged = {name: changes.get(name, getattr(meeting, name)) for name in MEETING_CHANGEABLE}
        options = policy.MeetingOptions(
            cloud_recording=merged["cloud_recording"],
            dial_in=merged["dial_in"],
            waiting_room=merged["waiting_room"],
        )
        violations = policy.check_meeting(
            level,
            options,
            host_has_second_factor=host_has_second_factor,
            invitees=[inv.email for inv in _active_invitations(meeting)]
            if level != meeting.classification
            else (),
        )
        violations += _schedule_violations(
            starts_at=merged["starts_at"],
            duration_minutes=merged["duration_minutes"],
            tz_name=merged["timezone"],
            now=now,
        )
        if violations:
            raise Refused(violations)

        diff: dict[str, Any] = {}
        for name in MEETING_CHANGEABLE:
            old, new = getattr(meeting, name), merged[name]
            if name == "classification":
                old, new = old.code, level.code
            if old != new:
                diff[name] = {"old": _jsonable(old), "new": _jsonable(new)}
        if not diff:
            return Updated(meeting=meeting, passcode=None)

        for name in MEETING_CHANGEABLE:
            setattr(meeting, name, merged[name])
        meeting.classification = level
        meeting.ends_at = meeting.starts_at + timedelta(minutes=meeting.duration_minutes)
        if meeting.dial_in and not meeting.dial_in_code:
            meeting.dial_in_code = credentials.new_dial_in_code()
        elif not meeting.dial_in:
            meeting.dial_in_code = ""
        new_passcode = None
        if meeting.passcode_bits < policy.required_passcode_bits(level):
            new_passcode = _set_new_passcode(meeting, level, now)
            diff["passcode"] = {"rotated": True, "reason": f"{level.name} needs a stronger passcode"}
        if INVITEE_VISIBLE & set(diff):
            meeting.sequence += 1
        meeting.save()
        audit_record(
            action="meeting_changed", actor=actor, meeting=meeting, subject=meeting.title, detail=diff
        )
        if INVITEE_VISIBLE & set(diff):
            _notify_invitees_of_change(meeting=meeting, now=now, changes=diff)
        _conference_sync_on_commit(meeting.pk)
        if "classification" in diff:
            audit_record(
                action="meeting_level_changed",
                actor=actor,
                meeting=meeting,
                subject=meeting.title,
                detail=diff["classification"],
            )
    return Updated(meeting=meeting, passcode=new_passcode)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _set_new_passcode(meeting: Meeting, level: ClassificationLevel, now: datetime) -> str:
    passcode, bits = credentials.new_passcode(policy.required_passcode_bits(level))
    meeting.passcode_hash = credentials.hash_passcode(passcode)
    meeting.passcode_bits = bits
    meeting.passcode_rotated_at = now
    return passcode


def meeting_cancel(*, meeting: Meeting, actor: User) -> Meeting:
    now = timezone.now()
    with transaction.atomic():
        won = Meeting.objects.filter(pk=meeting.pk, status=Meeting.Status.SCHEDULED).update(
            status=Meeting.Status.CANCELLED, cancelled_at=now, sequence=F("sequence") + 1, updated_at=now
        )
        meeting.refresh_from_db()
        if won != 1:
            raise Refused([policy.Violation("detail", "This meeting is already cancelled.")])
        JoinLink.objects.filter(
            invitation__meeting=meeting, redeemed_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=now, revoked_reason=JoinLink.Revoked.CANCELLED)
        if meeting.ends_at > now and meeting.ended_at is None:  # an ended meeting is history: no mail
            _notify_invitees_of_cancellation(
                meeting=meeting,
                invitations=_active_invitations(meeting),
                reason="The host cancelled this meeting.",
            )
        audit_record(action="meeting_cancelled", actor=actor, meeting=meeting, subject=meeting.title)
        _conference_sync_on_commit(meeting.pk)
    return meeting


def meeting_rotate_passcode(*, meeting: Meeting, actor: User, host_has_second_factor: bool) -> str:
    """A new passcode; the old one stops working at once. Returns it: show it once."""
    now = timezone.now()
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().select_related("classification").get(pk=meeting.pk)
        _refuse_if_closed(meeting, now)
        _refuse_without_factor(meeting, host_has_second_factor)
        passcode = _set_new_passcode(meeting, meeting.classification, now)
        meeting.save(update_fields=["passcode_hash", "passcode_bits", "passcode_rotated_at", "updated_at"])
        audit_record(
            action="passcode_rotated",
            actor=actor,
            meeting=meeting,
            subject=meeting.title,
            detail={"passcode_bits": meeting.passcode_bits},
        )
        # The guesses so far were against the old passcode: unlock passcode joins at once.
        public_id = meeting.public_id
        transaction.on_commit(lambda: limits.meeting_unlock(public_id))
    return passcode


def classification_update(
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
        # FOR UPDATE: waits for bookings that hold FOR SHARE on this level, and they for us.
        level = ClassificationLevel.objects.select_for_update().get(pk=level.pk)
        diff = {
            name: {"old": getattr(level, name), "new": value}
            for name, value in changes.items()
            if getattr(level, name) != value
        }
        if not diff:
            return level, 0
        for name, value in changes.items():
            setattr(level, name, value)
        level.save()
        audit_record(action="level_changed", actor=actor, subject=level.code, detail=diff)

        touched = 0
        affected = (
            Meeting.objects.select_for_update()
            .select_related("host")
            .filter(classification=level, status=Meeting.Status.SCHEDULED, ends_at__gt=now, ended_at=None)
            .order_by("id")
        )
        for meeting in affected:
            meeting.classification = level
            changes_made = policy.enforce_level(level, _options(meeting))
            refused_emails = [
                inv.email
                for inv in _active_invitations(meeting)
                if policy.invitee_violations(level, [inv.email])
            ]
            weak_passcode = meeting.passcode_bits < policy.required_passcode_bits(level)
            if not (changes_made or refused_emails or weak_passcode):
                continue
            touched += 1
            if refused_emails:
                _revoke_by_policy(meeting=meeting, actor=actor, emails_to_revoke=refused_emails, now=now)
            for change in changes_made:
                setattr(meeting, change.field, change.new)
                audit_record(
                    action="meeting_option_enforced",
                    actor=actor,
                    meeting=meeting,
                    subject=change.field,
                    detail={
                        "old": change.old,
                        "new": change.new,
                        "reason": change.reason,
                        "level": level.code,
                    },
                )
            if not meeting.dial_in:
                meeting.dial_in_code = ""
            invitees_affected = any(change.field in INVITEE_VISIBLE for change in changes_made)
            if invitees_affected:
                meeting.sequence += 1
            meeting.save()
            if invitees_affected:
                changed = {c.field: {"old": c.old, "new": c.new} for c in changes_made}
                _notify_invitees_of_change(meeting=meeting, now=now, changes=changed)
            # A recording media room stops recording once the level forbids it.
            _conference_sync_on_commit(meeting.pk)
            message = emails.level_tightened(
                meeting=meeting,
                changes=changes_made,
                revoked_invitees=refused_emails,
                weak_passcode=weak_passcode,
            )
            outbox_enqueue(
                message=message, kind="level_tightened", to_email=meeting.host.email, meeting=meeting
            )
    return level, touched


def _revoke_by_policy(*, meeting: Meeting, actor: User, emails_to_revoke: list[str], now: datetime) -> None:
    """A tightened level no longer admits these invitees: their invitations and links die."""
    invitations = list(
        Invitation.objects.filter(meeting=meeting, email__in=emails_to_revoke, revoked_at=None)
    )
    Invitation.objects.filter(pk__in=[i.pk for i in invitations]).update(revoked_at=now)
    JoinLink.objects.filter(
        invitation__in=invitations, redeemed_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now, revoked_reason=JoinLink.Revoked.REVOKED)
    _sequence_raise(meeting)
    _notify_invitees_of_cancellation(
        meeting=meeting,
        invitations=invitations,
        reason=f"Your invitation was withdrawn: {meeting.classification.name} meetings no longer admit your address.",
    )
    for invitation in invitations:
        audit_record(
            action="invitation_revoked_by_policy",
            actor=actor,
            meeting=meeting,
            subject=invitation.email,
            detail={"level": meeting.classification.code},
        )


def api_token_create(*, user: User, label: str = "", created_by: User | None = None) -> tuple[ApiToken, str]:
    """Issue a token; returns it with its key, which is never stored and cannot be shown again.

    Callers must have checked that the session passed a second factor, or be an operator.
    """
    key = credentials.new_token()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, key_hash=credentials.token_digest(key), prefix=key[:8], label=label
        )
        audit_record(
            action="api_token_created",
            actor=created_by or user,
            subject=user.get_username(),
            detail={"token_id": token.pk, "prefix": token.prefix, "label": label},
        )
    return token, key


def api_token_revoke(*, token_id: int, user: User) -> ApiToken:
    """Revoke one of the user's own tokens. Unknown, someone else's or already revoked: Refused.

    One conditional update, so a token is revoked (and audited) exactly once.
    """
    now = timezone.now()
    with transaction.atomic():
        won = ApiToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).update(revoked_at=now)
        if won != 1:
            raise Refused([policy.Violation("detail", "No such active token.")])
        token = ApiToken.objects.get(pk=token_id)
        audit_record(
            action="api_token_revoked",
            actor=user,
            subject=user.get_username(),
            detail={"token_id": token.pk, "prefix": token.prefix, "label": token.label},
        )
    return token


# --- The outbox -------------------------------------------------------------------


def _outbox_row(
    *,
    message: emails.Message,
    kind: str,
    to_email: str,
    meeting: Meeting | None = None,
    invitation: Invitation | None = None,
) -> OutboundMessage:
    domain = settings.SITE_URL.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "localhost"
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
        message_id=make_msgid(idstring=kind, domain=domain),
        next_attempt_at=timezone.now(),
    )


def _outbox_write(rows: list[OutboundMessage]) -> list[OutboundMessage]:
    """Write message rows in the caller's transaction; tasks send them after commit.

    If the broker is down the enqueue fails after commit (robust: the request still
    succeeds) and the periodic outbox_flush sends the rows later: nothing is lost.
    """
    if not rows:
        return []
    created = OutboundMessage.objects.bulk_create(rows)
    ids = [row.pk for row in created]
    from meetings import tasks  # the task module imports this one

    def enqueue() -> None:
        for message_id in ids:
            tasks.outbox_send.delay(message_id)

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
    return _outbox_write([_outbox_row(message=message, kind=kind, to_email=to_email, meeting=meeting)])[0]


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
    email = emails.build_email(row)
    try:
        email.send(fail_silently=False)
    except Exception as exc:  # any transport failure: keep the row, retry later
        # Exponential backoff from a configurable base (tests shorten it), capped at an hour.
        delay = min(settings.ANTECHAMBER_OUTBOX_RETRY_BASE_SECONDS * 2 ** (row.attempts - 1), 3600)
        final = row.attempts >= OUTBOX_MAX_ATTEMPTS
        OutboundMessage.objects.filter(pk=row.pk, status=OutboundMessage.Status.SENDING).update(
            status=OutboundMessage.Status.FAILED if final else OutboundMessage.Status.PENDING,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            claimed_at=None,
        )
        return SendResult(sent=False, retry_in=None if final else delay)
    OutboundMessage.objects.filter(pk=row.pk).update(
        status=OutboundMessage.Status.SENT, sent_at=timezone.now(), last_error=""
    )
    return SendResult(sent=True)


def outbox_due() -> list[int]:
    """Release claims of workers that died mid-send; return pending messages due now.

    A message whose worker died after the SMTP server accepted it is sent again:
    delivery is at least once, and the stable Message-ID lets clients drop the copy.
    """
    now = timezone.now()
    stale_claim = timedelta(seconds=settings.ANTECHAMBER_OUTBOX_STALE_CLAIM_SECONDS)
    grace = timedelta(seconds=settings.ANTECHAMBER_OUTBOX_FLUSH_GRACE_SECONDS)
    OutboundMessage.objects.filter(
        status=OutboundMessage.Status.SENDING, claimed_at__lt=now - stale_claim
    ).update(status=OutboundMessage.Status.PENDING, claimed_at=None)
    return list(
        OutboundMessage.objects.filter(
            status=OutboundMessage.Status.PENDING,
            next_attempt_at__lte=now,
            created_at__lte=now - grace,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:OUTBOX_FLUSH_BATCH]
    )


# --- Invitations and one-time links ---------------------------------------------------


def _normalise_emails(raw: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for email in raw:
        seen.setdefault(email.strip().lower(), None)
    return list(seen)


def _link_url(token: str) -> str:
    return f"{settings.SITE_URL}/j/{token}/"


def _new_link(
    invitation: Invitation, meeting: Meeting, level: ClassificationLevel, now: datetime
) -> tuple[JoinLink, str]:
    token = credentials.new_token()
    link = JoinLink(
        invitation=invitation,
        token_hash=credentials.token_digest(token),
        expires_at=policy.link_expiry(
            max_link_lifetime_hours=level.max_link_lifetime_hours, meeting_ends_at=meeting.ends_at, now=now
        ),
    )
    return link, token


def _send_links(
    *,
    meeting: Meeting,
    invitations: list[Invitation],
    now: datetime,
    update: bool,
    kind: str,
    changes: dict[str, Any] | None = None,
) -> None:
    """A fresh link for each invitation, and its message, in the caller's transaction."""
    level = meeting.classification
    links, rows = [], []
    for invitation in invitations:
        link, token = _new_link(invitation, meeting, level, now)
        links.append(link)
        message = emails.invitation(
            meeting=meeting, email=invitation.email, link_url=_link_url(token), update=update, changes=changes
        )
        rows.append(
            _outbox_row(
                message=message, kind=kind, to_email=invitation.email, meeting=meeting, invitation=invitation
            )
        )
    JoinLink.objects.bulk_create(links)
    _outbox_write(rows)


def _invite(*, meeting: Meeting, actor: User, emails_to_invite: list[str], now: datetime) -> list[Invitation]:
    invitations = Invitation.objects.bulk_create(
        [Invitation(meeting=meeting, email=email, invited_by=actor) for email in emails_to_invite]
    )
    _send_links(meeting=meeting, invitations=invitations, now=now, update=False, kind="invitation")
    audit_record(
        action="invitations_sent",
        actor=actor,
        meeting=meeting,
        subject=f"{len(invitations)} invitee(s)",
        detail={"emails": emails_to_invite},
    )
    return invitations


def invitations_create(
    *, meeting: Meeting, actor: User, emails_to_invite: list[str], host_has_second_factor: bool
) -> list[Invitation]:
    """Invite people; each gets a personal one-time link by e-mail (written to the outbox)."""
    wanted = _normalise_emails(emails_to_invite)
    now = timezone.now()
    with transaction.atomic():
        meeting = (
            Meeting.objects.select_for_update().select_related("classification", "host").get(pk=meeting.pk)
        )
        _refuse_if_closed(meeting, now)
        _refuse_without_factor(meeting, host_has_second_factor)
        meeting.classification = _lock_level_for_share(meeting.classification_id)
        violations = policy.invitee_violations(meeting.classification, wanted, field="emails")
        existing = dict(
            Invitation.objects.filter(meeting=meeting, email__in=wanted).values_list("email", "revoked_at")
        )
        violations += [
            policy.Violation(
                "emails",
                f"{email} was invited and revoked: resend that invitation to invite them again."
                if revoked_at
                else f"{email} is already invited: resend or revoke that invitation instead.",
            )
            for email, revoked_at in existing.items()
        ]
        if violations:
            raise Refused(violations)
        return _invite(meeting=meeting, actor=actor, emails_to_invite=wanted, now=now)


def _active_invitations(meeting: Meeting) -> list[Invitation]:
    return list(Invitation.objects.filter(meeting=meeting, revoked_at__isnull=True).order_by("id"))


def _notify_invitees_of_change(*, meeting: Meeting, now: datetime, changes: dict[str, Any]) -> None:
    """METHOD:REQUEST with the raised SEQUENCE. Unspent links are replaced by fresh ones
    (the new message carries the link); people who already joined keep their session."""
    invitations = _active_invitations(meeting)
    if not invitations:
        return
    spent = set(
        JoinLink.objects.filter(invitation__in=invitations, redeemed_at__isnull=False).values_list(
            "invitation_id", flat=True
        )
    )
    JoinLink.objects.filter(
        invitation__in=invitations, redeemed_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now, revoked_reason=JoinLink.Revoked.REPLACED)
    unspent = [inv for inv in invitations if inv.pk not in spent]
    _send_links(
        meeting=meeting, invitations=unspent, now=now, update=True, kind="invitation_update", changes=changes
    )
    _outbox_write(
        [
            _outbox_row(
                message=emails.invitation(
                    meeting=meeting, email=inv.email, link_url=None, update=True, changes=changes
                ),
                kind="invitation_update",
                to_email=inv.email,
                meeting=meeting,
                invitation=inv,
            )
            for inv in invitations
            if inv.pk in spent
        ]
    )


def _sequence_raise(meeting: Meeting) -> None:
    """The calendar SEQUENCE for a message to some invitees only (resend, revoke).

    Per meeting, not per invitation: RFC 5546 has one SEQUENCE per event, and every
    invitee's copy then only ever sees it rise. Call holding the meeting's row lock.
    """
    Meeting.objects.filter(pk=meeting.pk).update(sequence=F("sequence") + 1)
    meeting.refresh_from_db(fields=["sequence"])


def _notify_invitees_of_cancellation(*, meeting: Meeting, invitations: list[Invitation], reason: str) -> None:
    _outbox_write(
        [
            _outbox_row(
                message=emails.invitation_cancelled(meeting=meeting, email=inv.email, reason=reason),
                kind="invitation_cancel",
                to_email=inv.email,
                meeting=meeting,
                invitation=inv,
            )
            for inv in invitations
        ]
    )


def _host_invitation(invitation: Invitation, now: datetime, host_has_second_factor: bool) -> Invitation:
    invitation = Invitation.objects.select_related("meeting__classification", "meeting__host").get(
        pk=invitation.pk
    )
    Meeting.objects.select_for_update().filter(pk=invitation.meeting_id).first()
    _refuse_if_closed(invitation.meeting, now)
    _refuse_without_factor(invitation.meeting, host_has_second_factor)
    return invitation


def invitation_resend(*, invitation: Invitation, actor: User, host_has_second_factor: bool) -> Invitation:
    """A new link by e-mail; the old one answers 410 from now on. Also re-invites a revoked invitee."""
    now = timezone.now()
    with transaction.atomic():
        invitation = _host_invitation(invitation, now, host_has_second_factor)
        meeting = invitation.meeting
        violations = policy.invitee_violations(meeting.classification, [invitation.email], field="emails")
        if violations:
            raise Refused(violations)
        JoinLink.objects.filter(
            invitation=invitation, redeemed_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=now, revoked_reason=JoinLink.Revoked.REPLACED)
        Invitation.objects.filter(pk=invitation.pk).update(revoked_at=None)
        invitation.revoked_at = None
        _sequence_raise(meeting)
        _send_links(meeting=meeting, invitations=[invitation], now=now, update=False, kind="invitation")
        audit_record(action="invitation_resent", actor=actor, meeting=meeting, subject=invitation.email)
    return invitation


def invitation_revoke(*, invitation: Invitation, actor: User, host_has_second_factor: bool) -> Invitation:
    now = timezone.now()
    with transaction.atomic():
        invitation = _host_invitation(invitation, now, host_has_second_factor)
        won = Invitation.objects.filter(pk=invitation.pk, revoked_at__isnull=True).update(revoked_at=now)
        if won != 1:
            raise Refused([policy.Violation("detail", "This invitation is already revoked.")])
        invitation.revoked_at = now
        JoinLink.objects.filter(
            invitation=invitation, redeemed_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=now, revoked_reason=JoinLink.Revoked.REVOKED)
        _sequence_raise(invitation.meeting)
        _notify_invitees_of_cancellation(
            meeting=invitation.meeting,
            invitations=[invitation],
            reason="The host withdrew your invitation to this meeting.",
        )
        audit_record(
            action="invitation_revoked", actor=actor, meeting=invitation.meeting, subject=invitation.email
        )
    return invitation


def invitation_redeem(*, link: JoinLink, user: User | None, has_second_factor: bool) -> Invitation:
    """Spend a one-time link. Of any number of simultaneous calls exactly one wins: the
    decision is one conditional UPDATE on the link's own row.

    Raises Refused (nothing spent) when the person may not use it, or LinkGone.
    """
    now = timezone.now()
    invitation = link.invitation
    meeting = invitation.meeting
    state = link_state_now(link, now)
    if state != policy.LinkState.LIVE:
        raise LinkGone(state)
    violation = policy.redemption_violation(
        meeting.classification,
        invited_email=invitation.email,
        signed_in_email=user.email if user is not None else None,
        has_second_factor=has_second_factor,
    )
    if violation is not None:
        raise Refused([violation])
    with transaction.atomic():
        won = JoinLink.objects.filter(
            pk=link.pk, redeemed_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
        ).update(redeemed_at=now)
        if won != 1:
            link.refresh_from_db()
            raise LinkGone(link_state_now(link, timezone.now()))
        audit_record(
            action="invitation_redeemed",
            actor=user,
            meeting=meeting,
            subject=invitation.email,
            detail={"link_id": link.pk, "signed_in": user is not None},
        )
    return invitation


class LinkGone(Exception):
    def __init__(self, state: policy.LinkState):
        super().__init__(state.value)
        self.state = state


def link_state_now(link: JoinLink, now: datetime) -> policy.LinkState:
    meeting = link.invitation.meeting
    return policy.link_state(
        meeting_ended=meeting.is_ended,
        redeemed=link.redeemed_at is not None,
        revoked_reason=link.revoked_reason,
        expires_at=link.expires_at,
        meeting_cancelled=meeting.is_cancelled,
        meeting_ends_at=meeting.ends_at,
        now=now,
    )


# --- Joining, the waiting room and the meeting's lifecycle ----------------------------


class JoinDenied(Exception):
    """A passcode join that may not proceed. `code` says why; `message` is for the person.

    "wrong" (unknown meeting or wrong passcode, deliberately indistinguishable), "limited",
    "unavailable", or a policy.JoinRefusal code (only ever after a right passcode).
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


WRONG_PASSCODE = "Unknown meeting ID or wrong passcode."
LIMITED = "Too many attempts for this meeting or from your address. Try again later."
LIMITER_DOWN = "Joining with a passcode is unavailable right now. Try again in a few minutes."


@dataclass(frozen=True)
class Entered:
    entry: LobbyEntry
    secret: str  # bind to the participant's session; never put it in a URL


def lobby_enter(
    *,
    meeting: Meeting,
    display_name: str,
    source: str,
    user: User | None = None,
    invitation: Invitation | None = None,
) -> Entered:
    """Put someone in the waiting room (or straight in, where policy.lobby_bypass says so).

    Callers have checked the credential (passcode or invitation) and policy.
    """
    secret = credentials.new_token()
    with transaction.atomic():
        bypass = policy.lobby_bypass(meeting.classification, meeting.waiting_room, source)
        now = timezone.now()
        entry = LobbyEntry.objects.create(
            meeting=meeting,
            display_name=display_name,
            source=source,
            invitation=invitation,
            user=user if user is not None and user.is_authenticated else None,
            secret_digest=credentials.token_digest(secret),
            status=LobbyEntry.Status.ADMITTED if bypass else LobbyEntry.Status.WAITING,
            decided_at=now if bypass else None,
            **(_media_admission() if bypass else {}),
        )
        audit_record(
            action="lobby_entered",
            actor=user,
            meeting=meeting,
            subject=display_name,
            detail={
                "entry_id": entry.pk,
                "source": source,
                "invitation": invitation.email if invitation is not None else None,
                "bypassed_waiting_room": bypass,
            },
        )
        if bypass:
            _conference_sync_on_commit(meeting.pk)
    return Entered(entry=entry, secret=secret)


def _client_label(address: str) -> str:
    return address[:64]


def passcode_join(
    *,
    raw_meeting_id: str,
    passcode: str,
    display_name: str,
    user: User | None,
    client_address: str,
) -> Entered:
    """Join with meeting ID and passcode: limits first, then argon2, then policy.

    Raises JoinDenied. Not one transaction: no lock may be held during argon2 work.
    `raw_meeting_id` must already be in a valid format (the serializer checks it).
    """
    public_id = credentials.normalize_meeting_id(raw_meeting_id)
    if public_id is None:
        raise ValueError("meeting ID format is checked by the caller")
    try:
        reservation = limits.reserve(public_id=public_id, address=client_address)
    except limits.LimiterUnavailable as exc:
        # SECURITY: fail closed: without the limiter, no passcode is checked at all.
        raise JoinDenied("unavailable", LIMITER_DOWN) from exc
    if isinstance(reservation, limits.Limited):
        raise JoinDenied("limited", LIMITED)

    meeting = Meeting.objects.select_related("classification", "host").filter(public_id=public_id).first()
    # SECURITY: an unknown ID costs the same argon2 work as a wrong passcode, and both
    # answer alike below.
    stored_hash = meeting.passcode_hash if meeting is not None else credentials.dummy_passcode_hash()
    right = credentials.verify_passcode(stored_hash, passcode)
    if meeting is None or not right:
        if meeting is not None:
            _passcode_failure_record(meeting=meeting, reservation=reservation, client_address=client_address)
        raise JoinDenied("wrong", WRONG_PASSCODE)

    limits.release(reservation)
    now = timezone.now()
    refusal = policy.passcode_join_refusal(
        meeting.classification,
        signed_in=user is not None and user.is_authenticated,
        cancelled=meeting.is_cancelled,
        ended=policy.meeting_over(
            ended_at=meeting.ended_at,
            ends_at=meeting.ends_at,
            grace_minutes=settings.ANTECHAMBER_JOIN_GRACE_MINUTES,
            now=now,
        ),
        locked=meeting.is_locked,
        passcode_bits=meeting.passcode_bits,
    )
    if refusal is not None:
        raise JoinDenied(refusal.code, refusal.message)
    return lobby_enter(
        meeting=meeting, display_name=display_name, source=LobbyEntry.Source.PASSCODE, user=user
    )


def _passcode_failure_record(
    *, meeting: Meeting, reservation: limits.Reservation, client_address: str
) -> None:
    """Audit a failed guess (the limiter bounds how many) and, once, the lockout."""
    with transaction.atomic():
        audit_record(
            action="passcode_join_failed",
            meeting=meeting,
            subject=meeting.title,
            detail={"attempt": reservation.meeting_count, "client": _client_label(client_address)},
        )
        if limits.locks_meeting(reservation) and limits.claim_lockout_notice(meeting.public_id):
            window_minutes = settings.ANTECHAMBER_JOIN_WINDOW_SECONDS // 60
            audit_record(
                action="passcode_join_locked",
                meeting=meeting,
                subject=meeting.title,
                detail={
                    "failures": settings.ANTECHAMBER_JOIN_MEETING_FAILURES,
                    "window_minutes": window_minutes,
                },
            )
            outbox_enqueue(
                message=emails.passcode_lockout(
                    meeting=meeting,
                    failures=settings.ANTECHAMBER_JOIN_MEETING_FAILURES,
                    window_minutes=window_minutes,
                ),
                kind="passcode_lockout",
                to_email=meeting.host.email,
                meeting=meeting,
            )


# Which state each host decision moves an entry from, and to.
_DECISIONS = {
    "admit": ((LobbyEntry.Status.WAITING,), LobbyEntry.Status.ADMITTED, "lobby_admitted"),
    "deny": ((LobbyEntry.Status.WAITING,), LobbyEntry.Status.DENIED, "lobby_denied"),
    "remove": (
        (LobbyEntry.Status.WAITING, LobbyEntry.Status.ADMITTED),
        LobbyEntry.Status.LEFT,
        "lobby_removed",
    ),
}


def _lobby_decide(*, meeting: Meeting, entry_id: int, actor: User, decision: str) -> LobbyEntry:
    from_states, to_state, action = _DECISIONS[decision]
    now = timezone.now()
    with transaction.atomic():
        # One conditional UPDATE: of two hosts' clicks (or a click and the meeting's end)
        # exactly one changes the row; the other is told.
        media = _media_admission() if to_state == LobbyEntry.Status.ADMITTED else {}
        won = LobbyEntry.objects.filter(pk=entry_id, meeting=meeting, status__in=from_states).update(
            status=to_state, decided_at=now, **media
        )
        entry = LobbyEntry.objects.filter(pk=entry_id, meeting=meeting).first()
        if entry is None:
            raise LobbyEntry.DoesNotExist
        if won != 1:
            raise Refused(
                [policy.Violation("detail", f"{entry.display_name} is {entry.get_status_display().lower()}.")]
            )
        audit_record(
            action=action,
            actor=actor,
            meeting=meeting,
            subject=entry.display_name,
            detail={"entry_id": entry.pk, "source": entry.source},
        )
        # Admission puts the new token on the room's list; deny and remove take the
        # token off and kick (the sync works out which from the rows).
        _conference_sync_on_commit(meeting.pk)
    return entry


def lobby_admit(*, meeting: Meeting, entry_id: int, actor: User) -> LobbyEntry:
    return _lobby_decide(meeting=meeting, entry_id=entry_id, actor=actor, decision="admit")


def lobby_deny(*, meeting: Meeting, entry_id: int, actor: User) -> LobbyEntry:
    return _lobby_decide(meeting=meeting, entry_id=entry_id, actor=actor, decision="deny")


def lobby_remove(*, meeting: Meeting, entry_id: int, actor: User) -> LobbyEntry:
    return _lobby_decide(meeting=meeting, entry_id=entry_id, actor=actor, decision="remove")


def lobby_admit_all(*, meeting: Meeting, actor: User) -> int:
    """Admit everyone waiting now; returns how many this call admitted.

    Row by row, each a conditional UPDATE, so that every admission is audited with the
    entry it admitted and an entry a concurrent deny won is left alone.
    """
    admitted = 0
    now = timezone.now()
    with transaction.atomic():
        waiting = list(
            LobbyEntry.objects.filter(meeting=meeting, status=LobbyEntry.Status.WAITING).values_list(
                "pk", "display_name", "source"
            )
        )
        for entry_id, display_name, source in waiting:
            won = LobbyEntry.objects.filter(pk=entry_id, status=LobbyEntry.Status.WAITING).update(
                status=LobbyEntry.Status.ADMITTED, decided_at=now, **_media_admission()
            )
            if won == 1:
                admitted += 1
                audit_record(
                    action="lobby_admitted",
                    actor=actor,
                    meeting=meeting,
                    subject=display_name,
                    detail={"entry_id": entry_id, "source": source, "admit_all": True},
                )
        if admitted:
            _conference_sync_on_commit(meeting.pk)
    return admitted


def _lifecycle(*, meeting: Meeting, actor: User, action: str, updated: int, refusal: str) -> Meeting:
    meeting.refresh_from_db()
    if updated != 1:
        raise Refused([policy.Violation("detail", refusal)])
    audit_record(action=action, actor=actor, meeting=meeting, subject=meeting.title)
    return meeting


def _open(meeting: Meeting) -> Any:
    return Meeting.objects.filter(pk=meeting.pk, status=Meeting.Status.SCHEDULED, ended_at=None)


def meeting_start(*, meeting: Meeting, actor: User) -> Meeting:
    """Admitted participants move from "waiting for the host" into the meeting room."""
    now = timezone.now()
    with transaction.atomic():
        won = _open(meeting).filter(started_at=None).update(started_at=now, updated_at=now)
        meeting = _lifecycle(
            meeting=meeting,
            actor=actor,
            action="meeting_started",
            updated=won,
            refusal="This meeting has already started, ended or been cancelled.",
        )
        _conference_room_prepare(meeting)
    return meeting


def meeting_lock(*, meeting: Meeting, actor: User) -> Meeting:
    """No new entries: passcode joins are refused (those already in stay)."""
    now = timezone.now()
    with transaction.atomic():
        won = _open(meeting).filter(locked_at=None).update(locked_at=now, updated_at=now)
        meeting = _lifecycle(
            meeting=meeting,
            actor=actor,
            action="meeting_locked",
            updated=won,
            refusal="This meeting is already locked, ended or cancelled.",
        )
        # Tokens of admitted people not yet in the media room are taken away.
        _conference_sync_on_commit(meeting.pk)
        return meeting


def meeting_unlock(*, meeting: Meeting, actor: User) -> Meeting:
    now = timezone.now()
    with transaction.atomic():
        won = _open(meeting).exclude(locked_at=None).update(locked_at=None, updated_at=now)
        meeting = _lifecycle(
            meeting=meeting,
            actor=actor,
            action="meeting_unlocked",
            updated=won,
            refusal="This meeting is not locked, or has ended.",
        )
        _conference_sync_on_commit(meeting.pk)
        return meeting


def meeting_end(*, meeting: Meeting, actor: User) -> Meeting:
    """End it: everyone waiting or in is moved out (left), and no one can join again."""
    now = timezone.now()
    with transaction.atomic():
        won = _open(meeting).update(ended_at=now, updated_at=now)
        meeting = _lifecycle(
            meeting=meeting,
            actor=actor,
            action="meeting_ended",
            updated=won,
            refusal="This meeting has already ended or been cancelled.",
        )
        moved = LobbyEntry.objects.filter(
            meeting=meeting, status__in=[LobbyEntry.Status.WAITING, LobbyEntry.Status.ADMITTED]
        ).update(status=LobbyEntry.Status.LEFT, decided_at=now)
        if moved:
            audit_record(
                action="lobby_emptied",
                actor=actor,
                meeting=meeting,
                subject=meeting.title,
                detail={"moved": moved},
            )
        # The media room is destroyed after commit.
        _conference_sync_on_commit(meeting.pk)
    return meeting


def invitation_enter_lobby(*, invitation: Invitation, user: User | None, display_name: str) -> Entered:
    """An invitee whose browser redeemed their link enters the waiting room (again).

    Callers have checked the session binding; this checks the meeting still takes people.
    """
    meeting = Meeting.objects.select_related("classification").get(pk=invitation.meeting_id)
    invitation.refresh_from_db(fields=["revoked_at"])
    if invitation.revoked_at is not None:
        raise LinkGone(policy.LinkState.REVOKED)
    if meeting.is_cancelled:
        raise LinkGone(policy.LinkState.CANCELLED)
    if meeting.is_ended:
        raise LinkGone(policy.LinkState.ENDED)
    if meeting.is_locked:
        # The same rule as for passcode joiners: a locked meeting takes no one new.
        raise Refused([policy.Violation("detail", policy.LOCKED_MESSAGE)])
    return lobby_enter(
        meeting=meeting,
        display_name=display_name,
        source=LobbyEntry.Source.INVITATION,
        user=user,
        invitation=invitation,
    )


# --- Retention --------------------------------------------------------------------------


def retention_purge(*, now: datetime | None = None) -> int:
    """Delete meetings (with their invitations, links, waiting-room entries and messages)
    that ended more than their level's `retention_days` ago. The audit log stays, and
    says what went. Returns the number of meetings deleted."""
    now = now or timezone.now()
    purged = 0
    for level in ClassificationLevel.objects.all():
        cutoff = policy.retention_cutoff(retention_days=level.retention_days, now=now)
        expired = Meeting.objects.filter(classification=level, ends_at__lt=cutoff).exclude(
            ended_at__gte=cutoff
        )
        for meeting_id in expired.values_list("pk", flat=True).order_by("pk")[:1000]:
            with transaction.atomic():
                meeting = Meeting.objects.select_for_update().filter(pk=meeting_id).first()
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


# --- The media room (meetings.conference) ------------------------------------------------


def _media_admission() -> dict[str, Any]:
    """The fields an admission sets: a fresh token and publisher ID for the media room."""
    return {"media_token": conference.new_token(), "media_feed_id": conference.new_feed_id()}


def _conference_sync_on_commit(meeting_id: int) -> None:
    """Bring the media room in line with the rows once they are committed.

    robust=True: a media server that is down must not undo the host's decision, which
    is already committed; the failure is logged and the periodic sync
    (tasks.conference_sync_open) retries.
    """
    transaction.on_commit(lambda: conference_sync(meeting_id=meeting_id), robust=True)


def _conference_room_prepare(meeting: Meeting) -> None:
    """Record the room a started meeting gets (created on the media server after commit).

    Called inside meeting_start's transaction, after the start won.
    """
    ConferenceRoom.objects.get_or_create(
        meeting=meeting,
        defaults={
            "number": conference.new_room_number(),
            "secret": conference.new_token(),
            "pin": conference.new_token(),
            "record": policy.conference_recording(meeting.classification, meeting.cloud_recording),
            "host_token": conference.new_token(),
            "host_feed_id": conference.new_feed_id(),
        },
    )
    audit_record(
        action="conference_room_prepared",
        actor=meeting.host,
        meeting=meeting,
        subject=meeting.title,
        detail={"record": policy.conference_recording(meeting.classification, meeting.cloud_recording)},
    )
    _conference_sync_on_commit(meeting.pk)


def conference_room_spec(room: ConferenceRoom) -> conference.Room:
    return conference.Room(
        number=room.number,
        secret=room.secret,
        pin=room.pin,
        record=room.record,
        description=room.meeting.title,
    )


def conference_sync(*, meeting_id: int) -> None:
    """Make the media room match the database: the database is the truth.

    Idempotent, so it is safe to run after every decision or periodically. Creates the
    room once the meeting has started, destroys it once the meeting has ended or been
    cancelled; in between, the allowed list holds the tokens of admitted people (see
    policy.conference_feeds_allowed), every other token this room ever had is removed,
    and anyone in the room under a publisher ID that is not allowed is kicked.

    SECURITY: runs holding the room row FOR UPDATE (on PostgreSQL), so two syncs of one
    meeting run one after the other and each reads the entries after the other's
    writes: a slow sync cannot put back a token that a later removal took away. Audit
    rows are written last, so the audit chain's lock is not held across calls to the
    media server. Call it outside any other transaction (after commit).
    """
    backend = conference.backend()
    if not backend.configured:
        return
    with transaction.atomic():
        room = (
            ConferenceRoom.objects.select_for_update(of=("self",))
            .select_related("meeting__classification")
            .filter(meeting_id=meeting_id)
            .first()
        )
        if room is None or room.closed_at is not None:
            return
        for action, detail in _conference_sync_locked(backend, room):
            audit_record(action=action, meeting=room.meeting, subject=room.meeting.title, detail=detail)


def _conference_sync_locked(
    backend: conference.ConferenceBackend, room: ConferenceRoom
) -> list[tuple[str, dict[str, Any]]]:
    """conference_sync's work; returns the audit events to record."""
    meeting = room.meeting
    spec = conference_room_spec(room)
    now = timezone.now()
    events: list[tuple[str, dict[str, Any]]] = []
    if meeting.is_ended or meeting.is_cancelled:
        backend.end_room(spec)
        ConferenceRoom.objects.filter(pk=room.pk).update(closed_at=now)
        return [("conference_room_destroyed", {})]
    if room.opened_at is None:
        backend.create_room(spec)
        backend.admit_participant(spec, room.host_token)
        ConferenceRoom.objects.filter(pk=room.pk).update(opened_at=now)
        events.append(("conference_room_created", {"record": room.record}))
    if room.record and not policy.conference_recording(meeting.classification, meeting.cloud_recording):
        backend.stop_recording(spec)
        ConferenceRoom.objects.filter(pk=room.pk).update(record=False)
        events.append(("conference_recording_stopped", {}))
    entries = list(
        LobbyEntry.objects.filter(meeting=meeting)
        .exclude(media_token="")
        .values_list("status", "media_token", "media_feed_id")
    )
    present = backend.participants(spec)
    admitted = {
        feed for status, _t, feed in entries if status == LobbyEntry.Status.ADMITTED and feed is not None
    }
    allowed = policy.conference_feeds_allowed(
        locked=meeting.is_locked, admitted=admitted, present=present, host=room.host_feed_id
    )
    for status, token, feed in entries:
        if status == LobbyEntry.Status.ADMITTED and feed in allowed:
            backend.admit_participant(spec, token)
        else:
            # SECURITY: the token goes before the kick, so the kicked page cannot rejoin.
            backend.remove_participant(spec, token, feed if feed in present else None)
    # Anyone else in the room (a client that joined under an ID it was not given) goes too.
    known = allowed | {feed for _s, _t, feed in entries if feed is not None}
    for feed in present - known:
        backend.remove_participant(spec, "", feed)
    return events


def conference_rooms_open() -> list[int]:
    """Meetings whose media room may need syncing (for the periodic task)."""
    return list(ConferenceRoom.objects.filter(closed_at=None).values_list("meeting_id", flat=True))
