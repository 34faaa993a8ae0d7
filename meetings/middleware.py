"""Middleware, and the participant pages whose URL may hold a one-time token.

They send `Referrer-Policy: no-referrer`, so that no URL of theirs reaches another site
(or our own logs) in a Referer. Under that policy browsers send `Origin: null` with the
page's own form posts, which Django's CSRF origin check refuses. For views marked by
`join_page`, NullOriginMiddleware (placed just before Django's CsrfViewMiddleware) reads
`Origin: null` as this site's own origin; Django's CSRF token check (cookie against form
field) still runs unchanged, so a cross-site post still fails.
"""

import ipaddress
import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.template.loader import render_to_string
from django.utils.deprecation import MiddlewareMixin
from django.views import defaults
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

JOIN_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
_NULL_ORIGIN_OK = "_antechamber_accepts_null_origin"
_ANSWERS_JSON = "_antechamber_answers_json"
_View = TypeVar("_View", bound=Callable[..., Any])


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


def answers_json(view: _View) -> _View:
    """A view outside /api/ whose callers are scripts: a 503 of ours is JSON there too."""
    setattr(view, _ANSWERS_JSON, True)
    return view


class NullOriginMiddleware(MiddlewareMixin):
    def process_view(
        self, request: HttpRequest, callback: Callable[..., Any], callback_args: Any, callback_kwargs: Any
    ) -> None:
        # SECURITY: only "null", only on join pages; the token check still follows.
        if request.META.get("HTTP_ORIGIN") == "null" and getattr(callback, _NULL_ORIGIN_OK, False):
            scheme = "https" if request.is_secure() else "http"
            request.META["HTTP_ORIGIN"] = f"{scheme}://{request.get_host()}"
        return None


# --- Text PostgreSQL cannot store (NUL, lone surrogates) is a 400 naming where it was --


class UnstorableTextMiddleware(MiddlewareMixin):
    """Refuses a URL part, query parameter or form field holding a NUL (or a lone surrogate)
    with a 400 naming it, before the view runs.

    PostgreSQL refuses NUL in text, so `/api/v1/classifications/a%00/` or `?status=%00`
    was a 500 once it reached a query (SQLite quietly matched nothing). JSON bodies are
    checked by meetings.parsers, field by field.
    """

    def process_view(
        self, request: HttpRequest, callback: Callable[..., Any], callback_args: Any, callback_kwargs: Any
    ) -> HttpResponse | None:
        from meetings.validators import nul_message

        named = [*((name, str(value)) for name, value in callback_kwargs.items())]
        named += [(name, value) for name, values in request.GET.lists() for value in values]
        if request.method == "POST" and not request.path.startswith("/api/"):
            named += [(name, value) for name, values in request.POST.lists() for value in values]
        for name, value in named:
            message = nul_message(name) or nul_message(value)
            if message is None:
                continue
            field = name if nul_message(name) is None else "field name"
            if request.path.startswith("/api/"):
                return JsonResponse({field: [message]}, status=400)
            page = render_to_string("bad_request.html", {"field": field, "message": message}, request)
            return HttpResponse(page, status=400)
        return None


# --- Behind our reverse proxy: the client's address, not the proxy's -----------------


class TrustedProxyMiddleware:
    """Sets REMOTE_ADDR from X-Real-IP when, and only when, the peer is a trusted proxy.

    deploy/nginx-site.conf.template sets X-Real-IP to the client's address (after its own
    real_ip step, when it sits behind a balancer) and overwrites whatever the client sent,
    so the passcode limiter (meetings.authentication.client_address) and django-axes count
    the client instead of nginx. Outermost, before anything reads the address.

    SECURITY: a peer not in ANTECHAMBER_TRUSTED_PROXIES (default: none) is taken as the
    client, whatever headers it sends. Exact addresses only, no networks: on one machine
    the Procfile names nginx's proxy_bind address (127.0.0.2), never all of loopback, so
    a local peer on 127.0.0.1 cannot name another client.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from django.conf import settings

        forwarded = request.META.get("HTTP_X_REAL_IP", "").strip()
        if forwarded and request.META.get("REMOTE_ADDR") in settings.ANTECHAMBER_TRUSTED_PROXIES:
            try:
                request.META["REMOTE_ADDR"] = str(ipaddress.ip_address(forwarded))
            except ValueError:
                logger.warning("trusted proxy sent an X-Real-IP that is not an address; ignored")
        return self.get_response(request)


# --- A failing cache is a 503 "try again later", never a 500 ------------------------

RETRY_AFTER_SECONDS = 30
UNAVAILABLE = "Antechamber is temporarily unavailable (a service it depends on is down). Try again shortly."


class CacheUnavailableMiddleware:
    """Answers 503 when a view fails on Redis, whatever the error (any RedisError): down
    or unreachable, full (`noeviction`: "command not allowed when used memory >
    'maxmemory'"), or refusing the connection's commands (a bad database index, an ACL).

    SECURITY: fails closed. Nothing that counts attempts is in the cache (the passcode
    limiter, meetings.limits, and django-axes count in the database), so a failing cache
    never lets an attempt go uncounted; what still needs it (signing out, which must
    delete the cached session; the E2EE key relay) tells the person to come back, with a
    page, or JSON under /api/ and from views marked `answers_json`.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, CACHE_ERRORS):
            return None
        logger.error("cache unavailable: %s %s answered 503 (%s)", request.method, request.path, exception)
        return unavailable_response(request)


CACHE_ERRORS = (RedisError,)


def _wants_json(request: HttpRequest) -> bool:
    match = getattr(request, "resolver_match", None)
    return request.path.startswith("/api/") or getattr(getattr(match, "func", None), _ANSWERS_JSON, False)


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 with a JSON body under /api/ (and from `answers_json` views), a page elsewhere.

    The page is rendered without the request: its context processors would read the
    session and the user, which live in the service that is down (the database, or the
    cache with cached_db sessions).
    """
    response: HttpResponse
    if _wants_json(request):
        response = JsonResponse({"detail": UNAVAILABLE, "code": "unavailable"}, status=503)
    else:
        response = HttpResponse(
            render_to_string("service_unavailable.html", {"message": UNAVAILABLE}), status=503
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


# --- A down database is a 503 "try again later", never a 500 ------------------------

DATABASE_ERRORS = (DatabaseOperationalError, DatabaseInterfaceError)


class DatabaseUnavailableMiddleware:
    """Answers 503 when a view fails because the database cannot be reached.

    django.db.OperationalError and InterfaceError: the server is down or restarting, the
    connection was lost, or (PostgreSQL) the statement was cancelled or chosen as a
    deadlock victim; each means "try again", and nothing was committed by the failed
    transaction. Errors raised before the view (a middleware loading the session) reach
    `server_error` below instead, which answers the same.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        logger.error("database unavailable: %s %s answered 503 (%s)", request.method, request.path, exception)
        return unavailable_response(request)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: Django calls it while the uncaught exception is being handled, so a
    database or cache error raised in a middleware (outside any view: loading the
    session, say) is still a 503."""
    exception = sys.exc_info()[1]
    if isinstance(exception, DATABASE_ERRORS + CACHE_ERRORS):
        logger.error("service unavailable: %s %s answered 503 (%s)", request.method, request.path, exception)
        return unavailable_response(request)
    return defaults.server_error(request)
