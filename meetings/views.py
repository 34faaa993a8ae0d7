"""Pages for hosts. Views parse, call one service, render."""

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp import user_has_device
from two_factor.views import SetupView

from meetings import policy, selectors, services
from meetings.authentication import has_second_factor, signed_in_user
from meetings.forms import ApiTokenForm, BookingForm
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
