"""Middleware, and the participant pages whose URL may hold a one-time token.

They send `Referrer-Policy: no-referrer`, so that no URL of theirs reaches another site
(or our own logs) in a Referer. Under that policy browsers send `Origin: null` with the
page's own form posts, which Django's CSRF origin check refuses. For views marked by
`join_page`, NullOriginMiddleware (placed just before Django's CsrfViewMiddleware) reads
`Origin: null` as this site's own origin; Django's CSRF token check (cookie against form
field) still runs unchanged, so a cross-site post still fails.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

JOIN_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
_NULL_ORIGIN_OK = "_antechamber_accepts_null_origin"


def join_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Never cached, never indexed, never named in a Referer; its own posts pass CSRF."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        for name, value in JOIN_HEADERS.items():
            response[name] = value
        return response

    setattr(wrapped, _NULL_ORIGIN_OK, True)
    return wrapped


class NullOriginMiddleware(MiddlewareMixin):
    def process_view(
        self, request: HttpRequest, callback: Callable[..., Any], callback_args: Any, callback_kwargs: Any
    ) -> None:
        # SECURITY: only "null", only on join pages; the token check still follows.
        if request.META.get("HTTP_ORIGIN") == "null" and getattr(callback, _NULL_ORIGIN_OK, False):
            scheme = "https" if request.is_secure() else "http"
            request.META["HTTP_ORIGIN"] = f"{scheme}://{request.get_host()}"
        return None
