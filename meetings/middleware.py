"""Middleware, and the participant pages whose URL may hold a one-time token.

They send `Referrer-Policy: no-referrer`, so that no URL of theirs reaches another site
(or our own logs) in a Referer. Under that policy browsers send `Origin: null` with the
page's own form posts, which Django's CSRF origin check refuses. For views marked by
`join_page`, NullOriginMiddleware (placed just before Django's CsrfViewMiddleware) reads
`Origin: null` as this site's own origin; Django's CSRF token check (cookie against form
field) still runs unchanged, so a cross-site post still fails.
"""

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.utils.deprecation import MiddlewareMixin
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

JOIN_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
_NULL_ORIGIN_OK = "_antechamber_accepts_null_origin"


def join_page(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Never cached, never indexed, never named in a Referer; its own posts pass CSRF."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
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


# --- A down cache is a 503 "try again later", never a 500 ---------------------------

RETRY_AFTER_SECONDS = 30
UNAVAILABLE = "Antechamber is temporarily unavailable (a service it depends on is down). Try again shortly."


class CacheUnavailableMiddleware:
    """Answers 503 when a view fails because Redis cannot be reached.

    SECURITY: sign-in fails closed. django-axes keeps its failure counters in the cache;
    without them no password is checked (a guesser must not get unlimited attempts while
    the counters are unreachable), and the person is told to come back, not shown a 500.
    The API answers the same in JSON. Passcode joins have their own 503 (meetings.limits).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, RedisConnectionError | RedisTimeoutError):
            return None
        logger.error("cache unavailable: %s %s answered 503 (%s)", request.method, request.path, exception)
        response: HttpResponse
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": UNAVAILABLE, "code": "unavailable"}, status=503)
        else:
            response = render(request, "service_unavailable.html", {"message": UNAVAILABLE}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response["Cache-Control"] = "no-store"
        return response
