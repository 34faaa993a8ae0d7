"""How the API answers errors: the documented error responses (for extend_schema), the
exception handler that turns service errors (meetings.errors) and DRF's own into
`{"detail", "code"}` or `{"field": [...]}` bodies, and the JSON 404 for unmatched paths."""

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from meetings import errors
from meetings.audit import audit_refusal
from meetings.middleware import JOIN_HEADERS
from meetings.serializers import ErrorOutput, ValidationErrorOutput

# Error answers, documented so that clients (and the schema fuzz test) can rely on them.
ERROR_RESPONSES = {
    400: OpenApiResponse(
        PolymorphicProxySerializer(
            component_name="BadRequestOutput",
            serializers=[ValidationErrorOutput, ErrorOutput],
            resource_type_field_name=None,
        ),
        description='Malformed or refused: by field, {"field": ["message"]}, or {"detail": "message", "code": "..."}',
    ),
    401: OpenApiResponse(ErrorOutput, description="No credentials, or wrong or revoked ones"),
    403: OpenApiResponse(
        ErrorOutput,
        description="Not allowed: e.g. a second factor is needed, or a signed-in browser session's CSRF token is missing",
    ),
    404: OpenApiResponse(ErrorOutput, description="No such object, or not yours (one answer for both)"),
    409: OpenApiResponse(
        ErrorOutput, description="The object's state refuses it: cancelled, ended, already decided"
    ),
    410: OpenApiResponse(ErrorOutput, description="Gone: spent, expired or revoked"),
    415: OpenApiResponse(ErrorOutput, description="The body is not JSON (Content-Type: application/json)"),
    429: OpenApiResponse(ErrorOutput, description="Too many attempts"),
    503: OpenApiResponse(ErrorOutput, description="A service it depends on is down: try again later"),
}


def responses(ok: Any, *errors: int, ok_status: int = 200) -> dict[int, Any]:
    """The success answer plus the listed error answers, for extend_schema.

    401 is always among them: every operation checks the credentials it is sent (even
    join, which needs none, refuses wrong ones)."""
    return {ok_status: ok, **{code: ERROR_RESPONSES[code] for code in sorted({401, *errors})}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus every service error (meetings.errors) with its status and code."""
    request = context.get("request")
    if isinstance(exc, errors.ServiceError):
        if isinstance(exc, errors.JoinDenied):
            # Failed guesses have their own audit (services.lobby), bounded by the limiter.
            return Response(exc.as_dict(), status=exc.status, headers=JOIN_HEADERS)
        if request is not None and not isinstance(exc, errors.NotFound):
            audit_refusal(request=request, code=exc.code, status=exc.status, message=exc.message)
        return Response(exc.as_dict(), status=exc.status)
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent | RequestDataTooBig):
        # Django's own limits on a request body: a JSON 400 like any other bad input,
        # rather than the site's HTML error page (found by fuzzing the API).
        return Response({"detail": str(exc), "code": "too_large"}, status=status.HTTP_400_BAD_REQUEST)
    # As DRF's handler would, so that the code below sees DRF's exception.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, exceptions.PermissionDenied) and request is not None and request.user.is_authenticated:
        audit_refusal(request=request, code="permission_denied", status=403, message=str(exc.detail))
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException) and isinstance(exc.detail, str):
        # DRF's {"detail": ...} answers (401, 403, 404, 405, 415, a JSON parse error) carry
        # a code too, as every other refusal does (ErrorOutput).
        response.data = {"detail": exc.detail, "code": exc.detail.code}
    return response


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """settings' handler404: a path under /api/ that matches no route (e.g. a lobby entry
    ID that is not a number) answers in JSON, as the API's own 404s do; pages as usual."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)
