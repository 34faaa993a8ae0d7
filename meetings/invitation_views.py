"""Invitation pages: the host's invitee list, and the participant's one-time link."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from meetings import policy, selectors, services
from meetings.authentication import has_second_factor, lobby_secret_bind, lobby_secret_for, signed_in_user
from meetings.join_pages import join_page
from meetings.models import Invitation, Meeting

# The invitations this browser session redeemed: the same person can come back.
SESSION_KEY = "antechamber.invitations"

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


def _bound(request: HttpRequest) -> list[int]:
    return list(request.session.get(SESSION_KEY, []))


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
    """GET shows a confirmation and spends nothing (mail scanners fetch links); POST redeems."""
    join_link = selectors.link_by_token(token)
    if join_link is None:
        return render(request, "meetings/link_unknown.html", status=404)
    invitation = join_link.invitation
    meeting = invitation.meeting
    if invitation.pk in _bound(request) and invitation.revoked_at is None and not meeting.is_cancelled:
        return redirect("meetings:invited", invitation_id=invitation.pk)
    state = services.link_state_now(join_link, timezone.now())
    if state != policy.LinkState.LIVE:
        return _gone(request, state, meeting)

    user = signed_in_user(request) if request.user.is_authenticated else None
    context = {
        "meeting": meeting,
        "level": meeting.classification,
        "invitation": invitation,
        "login_url": f"{reverse('login')}?next={request.path}",
    }
    if request.method == "POST":
        try:
            services.invitation_redeem(
                link=join_link, user=user, has_second_factor=has_second_factor(request)
            )
        except services.LinkGone as gone:
            return _gone(request, gone.state, meeting)
        except services.Refused as refused:
            return render(request, "meetings/link_confirm.html", {**context, "refused": refused}, status=403)
        request.session[SESSION_KEY] = [*_bound(request), invitation.pk]
        return redirect("meetings:invited", invitation_id=invitation.pk)
    notice = policy.redemption_violation(
        meeting.classification,
        invited_email=invitation.email,
        signed_in_email=user.email if user else None,
        has_second_factor=has_second_factor(request),
    )
    return render(request, "meetings/link_confirm.html", {**context, "notice": notice})


@join_page
def invited(request: HttpRequest, invitation_id: int) -> HttpResponse:
    """Where a redeemed link leads: into the waiting room. Only the browser session that
    redeemed the link gets here, as often as it likes during the meeting."""
    if invitation_id not in _bound(request):
        raise Http404("No such invitation in this browser.")
    invitation = Invitation.objects.select_related("meeting__classification", "meeting__host").get(
        pk=invitation_id
    )
    meeting = invitation.meeting
    current = selectors.lobby_entry_of_invitation_for_session(
        invitation, lambda entry_id: lobby_secret_for(request.session, entry_id)
    )
    if current is not None:
        return redirect("meetings:join_waiting", entry_id=current.pk)
    user = signed_in_user(request) if request.user.is_authenticated else None
    name = str(user.get_full_name() or user.get_username()) if user else invitation.email.split("@", 1)[0]
    try:
        entered = services.invitation_enter_lobby(invitation=invitation, user=user, display_name=name)
    except services.LinkGone as gone:
        return _gone(request, gone.state, meeting)
    except services.Refused as refused:
        return render(request, "meetings/invited.html", {"meeting": meeting, "refused": refused}, status=403)
    lobby_secret_bind(request.session, entered.entry.pk, entered.secret)
    return redirect("meetings:join_waiting", entry_id=entered.entry.pk)


def _host_meeting(request: HttpRequest, meeting_id: str) -> Meeting:
    return selectors.meeting_for_host_or_404(request.user, meeting_id)


@login_required
def invitations(request: HttpRequest, meeting_id: str) -> HttpResponse:
    meeting = _host_meeting(request, meeting_id)
    errors: list[str] = []
    typed = ""
    if request.method == "POST":
        typed = request.POST.get("emails", "")
        addresses = [part for part in typed.replace(",", " ").split() if part]
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                errors.append(f"{address} is not an e-mail address.")
        if not addresses:
            errors.append("Give at least one e-mail address.")
        if not errors:
            try:
                created = services.invitations_create(
                    meeting=meeting,
                    actor=signed_in_user(request),
                    emails_to_invite=addresses,
                    host_has_second_factor=has_second_factor(request),
                )
            except services.Refused as refused:
                errors = [v.message for v in refused.violations]
            else:
                messages.success(request, f"Invited {len(created)} people.")
                return redirect("meetings:invitations", meeting_id=meeting.display_id)
    rows = selectors.invitations_for_meeting(meeting)
    from meetings.serializers import InvitationOutput

    states = InvitationOutput(rows, many=True, context={"meeting": meeting}).data
    return render(
        request,
        "meetings/invitations.html",
        {"meeting": meeting, "rows": states, "errors": errors, "typed": typed},
        status=400 if errors else 200,
    )


@require_POST
@login_required
def invitation_action(request: HttpRequest, meeting_id: str, invitation_id: int, action: str) -> HttpResponse:
    meeting = _host_meeting(request, meeting_id)
    invitation = selectors.invitation_for_host(meeting, invitation_id)
    if invitation is None or action not in ("resend", "revoke"):
        raise Http404("No such invitation.")
    service = services.invitation_resend if action == "resend" else services.invitation_revoke
    try:
        service(
            invitation=invitation,
            actor=signed_in_user(request),
            host_has_second_factor=has_second_factor(request),
        )
    except services.Refused as refused:
        messages.error(request, str(refused))
    else:
        done = "A new link was sent to" if action == "resend" else "Revoked the invitation of"
        messages.success(request, f"{done} {invitation.email}.")
    return redirect("meetings:invitations", meeting_id=meeting.display_id)
