"""What a message says. Builds text, HTML and calendar parts; sends nothing.

SECURITY: no message built here may carry a passcode, and no URL in one may carry
any reusable secret.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import dateformat, timezone
from icalendar import Calendar, Event, vCalAddress, vText

from meetings import policy, sealing
from meetings.models import ClassificationLevel, Meeting, OutboundMessage


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str = ""
    ics_method: str = ""
    ics_text: str = ""
    # The dial-in code the bodies name by sealing.DIAL_IN_PLACEHOLDER: the outbox row holds
    # it sealed (meetings/services/outbox.py), and sending puts it in.
    dial_in_code: str = field(default="", repr=False)


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
    "e2ee": "End-to-end encryption",
}


def level_tightened(
    *,
    meeting: Meeting,
    changes: Sequence[policy.Change],
    revoked_invitees: Sequence[str] = (),
    weak_passcode: bool = False,
    links_shortened: int = 0,
    closed: str = "",
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
        "links_shortened": links_shortened,
        "closed": closed,  # "cancelled" or "ended": the level may no longer be held here
    }
    text, html = _render("level_tightened", context)
    return Message(
        subject=f"[{meeting.classification.name}] Policy changed your meeting: {meeting.title}",
        text=text,
        html=html,
    )


@dataclass(frozen=True)
class When:
    """A meeting's time as mails say it: the host's wall clock and UTC, each naming its zone."""

    host: str  # "Friday 12 March 2027, 09:00–09:30 EST (America/New_York, the host's time zone)"
    host_short: str  # the same without the explanation, for "was …, now …" lines
    utc: str  # "Friday 12 March 2027, 14:00–14:30 UTC"


def _span(starts_at: datetime, ends_at: datetime, zone: ZoneInfo) -> str:
    """Wall-clock start and end in `zone`, formatted from the converted values themselves.

    Not with the template `date` filter: it converts aware values back to the current time
    zone (UTC) first, which is how UTC times came to be labelled with the host's zone.
    """
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    end_format = "H:i" if end.date() == start.date() else "l j F Y, H:i"
    start_name, end_name = start.tzname() or "", end.tzname() or ""
    if start_name == end_name:  # one abbreviation, unless the meeting spans a DST change
        return f"{dateformat.format(start, 'l j F Y, H:i')}–{dateformat.format(end, end_format)} {end_name}"
    return (
        f"{dateformat.format(start, 'l j F Y, H:i')} {start_name}–"
        f"{dateformat.format(end, end_format)} {end_name}"
    )


def when(*, starts_at: datetime, ends_at: datetime, host_zone: str) -> When:
    host = _span(starts_at, ends_at, ZoneInfo(host_zone))
    utc = _span(starts_at, ends_at, ZoneInfo("UTC"))
    return When(
        host=f"{host} ({host_zone}, the host's time zone)",
        host_short=f"{host} ({host_zone})",
        utc=utc,
    )


def _meeting_when(meeting: Meeting) -> When:
    return when(starts_at=meeting.starts_at, ends_at=meeting.ends_at, host_zone=meeting.timezone)


def _organizer_address(meeting: Meeting) -> str:
    """The host's address, else the address mail comes from: a reply must reach someone."""
    return meeting.host.email or parseaddr(settings.DEFAULT_FROM_EMAIL)[1]


def _calendar(*, meeting: Meeting, attendee: str, method: str, description: str) -> str:
    """One VEVENT for one attendee (RFC 5545), as an iTIP message (RFC 5546).

    CANCEL (§3.2.5): with STATUS:CANCELLED when the whole meeting is cancelled; without
    STATUS when only this attendee is removed ("uninvited"), naming them as ATTENDEE.
    SEQUENCE is the meeting's counter, raised by the services on every message.
    """
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
    if method == "REQUEST":
        event.add("status", "CONFIRMED")
    elif meeting.is_cancelled:
        event.add("status", "CANCELLED")
    organizer = vCalAddress(f"mailto:{_organizer_address(meeting)}")
    organizer.params["cn"] = vText(meeting.host.get_full_name() or meeting.host.get_username())
    event.add("organizer", organizer)
    event.add("attendee", _attendee(attendee))
    calendar.add_component(event)
    return calendar.to_ical().decode()


def _attendee(address: str) -> vCalAddress:
    attendee = vCalAddress(f"mailto:{address}")
    attendee.params["role"] = vText("REQ-PARTICIPANT")
    attendee.params["rsvp"] = vText("FALSE")
    return attendee


def _attendee_line(address: str) -> str:
    """The ATTENDEE content line as Calendar.to_ical writes it (folded, with its CRLF)."""
    return Event().content_line("ATTENDEE", _attendee(address)).to_ical().decode() + "\r\n"


# No address can be this (.invalid is reserved, RFC 2606), so it names one line only.
_ATTENDEE_PLACEHOLDER = "attendee@antechamber-placeholder.invalid"


def _calendars(*, meeting: Meeting, attendees: Sequence[str], method: str, description: str) -> list[str]:
    """_calendar for each attendee, built once: the entries differ only in the ATTENDEE
    line, which icalendar writes for each address by itself (escaping and folding as
    _calendar would), in place of a placeholder's."""
    if len(attendees) < 2:
        return [
            _calendar(meeting=meeting, attendee=a, method=method, description=description) for a in attendees
        ]
    shared = _calendar(
        meeting=meeting, attendee=_ATTENDEE_PLACEHOLDER, method=method, description=description
    )
    head, found, tail = shared.partition("\r\n" + _attendee_line(_ATTENDEE_PLACEHOLDER))
    if not found:  # not expected; never a wrong entry if icalendar ever writes it otherwise
        return [
            _calendar(meeting=meeting, attendee=a, method=method, description=description) for a in attendees
        ]
    return [f"{head}\r\n{_attendee_line(a)}{tail}" for a in attendees]


def _level_names(codes: Sequence[str]) -> dict[str, str]:
    return dict(ClassificationLevel.objects.filter(code__in=codes).values_list("code", "name"))


def changed(*, meeting: Meeting, changes: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What an update mail says changed, from the services' diff ({field: {"old", "new"}}).

    Only what invitees see; SECURITY: never the passcode, whatever the diff holds.
    """
    lines = []
    if "starts_at" in changes or "duration_minutes" in changes:
        old_start = changes.get("starts_at", {}).get("old", meeting.starts_at)
        if isinstance(old_start, str):
            old_start = datetime.fromisoformat(old_start)
        old_minutes = changes.get("duration_minutes", {}).get("old", meeting.duration_minutes)
        was = when(
            starts_at=old_start,
            ends_at=old_start + timedelta(minutes=old_minutes),
            host_zone=meeting.timezone,
        )
        now = _meeting_when(meeting)
        lines.append(f"Time changed: was {was.host_short} / {was.utc}, now {now.host_short} / {now.utc}.")
    if "title" in changes:
        lines.append(f"Title changed: was “{changes['title']['old']}”, now “{changes['title']['new']}”.")
    if "classification" in changes:
        old, new = changes["classification"]["old"], changes["classification"]["new"]
        names = _level_names([old, new])
        lines.append(f"Classification changed: was {names.get(old, old)}, now {names.get(new, new)}.")
    if "dial_in" in changes:
        lines.append(f"Telephone dial-in is now {'on' if changes['dial_in']['new'] else 'off'}.")
    return lines


def invitation(
    *,
    meeting: Meeting,
    email: str,
    link_url: str | None,
    update: bool,
    changes: Mapping[str, Mapping[str, Any]] | None = None,
) -> Message:
    """The invitation (or its update). `link_url` is the personal one-time link, or None when
    the invitee already spent theirs; `changes` is the diff an update reports.

    SECURITY: never the passcode; the dial-in code only as text where dial-in is on (and
    in the stored bodies only as sealing.DIAL_IN_PLACEHOLDER: the outbox seals it); the
    link in the calendar entry only where the level's `link_in_calendar` allows it
    (calendars are synced and shared more widely than a mailbox).
    """
    return invitations(meeting=meeting, emails=[email], link_url=link_url, update=update, changes=changes)[0]


def invitations(
    *,
    meeting: Meeting,
    emails: Sequence[str],
    link_url: str | None,
    update: bool,
    changes: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Message]:
    """`invitation` for each of `emails`, in order, rendered once: the messages differ only
    in the calendar entry's ATTENDEE (the personal link goes in later, in place of
    sealing.LINK_PLACEHOLDER, when the link is given as that placeholder)."""
    level = meeting.classification
    dial_in_code = meeting.dial_in_code if meeting.dial_in else ""
    context = {
        "meeting": meeting,
        "level": level,
        "link_url": link_url,
        "link_in_calendar": level.link_in_calendar,
        "update": update,
        "changes": changed(meeting=meeting, changes=changes or {}) if update else [],
        "dial_in_number": settings.ANTECHAMBER_DIAL_IN_NUMBER if meeting.dial_in else "",
        # SECURITY: never the code itself in a body that is stored.
        "dial_in_code": sealing.DIAL_IN_PLACEHOLDER if dial_in_code else "",
        "when": _meeting_when(meeting),
    }
    text, html = _render("invitation", context)
    description = render_to_string("meetings/email/invitation_calendar.txt", context)
    verb = "Updated invitation" if update else "Invitation"
    subject = f"[{level.name}] {verb}: {meeting.title}"
    calendars = _calendars(meeting=meeting, attendees=emails, method="REQUEST", description=description)
    return [
        Message(
            subject=subject,
            text=text,
            html=html,
            ics_method="REQUEST",
            ics_text=ics,
            dial_in_code=dial_in_code,
        )
        for ics in calendars
    ]


def invitation_cancelled(*, meeting: Meeting, email: str, reason: str) -> Message:
    """The meeting's cancellation, or (while it is still on) this invitee's removal."""
    return invitations_cancelled(meeting=meeting, emails=[email], reason=reason)[0]


def invitations_cancelled(*, meeting: Meeting, emails: Sequence[str], reason: str) -> list[Message]:
    """`invitation_cancelled` for each of `emails`, in order, rendered once."""
    context = {
        "meeting": meeting,
        "level": meeting.classification,
        "reason": reason,
        "when": _meeting_when(meeting),
    }
    text, html = _render("invitation_cancelled", context)
    subject = f"[{meeting.classification.name}] Cancelled: {meeting.title}"
    calendars = _calendars(meeting=meeting, attendees=emails, method="CANCEL", description=text)
    return [
        Message(subject=subject, text=text, html=html, ics_method="CANCEL", ics_text=ics) for ics in calendars
    ]


def passcode_lockout(*, meeting: Meeting, failures: int, window_minutes: int) -> Message:
    context = {"meeting": meeting, "failures": failures, "window_minutes": window_minutes}
    text, html = _render("passcode_lockout", context)
    return Message(
        subject=f"[{meeting.classification.name}] Passcode joins locked: {meeting.title}",
        text=text,
        html=html,
    )


# --- The message on the wire ---------------------------------------------------------

CALENDAR_FILENAME = "invite.ics"


class _InvitationEmail(EmailMultiAlternatives):
    """Django makes every text/* part `type; charset=…` from the MIME type it is given, so
    "text/calendar; method=REQUEST; charset=utf-8" came out with two charset parameters.
    Here the calendar part gets Django's one charset, then the iTIP method."""

    def __init__(self, *, ics_method: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ics_method = ics_method

    def _create_mime_attachment(self, content: Any, mimetype: str) -> Any:
        part = super()._create_mime_attachment(content, mimetype)  # type: ignore[misc]  # not in django-stubs
        if mimetype == "text/calendar":
            part.set_param("method", self.ics_method, requote=False)
        return part


def build_email(row: OutboundMessage) -> EmailMessage:
    """The message for one outbox row, as iMIP (RFC 6047) when it carries a calendar:

    multipart/mixed
      multipart/alternative
        text/plain
        text/html
        text/calendar; charset="utf-8"; method=REQUEST    (what clients act on)
      application/ics; invite.ics                       (a copy, for those that look there)
    """
    email = _InvitationEmail(
        ics_method=row.ics_method,
        subject=row.subject,
        body=row.body_text,
        to=[row.to_email],
        headers={
            "Message-ID": row.message_id,
            "Auto-Submitted": "auto-generated",
            # Django's default says "-0000" ("zone unknown", RFC 5322 §3.3) under TIME_ZONE=UTC.
            "Date": format_datetime(timezone.now().astimezone(UTC)),
        },
    )
    if row.body_html:
        email.attach_alternative(row.body_html, "text/html")
    if row.ics_text:
        email.attach_alternative(row.ics_text, "text/calendar")
        email.attach(CALENDAR_FILENAME, row.ics_text.encode(), "application/ics")
    return email


def host_welcome(*, user: Any, inviter: Any, link_url: str) -> Message:
    """An invitation to host: a one-time link to set a password (then a second factor)."""
    context = {"user": user, "inviter": inviter, "link_url": link_url}
    text, html = _render("host_welcome", context)
    return Message(subject="Your Antechamber account", text=text, html=html)
