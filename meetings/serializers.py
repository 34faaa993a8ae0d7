"""API input and output shapes. Parsing only: rules live in policy/ and services/."""

import copy
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from meetings import policy
from meetings.credentials import normalize_meeting_id
from meetings.models import ClassificationLevel, LobbyEntry, Meeting
from meetings.services.levels import LEVEL_CHANGEABLE
from meetings.validators import (
    EMAIL_MAX_LENGTH,
    skipped_local_time,
    validate_no_control_characters,
    validate_wall_clock_range,
)

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is an error rather than silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                allowed = ", ".join(name for name, f in self.fields.items() if not f.read_only)
                raise serializers.ValidationError(
                    {name: [f"Unknown field. Allowed fields: {allowed}."] for name in unknown}
                )
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """Only JSON true/false: "yes" or 1 for a security option is more likely a mistake."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid")
        raise AssertionError  # unreachable: fail() raises


class AwareDateTimeField(serializers.DateTimeField):
    default_error_messages = {
        "naive": "Give the time in ISO 8601 with a UTC offset, e.g. 2030-01-31T10:00:00+01:00.",
    }

    def to_internal_value(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value)
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive")
            if parsed is not None:
                try:
                    validate_wall_clock_range(parsed)
                except DjangoValidationError as error:
                    raise serializers.ValidationError(error.messages) from error
        return super().to_internal_value(value)


def skipped_time_message(raw_starts_at: Any, tz_name: str | None) -> str | None:
    """Why starts_at, as the client wrote it, is a local time of tz_name that the clocks skip.

    With an offset, starts_at names an instant, and every instant exists. But when the
    written offset is one tz_name itself uses on either side of a clock change, and the
    written date and time fall in the gap between, the client wrote a local time of that
    zone that never happens (a local time formatted with the offset from the wrong side of
    the change): refused, naming the gap. The same digits with another offset (UTC for a
    Paris meeting, +05:00 for a London one) are an instant elsewhere, and taken as written.
    (For London, +00:00 is both UTC and its winter time: 01:30+00:00 on the night the clocks
    go forward is refused, and 02:30+01:00, the same instant, is taken.)
    """
    if not isinstance(raw_starts_at, str) or not tz_name:
        return None
    try:
        written = parse_datetime(raw_starts_at)
    except ValueError:
        return None
    if written is None or written.tzinfo is None:
        return None
    skipped = skipped_local_time(written, tz_name)
    if skipped is None or written.utcoffset() not in (skipped.offset_before, skipped.offset_after):
        return None
    return skipped.message


class LevelCodeField(serializers.SlugRelatedField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="code", queryset=ClassificationLevel.objects.all(), **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            codes = ", ".join(ClassificationLevel.objects.order_by("rank").values_list("code", flat=True))
            raise serializers.ValidationError(f"Unknown classification {data!r}. Allowed: {codes}.") from exc


class MeetingBookInput(StrictSerializer):
    title = serializers.CharField(max_length=200, validators=[validate_no_control_characters])
    starts_at = AwareDateTimeField()
    duration_minutes = serializers.IntegerField(min_value=1, max_value=policy.MAX_DURATION_MINUTES)
    timezone = serializers.CharField(max_length=64, required=False, default="UTC")
    classification = LevelCodeField()
    cloud_recording = StrictBooleanField(required=False, default=False)
    dial_in = StrictBooleanField(required=False, default=False)
    waiting_room = StrictBooleanField(required=False, default=True)
    e2ee = StrictBooleanField(
        required=False,
        help_text="End-to-end encrypted media. Absent: on where the level requires it, else off.",
    )
    invitees = serializers.ListField(
        child=serializers.EmailField(max_length=EMAIL_MAX_LENGTH),
        required=False,
        default=list,
        max_length=5000,
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        message = skipped_time_message(self.initial_data.get("starts_at"), attrs.get("timezone"))
        if message:
            raise serializers.ValidationError({"starts_at": [message]})
        return attrs


class MeetingLevelInput(StrictSerializer):
    classification = LevelCodeField()


class MeetingUpdateInput(StrictSerializer):
    """context["meeting"], when given, is the meeting changed: its zone, if the change keeps it."""

    title = serializers.CharField(max_length=200, required=False, validators=[validate_no_control_characters])
    starts_at = AwareDateTimeField(required=False)
    duration_minutes = serializers.IntegerField(
        min_value=1, max_value=policy.MAX_DURATION_MINUTES, required=False
    )
    timezone = serializers.CharField(max_length=64, required=False)
    classification = LevelCodeField(required=False)
    cloud_recording = StrictBooleanField(required=False)
    dial_in = StrictBooleanField(required=False)
    waiting_room = StrictBooleanField(required=False)
    e2ee = StrictBooleanField(required=False, help_text="End-to-end encrypted media.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        meeting = self.context.get("meeting")
        tz_name = attrs.get("timezone") or (meeting.timezone if meeting is not None else None)
        message = skipped_time_message(self.initial_data.get("starts_at"), tz_name)
        if message:
            raise serializers.ValidationError({"starts_at": [message]})
        return attrs


class MeetingOutput(serializers.ModelSerializer):
    id = serializers.CharField(source="display_id", read_only=True)
    classification = serializers.CharField(source="classification.code", read_only=True)
    classification_name = serializers.CharField(source="classification.name", read_only=True)
    dial_in_number = serializers.SerializerMethodField()
    dial_in_code = serializers.SerializerMethodField()

    class Meta:
        model = Meeting
        fields = [
            "id",
            "title",
            "starts_at",
            "ends_at",
            "duration_minutes",
            "timezone",
            "classification",
            "classification_name",
            "cloud_recording",
            "dial_in",
            "waiting_room",
            "e2ee",
            "dial_in_number",
            "dial_in_code",
            "status",
            "started_at",
            "locked_at",
            "ended_at",
            "sequence",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_dial_in_number(self, meeting: Meeting) -> str | None:
        return settings.ANTECHAMBER_DIAL_IN_NUMBER if meeting.dial_in else None

    def get_dial_in_code(self, meeting: Meeting) -> str | None:
        return meeting.dial_in_code or None


class MeetingWithPasscodeOutput(MeetingOutput):
    passcode = serializers.CharField(read_only=True, help_text="Shown once; only a hash is stored.")

    class Meta(MeetingOutput.Meta):
        fields = [*MeetingOutput.Meta.fields, "passcode"]
        read_only_fields = fields


class PasscodeOutput(serializers.Serializer):
    passcode = serializers.CharField(help_text="Shown once; only a hash is stored.")


LEVEL_FIELDS = ["code", *LEVEL_CHANGEABLE]


class LevelOutput(serializers.ModelSerializer):
    class Meta:
        model = ClassificationLevel
        fields = LEVEL_FIELDS
        read_only_fields = fields


class LevelUpdateInput(StrictSerializer):
    name = serializers.CharField(max_length=80, required=False, validators=[validate_no_control_characters])
    rank = serializers.IntegerField(required=False, min_value=-1000, max_value=1000)
    bookable = StrictBooleanField(required=False)
    allow_cloud_recording = StrictBooleanField(required=False)
    allow_dial_in = StrictBooleanField(required=False)
    require_waiting_room = StrictBooleanField(required=False)
    allow_guests = StrictBooleanField(required=False)
    allow_passcode_join = StrictBooleanField(required=False)
    require_host_mfa = StrictBooleanField(required=False)
    require_participant_mfa = StrictBooleanField(required=False)
    max_link_lifetime_hours = serializers.IntegerField(required=False, min_value=1, max_value=8760)
    allowed_invitee_domains = serializers.ListField(
        child=serializers.CharField(max_length=253), required=False, max_length=100
    )
    min_passcode_bits = serializers.IntegerField(
        required=False, min_value=policy.PASSCODE_FLOOR_BITS, max_value=256
    )
    retention_days = serializers.IntegerField(required=False, min_value=1, max_value=36500)
    link_in_calendar = StrictBooleanField(required=False)
    e2ee = serializers.ChoiceField(
        choices=ClassificationLevel.E2ee.choices,
        required=False,
        help_text="forbidden, optional (the host chooses per meeting) or required.",
    )

    def validate_allowed_invitee_domains(self, value: list[str]) -> list[str]:
        cleaned = []
        for domain in value:
            normal = domain.strip().lower().lstrip("@")
            if not DOMAIN_RE.match(normal):
                raise serializers.ValidationError(f"{domain!r} is not a domain name such as example.org.")
            if normal not in cleaned:
                cleaned.append(normal)
        return cleaned

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """A less restrictive level never ranks above a more restrictive one (a 400 naming
        `rank`; levels.level_update decides again under its locks)."""
        level = self.context.get("level")
        candidate = copy.copy(level) if level is not None else ClassificationLevel(code="")
        for name, value in attrs.items():
            setattr(candidate, name, value)
        others = ClassificationLevel.objects.all()
        if level is not None:
            others = others.exclude(pk=level.pk)
        violation = policy.rank_order_violation(candidate, others)
        if violation is not None:
            raise serializers.ValidationError({violation.field: [violation.message]})
        return attrs

    def validate_rank(self, value: int) -> int:
        level = self.context.get("level")
        clash = ClassificationLevel.objects.filter(rank=value)
        if level is not None:
            clash = clash.exclude(pk=level.pk)
        if clash.exists():
            raise serializers.ValidationError(f"Rank {value} is already used by another level.")
        return value


class InvitationsCreateInput(StrictSerializer):
    emails = serializers.ListField(
        child=serializers.EmailField(max_length=EMAIL_MAX_LENGTH), min_length=1, max_length=5000
    )


class InvitationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    created_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)
    delivery_status = serializers.CharField(allow_null=True, help_text="pending, sending, sent or failed")
    delivered_at = serializers.DateTimeField(allow_null=True)
    delivery_error = serializers.CharField(allow_null=True, allow_blank=True)
    redemption_state = serializers.SerializerMethodField(
        help_text="live, spent, expired, revoked, cancelled or ended (of the newest link)"
    )
    redeemed_at = serializers.DateTimeField(source="first_redeemed_at", allow_null=True)

    def get_redemption_state(self, invitation: Any) -> str:
        if invitation.link_expires_at is None:
            return "none"
        return policy.link_state(
            redeemed=invitation.link_redeemed_at is not None,
            revoked_reason=invitation.link_revoked_reason or "",
            expires_at=invitation.link_expires_at,
            meeting_ended=self.context["meeting"].is_ended,
            meeting_cancelled=self.context["meeting"].is_cancelled,
            meeting_ends_at=self.context["meeting"].ends_at,
            now=timezone.now(),
        ).value


class JoinInput(StrictSerializer):
    meeting_id = serializers.CharField(max_length=40, trim_whitespace=True)
    # SECURITY: bounded, so nobody can make argon2 hash a megabyte; never echoed back.
    passcode = serializers.CharField(max_length=64, trim_whitespace=True, write_only=True)
    display_name = serializers.CharField(
        max_length=80, trim_whitespace=True, validators=[validate_no_control_characters]
    )

    def validate_meeting_id(self, value: str) -> str:
        # The format says nothing about whether a meeting exists, so a clear 400 is safe.
        if normalize_meeting_id(value) is None:
            raise serializers.ValidationError(
                "A meeting ID is 16 letters and digits, e.g. ABCD-EFGH-JKMN-PQRS."
            )
        return value


class LobbyEntryOutput(serializers.ModelSerializer):
    class Meta:
        model = LobbyEntry
        fields = ["id", "display_name", "status", "source", "invited_email", "created_at"]
        read_only_fields = fields

    invited_email = serializers.SerializerMethodField(help_text="The invitation they came by, if any.")

    def get_invited_email(self, entry: Any) -> str | None:
        if isinstance(entry, dict):
            return entry.get("invited_email")
        return entry.invitation.email if entry.invitation_id else None


class JoinedOutput(serializers.Serializer):
    entry = LobbyEntryOutput()
    meeting_title = serializers.CharField()
    classification_name = serializers.CharField()
    waiting_url = serializers.CharField(
        help_text="The participant's waiting page (this browser session only)."
    )
    status_url = serializers.CharField(help_text="JSON status, authorised by this browser session.")


class ErrorOutput(serializers.Serializer):
    """Every refusal that names no field: `{"detail": "message", "code": "..."}`."""

    detail = serializers.CharField(help_text="For people.")
    code = serializers.CharField(
        help_text="Stable, for programs: e.g. meeting_ended, already_decided, limited, not_found."
    )


class ValidationErrorOutput(serializers.Serializer):
    """Bad input by field: `{"field": ["message", ...]}`; for an item of a list,
    `{"field": {"index": ["message", ...]}}`. Its schema is written out in meetings.schema,
    since a serializer's fields cannot say "any field name"."""


class AdmittedCountOutput(serializers.Serializer):
    admitted = serializers.IntegerField()
