from datetime import timedelta

from django.utils import timezone

from meetings.models import AuditEvent, Meeting, OutboundMessage


def future(hours: int = 24) -> str:
    return (timezone.now() + timedelta(hours=hours)).replace(microsecond=0).isoformat()


def booking(**overrides):
    data = {
        "title": "Quarterly review",
        "starts_at": future(),
        "duration_minutes": 60,
        "timezone": "Europe/London",
        "classification": "official",
        "cloud_recording": False,
        "dial_in": False,
        "waiting_room": True,
    }
    data.update(overrides)
    return data


def row_counts():
    return (Meeting.objects.count(), AuditEvent.objects.count(), OutboundMessage.objects.count())
