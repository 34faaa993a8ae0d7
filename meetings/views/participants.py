"""Pages for participants: the one-time link, joining by passcode, the waiting room, the room."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from meetings import errors, policy, selectors, sessions
from meetings.audit import audit_refusal
from meetings.authentication import (
    client_address,
    has_second_factor,
    lobby_secret_bind,
    lobby_secret_bind_after_join,
    lobby_secret_for,
    session_key_for,
    signed_in_user,
)
from meetings.forms import DisplayNameForm, JoinForm
from meetings.middleware import join_page
from meetings.models import Invitation, JoinLink, LobbyEntry, Meeting
from meetings.services import invitations, lobby
from meetings.views.common import default_name, option_rows, room_people
from meetings.views.e2ee import with_key_relay

# The invitations this browser session redeemed: the same person can come back.
SESSION_KEY = "antechamber.invitations"
# The name each of them chose on the confirmation page, as the host will see it.
NAMES_KEY = "antechamber.invited_names"
# The token of the link this session is signing in to use (`link`): in the session, sealed
# at rest (meetings.sessions), until the link is used or gone; never in a URL.
PENDING_KEY = "antechamber.link_pending"

GONE_TEXT = {
    policy.LinkState.SPENT: (
        "This link has already been used",
        "Links work once. If you used it yourself, open it again in the same browser. "
        "Otherwise ask the host to resend your invitation.",
    ),
    policy.LinkState.EXPIRED: ("This link has expired", "Ask the host to resend your invitation."),
    policy.LinkState.REVOKED: (
        "This link was withdrawn",
        "The host revoked it or sent you a newer one. Use the newest invitation, or ask the host to resend.",
    ),
    policy.LinkState.CANCELLED: ("This meeting was cancelled", "There is nothing to join."),
    policy.LinkState.ENDED: ("This meeting has ended", "There is nothing to join any more."),
}


def _suggested_name(user: Any, invited_email: str) -> str:
    if user is not None:
        return str(user.get_full_name() or user.get_username())
    return invited_email.split("@", 1)[0]


def _bound(request: HttpRequest) -> dict[str, int]:
    """Invitation ID (as text) -> the link this session redeemed for it."""
    bound = request.session.get(SESSION_KEY, {})
    return dict(bound) if isinstance(bound, dict) else {}


def _gone(request: HttpRequest, state: policy.LinkState, meeting: Meeting) -> HttpResponse:
    heading, advice = GONE_TEXT[state]
    return render(
        request,
        "meetings/link_gone.html",
        {"heading": heading, "advice": advice, "state": state.value, "level": meeting.classification},
        status=410,
    )


@join_page
@require_http_methods(["GET", "HEAD", "POST"])
def link(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a confirmation and spends nothing (mail scanners fetch links); POST redeems,
    or (its "Sign in" button) keeps the token for after signing in (see `link_continue`)."""
    join_link = selectors.link_by_token(token)
    if join_link is None:
        return render(request, "meetings/link_unknown.html", status=404)
    if request.method == "POST" and "sign_in" in request.POST:
        # SECURITY: the token goes to the sign-in page in the session (sealed at rest,
        # meetings.sessions), never as `?next=/j/<token>/` in a URL that servers log.
        request.session[PENDING_KEY] = token
        return redirect_to_login(reverse("meetings:link_continue"))
    return _link_page(request, join_link)


@join_page
@require_http_methods(["GET", "HEAD", "POST"])
def link_continue(request: HttpRequest) -> HttpResponse:
    """The link page again after signing in, for the link this session kept (`link`): the
    same confirmation, under a URL with no token in it. GET spends nothing here either."""
    token = request.session.get(PENDING_KEY)
    join_link = selectors.link_by_token(token) if isinstance(token, str) else None
    if join_link is None:
        request.session.pop(PENDING_KEY, None)
        return render(request, "meetings/link_unknown.html", status=404)
    if request.method == "POST" and "sign_in" in request.POST:
        return redirect_to_login(reverse("meetings:link_continue"))
    return _link_page(request, join_link)


def _forget_pending(request: HttpRequest) -> None:
    """The kept token goes once its link is used or gone."""
    if PENDING_KEY in request.session:
        del request.session[PENDING_KEY]


def _link_page(request: HttpRequest, join_link: JoinLink) -> HttpResponse:
    invitation = join_link.invitation
    meeting = invitation.meeting
    if str(invitation.pk) in _bound(request) and invitation.revoked_at is None and not meeting.is_cancelled:
        _forget_pending(request)
        return redirect("meetings:invited", invitation_id=invitation.pk)
    state = invitations.link_state_now(join_link, timezone.now())
    if state != policy.LinkState.LIVE:
        _forget_pending(request)
        return _gone(request, state, meeting)

    user = signed_in_user(request) if request.user.is_authenticated else None
    name_form = DisplayNameForm(
        request.POST if request.method == "POST" else None,
        initial={"display_name": _suggested_name(user, invitation.email)},
    )

    def confirmation(status: int = 200, **extra: Any) -> HttpResponse:
        # Built only for a page shown: a redemption that goes through renders nothing.
        context = {
            "meeting": meeting,
            "level": meeting.classification,
            "invitation": invitation,
            "name_form": name_form,
            **extra,
        }
        return render(request, "meetings/link_confirm.html", context, status=status)

    if request.method == "POST":
        if not name_form.is_valid():
            return confirmation(400)
        chosen = name_form.cleaned_data["display_name"]

        def bind_to_this_browser(redeemed: Invitation) -> sessions.Rotation:
            # The session under a new key, written with the spent link: both or neither.
            updates: dict[str, Any] = {SESSION_KEY: {**_bound(request), str(redeemed.pk): join_link.pk}}
            if chosen:
                updates[NAMES_KEY] = {**request.session.get(NAMES_KEY, {}), str(redeemed.pk): chosen}
            return sessions.rotation(request.session, updates, drop=(PENDING_KEY,))

        try:
            invitations.invitation_redeem(
                link=join_link,
                user=user,
                has_second_factor=has_second_factor(request),
                with_redemption=bind_to_this_browser,
            )
        except errors.LinkGone as gone:
            _forget_pending(request)
            return _gone(request, gone.state, meeting)
        except errors.Refused as refused:
            audit_refusal(
                request=request,
                code="redemption_refused",
                status=403,
                message=refused.message,
                meeting=meeting,
            )
            return confirmation(403, refused=refused)
        return redirect("meetings:invited", invitation_id=invitation.pk)
    notice = policy.redemption_violation(
        meeting.classification,
        invited_email=invitation.email,
        signed_in_email=user.email if user else None,
        has_second_factor=has_second_factor(request),
    )
    return confirmation(notice=notice)


@join_page
def invited(request: HttpRequest, invitation_id: int) -> HttpResponse:
    """Where a redeemed link leads: into the waiting room. Only the browser session that
    redeemed the link gets here, as often as it likes during the meeting."""
    link_id = _bound(request).get(str(invitation_id))
    if link_id is None:
        raise Http404("No such invitation in this browser.")
    invitation = Invitation.objects.select_related("meeting__classification", "meeting__host").get(
        pk=invitation_id
    )
    meeting = invitation.meeting
    if not selectors.invitation_link_stands(invitation, link_id):
        # SECURITY: revoked (by the host, a tightened level, or a resend): no way back in.
        return _gone(request, policy.LinkState.REVOKED, meeting)
    current = selectors.lobby_entry_of_invitation_for_session(
        invitation, lambda entry_id: lobby_secret_for(request.session, entry_id)
    )
    if current is not None:
        return redirect("meetings:join_waiting", entry_id=current.pk)
    user = signed_in_user(request) if request.user.is_authenticated else None
    name = request.session.get(NAMES_KEY, {}).get(str(invitation.pk)) or _suggested_name(
        user, invitation.email
    )
    try:
        entered = lobby.lobby_enter_by_invitation(
            invitation=invitation,
            link_id=link_id,
            user=user,
            display_name=name,
            has_second_factor=has_second_factor(request),
        )
    except errors.LinkGone as gone:
        return _gone(request, gone.state, meeting)
    except errors.ServiceError as error:
        return render(
            request, "meetings/invited.html", {"meeting": meeting, "error": error}, status=error.status
        )
    lobby_secret_bind(request.session, entered.entry.pk, entered.secret)
    return redirect("meetings:join_waiting", entry_id=entered.entry.pk)


@join_page
def join(request: HttpRequest) -> HttpResponse:
    form = JoinForm(request.POST or None, initial={"display_name": default_name(request)})
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            user = request.user if request.user.is_authenticated else None
            try:
                entered = lobby.lobby_join_by_passcode(
                    raw_meeting_id=data["meeting_id"],
                    passcode=data["passcode"],
                    display_name=data["display_name"],
                    user=user,
                    client_address=client_address(request),
                    client_session=session_key_for(request),
                )
            except errors.JoinDenied as denied:
                if denied.code == "sign_in":
                    # The passcode is not carried along: they type it again after signing in.
                    messages.info(request, denied.message)
                    return redirect_to_login(reverse("meetings:join"))
                form.add_error(None, denied.message)
                status = denied.status
            else:
                # SECURITY: under a new session key (session fixation).
                lobby_secret_bind_after_join(request.session, entered.entry.pk, entered.secret)
                return redirect("meetings:join_waiting", entry_id=entered.entry.pk)
    return render(request, "meetings/join.html", {"form": form}, status=status)


def _my_entry(request: HttpRequest, entry_id: int) -> LobbyEntry:
    entry = selectors.lobby_entry_for_session(entry_id, lobby_secret_for(request.session, entry_id))
    if entry is None:
        # SECURITY: the same 404 for an unknown entry and for someone else's.
        raise Http404("No such waiting-room entry in this browser.")
    return entry


def _entry_state(entry: LobbyEntry) -> dict[str, Any]:
    meeting = entry.meeting
    in_room = entry.status == LobbyEntry.Status.ADMITTED and meeting.is_started and not meeting.is_cancelled
    return {
        "status": entry.status,
        "meeting_started": meeting.is_started,
        "meeting_ended": meeting.is_ended or meeting.is_cancelled,
        "room_url": reverse("meetings:join_room", kwargs={"entry_id": entry.pk}) if in_room else None,
    }


@join_page
@require_GET
def join_waiting(request: HttpRequest, entry_id: int) -> HttpResponse:
    entry = _my_entry(request, entry_id)
    return render(
        request,
        "meetings/join_waiting.html",
        {"entry": entry, "meeting": entry.meeting, "state": _entry_state(entry)},
    )


@join_page
@require_GET
def join_status(request: HttpRequest, entry_id: int) -> HttpResponse:
    return JsonResponse(_entry_state(_my_entry(request, entry_id)))


@join_page
@require_GET
def join_room(request: HttpRequest, entry_id: int) -> HttpResponse:
    entry = _my_entry(request, entry_id)
    if not _entry_state(entry)["room_url"]:
        return redirect("meetings:join_waiting", entry_id=entry.pk)
    meeting = entry.meeting
    return render(
        request,
        "meetings/meeting_room.html",
        {
            "entry": entry,
            "meeting": meeting,
            "display_name": entry.display_name,
            "status_url": reverse("meetings:join_status", kwargs={"entry_id": entry.pk}),
            "people": room_people(meeting),
            "people_url": reverse("meetings:join_room_people", kwargs={"entry_id": entry.pk}),
            "options": option_rows(meeting, with_waiting_room=False),
            "media": with_key_relay(
                request,
                selectors.media_for_entry(entry),
                reverse("meetings:join_e2ee_keys", kwargs={"entry_id": entry.pk}),
            ),
            "media_configured": selectors.media_configured(),
        },
    )


@join_page
@require_GET
def join_room_people(request: HttpRequest, entry_id: int) -> HttpResponse:
    """Who is in the room, for an admitted participant's room page to poll."""
    entry = _my_entry(request, entry_id)
    if not _entry_state(entry)["room_url"]:
        raise Http404("Not in the room.")
    return JsonResponse({"people": room_people(entry.meeting)})
