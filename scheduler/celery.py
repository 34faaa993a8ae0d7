"""The Celery app. With no REDIS_URL, tasks run in-process (see settings)."""

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler.settings")

app = Celery("scheduler")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def scrub_celery_handlers(**kwargs: Any) -> None:
    """SECURITY: a worker or beat replaces the root handlers (and adds its own to
    `celery.task`), so the scrubber settings.LOGGING put on them is gone; put it back."""
    from meetings.logging import scrub_every_handler

    scrub_every_handler()
