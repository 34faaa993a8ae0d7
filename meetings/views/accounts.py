"""Pages for accounts: enrolling a second factor, API tokens, the time-zone profile, and
onboarding (staff invite hosts; a host sets a password from a one-time link)."""

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.views import PasswordResetConfirmView
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_otp import user_has_device
from two_factor.views import LoginView, SetupView

from meetings import errors, sealing, selectors
from meetings.authentication import has_second_factor, signed_in_user
from meetings.forms import ApiTokenForm, HostInviteForm, HostProfileForm
from meetings.middleware import join_page
from meetings.services import accounts as onboarding
from meetings.services import tokens
from meetings.sessions import no_session_on_get
from meetings.views.common import refusal_page, second_factor_url


@method_decorator(no_session_on_get, name="dispatch")
class SignInView(LoginView):
    """django-two-factor-auth's sign-in wizard, which starts no session when merely viewed.

    SECURITY: the wizard keeps its step in the session and so wrote one for every GET of
    the sign-in page (a flood of them filled PostgreSQL and evicted Redis's limiter
    counters). Its first step needs nothing stored: the POST starts the session.
    """

    def get_prefix(self, request: HttpRequest, *args: Any, **kwargs: Any) -> str:
        return "login_view"  # the library's name for its form fields, as before


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
        if self.get_redirect_url():
            # The library then skips its "set up" page (which offers backup codes) and
            # goes straight back: offer them here instead.
            messages.info(
                self.request,
                "Your authenticator app is set up. Make backup codes under Security, "
                "in case you lose your phone.",
            )
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
            _token, new_key = tokens.api_token_create(user=user, label=form.cleaned_data["label"])
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
            "factor_url": second_factor_url(request),
        },
        status=status,
    )


@require_POST
@login_required
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = tokens.api_token_revoke(token_id=token_id, user=signed_in_user(request))
    except errors.ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Token {token.prefix}… is revoked; it stops working now.")
    return redirect("api_tokens")


@never_cache
@login_required
def profile(request: HttpRequest) -> HttpResponse:
    """The host's own zone; pages show times in it (else in the browser's zone)."""
    user = signed_in_user(request)
    current = selectors.host_zone(user)
    form = HostProfileForm(request.POST or None, initial={"timezone": current}, keep_zone=current)
    if request.method == "POST" and form.is_valid():
        onboarding.host_profile_update(user=user, timezone_name=form.cleaned_data["timezone"])
        messages.success(
            request, f"Times are now shown in {form.cleaned_data['timezone']}, with UTC beside them."
        )
        return redirect("profile")
    return render(
        request,
        "meetings/profile.html",
        {"form": form, "current": current},
        status=400 if request.method == "POST" else 200,
    )


# --- Onboarding: staff invite hosts; a host sets a password from a one-time link ---------


@never_cache
@login_required
def host_invite(request: HttpRequest) -> HttpResponse:
    """Staff who passed a second factor invite a host by e-mail (post/redirect/get)."""
    if not (request.user.is_staff and has_second_factor(request)):
        return refusal_page(
            request,
            errors.Forbidden("Only staff who passed a second factor may invite hosts.", code="staff_only"),
        )
    form = HostInviteForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                user = onboarding.host_invite(actor=signed_in_user(request), **form.cleaned_data)
            except errors.Refused as refused:
                for violation in refused.violations:
                    form.add_error(
                        violation.field if violation.field in form.fields else None, violation.message
                    )
            else:
                messages.success(request, f"Invited {user.email}: they get a link to set their password.")
                return redirect("host_invite")
    return render(request, "meetings/host_invite.html", {"form": form}, status=status)


class _WelcomePasswordForm(SetPasswordForm):
    """Django's set-password form, saving through the onboarding service."""

    def save(self, commit: bool = True) -> Any:
        return onboarding.host_password_set(user=self.user, password=self.cleaned_data["new_password1"])


WELCOME_COOKIE = "antechamber_welcome"
WELCOME_LABEL = b"antechamber welcome token cookie v1"  # bound to the link's uid


class WelcomeView(PasswordResetConfirmView):
    """The one-time set-password link: Django's password-reset confirmation (GET spends
    nothing; the token dies once a password is set), on a no-referrer, no-store page.

    SECURITY: Django moves the token out of the URL into the session, so that every GET of
    a live link (a mail scanner's too) started a session. Here it moves into a cookie
    instead, sealed (meetings.sealing, bound to the uid) under a key not in the database,
    HttpOnly, for this path only and an hour at most: the token leaves the address bar,
    and the server keeps nothing until the person submits a password.
    """

    template_name = "meetings/welcome.html"
    success_url = reverse_lazy("welcome_done")
    form_class = _WelcomePasswordForm

    @method_decorator(sensitive_post_parameters())
    @method_decorator(never_cache)
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.validlink = False
        uidb64, token = kwargs["uidb64"], kwargs["token"]
        self.user = self.get_user(uidb64)
        if self.user is not None:
            if token != self.reset_url_token:
                if self.token_generator.check_token(self.user, token):
                    response = HttpResponseRedirect(request.path.replace(token, self.reset_url_token))
                    response.set_cookie(
                        WELCOME_COOKIE,
                        sealing.seal(token, row_id=uidb64, label=WELCOME_LABEL),
                        max_age=3600,
                        path=reverse("welcome", kwargs={"uidb64": uidb64, "token": self.reset_url_token}),
                        secure=settings.SESSION_COOKIE_SECURE,
                        httponly=True,
                        samesite="Lax",
                    )
                    return response
            elif self.token_generator.check_token(self.user, self._kept_token(uidb64)):
                self.validlink = True
                return super(PasswordResetConfirmView, self).dispatch(request, *args, **kwargs)
        return self.render_to_response(self.get_context_data())

    def _kept_token(self, uidb64: str) -> str | None:
        kept = self.request.COOKIES.get(WELCOME_COOKIE)
        if not kept:
            return None
        try:
            return sealing.unseal(kept, row_id=uidb64, label=WELCOME_LABEL)
        except (sealing.Unsealable, UnicodeDecodeError):
            return None

    def form_valid(self, form: Any) -> HttpResponse:
        form.save()
        response = HttpResponseRedirect(self.get_success_url())
        response.delete_cookie(WELCOME_COOKIE, path=self.request.path)
        messages.success(self.request, "Your password is set. Sign in, then set up your authenticator app.")
        return response


welcome = join_page(WelcomeView.as_view())
