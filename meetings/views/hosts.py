"""Pages for hosts: booking, the meeting, changing it, and its invitees (the waiting room
and the room are in rooms.py)."""

import zoneinfo
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from meetings import errors, selectors
from meetings.audit import audit_refusal
from meetings.authentication import has_second_factor, signed_in_user
from meetings.forms import BookingForm
from meetings.models import Meeting
from meetings.serializers import InvitationOutput
from meetings.services import booking, invitations
from meetings.validators import address_problems
from meetings.views.common import (
    form_context,
    host_meeting,
    option_rows,
    refusal_page,
    show_once,
    take_shown_once,
    typed_initial,
)


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
    if "apply_level" in request.POST:
        # Without JavaScript: "Apply level" shows the new level's locks and keeps what was typed.
        form = BookingForm(initial=typed_initial(request, level), level=level)
    else:
        form = BookingForm(
            request.POST or None, level=level, initial={"timezone": selectors.host_zone(request.user)}
        )
    if request.method == "POST" and "apply_level" not in request.POST and form.is_valid():
        data = form.cleaned_data
        try:
            booked = booking.meeting_book(
                host=signed_in_user(request),
                title=data["title"],
                starts_at=data["starts_at"],
                duration_minutes=data["duration_minutes"],
                timezone_name=data["timezone"],
                classification=data["classification"],
                cloud_recording=data["cloud_recording"],
                dial_in=data["dial_in"],
                waiting_room=data["waiting_room"],
                e2ee=data["e2ee"],
                invitees=data["invitees"],
                host_has_second_factor=has_second_factor(request),
            )
        except errors.Refused as refused:
            audit_refusal(request=request, code=refused.code, status=400, message=refused.message)
            for violation in refused.violations:
                form.add_error(violation.field if violation.field in form.fields else None, violation.message)
        else:
            return show_once(request, booked.meeting, booked.passcode, "meetings:booked")
    return render(
        request,
        "meetings/meeting_form.html",
        form_context(request, form, level, levels),
        status=400 if request.method == "POST" and "apply_level" not in request.POST else 200,
    )


@login_required
def meeting_detail(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    return render(
        request, "meetings/meeting_detail.html", {"meeting": meeting, "options": option_rows(meeting)}
    )


@require_POST
@login_required
def meeting_cancel(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    try:
        booking.meeting_cancel(
            meeting=meeting, actor=signed_in_user(request), host_has_second_factor=has_second_factor(request)
        )
    except errors.ServiceError as error:
        return refusal_page(request, error, meeting=meeting, back_url=meeting.get_absolute_url())
    messages.success(request, "The meeting is cancelled.")
    return redirect(meeting)


@never_cache
@require_POST
@login_required
def meeting_rotate_passcode(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    try:
        passcode = booking.meeting_rotate_passcode(
            meeting=meeting, actor=signed_in_user(request), host_has_second_factor=has_second_factor(request)
        )
    except errors.ServiceError as error:
        return refusal_page(request, error, meeting=meeting, back_url=meeting.get_absolute_url())
    return show_once(request, meeting, passcode, "meetings:passcode_shown")


# --- Invitations ------------------------------------------------------------------------


@login_required
def meeting_invitations(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    problems: list[str] = []
    typed = ""
    status = 200
    if request.method == "POST":
        typed = request.POST.get("emails", "")
        addresses = [part for part in typed.replace(",", " ").split() if part]
        problems = address_problems(addresses)
        if not addresses:
            problems.append("Give at least one e-mail address.")
        status = 400
        if not problems:
            try:
                created = invitations.invitations_create(
                    meeting=meeting,
                    actor=signed_in_user(request),
                    emails_to_invite=addresses,
                    host_has_second_factor=has_second_factor(request),
                )
            except errors.Refused as refused:
                audit_refusal(
                    request=request, code=refused.code, status=400, message=refused.message, meeting=meeting
                )
                problems = [v.message for v in refused.violations]
            except errors.ServiceError as error:
                audit_refusal(
                    request=request,
                    code=error.code,
                    status=error.status,
                    message=error.message,
                    meeting=meeting,
                )
                problems, status = [error.message], error.status
            else:
                messages.success(request, f"Invited {len(created)} people.")
                return redirect("meetings:invitations", meeting_id=meeting.display_id)
    rows = selectors.invitations_for_meeting(meeting)
    states = InvitationOutput(rows, many=True, context={"meeting": meeting}).data
    return render(
        request,
        "meetings/invitations.html",
        {
            "meeting": meeting,
            "rows": states,
            "errors": problems,
            "typed": typed,
            "unready_invitees": selectors.invitees_without_second_factor(meeting),
        },
        status=status if problems else 200,
    )


@require_POST
@login_required
def invitation_action(request: HttpRequest, meeting_id: str, invitation_id: int, action: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    invitation = selectors.invitation_for_host(meeting, invitation_id)
    if invitation is None or action not in ("resend", "revoke"):
        raise Http404("No such invitation.")
    service = invitations.invitation_resend if action == "resend" else invitations.invitation_revoke
    try:
        service(
            invitation=invitation,
            actor=signed_in_user(request),
            host_has_second_factor=has_second_factor(request),
        )
    except errors.ServiceError as error:
        back = reverse("meetings:invitations", kwargs={"meeting_id": meeting.display_id})
        return refusal_page(request, error, meeting=meeting, back_url=back)
    done = "A new link was sent to" if action == "resend" else "Revoked the invitation of"
    messages.success(request, f"{done} {invitation.email}.")
    return redirect("meetings:invitations", meeting_id=meeting.display_id)


# --- Editing, and the pages that show a passcode once ---------------------------------


def _edit_initial(meeting: Meeting) -> dict[str, object]:
    local = meeting.starts_at.astimezone(zoneinfo.ZoneInfo(meeting.timezone))
    return {
        "title": meeting.title,
        "starts_at": local.replace(tzinfo=None, second=0, microsecond=0),
        "timezone": meeting.timezone,
        "duration_minutes": meeting.duration_minutes,
        "cloud_recording": meeting.cloud_recording,
        "dial_in": meeting.dial_in,
        "waiting_room": meeting.waiting_room,
        "e2ee": meeting.e2ee,
    }


def _changes(meeting: Meeting, data: dict[str, Any]) -> dict[str, Any]:
    """Only what the host changed: a form resubmitted unchanged changes nothing (no mail).
    The form has minutes only, so a start the API stored with seconds is kept as it is."""
    changes: dict[str, Any] = {}
    for name in booking.MEETING_CHANGEABLE:
        new, old = data[name], getattr(meeting, name)
        if name == "starts_at":
            old = old.replace(second=0, microsecond=0)
        if name == "classification":
            new, old = new.code, old.code
        if new != old:
            changes[name] = data[name]
    return changes


@never_cache
@login_required
def meeting_edit(request: HttpRequest, meeting_id: str) -> HttpResponse:
    """Change or reschedule: the same service as the API's PATCH, the booking form's locks."""
    meeting = host_meeting(request, meeting_id)
    levels = list(selectors.levels())
    wanted = request.POST.get("classification") or request.GET.get("level") or meeting.classification.code
    level = next((lv for lv in levels if lv.code == wanted), meeting.classification)
    if "apply_level" in request.POST:
        form = BookingForm(initial=typed_initial(request, level), level=level, keep_zone=meeting.timezone)
    else:
        form = BookingForm(
            request.POST or None, level=level, keep_zone=meeting.timezone, initial=_edit_initial(meeting)
        )
    if request.method == "POST" and "apply_level" not in request.POST and form.is_valid():
        changes = _changes(meeting, form.cleaned_data)
        try:
            updated = booking.meeting_update(
                meeting=meeting,
                actor=signed_in_user(request),
                changes=changes,
                host_has_second_factor=has_second_factor(request),
            )
        except errors.Refused as refused:
            audit_refusal(
                request=request, code=refused.code, status=400, message=refused.message, meeting=meeting
            )
            for violation in refused.violations:
                form.add_error(violation.field if violation.field in form.fields else None, violation.message)
        except errors.ServiceError as error:
            return refusal_page(request, error, meeting=meeting, back_url=meeting.get_absolute_url())
        else:
            if updated.passcode is not None:
                messages.info(request, f"{updated.meeting.classification.name} needs a stronger passcode.")
                return show_once(request, updated.meeting, updated.passcode, "meetings:passcode_shown")
            if changes:
                messages.success(request, "Saved. Invitees were sent the change where it concerns them.")
            else:
                messages.info(request, "Nothing was changed.")
            return redirect(updated.meeting.get_absolute_url())
    return render(
        request,
        "meetings/meeting_form.html",
        {**form_context(request, form, level, levels), "meeting": meeting},
        status=400 if request.method == "POST" and "apply_level" not in request.POST else 200,
    )


@never_cache
@login_required
@require_GET
def meeting_booked(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    return render(
        request,
        "meetings/meeting_booked.html",
        {
            "meeting": meeting,
            "passcode": take_shown_once(request, meeting),
            "unready_invitees": selectors.invitees_without_second_factor(meeting),
        },
    )


@never_cache
@login_required
@require_GET
def meeting_passcode_shown(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    return render(
        request,
        "meetings/passcode_rotated.html",
        {"meeting": meeting, "passcode": take_shown_once(request, meeting)},
    )
