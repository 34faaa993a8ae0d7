"""Mail as the recipient's client sees it: the bytes handed to the transport, parsed again."""

import email
import email.policy
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from django.core import mail
from django.utils import timezone
from icalendar import Calendar

NEW_YORK = ZoneInfo("America/New_York")


def sent() -> list[EmailMessage]:
    """Every message the locmem backend took, as parsed MIME (what an SMTP server would get)."""
    return [
        email.message_from_bytes(m.message().as_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for m in mail.outbox
    ]


def leaf_parts(message: EmailMessage) -> list[EmailMessage]:
    return [part for part in message.walk() if not part.is_multipart()]


def part(message: EmailMessage, content_type: str) -> str:
    """The decoded text of the first leaf part of this type (test_emails checks where it sits)."""
    found = [p for p in leaf_parts(message) if p.get_content_type() == content_type]
    assert found, f"no {content_type} part"
    return found[0].get_content()


def alternative(message: EmailMessage) -> EmailMessage:
    [found] = [p for p in message.walk() if p.get_content_type() == "multipart/alternative"]
    return found


def calendar(message: EmailMessage) -> Calendar:
    return Calendar.from_ical(part(message, "text/calendar"))


def event(message: EmailMessage):
    [found] = calendar(message).walk("VEVENT")
    return found


def dst_switch(zone: ZoneInfo = NEW_YORK) -> date:
    """The next spring-forward day in `zone` that is at least a week away."""
    day = (timezone.now() + timedelta(days=7)).astimezone(zone).date()
    while True:
        before = datetime.combine(day, datetime.min.time(), zone).utcoffset()
        after = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone).utcoffset()
        if before is not None and after is not None and after > before:
            return day
        day += timedelta(days=1)
