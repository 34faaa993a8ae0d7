"""CSRF for pages that must send `Referrer-Policy: no-referrer`.

Under that policy browsers send `Origin: null` with the page's own form posts, and
Django's origin check refuses them. For views marked with `accepts_null_origin`, this
middleware (placed just before Django's CsrfViewMiddleware) reads `Origin: null` as this
site's own origin. Django's CSRF token check (cookie against form field) still runs
unchanged, so a cross-site post still fails.
"""

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.utils.deprecation import MiddlewareMixin

_NULL_ORIGIN_OK = "_antechamber_accepts_null_origin"


def accepts_null_origin(view: Callable[..., Any]) -> Callable[..., Any]:
    setattr(view, _NULL_ORIGIN_OK, True)
    return view


class NullOriginMiddleware(MiddlewareMixin):
    def process_view(
        self, request: HttpRequest, callback: Callable[..., Any], callback_args: Any, callback_kwargs: Any
    ) -> None:
        # SECURITY: only "null", only on marked views; the token check still follows.
        if request.META.get("HTTP_ORIGIN") == "null" and getattr(callback, _NULL_ORIGIN_OK, False):
            scheme = "https" if request.is_secure() else "http"
            request.META["HTTP_ORIGIN"] = f"{scheme}://{request.get_host()}"
        return None
