"""Web forms. They parse; the services decide (the same services the API calls)."""

import zoneinfo
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from meetings import policy, selectors
from meetings.models import ClassificationLevel
from meetings.validators import (
    EMAIL_MAX_LENGTH,
    address_problems,
    skipped_local_time,
    validate_no_control_characters,
    validate_wall_clock_range,
)
from meetings.zones import COMMON_ZONES, zone_choices

__all__ = ["COMMON_ZONES", "ApiTokenForm", "BookingForm", "DisplayNameForm", "HostProfileForm", "JoinForm"]


class LevelChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.name)


class BookingForm(forms.Form):
    """Level first; every option the level fixes is disabled and carries the reason."""

    classification = LevelChoiceField(
        queryset=ClassificationLevel.objects.none(), to_field_name="code", empty_label=None
    )
    title = forms.CharField(max_length=200, validators=[validate_no_control_characters])
    starts_at = forms.DateTimeField(
        label="Starts", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
    )
    timezone = forms.ChoiceField(label="Time zone")
    duration_minutes = forms.IntegerField(
        label="Duration (minutes)", min_value=1, max_value=policy.MAX_DURATION_MINUTES, initial=60
    )
    cloud_recording = forms.BooleanField(required=False, label="Cloud recording")
    dial_in = forms.BooleanField(required=False, label="Telephone dial-in")
    waiting_room = forms.BooleanField(required=False, initial=True, label="Waiting room")
    e2ee = forms.BooleanField(
        required=False,
        label="End-to-end encrypted audio and video",
        help_text="Only the participants' browsers can decrypt; no cloud recording or dial-in.",
    )
    invitees = forms.CharField(
        required=False,
        label="Invite (e-mail addresses, separated by spaces, commas or lines)",
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    OPTION_FIELDS = ("cloud_recording", "dial_in", "waiting_room", "e2ee")

    def __init__(
        self, *args: Any, level: ClassificationLevel, keep_zone: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.level = level
        levels_field = self.fields["classification"]
        assert isinstance(levels_field, forms.ModelChoiceField)
        levels_field.queryset = selectors.levels()
        levels_field.initial = level.code
        timezone_field = self.fields["timezone"]
        assert isinstance(timezone_field, forms.ChoiceField)
        timezone_field.choices = zone_choices(keep=keep_zone)
        self.locks = policy.option_locks(level)
        for name, lock in self.locks.items():
            field = self.fields[name]
            # Shown disabled, but still read from the post (a hidden input carries the
            # locked value), so a forged value reaches the policy check and is refused
            # out loud instead of being silently replaced.
            field.widget.attrs["disabled"] = True
            field.widget.attrs["aria-describedby"] = f"lock-{name}"
            field.initial = lock.value
            field.help_text = lock.reason

    def level_locks(self, levels: list[ClassificationLevel], has_factor: bool) -> dict[str, Any]:
        """What each level fixes, for static/js/booking.js to apply in place (no reload)."""
        return {
            level.code: {
                "name": level.name,
                "bookable": level.bookable,
                "needs_factor": level.require_host_mfa and not has_factor,
                "locks": {
                    name: {"value": lock.value, "reason": lock.reason}
                    for name, lock in policy.option_locks(level).items()
                },
            }
            for level in levels
        }

    def option_rows(self) -> list[dict[str, Any]]:
        return [{"field": self[name], "lock": self.locks.get(name)} for name in self.OPTION_FIELDS]

    def clean_invitees(self) -> list[str]:
        addresses = [part for part in self.cleaned_data["invitees"].replace(",", " ").split() if part]
        problems = address_problems(addresses)
        if problems:
            raise ValidationError(" ".join(problems))
        return addresses

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        starts_at, tz_name = cleaned.get("starts_at"), cleaned.get("timezone")
        if isinstance(starts_at, datetime) and tz_name:
            try:
                validate_wall_clock_range(starts_at)
            except ValidationError as error:
                self.add_error("starts_at", error)
                return cleaned
            # The browser sends wall-clock time; read it in the zone the host chose. A time
            # the clocks skip there would be read an hour out: refused, naming the gap.
            skipped = skipped_local_time(starts_at.replace(tzinfo=None), tz_name)
            if skipped is not None:
                self.add_error("starts_at", skipped.message)
            else:
                # In UTC from here on: the service adds the duration to it, and aware
                # arithmetic in a zone is wall-clock arithmetic (a meeting across the change
                # would end an hour out).
                local = starts_at.replace(tzinfo=zoneinfo.ZoneInfo(tz_name))
                cleaned["starts_at"] = local.astimezone(UTC)
        return cleaned


class JoinForm(forms.Form):
    meeting_id = forms.CharField(
        label="Meeting ID",
        max_length=40,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"}
        ),
    )
    # SECURITY: never rendered back (render_value=False), bounded before argon2 sees it.
    passcode = forms.CharField(
        label="Passcode",
        max_length=64,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}, render_value=False),
    )
    display_name = forms.CharField(
        label="Your name, as the host will see it", max_length=80, validators=[validate_no_control_characters]
    )

    def clean_meeting_id(self) -> str:
        from meetings.credentials import normalize_meeting_id

        value = str(self.cleaned_data["meeting_id"])
        if normalize_meeting_id(value) is None:
            raise forms.ValidationError("A meeting ID is 16 letters and digits, e.g. ABCD-EFGH-JKMN-PQRS.")
        return value


class DisplayNameForm(forms.Form):
    """The name a participant joining by link chooses, as the host will see it."""

    # Optional: left blank, the host sees the signed-in name or the invited address's local part.
    display_name = forms.CharField(
        label="Your name, as the host will see it",
        max_length=80,
        required=False,
        validators=[validate_no_control_characters],
    )


class ApiTokenForm(forms.Form):
    label = forms.CharField(
        max_length=100,
        required=False,
        validators=[validate_no_control_characters],
        help_text="What the token is for, e.g. 'calendar sync on build01'.",
    )


class HostProfileForm(forms.Form):
    timezone = forms.ChoiceField(
        label="Your time zone",
        help_text="Pages show times in this zone, with UTC beside them. Type to search the list.",
    )

    def __init__(self, *args: Any, keep_zone: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        zone_field = self.fields["timezone"]
        assert isinstance(zone_field, forms.ChoiceField)
        zone_field.choices = zone_choices(keep=keep_zone)


class HostInviteForm(forms.Form):
    email = forms.EmailField(label="E-mail address", max_length=EMAIL_MAX_LENGTH)
    username = forms.RegexField(
        label="User name",
        regex=r"^[\w.@+-]{1,150}$",
        help_text="Letters, digits and @ . + - _ only.",
        error_messages={"invalid": "Use letters, digits and @ . + - _ only."},
    )
    display_name = forms.CharField(label="Name", max_length=150, validators=[validate_no_control_characters])
