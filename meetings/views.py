"""Pages for hosts. Views parse, call one service, render."""

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_otp import user_has_device
from two_factor.views import SetupView

from meetings import policy, selectors, services
from meetings.api import join_denied_status
from meetings.authentication import (
    client_address,
    has_second_factor,
    lobby_secret_bind,
    lobby_secret_for,
    signed_in_user,
)
from meetings.forms import ApiTokenForm, BookingForm, JoinForm
from meetings.join_pages import join_page
from meetings.models import LobbyEntry, Meeting


def _host_meeting(request: HttpRequest, meeting_id: str) -> Meeting:
    return selectors.meeting_for_host_or_404(request.user, meeting_id)


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
            "factor_url": _second_factor_url(request),
        },
        status=status,
    )


def _second_factor_url(request: HttpRequest) -> str:
    """Where to pass a second factor and come back: enrol if there is no device, else sign in with it."""
    back = request.get_full_path()
    step = "two_factor:setup" if not user_has_device(request.user) else "two_factor:login"
    return f"{reverse(step)}?{urlencode({'next': back})}"


def _options(meeting: Meeting, *, with_waiting_room: bool = True) -> list[dict[str, Any]]:
    locks = policy.option_locks(meeting.classification)
    options = [
        {"label": "Cloud recording", "on": meeting.cloud_recording, "lock": locks.get("cloud_recording")},
        {"label": "Telephone dial-in", "on": meeting.dial_in, "lock": locks.get("dial_in")},
    ]
    if with_waiting_room:
        options.append(
            {"label": "Waiting room", "on": meeting.waiting_room, "lock": locks.get("waiting_room")}
        )
    return options


@login_required
def meeting_detail(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = _host_meeting(request, meeting_id)
    return render(request, "meetings/meeting_detail.html", {"meeting": meeting, "options": _options(meeting)})


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


# --- Second factor and API tokens ---------------------------------------------------


class SecondFactorSetupView(SetupView):
    """django-two-factor-auth's enrolment, plus a new session key once the device is verified.

    SECURITY: the library's setup marks the session verified (django_otp.login) without
    cycling its key; the sign-in wizard cycles it (django.contrib.auth.login). A session
    that gains a privilege gets a new key, so a key captured before (fixation, a shared
    machine) is worth nothing after.
    """

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # SECURITY: the library checks for an existing device on GET only. A session that
        # signed in before a device existed must not add a second one (and so become
        # verified) without using the first: send it to the sign-in with that device.
        user = request.user
        if user_has_device(user) and not getattr(user, "is_verified", lambda: False)():
            return redirect(
                f"{reverse('two_factor:login')}?{urlencode({'next': reverse('two_factor:setup')})}"
            )
        return super().post(request, *args, **kwargs)

    def done(self, form_list: Any, **kwargs: Any) -> HttpResponse:
        response = super().done(form_list, **kwargs)
        self.request.session.cycle_key()
        return response


# --- The host's lobby and the meeting's lifecycle -----------------------------------


@never_cache
@login_required
def meeting_lobby(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = _host_meeting(request, meeting_id)
    return render(
        request,
        "meetings/lobby.html",
        {"meeting": meeting, "entries": list(selectors.lobby_for_host(meeting))},
    )


_DECIDE = {"admit": services.lobby_admit, "deny": services.lobby_deny, "remove": services.lobby_remove}


@require_POST
@login_required
def meeting_lobby_decide(request: HttpRequest, meeting_id: str, entry_id: int, decision: str) -> HttpResponse:
    meeting = _host_meeting(request, meeting_id)
    if decision not in _DECIDE:
        raise Http404("No such decision.")
    try:
        entry = _DECIDE[decision](meeting=meeting, entry_id=entry_id, actor=signed_in_user(request))
    except LobbyEntry.DoesNotExist as exc:
        raise Http404("No such lobby entry.") from exc
    except services.Refused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, f"{entry.display_name}: {entry.get_status_display().lower()}.")
    return redirect("meetings:lobby", meeting_id=meeting.display_id)


@require_POST
@login_required
def meeting_lobby_admit_all(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = _host_meeting(request, meeting_id)
    admitted = services.lobby_admit_all(meeting=meeting, actor=signed_in_user(request))
    messages.success(request, f"Admitted {admitted}.")
    return redirect("meetings:lobby", meeting_id=meeting.display_id)


_LIFECYCLE: dict[str, tuple[Callable[..., Meeting], str]] = {
    "start": (services.meeting_start, "The meeting has started: admitted people are in."),
    "lock": (services.meeting_lock, "The meeting is locked: no one new can join."),
    "unlock": (services.meeting_unlock, "The meeting is unlocked."),
    "end": (services.meeting_end, "The meeting has ended: everyone was moved out."),
}


@require_POST
@login_required
def meeting_lifecycle(request: HttpRequest, meeting_id: str, action: str) -> HttpResponse:
    meeting = _host_meeting(request, meeting_id)
    if action not in _LIFECYCLE:
        raise Http404("No such action.")
    act, done = _LIFECYCLE[action]
    try:
        act(meeting=meeting, actor=signed_in_user(request))
    except services.Refused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, done)
    return redirect(meeting)


# --- Participants ---------------------------------------------------------------------


@join_page
def join(request: HttpRequest) -> HttpResponse:
    form = JoinForm(request.POST or None, initial={"display_name": _default_name(request)})
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            user = request.user if request.user.is_authenticated else None
            try:
                entered = services.passcode_join(
                    raw_meeting_id=data["meeting_id"],
                    passcode=data["passcode"],
                    display_name=data["display_name"],
                    user=user,
                    client_address=client_address(request),
                )
            except services.JoinDenied as denied:
                if denied.code == "sign_in":
                    # The passcode is not carried along: they type it again after signing in.
                    messages.info(request, denied.message)
                    return redirect_to_login(reverse("meetings:join"))
                form.add_error(None, denied.message)
                status = join_denied_status(denied)
            else:
                lobby_secret_bind(request.session, entered.entry.pk, entered.secret)
                return redirect("meetings:join_waiting", entry_id=entered.entry.pk)
    return render(request, "meetings/join.html", {"form": form}, status=status)


def _default_name(request: HttpRequest) -> str:
    user = request.user
    if user.is_authenticated:
        return str(user.get_full_name() or user.get_username())
    return ""


def _my_entry(request: HttpRequest, entry_id: int) -> LobbyEntry:
    entry = selectors.lobby_entry_for_session(entry_id, lobby_secret_for(request.session, entry_id))
    if entry is None:
        # SECURITY: the same 404 for an unknown entry and for someone else's.
        raise Http404("No such waiting-room entry in this browser.")
    return entry


def _entry_state(entry: LobbyEntry) -> dict[str, Any]:
    meeting = entry.meeting
    in_room = entry.status == LobbyEntry.Status.ADMITTED and meeting.is_started
    return {
        "status": entry.status,
        "meeting_started": meeting.is_started,
        "meeting_ended": meeting.is_ended or meeting.is_cancelled,
        "room_url": reverse("meetings:join_room", kwargs={"entry_id": entry.pk}) if in_room else None,
    }


@join_page
@require_GET
def join_waiting(request: HttpRequest, entry_id: int) -> HttpResponse:
    entry = _my_entry(request, entry_id)
    return render(
        request,
        "meetings/join_waiting.html",
        {"entry": entry, "meeting": entry.meeting, "state": _entry_state(entry)},
    )


@join_page
@require_GET
def join_status(request: HttpRequest, entry_id: int) -> HttpResponse:
    return JsonResponse(_entry_state(_my_entry(request, entry_id)))


@join_page
@require_GET
def join_room(request: HttpRequest, entry_id: int) -> HttpResponse:
    entry = _my_entry(request, entry_id)
    if not _entry_state(entry)["room_url"]:
        return redirect("meetings:join_waiting", entry_id=entry.pk)
    meeting = entry.meeting
    return render(
        request,
        "meetings/meeting_room.html",
        {
            "entry": entry,
            "meeting": meeting,
            "display_name": entry.display_name,
            "status_url": reverse("meetings:join_status", kwargs={"entry_id": entry.pk}),
            "people": selectors.people_in(meeting),
            "options": _options(meeting, with_waiting_room=False),
            "media": selectors.media_for_entry(entry),
            "media_configured": selectors.media_configured(),
        },
    )


@join_page
@login_required
@require_GET
def meeting_room_host(request: HttpRequest, meeting_id: str) -> HttpResponse:
    """The host's own seat in the meeting room (with media where configured)."""
    meeting = _host_meeting(request, meeting_id)
    if not meeting.is_started:
        messages.info(request, "Start the meeting first.")
        return redirect(meeting)
    name = _default_name(request)
    return render(
        request,
        "meetings/meeting_room.html",
        {
            "meeting": meeting,
            "display_name": f"{name} (host)",
            "people": selectors.people_in(meeting),
            "options": _options(meeting, with_waiting_room=False),
            "media": selectors.media_for_host(meeting, f"{name} (host)"),
            "media_configured": selectors.media_configured(),
        },
    )


# --- API tokens -------------------------------------------------------------------------


@never_cache
@login_required
def api_token_list(request: HttpRequest) -> HttpResponse:
    """The user's tokens; a new one only from a session that passed a second factor."""
    user = signed_in_user(request)
    verified = has_second_factor(request)
    form = ApiTokenForm(request.POST or None)
    new_key = None
    status = 200
    if request.method == "POST":
        if not verified:
            # SECURITY: a token counts as a second factor (authentication.has_second_factor),
            # so only a session that passed one may mint one.
            form.add_error(
                None, "Creating a token needs a second factor: sign in with your authenticator app."
            )
            status = 403
        elif form.is_valid():
            _token, new_key = services.api_token_create(user=user, label=form.cleaned_data["label"])
            form = ApiTokenForm()
        else:
            status = 400
    return render(
        request,
        "meetings/api_tokens.html",
        {
            "tokens": selectors.api_tokens_for_user(user),
            "form": form,
            "new_key": new_key,
            "verified": verified,
            "factor_url": _second_factor_url(request),
        },
        status=status,
    )


@require_POST
@login_required
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = services.api_token_revoke(token_id=token_id, user=signed_in_user(request))
    except services.Refused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, f"Token {token.prefix}… is revoked; it stops working now.")
    return redirect("api_tokens")
