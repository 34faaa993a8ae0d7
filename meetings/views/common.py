"""What the page modules share: finding the host's meeting, and answering a refusal."""

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views import defaults
from django_otp import user_has_device

from meetings import errors, policy, selectors
from meetings.audit import audit_refusal
from meetings.models import Meeting


def host_meeting(request: HttpRequest, meeting_id: str) -> Meeting:
    return selectors.meeting_for_host_or_404(request.user, meeting_id)


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


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for a URL that matches nothing: JSON under /api/ (as every API answer), else the page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)
