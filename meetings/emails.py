"""What a message says. Builds text, HTML and calendar parts; sends nothing.

SECURITY: no message built here may carry a passcode, and no URL in one may carry
any reusable secret.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from zoneinfo import ZoneInfo

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone
from icalendar import Calendar, Event, vCalAddress, vText

from meetings import policy
from meetings.models import Meeting


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str = ""
    ics_method: str = ""
    ics_text: str = ""


def _render(template: str, context: dict[str, object]) -> tuple[str, str]:
    context = {"site_url": settings.SITE_URL, **context}
    return (
        render_to_string(f"meetings/email/{template}.txt", context),
        render_to_string(f"meetings/email/{template}.html", context),
    )


LABELS = {
    "cloud_recording": "Cloud recording",
    "dial_in": "Telephone dial-in",
    "waiting_room": "Waiting room",
}


def level_tightened(
    *,
    meeting: Meeting,
    changes: Sequence[policy.Change],
    revoked_invitees: Sequence[str] = (),
    weak_passcode: bool = False,
) -> Message:
    rows = [
        {"label": LABELS.get(c.field, c.field), "new": "on" if c.new else "off", "reason": c.reason}
        for c in changes
    ]
    context = {
        "meeting": meeting,
        "changes": rows,
        "revoked_invitees": revoked_invitees,
        "weak_passcode": weak_passcode,
    }
    text, html = _render("level_tightened", context)
    return Message(
        subject=f"[{meeting.classification.name}] Policy changed your meeting: {meeting.title}",
        text=text,
        html=html,
    )


def _calendar(
    *, meeting: Meeting, attendee: str, method: str, description: str, cancelled: bool = False
) -> str:
    calendar = Calendar()
    calendar.add("prodid", "-//Antechamber//Meeting invitation//EN")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = Event()
    event.add("uid", f"{meeting.ics_uid}@antechamber")
    event.add("sequence", meeting.sequence)
    event.add("dtstamp", timezone.now())
    event.add("dtstart", meeting.starts_at.astimezone(UTC))
    event.add("dtend", meeting.ends_at.astimezone(UTC))
    event.add("summary", f"[{meeting.classification.name}] {meeting.title}")
    event.add("description", description)
    event.add("class", "CONFIDENTIAL" if meeting.classification.rank > 10 else "PRIVATE")
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    organizer = vCalAddress(f"mailto:{meeting.host.email or 'antechamber@localhost'}")
    organizer.params["cn"] = vText(meeting.host.get_full_name() or meeting.host.get_username())
    event.add("organizer", organizer)
    attendee_address = vCalAddress(f"mailto:{attendee}")
    attendee_address.params["role"] = vText("REQ-PARTICIPANT")
    attendee_address.params["rsvp"] = vText("FALSE")
    event.add("attendee", attendee_address)
    calendar.add_component(event)
    return calendar.to_ical().decode()


def _times(meeting: Meeting) -> dict[str, object]:
    host_zone = ZoneInfo(meeting.timezone)
    return {
        "starts_host": meeting.starts_at.astimezone(host_zone),
        "ends_host": meeting.ends_at.astimezone(host_zone),
        "starts_utc": meeting.starts_at.astimezone(UTC),
        "ends_utc": meeting.ends_at.astimezone(UTC),
        "host_zone": meeting.timezone,
    }


def invitation(*, meeting: Meeting, email: str, link_url: str | None, update: bool) -> Message:
    """The invitation (or its update). `link_url` is the personal one-time link, or None when
    the invitee already spent theirs.

    SECURITY: never the passcode; the dial-in code only as text where dial-in is on.
    """
    context = {
        "meeting": meeting,
        "level": meeting.classification,
        "link_url": link_url,
        "update": update,
        "dial_in_number": settings.ANTECHAMBER_DIAL_IN_NUMBER if meeting.dial_in else "",
        "dial_in_code": meeting.dial_in_code if meeting.dial_in else "",
        **_times(meeting),
    }
    text, html = _render("invitation", context)
    verb = "Updated invitation" if update else "Invitation"
    return Message(
        subject=f"[{meeting.classification.name}] {verb}: {meeting.title}",
        text=text,
        html=html,
        ics_method="REQUEST",
        ics_text=_calendar(meeting=meeting, attendee=email, method="REQUEST", description=text),
    )


def invitation_cancelled(*, meeting: Meeting, email: str, reason: str) -> Message:
    context = {"meeting": meeting, "level": meeting.classification, "reason": reason, **_times(meeting)}
    text, html = _render("invitation_cancelled", context)
    return Message(
        subject=f"[{meeting.classification.name}] Cancelled: {meeting.title}",
        text=text,
        html=html,
        ics_method="CANCEL",
        ics_text=_calendar(
            meeting=meeting, attendee=email, method="CANCEL", description=text, cancelled=True
        ),
    )


def passcode_lockout(*, meeting: Meeting, failures: int, window_minutes: int) -> Message:
    context = {"meeting": meeting, "failures": failures, "window_minutes": window_minutes}
    text, html = _render("passcode_lockout", context)
    return Message(
        subject=f"[{meeting.classification.name}] Passcode joins locked: {meeting.title}",
        text=text,
        html=html,
    )
