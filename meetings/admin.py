import csv
import itertools
import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, StreamingHttpResponse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from meetings.authentication import signed_in_user
from meetings.models import ApiToken, AuditEvent, ClassificationLevel, Meeting, OutboundMessage
from meetings.serializers import LevelUpdateInput
from meetings.services import levels


class ClassificationLevelForm(forms.ModelForm):
    """Validates every field exactly as the API does (serializers.LevelUpdateInput): a
    domain list must be a list of domain names, not a string."""

    class Meta:
        model = ClassificationLevel
        fields = ("code", *levels.LEVEL_CHANGEABLE)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        data = {name: cleaned[name] for name in levels.LEVEL_CHANGEABLE if name in cleaned}
        parsed = LevelUpdateInput(data=data, context={"level": self.instance if self.instance.pk else None})
        if not parsed.is_valid():
            for field, messages in parsed.errors.items():
                self.add_error(field if field in self.fields else None, [str(m) for m in messages])
            return cleaned
        cleaned.update(parsed.validated_data)
        return cleaned


@admin.register(ClassificationLevel)
class ClassificationLevelAdmin(admin.ModelAdmin):
    form = ClassificationLevelForm
    list_display = (
        "name",
        "code",
        "rank",
        "bookable",
        "allow_cloud_recording",
        "allow_dial_in",
        "require_waiting_room",
        "allow_passcode_join",
        "require_host_mfa",
        "require_participant_mfa",
        "link_in_calendar",
        "e2ee",
    )
    ordering = ("rank",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The code is the API's key and is referenced by meetings: fixed once created.
        return ("code",) if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ClassificationLevel, form: Any, change: bool) -> None:
        if not change:
            # Through the service too, so a new level is audited like a changed one.
            values = {
                name: form.cleaned_data[name] for name in levels.LEVEL_CHANGEABLE if name in form.cleaned_data
            }
            created = levels.level_create(actor=signed_in_user(request), code=obj.code, values=values)
            obj.pk = created.pk
            obj.refresh_from_db()
            return
        # Through the service, so a tightening here reaches meetings exactly as over the API.
        changes = {
            name: form.cleaned_data[name] for name in form.changed_data if name in levels.LEVEL_CHANGEABLE
        }
        levels.level_update(
            level=ClassificationLevel.objects.get(pk=obj.pk), actor=signed_in_user(request), changes=changes
        )
        obj.refresh_from_db()


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Meeting)
class MeetingAdmin(ReadOnlyAdmin):
    list_display = ("title", "public_id", "host", "classification", "starts_at", "status", "e2ee")
    list_filter = ("classification", "status", "e2ee")
    search_fields = ("title", "public_id", "host__username")
    exclude = ("passcode_hash",)


AUDIT_EXPORT_FIELDS = (
    "id",
    "created_at",
    "actor_label",
    "action",
    "meeting_public_id",
    "subject",
    "detail",
    "prev_hash",
    "row_hash",
)


def _audit_rows(queryset: Any) -> Any:
    for event in queryset.order_by("id").iterator(chunk_size=2000):
        yield {
            "id": event.pk,
            "created_at": event.created_at.isoformat(),
            "actor_label": event.actor_label,
            "action": event.action,
            "meeting_public_id": event.meeting_public_id,
            "subject": event.subject,
            "detail": event.detail,
            "prev_hash": event.prev_hash,
            "row_hash": event.row_hash,
        }


def _csv_cell(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)
    # SECURITY: a cell starting with = + - @ is a formula to spreadsheet programs.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value: str) -> str:
        return value


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read, filter and export; nothing here (or anywhere) changes a row."""

    list_display = ("id", "created_at", "action", "actor_label", "meeting_public_id", "subject")
    list_filter = ("action", ("created_at", admin.DateFieldListFilter))
    search_fields = ("actor_label", "meeting_public_id", "subject")
    date_hierarchy = "created_at"
    readonly_fields = (*AUDIT_EXPORT_FIELDS[1:], "actor")
    actions = ("export_csv", "export_jsonl")
    list_per_page = 100

    # Every staff member may read the log (the site already demands their second factor);
    # nobody may change it (ReadOnlyAdmin, and AuditEvent refuses at the ORM).
    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    @admin.action(description="Export selected events as CSV")
    def export_csv(self, request: HttpRequest, queryset: Any) -> StreamingHttpResponse:
        writer = csv.writer(_Echo())
        lines = itertools.chain(
            [writer.writerow(AUDIT_EXPORT_FIELDS)],
            (
                writer.writerow([_csv_cell(row[name]) for name in AUDIT_EXPORT_FIELDS])
                for row in _audit_rows(queryset)
            ),
        )
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit.csv"'
        return response

    @admin.action(description="Export selected events as JSON lines")
    def export_jsonl(self, request: HttpRequest, queryset: Any) -> StreamingHttpResponse:
        lines = (json.dumps(row, sort_keys=True) + "\n" for row in _audit_rows(queryset))
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit.jsonl"'
        return response


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "to_email", "status", "attempts", "created_at", "sent_at")
    list_filter = ("status", "kind")
    exclude = ("body_text", "body_html", "ics_text", "sealed_link", "sealed_dial_in_code")


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ("prefix", "user", "label", "created_at", "last_used_at", "revoked_at")
    exclude = ("key_hash",)


class SecondFactorDeviceAdmin(admin.ModelAdmin):
    """A person's authenticator or backup codes, in place of django-otp's admin.

    SECURITY: django-otp's TOTP admin shows the seed (on the add form, and on every
    device unless OTP_ADMIN_HIDE_SENSITIVE_DATA) with a QR code of it, and lets staff set
    a seed or a backup code of their choosing, so gain anyone's second factor. Here staff
    see who has which device and when it was used; they cannot add or change one, only
    delete it (someone who lost their phone then enrols again). There are no QR views.
    """

    list_display = ("user", "name", "confirmed", "created_at", "last_used_at")
    list_filter = ("confirmed",)
    search_fields = ("user__username", "user__email")
    fields = (
        "user",
        "name",
        "confirmed",
        "created_at",
        "last_used_at",
        "throttling_failure_timestamp",
        "throttling_failure_count",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("user")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


for _device_model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_device_model):  # django-otp's, registered before ours
        admin.site.unregister(_device_model)
    admin.site.register(_device_model, SecondFactorDeviceAdmin)
