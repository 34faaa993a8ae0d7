"""The admin site: staff must have passed a second factor in this session."""

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import user_has_device
from two_factor.admin import AdminSiteOTPRequired


class SecondFactorAdminSite(AdminSiteOTPRequired):
    site_header = "Antechamber administration"
    site_title = "Antechamber admin"

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """Send each visitor to the step they are missing, then back here.

        SECURITY: has_permission() (the mixin's) refuses any session that has not
        passed a second factor, so a password alone never reaches an admin page.
        """
        next_url = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index")
        if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
            next_url = reverse("admin:index")
        query = urlencode({REDIRECT_FIELD_NAME: next_url})
        user = request.user
        if user.is_authenticated and not user_has_device(user):
            # Signed in with a password, no device yet: enrol one now.
            return HttpResponseRedirect(f"{reverse('two_factor:setup')}?{query}")
        # Anonymous, or has a device but this session did not use it: the two-step sign-in.
        return HttpResponseRedirect(f"{reverse('two_factor:login')}?{query}")
