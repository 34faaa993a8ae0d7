"""What a message says. Builds text, HTML and calendar parts; sends nothing.

SECURITY: no message built here may carry a passcode, and no URL in one may carry
any reusable secret.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.template.loader import render_to_string

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


def level_tightened(*, meeting: Meeting, changes: Sequence[policy.Change]) -> Message:
    rows = [
        {"label": LABELS.get(c.field, c.field), "new": "on" if c.new else "off", "reason": c.reason}
        for c in changes
    ]
    text, html = _render("level_tightened", {"meeting": meeting, "changes": rows})
    return Message(
        subject=f"[{meeting.classification.name}] Policy changed your meeting: {meeting.title}",
        text=text,
        html=html,
    )


def passcode_lockout(*, meeting: Meeting, failures: int, window_minutes: int) -> Message:
    context = {"meeting": meeting, "failures": failures, "window_minutes": window_minutes}
    text, html = _render("passcode_lockout", context)
    return Message(
        subject=f"[{meeting.classification.name}] Passcode joins locked: {meeting.title}",
        text=text,
        html=html,
    )
