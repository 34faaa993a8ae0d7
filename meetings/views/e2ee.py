"""The key relay of end-to-end encrypted rooms, for the room page's script (JSON).

One URL per seat: a participant's is bound to their admitted waiting-room entry (through
the secret their browser session holds), the host's to the signed-in host. GET: the
members' public keys and the sender keys wrapped for this seat. POST `{"public_key"}`:
publish this browser's public key. POST `{"key_id", "keys"}`: this seat's sender key,
wrapped for each recipient. DELETE: leave (the others make new keys).
"""

import json
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.views.decorators.http import require_http_methods

from meetings import errors, selectors
from meetings.authentication import lobby_secret_for
from meetings.middleware import answers_json, join_page
from meetings.services import e2ee
from meetings.views.common import host_meeting, host_room_refusal, refusal_json

MAX_BODY_BYTES = 64 * 1024


def with_key_relay(
    request: HttpRequest, media: dict[str, Any] | None, keys_url: str
) -> dict[str, Any] | None:
    """A room page's media config, plus where its E2EE keys go when the room is encrypted.

    The CSRF token goes in the page body (the cookie is HttpOnly), as a form's would.
    """
    if media is None or not media.get("e2ee"):
        return media
    return {**media, "keysUrl": keys_url, "csrf": get_token(request)}


def _answer(request: HttpRequest, seat: e2ee.Seat | None) -> HttpResponse:
    if seat is None:
        # SECURITY: the same 404 whether the room is not E2EE, not open, or not yours.
        raise Http404("No end-to-end encrypted room for you here.")
    try:
        if request.method == "GET":
            return JsonResponse(e2ee.e2ee_room_keys(seat=seat))
        if request.method == "DELETE":
            e2ee.e2ee_key_withdraw(seat=seat)
            return JsonResponse({}, status=200)
        if request.content_type != "application/json":
            return JsonResponse({"detail": "Send JSON.", "code": "unsupported_media_type"}, status=415)
        if len(request.body) > MAX_BODY_BYTES:
            return JsonResponse({"detail": "Too large.", "code": "too_large"}, status=413)
        try:
            body: Any = json.loads(request.body)
        except ValueError:
            return JsonResponse({"detail": "Send JSON.", "code": "invalid"}, status=400)
        if isinstance(body, dict) and set(body) == {"public_key"}:
            e2ee.e2ee_key_publish(seat=seat, public_key=body["public_key"])
            return JsonResponse({}, status=200)
        if isinstance(body, dict) and set(body) == {"key_id", "keys"}:
            stored = e2ee.e2ee_wrapped_keys_post(seat=seat, key_id=body["key_id"], keys=body["keys"])
            return JsonResponse({"stored": stored}, status=200)
        return JsonResponse({"detail": 'Send {"public_key"} or {"key_id", "keys"}.'}, status=400)
    except errors.ServiceError as error:
        body = error.as_dict()
        return JsonResponse(body, status=error.status)


def _methods(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    # The room page's script calls these: a 503 (Redis failing, meetings.middleware) is JSON.
    return answers_json(require_http_methods(["GET", "POST", "DELETE"])(view))


@join_page
@_methods
def participant_keys(request: HttpRequest, entry_id: int) -> HttpResponse:
    entry = selectors.lobby_entry_for_session(entry_id, lobby_secret_for(request.session, entry_id))
    if entry is None:
        raise Http404("No such waiting-room entry in this browser.")
    return _answer(request, e2ee.seat_for_entry(entry))


@join_page
@login_required
@_methods
def host_keys(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    if (refused := host_room_refusal(request, meeting)) is not None:
        return refusal_json(request, refused, meeting=meeting)
    return _answer(request, e2ee.seat_for_host(meeting))
