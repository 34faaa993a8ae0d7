from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from two_factor import views as two_factor_views

from meetings.urls import api_urlpatterns
from meetings.views import accounts, second_factor

# django-two-factor-auth's views, under /accounts/ and in its own namespace. Setup is
# our subclass, which cycles the session key once the new device is verified; backup codes
# are shown once, when made (meetings/views/second_factor.py).
two_factor_urlpatterns = [
    path("accounts/login/", accounts.SignInView.as_view(), name="login"),
    path("accounts/two_factor/setup/", accounts.SecondFactorSetupView.as_view(), name="setup"),
    path("accounts/two_factor/qrcode/", two_factor_views.QRGeneratorView.as_view(), name="qr"),
    path(
        "accounts/two_factor/setup/complete/",
        two_factor_views.SetupCompleteView.as_view(),
        name="setup_complete",
    ),
    path(
        "accounts/two_factor/backup/tokens/",
        second_factor.BackupCodesView.as_view(),
        name="backup_tokens",
    ),
    path("accounts/two_factor/", two_factor_views.ProfileView.as_view(), name="profile"),
    path("accounts/two_factor/disable/", two_factor_views.DisableView.as_view(), name="disable"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="meetings:list", permanent=False)),
    path("", include((two_factor_urlpatterns, "two_factor"))),
    # The old name still resolves, to the same two-step sign-in.
    path("accounts/login/", accounts.SignInView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/profile/", accounts.profile, name="profile"),
    path("accounts/hosts/invite/", accounts.host_invite, name="host_invite"),
    # SECURITY: the one-time set-password link (Django's reset token; GET moves it out of the URL).
    path("accounts/welcome/<uidb64>/<token>/", accounts.welcome, name="welcome"),
    path(
        "accounts/welcome/done/",
        RedirectView.as_view(pattern_name="two_factor:login", permanent=False),
        name="welcome_done",
    ),
    path("accounts/tokens/", accounts.api_token_list, name="api_tokens"),
    path("accounts/tokens/<int:token_id>/revoke/", accounts.api_token_revoke, name="api_token_revoke"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_urlpatterns, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: no inline script for the CSP to allow.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("", include("meetings.urls")),
]

# JSON for unmatched paths under /api/ (the API's documented 404), the usual page elsewhere.
handler404 = "meetings.api_errors.page_not_found"
handler500 = "meetings.middleware.server_error"
