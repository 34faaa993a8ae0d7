from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class MeetingsConfig(AppConfig):
    name = "meetings"
    # apps.py also holds the admin's config (below): say which one "meetings" means.
    default = True
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from meetings.logging import configure_structlog

        configure_structlog()


class SecondFactorAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, whose default site demands a second factor from staff."""

    default = False
    default_site = "meetings.admin_site.SecondFactorAdminSite"
