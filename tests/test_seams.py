"""The seams outside review found (issue 11): declassification, revocation that removes
people, and the host's second factor on every host action at levels that require it."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from meetings.models import AuditEvent, Invitation, LobbyEntry, Meeting, OutboundMessage
from meetings.services import lobby
from tests.helpers import booking_body, token_of

pytestmark = pytest.mark.django_db


def _redeem_and_wait(token: str) -> tuple[Client, int]:
    """An invitee's browser: confirm the link, land in the waiting room. Returns (browser, entry)."""
    browser = Client()
    redeemed = browser.post(f"/j/{token}/")
    assert redeemed.status_code == 302, redeemed.content
    waiting = browser.get(redeemed["Location"])
    assert waiting.status_code == 302 and "/join/" in waiting["Location"]
    return browser, int(waiting["Location"].strip("/").split("/")[-1])


def _book(api, **overrides) -> tuple[dict, Invitation]:
    booked = api.post(
        "/api/v1/meetings/", booking_body(invitees=["ann@example.org"], **overrides), format="json"
    )
    assert booked.status_code == 201, booked.content
    return booked.json(), Invitation.objects.get(email="ann@example.org")


# --- Revocation ends access ---------------------------------------------------------------


@pytest.mark.parametrize("admitted", [False, True])
def test_revoking_ends_a_redeemed_invitees_place_and_their_way_back(alice_api, admitted):
    booked, invitation = _book(alice_api)
    browser, entry_id = _redeem_and_wait(token_of(OutboundMessage.objects.get(kind="invitation")))
    base = f"/api/v1/meetings/{booked['id']}"
    if admitted:
        assert alice_api.post(f"{base}/lobby/{entry_id}/admit/").status_code == 200

    assert alice_api.post(f"{base}/invitations/{invitation.pk}/revoke/").status_code == 200

    entry = LobbyEntry.objects.get(pk=entry_id)
    assert entry.status == (LobbyEntry.Status.LEFT if admitted else LobbyEntry.Status.DENIED)
    assert browser.get(f"/invited/{invitation.pk}/").status_code == 410
    assert LobbyEntry.objects.filter(invitation=invitation).count() == 1  # no new entry
    assert AuditEvent.objects.filter(action="lobby_ended_by_revocation").count() == 1


def test_a_resend_ends_the_old_browsers_place_and_the_new_link_works(alice_api):
    booked, invitation = _book(alice_api)
    old_browser, entry_id = _redeem_and_wait(token_of(OutboundMessage.objects.get(kind="invitation")))
    base = f"/api/v1/meetings/{booked['id']}"
    assert alice_api.post(f"{base}/invitations/{invitation.pk}/resend/").status_code == 200

    assert LobbyEntry.objects.get(pk=entry_id).status == LobbyEntry.Status.DENIED
    assert old_browser.get(f"/invited/{invitation.pk}/").status_code == 410
    new_token = token_of(OutboundMessage.objects.filter(kind="invitation").latest("id"))
    _new_browser, new_entry = _redeem_and_wait(new_token)
    assert LobbyEntry.objects.get(pk=new_entry).status == LobbyEntry.Status.WAITING


def test_a_tightened_level_ends_the_places_of_invitees_it_no_longer_admits(alice_api, carol_api):
    booked, invitation = _book(alice_api)
    browser, entry_id = _redeem_and_wait(token_of(OutboundMessage.objects.get(kind="invitation")))
    response = carol_api.patch(
        "/api/v1/classifications/official/", {"allowed_invitee_domains": ["example.gov.uk"]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert LobbyEntry.objects.get(pk=entry_id).status == LobbyEntry.Status.DENIED
    assert browser.get(f"/invited/{invitation.pk}/").status_code == 410


# --- Declassification ------------------------------------------------------------------------


def test_a_host_cannot_lower_a_secret_meeting_and_switch_on_what_it_forbade(alice_api):
    booked = alice_api.post("/api/v1/meetings/", booking_body(classification="secret"), format="json").json()
    response = alice_api.patch(
        f"/api/v1/meetings/{booked['id']}/",
        {"classification": "official", "cloud_recording": True, "dial_in": True},
        format="json",
    )
    assert response.status_code == 403 and response.json()["code"] == "declassification_needs_staff"
    meeting = Meeting.objects.get()
    assert meeting.classification.code == "secret" and not meeting.cloud_recording and not meeting.dial_in
    assert AuditEvent.objects.filter(action="meeting_declassified").count() == 0


def test_a_host_may_raise_a_level_at_any_time_even_while_it_runs(alice_api):
    booked = alice_api.post("/api/v1/meetings/", booking_body(), format="json").json()
    assert alice_api.post(f"/api/v1/meetings/{booked['id']}/start/").status_code == 200
    response = alice_api.patch(
        f"/api/v1/meetings/{booked['id']}/", {"classification": "secret"}, format="json"
    )
    assert response.status_code == 200 and response.json()["classification"] == "secret"


def test_staff_with_a_second_factor_lower_a_level_before_start_and_invitees_hear_of_it(
    alice_api, carol_api, bob_api
):
    booked, invitation = _book(alice_api, classification="official-sensitive")
    url = f"/api/v1/meetings/{booked['id']}/classification/"
    assert bob_api.post(url, {"classification": "official"}, format="json").status_code == 403  # not staff

    response = carol_api.post(url, {"classification": "official"}, format="json")
    assert response.status_code == 200 and response.json()["classification"] == "official"
    event = AuditEvent.objects.get(action="meeting_declassified")
    assert event.detail["old"] == "official-sensitive" and event.detail["new"] == "official"
    assert "allow_cloud_recording" in event.detail["loosened"]  # what the lower level allows more
    assert event.actor_label == "carol"
    update = OutboundMessage.objects.filter(kind="invitation_update", invitation=invitation).get()
    assert "[OFFICIAL]" in update.subject and update.sealed_link  # re-issued under the lower level


def test_even_staff_cannot_lower_a_level_once_the_meeting_started(alice_api, carol_api):
    booked = alice_api.post("/api/v1/meetings/", booking_body(classification="secret"), format="json").json()
    assert alice_api.post(f"/api/v1/meetings/{booked['id']}/start/").status_code == 200
    response = carol_api.post(
        f"/api/v1/meetings/{booked['id']}/classification/", {"classification": "official"}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "already_started"
    assert Meeting.objects.get().classification.code == "secret"


# --- The host's second factor on every host action ---------------------------------------------

HOST_ACTIONS = [
    "cancel",
    "passcode",
    "start",
    "lock",
    "unlock",
    "end",
    "lobby/{entry}/admit",
    "lobby/{entry}/deny",
    "lobby/{entry}/remove",
    "lobby/admit-all",
    "invitations",
    "invitations/{invitation}/resend",
    "invitations/{invitation}/revoke",
]


@pytest.mark.parametrize("action", HOST_ACTIONS)
def test_every_host_action_at_an_mfa_level_needs_the_second_factor(
    meeting_factory, alice_web, verified_client, alice, action
):
    meeting = meeting_factory(classification="official-sensitive", invitees=["ann@example.org"]).meeting
    entry = lobby.lobby_enter(meeting=meeting, display_name="Dana", source=LobbyEntry.Source.PASSCODE).entry
    invitation = Invitation.objects.get(meeting=meeting)
    path = f"/meetings/{meeting.display_id}/" + action.format(entry=entry.pk, invitation=invitation.pk) + "/"
    body = {"emails": "ben@example.org"} if action == "invitations" else {}
    actions = AuditEvent.objects.exclude(action="request_refused")
    before = (actions.count(), OutboundMessage.objects.count())

    refused = alice_web.post(path, body)
    assert refused.status_code == 403, (action, refused.status_code)
    assert "second factor" in refused.content.decode()
    assert (actions.count(), OutboundMessage.objects.count()) == before
    assert AuditEvent.objects.get(action="request_refused").subject == "second_factor_required"
    assert Meeting.objects.get(pk=meeting.pk).status == Meeting.Status.SCHEDULED
    assert LobbyEntry.objects.get(pk=entry.pk).status == LobbyEntry.Status.WAITING

    if action not in ("unlock",):  # unlocking an unlocked meeting is refused for another reason
        allowed = verified_client(alice).post(path, body)
        assert allowed.status_code in (200, 302), (action, allowed.status_code)


@pytest.mark.parametrize("page", ["room", "room/people", "room/e2ee"])
def test_the_hosts_room_its_people_and_key_relay_need_the_second_factor_at_mfa_levels(
    meeting_factory, alice_web, verified_client, alice, page
):
    # The room hands the host a media token and the E2EE key relay: a host action too.
    meeting = meeting_factory(classification="official-sensitive").meeting
    Meeting.objects.filter(pk=meeting.pk).update(started_at=timezone.now(), e2ee=True)
    path = f"/meetings/{meeting.display_id}/{page}/"
    refused = alice_web.get(path)
    assert refused.status_code == 403, (page, refused.status_code)
    assert "second factor" in refused.content.decode()
    allowed = verified_client(alice).get(path)
    assert allowed.status_code != 403, (page, allowed.status_code)


# --- A rising level re-checks those already waiting or in ---------------------------------


def _guest_by_passcode(booked: dict) -> tuple[Client, int]:
    browser = Client()
    joined = browser.post(
        "/api/v1/join/",
        {"meeting_id": booked["id"], "passcode": booked["passcode"], "display_name": "Guest"},
        content_type="application/json",
    )
    assert joined.status_code == 201, joined.content
    return browser, joined.json()["entry"]["id"]


@pytest.mark.parametrize("admitted", [False, True])
def test_raising_the_level_ends_the_places_of_guests_it_no_longer_admits(alice_api, admitted):
    booked, invitation = _book(alice_api)
    invitee, invitee_entry = _redeem_and_wait(token_of(OutboundMessage.objects.get(kind="invitation")))
    guest, guest_entry = _guest_by_passcode(booked)
    base = f"/api/v1/meetings/{booked['id']}"
    if admitted:
        for entry_id in (invitee_entry, guest_entry):
            assert alice_api.post(f"{base}/lobby/{entry_id}/admit/").status_code == 200

    # SECRET: no guests, no passcode joins, invitees signed in with a second factor.
    raised = alice_api.patch(f"{base}/", {"classification": "secret"}, format="json")
    assert raised.status_code == 200, raised.content

    ended = LobbyEntry.Status.LEFT if admitted else LobbyEntry.Status.DENIED
    assert LobbyEntry.objects.get(pk=invitee_entry).status == ended
    assert LobbyEntry.objects.get(pk=guest_entry).status == ended
    audited = AuditEvent.objects.filter(action="lobby_ended_by_policy")
    assert sorted(e.detail["entry_id"] for e in audited) == sorted([invitee_entry, guest_entry])
    assert {e.detail["reason"] for e in audited} == {"level raised"}
    # The invitee's way back in: to the entry's "denied" page while it stands, else the
    # SECRET rule is asked again (a guest cannot meet it). Either way, no new place.
    back = invitee.get(f"/invited/{invitation.pk}/")
    if admitted:
        assert back.status_code == 403 and "SECRET" in back.content.decode()
    else:
        assert back.status_code == 302 and back["Location"] == f"/join/{invitee_entry}/"
    assert not LobbyEntry.objects.filter(
        invitation=invitation, status__in=[LobbyEntry.Status.WAITING, LobbyEntry.Status.ADMITTED]
    ).exists()
    assert alice_api.post(f"{base}/start/").status_code == 200
    assert invitee.get(f"/join/{invitee_entry}/room/").status_code != 200
    assert guest.get(f"/join/{guest_entry}/room/").status_code != 200


def test_a_level_that_stops_admitting_guests_keeps_those_signed_in(alice_api, carol_api, django_user_model):
    booked, invitation = _book(alice_api)
    ann = django_user_model.objects.create_user("ann", "ann@example.org", "pw-ann-long-enough")
    signed_in = Client()
    signed_in.force_login(ann)
    redeemed = signed_in.post(f"/j/{token_of(OutboundMessage.objects.get(kind='invitation'))}/")
    assert redeemed.status_code == 302
    ann_entry = int(signed_in.get(redeemed["Location"])["Location"].strip("/").split("/")[-1])
    _guest, guest_entry = _guest_by_passcode(booked)
    tightened = carol_api.patch("/api/v1/classifications/official/", {"allow_guests": False}, format="json")
    assert tightened.status_code == 200
    assert LobbyEntry.objects.get(pk=ann_entry).status == LobbyEntry.Status.WAITING
    assert LobbyEntry.objects.get(pk=guest_entry).status == LobbyEntry.Status.DENIED


def test_a_tightened_level_ends_guests_places_in_meetings_running_over_time(alice_api, carol_api):
    booked, _invitation = _book(alice_api)
    guest, guest_entry = _guest_by_passcode(booked)
    base = f"/api/v1/meetings/{booked['id']}"
    assert alice_api.post(f"{base}/lobby/{guest_entry}/admit/").status_code == 200
    assert alice_api.post(f"{base}/start/").status_code == 200
    # Past its scheduled end, within the joining grace, not ended by the host: still on.
    now = timezone.now()
    Meeting.objects.filter(public_id=booked["id"].replace("-", "")).update(
        starts_at=now - timedelta(minutes=31), ends_at=now - timedelta(minutes=1)
    )
    tightened = carol_api.patch("/api/v1/classifications/official/", {"allow_guests": False}, format="json")
    assert tightened.status_code == 200
    assert LobbyEntry.objects.get(pk=guest_entry).status == LobbyEntry.Status.LEFT
    event = AuditEvent.objects.get(action="lobby_ended_by_policy")
    assert event.detail == {"entry_id": guest_entry, "was": "admitted", "reason": "level tightened"}
    assert guest.get(f"/join/{guest_entry}/room/").status_code != 200


# --- Refusals are audited --------------------------------------------------------------------


def test_policy_permission_and_redemption_refusals_leave_an_audit_row(alice_api, bob_api, django_user_model):
    refused = alice_api.post(
        "/api/v1/meetings/", booking_body(classification="secret", dial_in=True), format="json"
    )
    assert refused.status_code == 400
    assert bob_api.patch("/api/v1/classifications/official/", {"rank": 5}, format="json").status_code == 403
    booked = alice_api.post(
        "/api/v1/meetings/",
        booking_body(classification="secret", invitees=["sam@example.org"]),
        format="json",
    )
    token = token_of(OutboundMessage.objects.get(kind="invitation"))
    assert Client().post(f"/j/{token}/").status_code == 403  # SECRET: no guests
    rows = list(AuditEvent.objects.filter(action="request_refused").order_by("id"))
    assert [(row.detail["status"], row.subject) for row in rows] == [
        (400, "refused"),
        (403, "permission_denied"),
        (403, "redemption_refused"),
    ]
    assert rows[0].actor_label == "alice" and rows[1].actor_label == "bob"
    assert rows[2].meeting_public_id == booked.json()["id"].replace("-", "")
    assert all(token not in str(row.detail) + row.subject for row in rows)


# --- Invitations are capped --------------------------------------------------------------------


def test_invitations_per_request_and_per_meeting_hour_are_capped(alice_api, settings):
    settings.ANTECHAMBER_INVITES_PER_REQUEST = 3
    settings.ANTECHAMBER_INVITES_PER_MEETING_PER_HOUR = 5
    many = [f"p{n}@example.org" for n in range(4)]
    refused = alice_api.post("/api/v1/meetings/", booking_body(invitees=many), format="json")
    assert refused.status_code == 400 and "At most 3" in refused.json()["invitees"][0]
    booked = alice_api.post("/api/v1/meetings/", booking_body(invitees=many[:3]), format="json").json()
    url = f"/api/v1/meetings/{booked['id']}/invitations/"
    assert alice_api.post(url, {"emails": many[3:] + ["q@example.org"]}, format="json").status_code == 201
    limited = alice_api.post(url, {"emails": ["r@example.org"]}, format="json")
    assert limited.status_code == 429 and limited.json()["code"] == "invitations_limited"
    assert Invitation.objects.count() == 5


# --- The admin validates and audits levels like the API -----------------------------------------


def test_the_admin_refuses_a_domain_string_and_creates_levels_through_the_service(carol, verified_client):
    from meetings.admin import ClassificationLevelForm
    from meetings.models import ClassificationLevel

    official = ClassificationLevel.objects.get(code="official")
    data = {
        field: getattr(official, field)
        for field in ClassificationLevelForm.Meta.fields
        if field not in ("code", "allowed_invitee_domains")
    }
    form = ClassificationLevelForm(
        data={**data, "allowed_invitee_domains": '"example.gov.uk"'}, instance=official
    )
    assert not form.is_valid() and "allowed_invitee_domains" in form.errors

    from django.contrib.auth.models import Permission

    carol.user_permissions.add(Permission.objects.get(codename="add_classificationlevel"))
    staff = verified_client(carol)
    new = {
        **{k: v for k, v in data.items() if not isinstance(v, bool) or v},
        "code": "restricted",
        "name": "RESTRICTED",
        "rank": 15,
        "allowed_invitee_domains": '["Example.GOV.uk"]',
    }
    response = staff.post("/admin/meetings/classificationlevel/add/", new)
    assert response.status_code == 302, response.content.decode()[:2000]
    created = ClassificationLevel.objects.get(code="restricted")
    assert created.allowed_invitee_domains == ["example.gov.uk"]  # cleaned as the API cleans it
    assert AuditEvent.objects.filter(action="level_created", subject="restricted").count() == 1
