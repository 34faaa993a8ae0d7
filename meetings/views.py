"""Pages for hosts. Views parse, call one service, render."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from meetings import policy, selectors, services
from meetings.authentication import has_second_factor, signed_in_user
from meetings.forms import BookingForm
from meetings.models import Meeting


def _host_meeting(request: HttpRequest, meeting_id: str) -> Meeting:
    meeting = selectors.meeting_for_host(request.user, meeting_id)
    if meeting is None:
        raise Http404("No such meeting.")
    return meeting


@login_required
def meeting_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "meetings/meeting_list.html", {"meetings": selectors.meetings_for_host(request.user)}
    )


@never_cache
@login_required
def meeting_book(request: HttpRequest) -> HttpResponse:
    levels = list(selectors.levels())
    wanted = request.POST.get("classification") or request.GET.get("level")
    level = next((lv for lv in levels if lv.code == wanted), None) or next(
        (lv for lv in levels if lv.bookable), levels[0]
    )
    form = BookingForm(request.POST or None, level=level)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            booked = services.meeting_book(
                host=signed_in_user(request),
                title=data["title"],
                starts_at=data["starts_at"],
                duration_minutes=data["duration_minutes"],
                timezone_name=data["timezone"],
                classification=data["classification"],
                cloud_recording=data["cloud_recording"],
                dial_in=data["dial_in"],
                waiting_room=data["waiting_room"],
                invitees=data["invitees"],
                host_has_second_factor=has_second_factor(request),
            )
        except services.Refused as refused:
            for violation in refused.violations:
                form.add_error(violation.field if violation.field in form.fields else None, violation.message)
        else:
            # SECURITY: the passcode is rendered in this response only, never stored or redirected with.
            return render(
                request,
                "meetings/meeting_booked.html",
                {"meeting": booked.meeting, "passcode": booked.passcode},
            )
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "meetings/meeting_form.html",
        {
            "form": form,
            "level": level,
            "levels": levels,
            "needs_factor": level.require_host_mfa and not has_second_factor(request),
        },
        status=status,
    )


@login_required
def meeting_detail(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = _host_meeting(request, meeting_id)
    locks = policy.option_locks(meeting.classification)
    options = [
        {"label": "Cloud recording", "on": meeting.cloud_recording, "lock": locks.get("cloud_recording")},
        {"label": "Telephone dial-in", "on": meeting.dial_in, "lock": locks.get("dial_in")},
        {"label": "Waiting room", "on": meeting.waiting_room, "lock": locks.get("waiting_room")},
    ]
    return render(request, "meetings/meeting_detail.html", {"meeting": meeting, "options": options})


@require_POST
@login_required
def meeting_cancel(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = _host_meeting(request, meeting_id)
    try:
        services.meeting_cancel(meeting=meeting, actor=signed_in_user(request))
    except services.Refused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, "The meeting is cancelled.")
    return redirect(meeting)


@never_cache
@require_POST
@login_required
def meeting_rotate_passcode(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = _host_meeting(request, meeting_id)
    try:
        passcode = services.meeting_rotate_passcode(
            meeting=meeting, actor=signed_in_user(request), host_has_second_factor=has_second_factor(request)
        )
    except services.Refused as refused:
        messages.error(request, str(refused))
        return redirect(meeting)
    return render(request, "meetings/passcode_rotated.html", {"meeting": meeting, "passcode": passcode})
