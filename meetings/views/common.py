"""What the page modules share: finding the host's meeting, and answering a refusal."""

import time
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django_otp import user_has_device

from meetings import errors, policy, sealing, selectors
from meetings.audit import audit_refusal
from meetings.authentication import has_second_factor
from meetings.forms import BookingForm
from meetings.models import ClassificationLevel, Meeting
from meetings.services.checks import require_host_factor

# One passcode, held between a POST that made it and the one GET that shows it.
SHOWN_ONCE_KEY = "antechamber.shown_once"
SHOWN_ONCE_SECONDS = 300


def host_meeting(request: HttpRequest, meeting_id: str) -> Meeting:
    return selectors.meeting_for_host_or_404(request.user, meeting_id)


def host_room_refusal(request: HttpRequest, meeting: Meeting) -> errors.Forbidden | None:
    """Why this host may not have the room, its people list or its key relay now (None: they
    may). They hand out a media token and keys: a host action where the level needs the
    host's second factor."""
    try:
        require_host_factor(meeting, has_second_factor(request))
    except errors.Forbidden as error:
        return error
    return None


def refusal_json(
    request: HttpRequest, error: errors.ServiceError, *, meeting: Meeting | None = None
) -> JsonResponse:
    """A service's refusal as JSON for a page's script, audited as refusal_page audits."""
    audit_refusal(
        request=request, code=error.code, status=error.status, message=error.message, meeting=meeting
    )
    return JsonResponse(error.as_dict(), status=error.status)


def refusal_page(
    request: HttpRequest, error: errors.ServiceError, *, meeting: Meeting | None = None, back_url: str = ""
) -> HttpResponse:
    """A service's refusal as a page with the same status (and code) the API answers with."""
    if not isinstance(error, errors.NotFound):
        audit_refusal(
            request=request, code=error.code, status=error.status, message=error.message, meeting=meeting
        )
    return render(
        request,
        "meetings/refused.html",
        {"error": error, "meeting": meeting, "back_url": back_url},
        status=error.status,
    )


def second_factor_url(request: HttpRequest) -> str:
    """Where to pass a second factor and come back: enrol if there is no device, else sign in with it."""
    back = request.get_full_path()
    step = "two_factor:setup" if not user_has_device(request.user) else "two_factor:login"
    return f"{reverse(step)}?{urlencode({'next': back})}"


def option_rows(meeting: Meeting, *, with_waiting_room: bool = True) -> list[dict[str, Any]]:
    """Each option of the meeting, whether it is on, and whether (and why) its level locks it."""
    locks = policy.option_locks(meeting.classification)
    options = [
        {"label": "Cloud recording", "on": meeting.cloud_recording, "lock": locks.get("cloud_recording")},
        {"label": "Telephone dial-in", "on": meeting.dial_in, "lock": locks.get("dial_in")},
    ]
    if with_waiting_room:
        options.append(
            {"label": "Waiting room", "on": meeting.waiting_room, "lock": locks.get("waiting_room")}
        )
    options.append({"label": "End-to-end encryption", "on": meeting.e2ee, "lock": locks.get("e2ee")})
    return options


def default_name(request: HttpRequest) -> str:
    user = request.user
    if user.is_authenticated:
        return str(user.get_full_name() or user.get_username())
    return ""


def show_once(request: HttpRequest, meeting: Meeting, passcode: str, url_name: str) -> HttpResponse:
    """Post/redirect/get for a new passcode: hold it in the session for the next page only.

    SECURITY: the passcode is in the session store (not a URL, not a cookie the browser
    can read) from this redirect until the page it leads to pops it, at most a few
    minutes; reloading that page, or coming back later, shows it no more. Sealed
    (meetings/sealing.py) under a key that is not in the database, so the session table
    never holds a passcode in the clear, even for those minutes.
    """
    request.session[SHOWN_ONCE_KEY] = {
        "meeting": meeting.display_id,
        "passcode": sealing.seal(passcode, row_id=f"show-once:{meeting.display_id}"),
        "at": time.time(),
    }
    return redirect(url_name, meeting_id=meeting.display_id)


def take_shown_once(request: HttpRequest, meeting: Meeting) -> str | None:
    """The passcode held for this meeting's page, removed from the session as it is read."""
    held = request.session.pop(SHOWN_ONCE_KEY, None)
    if not isinstance(held, dict) or held.get("meeting") != meeting.display_id:
        return None
    if time.time() - float(held.get("at", 0)) > SHOWN_ONCE_SECONDS:
        return None
    try:
        return sealing.unseal(str(held["passcode"]), row_id=f"show-once:{meeting.display_id}")
    except (sealing.Unsealable, ValueError):
        return None


def typed_initial(request: HttpRequest, level: ClassificationLevel) -> dict[str, Any]:
    """What was typed, as a form's initial values, for "Apply level" without JavaScript;
    options the new level locks take the level's value instead."""
    locks = policy.option_locks(level)
    initial: dict[str, Any] = {
        name: request.POST.get(name, "")
        for name in ("title", "starts_at", "timezone", "duration_minutes", "invitees")
    }
    for name in BookingForm.OPTION_FIELDS:
        if name not in locks:
            initial[name] = request.POST.get(name) == "on"
    return initial


def form_context(
    request: HttpRequest, form: BookingForm, level: ClassificationLevel, levels: list[ClassificationLevel]
) -> dict[str, Any]:
    factor = has_second_factor(request)
    return {
        "form": form,
        "level": level,
        "levels": levels,
        "level_locks": form.level_locks(levels, factor),
        "needs_factor": level.require_host_mfa and not factor,
        "factor_url": second_factor_url(request),
    }


class Role(StrEnum):
    """What a person is in a meeting, as the server knows it (issue 22 adds co-hosts)."""

    HOST = "host"
    PARTICIPANT = "participant"


ROLE_LABELS = {Role.HOST: "Host", Role.PARTICIPANT: ""}


def room_people(meeting: Meeting) -> list[dict[str, str]]:
    """Who is in the room: the host first, then everyone admitted, each with their role.

    SECURITY: pages badge a person from `role`, which comes from the meeting's host
    account, never from a name: a participant may type "Alice (host)" as their name.
    """
    host = meeting.host
    people = [(host.get_full_name() or host.get_username(), Role.HOST)]
    people += [(name, Role.PARTICIPANT) for name in selectors.people_in(meeting)]
    return [{"name": name, "role": role.value, "role_label": ROLE_LABELS[role]} for name, role in people]
