"""Pages for hosts: the waiting room, the meeting's lifecycle (start, lock, end) and the room."""

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from meetings import errors, selectors
from meetings.authentication import has_second_factor, signed_in_user
from meetings.middleware import join_page
from meetings.models import Meeting
from meetings.services import lifecycle, lobby
from meetings.views.common import (
    default_name,
    host_meeting,
    host_room_refusal,
    option_rows,
    refusal_json,
    refusal_page,
    room_people,
)
from meetings.views.e2ee import with_key_relay

_DECIDE = {"admit": lobby.lobby_admit, "deny": lobby.lobby_deny, "remove": lobby.lobby_remove}

_LIFECYCLE: dict[str, tuple[Callable[..., Meeting], str]] = {
    "start": (lifecycle.meeting_start, "The meeting has started: admitted people are in."),
    "lock": (lifecycle.meeting_lock, "The meeting is locked: no one new can join."),
    "unlock": (lifecycle.meeting_unlock, "The meeting is unlocked."),
    "end": (lifecycle.meeting_end, "The meeting has ended: everyone was moved out."),
}


@never_cache
@login_required
def meeting_lobby(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    return render(
        request,
        "meetings/lobby.html",
        {"meeting": meeting, "entries": list(selectors.lobby_for_host(meeting))},
    )


def _lobby_url(meeting: Meeting) -> str:
    return reverse("meetings:lobby", kwargs={"meeting_id": meeting.display_id})


def _room_url(meeting: Meeting) -> str:
    return reverse("meetings:host_room", kwargs={"meeting_id": meeting.display_id})


def _back_url(request: HttpRequest, meeting: Meeting, default: str) -> str:
    """Where a host's form returns to: the page it was posted from (`back`), else `default`."""
    back = request.POST.get("back")
    if back == "lobby":
        return _lobby_url(meeting)
    if back == "room":
        return _room_url(meeting)
    return default


@require_POST
@login_required
def meeting_lobby_decide(request: HttpRequest, meeting_id: str, entry_id: int, decision: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    if decision not in _DECIDE:
        raise Http404("No such decision.")
    back = _back_url(request, meeting, _lobby_url(meeting))
    try:
        entry = _DECIDE[decision](
            meeting=meeting,
            entry_id=entry_id,
            actor=signed_in_user(request),
            host_has_second_factor=has_second_factor(request),
        )
    except errors.ServiceError as error:
        return refusal_page(request, error, meeting=meeting, back_url=back)
    messages.success(request, f"{entry.display_name}: {entry.get_status_display().lower()}.")
    return redirect(back)


@require_POST
@login_required
def meeting_lobby_admit_all(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    back = _back_url(request, meeting, _lobby_url(meeting))
    try:
        admitted = lobby.lobby_admit_all(
            meeting=meeting, actor=signed_in_user(request), host_has_second_factor=has_second_factor(request)
        )
    except errors.ServiceError as error:
        return refusal_page(request, error, meeting=meeting, back_url=back)
    messages.success(request, f"Admitted {admitted}.")
    return redirect(back)


@require_POST
@login_required
def meeting_lifecycle(request: HttpRequest, meeting_id: str, action: str) -> HttpResponse:
    meeting = host_meeting(request, meeting_id)
    if action not in _LIFECYCLE:
        raise Http404("No such action.")
    act, done = _LIFECYCLE[action]
    back = _back_url(request, meeting, meeting.get_absolute_url())
    try:
        act(meeting=meeting, actor=signed_in_user(request), host_has_second_factor=has_second_factor(request))
    except errors.ServiceError as error:
        return refusal_page(request, error, meeting=meeting, back_url=back)
    messages.success(request, done)
    if action == "end" and back == _room_url(meeting):
        return redirect(meeting)  # the room is gone: its host lands on the meeting page
    return redirect(back)


@join_page
@login_required
@require_GET
def meeting_room_host(request: HttpRequest, meeting_id: str) -> HttpResponse:
    """The host's own seat in the meeting room (with media where configured)."""
    meeting = host_meeting(request, meeting_id)
    if (refused := host_room_refusal(request, meeting)) is not None:
        return refusal_page(request, refused, meeting=meeting, back_url=meeting.get_absolute_url())
    if meeting.is_cancelled or meeting.is_ended:
        messages.info(request, f"This meeting {'was cancelled' if meeting.is_cancelled else 'has ended'}.")
        return redirect(meeting)
    if not meeting.is_started:
        messages.info(request, "Start the meeting first.")
        return redirect(meeting)
    name = default_name(request)
    return render(
        request,
        "meetings/meeting_room.html",
        {
            "meeting": meeting,
            "display_name": f"{name} (host)",
            "people": room_people(meeting),
            # The host's controls: who is in and who waits, each with the lobby's forms.
            "host_controls": True,
            "entries": selectors.room_for_host(meeting),
            "people_url": reverse("meetings:host_room_people", kwargs={"meeting_id": meeting.display_id}),
            "options": option_rows(meeting, with_waiting_room=False),
            "media": with_key_relay(
                request,
                selectors.media_for_host(meeting, f"{name} (host)"),
                reverse("meetings:host_e2ee_keys", kwargs={"meeting_id": meeting.display_id}),
            ),
            "media_configured": selectors.media_configured(),
        },
    )


@never_cache
@login_required
@require_GET
def meeting_room_people(request: HttpRequest, meeting_id: str) -> HttpResponse:
    """Who is in the room and who waits (with their entry IDs for the host's forms), and
    whether the meeting is locked, for the host's room page to poll."""
    meeting = host_meeting(request, meeting_id)
    if (refused := host_room_refusal(request, meeting)) is not None:
        return refusal_json(request, refused, meeting=meeting)
    return JsonResponse(
        {
            "people": room_people(meeting),
            "entries": selectors.room_for_host(meeting),
            "locked": meeting.is_locked,
        }
    )
