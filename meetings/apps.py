from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class MeetingsConfig(AppConfig):
    name = "meetings"
    # apps.py also holds the admin's config (below): say which one "meetings" means.
    default = True
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from two_factor.signals import user_verified

        from meetings import receivers, sealed_fields
        from meetings import tasks as _registered  # noqa: F401 - services queue tasks by name
        from meetings.logging import configure_structlog

        configure_structlog()
        # SECURITY: django-otp's TOTP seed sealed and its backup codes digested at rest.
        sealed_fields.install()
        user_locked_out.connect(receivers.on_user_locked_out, dispatch_uid="audit-locked-out")
        user_verified.connect(receivers.on_user_verified, dispatch_uid="audit-second-factor")


class SecondFactorAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, whose default site demands a second factor from staff."""

    default = False
    default_site = "meetings.admin_site.SecondFactorAdminSite"
