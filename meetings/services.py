"""Every write. Each service is atomic and takes keyword-only arguments."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from meetings import credentials, emails, policy
from meetings.audit import audit_record
from meetings.models import ApiToken, ClassificationLevel, Meeting, OutboundMessage

MAX_DURATION_MINUTES = 1440
OUTBOX_MAX_ATTEMPTS = 8
OUTBOX_STALE_CLAIM = timedelta(minutes=10)
OUTBOX_FLUSH_GRACE = timedelta(seconds=30)
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
    elif starts_at + timedelta(minutes=duration_minutes) <= now:
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
    host_has_second_factor: bool,
) -> Booked:
    options = policy.MeetingOptions(
        cloud_recording=cloud_recording, dial_in=dial_in, waiting_room=waiting_room
    )
    now = timezone.now()

    def violations_for(level: ClassificationLevel) -> list[policy.Violation]:
        return policy.check_meeting(
            level, options, host_has_second_factor=host_has_second_factor
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
        violations = policy.check_meeting(level, options, host_has_second_factor=host_has_second_factor)
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
        audit_record(action="meeting_cancelled", actor=actor, meeting=meeting, subject=meeting.title)
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
            .filter(classification=level, status=Meeting.Status.SCHEDULED, ends_at__gt=now)
            .order_by("id")
        )
        for meeting in affected:
            changes_made = policy.enforce_level(level, _options(meeting))
            if not changes_made:
                continue
            touched += 1
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
            if any(change.field in INVITEE_VISIBLE for change in changes_made):
                meeting.sequence += 1
            meeting.save()
            message = emails.level_tightened(meeting=meeting, changes=changes_made)
            outbox_enqueue(
                message=message, kind="level_tightened", to_email=meeting.host.email, meeting=meeting
            )
    return level, touched


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


def outbox_enqueue(
    *,
    message: emails.Message,
    kind: str,
    to_email: str,
    meeting: Meeting | None = None,
) -> OutboundMessage | None:
    """Write a message row in the caller's transaction; a task sends it after commit."""
    if not to_email:
        return None
    domain = settings.SITE_URL.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "localhost"
    row = OutboundMessage.objects.create(
        meeting=meeting,
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
    from meetings import tasks  # the task module imports this one

    transaction.on_commit(lambda: tasks.outbox_send.delay(row.pk))
    return row


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
    email = EmailMultiAlternatives(
        subject=row.subject,
        body=row.body_text,
        to=[row.to_email],
        headers={"Message-ID": row.message_id, "Auto-Submitted": "auto-generated"},
    )
    if row.body_html:
        email.attach_alternative(row.body_html, "text/html")
    if row.ics_text:
        email.attach("invite.ics", row.ics_text, f"text/calendar; method={row.ics_method}; charset=utf-8")
    try:
        email.send(fail_silently=False)
    except Exception as exc:  # any transport failure: keep the row, retry later
        delay = min(30 * 2 ** (row.attempts - 1), 3600)
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
    OutboundMessage.objects.filter(
        status=OutboundMessage.Status.SENDING, claimed_at__lt=now - OUTBOX_STALE_CLAIM
    ).update(status=OutboundMessage.Status.PENDING, claimed_at=None)
    return list(
        OutboundMessage.objects.filter(
            status=OutboundMessage.Status.PENDING,
            next_attempt_at__lte=now,
            created_at__lte=now - OUTBOX_FLUSH_GRACE,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:OUTBOX_FLUSH_BATCH]
    )
