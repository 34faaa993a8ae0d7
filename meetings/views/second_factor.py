"""Backup codes: made, and shown once, in one response."""

from typing import Any

from django.http import HttpResponse
from two_factor.views import BackupTokensView

from meetings.authentication import signed_in_user
from meetings.services import second_factor


class BackupCodesView(BackupTokensView):
    """django-two-factor-auth's backup-code page, which listed the codes from the database
    on every visit. SECURITY: the database holds only their digests now; the codes are in
    the response to the POST that made them (never cached: the library's never_cache) and
    nowhere else. A visit shows how many are left."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["codes_left"] = context["device"].token_set.count()
        return context

    def form_valid(self, form: Any) -> HttpResponse:
        codes = second_factor.backup_codes_replace(user=signed_in_user(self.request))
        return self.render_to_response(self.get_context_data(form=form, new_codes=codes))
