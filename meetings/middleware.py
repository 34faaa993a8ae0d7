"""A down cache is a 503 "try again later", never a 500."""

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

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
            response = JsonResponse({"detail": UNAVAILABLE}, status=503)
        else:
            response = render(request, "service_unavailable.html", {"message": UNAVAILABLE}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response["Cache-Control"] = "no-store"
        return response
