from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from meetings import services
from meetings.authentication import signed_in_user
from meetings.models import ApiToken, AuditEvent, ClassificationLevel, Meeting, OutboundMessage


@admin.register(ClassificationLevel)
class ClassificationLevelAdmin(admin.ModelAdmin):
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
    )
    ordering = ("rank",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The code is the API's key and is referenced by meetings: fixed once created.
        return ("code",) if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ClassificationLevel, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Through the service, so a tightening here reaches meetings exactly as over the API.
        changes = {
            name: form.cleaned_data[name] for name in form.changed_data if name in services.LEVEL_CHANGEABLE
        }
        services.classification_update(
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
    list_display = ("title", "public_id", "host", "classification", "starts_at", "status")
    list_filter = ("classification", "status")
    search_fields = ("title", "public_id", "host__username")
    exclude = ("passcode_hash",)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "action", "actor_label", "meeting_public_id", "subject")
    list_filter = ("action",)
    search_fields = ("actor_label", "meeting_public_id", "subject")


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "to_email", "status", "attempts", "created_at", "sent_at")
    list_filter = ("status", "kind")
    exclude = ("body_text", "body_html", "ics_text")


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ("prefix", "user", "label", "created_at", "last_used_at", "revoked_at")
    exclude = ("key_hash",)
