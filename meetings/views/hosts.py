"""Pages for hosts: booking, the meeting, its invitees, its waiting room and its room."""

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from meetings import errors, selectors
from meetings.audit import audit_refusal
from meetings.authentication import has_second_factor, signed_in_user
from meetings.forms import BookingForm
from meetings.middleware import join_page
from meetings.models import Meeting
from meetings.serializers import InvitationOutput
from meetings.services import booking, invitations, lifecycle, lobby
from meetings.views.common import default_name, host_meeting, option_rows, refusal_page, second_factor_url
from meetings.views.e2ee import with_key_relay


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
            "factor_url": second_factor_url(request),
        },
        status=status,
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
    return render(request, "meetings/passcode_rotated.html", {"meeting": meeting, "passcode": passcode})


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
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                problems.append(f"{address} is not an e-mail address.")
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
        {"meeting": meeting, "rows": states, "errors": problems, "typed": typed},
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


# --- The waiting room and the meeting's lifecycle -------------------------------------


@never_cache
@login_required
def meeting_lobby(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    return render(
        request,
        "meetings/lobby.html",
        {"meeting": meeting, "entries": list(selectors.lobby_for_host(meeting))},
    )


def _lobby_url(meeting: Meeting) -> str:
    return reverse("meetings:lobby", kwargs={"meeting_id": meeting.display_id})


_DECIDE = {"admit": lobby.lobby_admit, "deny": lobby.lobby_deny, "remove": lobby.lobby_remove}


@require_POST
@login_required
def meeting_lobby_decide(request: HttpRequest, meeting_id: str, entry_id: int, decision: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    if decision not in _DECIDE:
        raise Http404("No such decision.")
    try:
        entry = _DECIDE[decision](
            meeting=meeting,
            entry_id=entry_id,
            actor=signed_in_user(request),
            host_has_second_factor=has_second_factor(request),
        )
    except errors.ServiceError as error:
        return refusal_page(request, error, meeting=meeting, back_url=_lobby_url(meeting))
    messages.success(request, f"{entry.display_name}: {entry.get_status_display().lower()}.")
    return redirect("meetings:lobby", meeting_id=meeting.display_id)


@require_POST
@login_required
def meeting_lobby_admit_all(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    try:
        admitted = lobby.lobby_admit_all(
            meeting=meeting, actor=signed_in_user(request), host_has_second_factor=has_second_factor(request)
        )
    except errors.ServiceError as error:
        return refusal_page(request, error, meeting=meeting, back_url=_lobby_url(meeting))
    messages.success(request, f"Admitted {admitted}.")
    return redirect("meetings:lobby", meeting_id=meeting.display_id)


_LIFECYCLE: dict[str, tuple[Callable[..., Meeting], str]] = {
    "start": (lifecycle.meeting_start, "The meeting has started: admitted people are in."),
    "lock": (lifecycle.meeting_lock, "The meeting is locked: no one new can join."),
    "unlock": (lifecycle.meeting_unlock, "The meeting is unlocked."),
    "end": (lifecycle.meeting_end, "The meeting has ended: everyone was moved out."),
}


@require_POST
@login_required
def meeting_lifecycle(request: HttpRequest, meeting_id: str, action: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    if action not in _LIFECYCLE:
        raise Http404("No such action.")
    act, done = _LIFECYCLE[action]
    try:
        act(meeting=meeting, actor=signed_in_user(request), host_has_second_factor=has_second_factor(request))
    except errors.ServiceError as error:
        return refusal_page(request, error, meeting=meeting, back_url=meeting.get_absolute_url())
    messages.success(request, done)
    return redirect(meeting)


@join_page
@login_required
@require_GET
def meeting_room_host(request: HttpRequest, meeting_id: str) -> HttpResponse:
    """The host's own seat in the meeting room (with media where configured)."""
    meeting = host_meeting(request, meeting_id)
    if not meeting.is_started:
        messages.info(request, "Start the meeting first.")
        return redirect(meeting)
    name = default_name(request)
    return render(
        request,
        "meetings/meeting_room.html",
        {
            "meeting": meeting,
            "display_name": f"{name} (host)",
            "people": selectors.people_in(meeting),
            "options": option_rows(meeting, with_waiting_room=False),
            "media": with_key_relay(
                request,
                selectors.media_for_host(meeting, f"{name} (host)"),
                reverse("meetings:host_e2ee_keys", kwargs={"meeting_id": meeting.display_id}),
            ),
            "media_configured": selectors.media_configured(),
        },
    )
