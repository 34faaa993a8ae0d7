"""The host's and participants' pages: edit, post/redirect/get, zones, level choice, lobby, icons."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from meetings.models import AuditEvent, HostProfile, Meeting, OutboundMessage
from meetings.zones import COMMON_ZONES, curated_zones
from tests.join_helpers import book
from tests.test_views import form_data

PERSON_DANA = '<li data-person data-role="participant"><span class="name">Dana</span></li>'

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


def edit_data(meeting: Meeting, **changes) -> dict[str, str]:
    local = meeting.starts_at.astimezone(__import__("zoneinfo").ZoneInfo(meeting.timezone))
    data = {
        "classification": meeting.classification.code,
        "title": meeting.title,
        "starts_at": local.strftime("%Y-%m-%dT%H:%M"),
        "timezone": meeting.timezone,
        "duration_minutes": str(meeting.duration_minutes),
    }
    options = {"cloud_recording": meeting.cloud_recording, "dial_in": meeting.dial_in, "waiting_room": True}
    options.update({k: v for k, v in changes.items() if k in options})
    data.update({name: "on" for name, on in options.items() if on})
    data.update({k: str(v) for k, v in changes.items() if k not in options})
    return data


# --- 1. Edit and reschedule --------------------------------------------------------------


def test_host_reschedules_from_the_meeting_page_and_invitees_are_told(alice_web, meeting_factory):
    booked = meeting_factory(
        invitees=["ann@example.org"],
        starts_at=timezone.now() + timedelta(days=2),
        timezone_name="Europe/London",
    )
    meeting = booked.meeting
    sequence = meeting.sequence
    detail = alice_web.get(meeting.get_absolute_url()).content.decode()
    assert f'href="/meetings/{meeting.display_id}/edit/"' in detail
    form = alice_web.get(f"/meetings/{meeting.display_id}/edit/")
    assert form.status_code == 200 and 'value="Weekly sync"' in form.content.decode()
    mails_before = OutboundMessage.objects.filter(invitation__email="ann@example.org").count()

    response = alice_web.post(
        f"/meetings/{meeting.display_id}/edit/",
        edit_data(meeting, title="Weekly sync (moved)", starts_at="2031-03-04T15:30", duration_minutes=30),
    )
    assert response.status_code == 302 and response["Location"] == meeting.get_absolute_url()
    meeting.refresh_from_db()
    assert meeting.title == "Weekly sync (moved)" and meeting.duration_minutes == 30
    assert meeting.starts_at == datetime(2031, 3, 4, 15, 30, tzinfo=UTC)  # London is on GMT in March
    assert meeting.sequence == sequence + 1
    assert OutboundMessage.objects.filter(invitation__email="ann@example.org").count() == mails_before + 1


def test_an_unchanged_edit_changes_nothing_and_mails_no_one(alice_web, meeting_factory):
    meeting = meeting_factory(invitees=["ann@example.org"]).meeting
    meeting.refresh_from_db()
    before = (meeting.sequence, OutboundMessage.objects.count())
    response = alice_web.post(f"/meetings/{meeting.display_id}/edit/", edit_data(meeting), follow=True)
    assert "Nothing was changed." in response.content.decode()
    meeting.refresh_from_db()
    assert (meeting.sequence, OutboundMessage.objects.count()) == before


def test_edit_shows_the_levels_locks_and_refuses_what_the_level_forbids(alice_web_verified, meeting_factory):
    meeting = meeting_factory(classification="official-sensitive").meeting
    page = alice_web_verified.get(f"/meetings/{meeting.display_id}/edit/").content.decode()
    assert (
        "Locked by OFFICIAL-SENSITIVE: Cloud recording is not allowed for OFFICIAL-SENSITIVE meetings."
        in page
    )
    refused = alice_web_verified.post(
        f"/meetings/{meeting.display_id}/edit/", edit_data(meeting, cloud_recording=True)
    )
    assert refused.status_code == 400
    assert "Cloud recording is not allowed for OFFICIAL-SENSITIVE meetings." in str(
        refused.context["form"].errors["cloud_recording"]
    )
    meeting.refresh_from_db()
    assert meeting.cloud_recording is False
    assert AuditEvent.objects.filter(action="request_refused", meeting_public_id=meeting.public_id).exists()


def test_raising_the_level_from_the_edit_page_goes_through_the_service(alice_web_verified, meeting_factory):
    meeting = meeting_factory(dial_in=True).meeting
    refused = alice_web_verified.post(
        f"/meetings/{meeting.display_id}/edit/", edit_data(meeting, classification="secret", dial_in=True)
    )
    assert refused.status_code == 400  # SECRET forbids dial-in: refused, not silently dropped
    raised = alice_web_verified.post(
        f"/meetings/{meeting.display_id}/edit/", edit_data(meeting, classification="secret", dial_in=False)
    )
    assert raised.status_code == 302
    meeting.refresh_from_db()
    assert meeting.classification.code == "secret" and meeting.dial_in is False


def test_bob_cannot_edit_alices_meeting(client, bob, meeting_factory):
    meeting = meeting_factory().meeting
    client.force_login(bob)
    assert client.get(f"/meetings/{meeting.display_id}/edit/").status_code == 404
    assert (
        client.post(f"/meetings/{meeting.display_id}/edit/", edit_data(meeting, title="x")).status_code == 404
    )


# --- 2. Post/redirect/get ------------------------------------------------------------------


def test_booking_redirects_and_shows_the_passcode_once(alice_web):
    response = alice_web.post("/meetings/new/", form_data("official"))
    meeting = Meeting.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/meetings/{meeting.display_id}/booked/"
    assert "passcode" not in response["Location"].lower().replace("/booked/", "")
    first = alice_web.get(response["Location"])
    passcode = first.context["passcode"]
    assert passcode and passcode in first.content.decode()
    assert first["Cache-Control"].startswith("max-age=0")
    again = alice_web.get(response["Location"])
    assert again.context["passcode"] is None and passcode not in again.content.decode()
    assert "is not shown again" in again.content.decode()
    assert "antechamber.shown_once" not in alice_web.session
    assert Meeting.objects.count() == 1


def test_rotation_redirects_and_shows_the_new_passcode_once(alice_web, meeting_factory):
    meeting = meeting_factory().meeting
    response = alice_web.post(f"/meetings/{meeting.display_id}/passcode/")
    assert (
        response.status_code == 302
        and response["Location"] == f"/meetings/{meeting.display_id}/passcode/new/"
    )
    shown = alice_web.get(response["Location"])
    assert shown.context["passcode"] and shown.context["passcode"] in shown.content.decode()
    assert alice_web.get(response["Location"]).context["passcode"] is None


def test_a_passcode_held_for_one_meeting_is_not_shown_on_anothers_page(alice_web, meeting_factory):
    first, second = meeting_factory().meeting, meeting_factory().meeting
    alice_web.post(f"/meetings/{first.display_id}/passcode/")
    assert alice_web.get(f"/meetings/{second.display_id}/passcode/new/").context["passcode"] is None


# --- 3. Times in the viewer's zone -----------------------------------------------------------


def test_curated_zone_list_has_common_zones_first_and_no_oddities():
    zones = curated_zones()
    assert zones[: len(COMMON_ZONES)] == COMMON_ZONES
    for odd in ("Factory", "localtime", "posixrules", "Etc/GMT+5", "US/Eastern", "SystemV/EST5"):
        assert odd not in zones
    assert "America/Argentina/Buenos_Aires" in zones and len(zones) > 300


def test_host_sets_a_zone_and_pages_show_it_with_utc_beside(alice, alice_web, meeting_factory):
    meeting = meeting_factory(starts_at=datetime(2031, 7, 1, 7, 0, tzinfo=UTC)).meeting
    page = alice_web.get("/accounts/profile/").content.decode()
    assert "data-detect-zone" in page and 'value="Factory"' not in page
    assert alice_web.post("/accounts/profile/", {"timezone": "Asia/Tokyo"}).status_code == 302
    assert HostProfile.objects.get(user=alice).timezone == "Asia/Tokyo"
    detail = alice_web.get(meeting.get_absolute_url()).content.decode()
    assert '<time datetime="2031-07-01T07:00:00Z">Tue 1 Jul 2031, 16:00 Asia/Tokyo</time>' in detail
    assert "(07:00 UTC)" in detail
    listing = alice_web.get("/meetings/").content.decode()
    assert "16:00 Asia/Tokyo" in listing
    assert alice_web.post("/accounts/profile/", {"timezone": "Factory"}).status_code == 400


def test_without_a_profile_zone_pages_say_utc_and_mark_times_for_the_browser(alice_web, meeting_factory):
    meeting = meeting_factory(starts_at=datetime(2031, 7, 1, 7, 0, tzinfo=UTC)).meeting
    detail = alice_web.get(meeting.get_absolute_url()).content.decode()
    assert re.search(
        r'<span class="when" data-local[^>]*><time datetime="2031-07-01T07:00:00Z">[^<]*07:00 UTC</time>',
        detail,
    )
    booking = alice_web.get("/meetings/new/").content.decode()
    assert "data-detect-zone" in booking


def test_booking_form_starts_at_the_hosts_profile_zone(alice, alice_web):
    HostProfile.objects.create(user=alice, timezone="Europe/Paris")
    page = alice_web.get("/meetings/new/").content.decode()
    assert '<option value="Europe/Paris" selected>' in page and "data-detect-zone" not in page


# --- 4. Choosing a level keeps what was typed ------------------------------------------------


def test_apply_level_without_javascript_keeps_the_input_and_books_nothing(alice_web):
    data = {**form_data("official", dial_in=True), "classification": "secret", "apply_level": "1"}
    data.update({"title": "Typed title", "invitees": "ann@example.org"})
    response = alice_web.post("/meetings/new/", data)
    page = response.content.decode()
    assert response.status_code == 200 and not Meeting.objects.exists()
    assert 'value="Typed title"' in page and "ann@example.org" in page
    assert 'class="banner level-secret"' in page
    assert "Locked by SECRET: Telephone dial-in is not allowed for SECRET meetings." in page
    assert '<option value="Europe/London" selected>' in page
    assert 'id="apply-level"' in page and "errorlist" not in page


def test_the_form_carries_every_levels_locks_for_in_place_updates(alice_web):
    page = alice_web.get("/meetings/new/?level=official").content.decode()
    assert '<script id="level-locks" type="application/json">' in page
    assert "data-autosubmit" not in page and "js/booking.js" in page


# --- 5. Lobby and room ------------------------------------------------------------------------


def test_lobby_has_start_lock_end_and_a_live_region(alice_web, meeting_factory):
    meeting = meeting_factory().meeting
    page = alice_web.get(f"/meetings/{meeting.display_id}/lobby/").content.decode()
    for control in ('id="lobby-start"', 'id="lobby-lock"', 'id="lobby-end"', 'aria-live="polite"'):
        assert control in page
    started = alice_web.post(f"/meetings/{meeting.display_id}/start/", {"back": "lobby"})
    assert started.status_code == 302 and started["Location"] == f"/meetings/{meeting.display_id}/lobby/"
    elsewhere = alice_web.post(f"/meetings/{meeting.display_id}/lock/")
    assert elsewhere["Location"] == meeting.get_absolute_url()


def test_room_lists_the_host_and_admitted_people(alice_web, meeting_factory, bob, client):
    meeting = meeting_factory().meeting
    alice_web.post(f"/meetings/{meeting.display_id}/start/")
    people = alice_web.get(f"/meetings/{meeting.display_id}/room/people/").json()["people"]
    assert people == [{"name": "alice", "role": "host", "role_label": "Host"}]
    room = alice_web.get(f"/meetings/{meeting.display_id}/room/").content.decode()
    assert '<span class="role-badge">Host</span></li>' in room and 'data-people-url="/meetings/' in room
    client.force_login(bob)
    assert client.get(f"/meetings/{meeting.display_id}/room/people/").status_code == 404


def _room_with_dana_in_and_erin_waiting(alice_api, alice_web):
    from meetings.models import LobbyEntry
    from tests.test_lobby import join

    meeting_id, passcode = book(alice_api)
    dana, dana_joined = join(meeting_id, passcode, "Dana")
    _erin, erin_joined = join(meeting_id, passcode, "Erin")
    alice_web.post(f"/meetings/{meeting_id}/start/")
    alice_web.post(f"/meetings/{meeting_id}/lobby/{dana_joined['entry']['id']}/admit/")
    dana_entry = LobbyEntry.objects.get(pk=dana_joined["entry"]["id"])
    erin_entry = LobbyEntry.objects.get(pk=erin_joined["entry"]["id"])
    assert (dana_entry.status, erin_entry.status) == ("admitted", "waiting")
    return dana_entry.meeting, dana, dana_entry, erin_entry


def _form(page: str, action: str) -> str:
    """The <form> posting to `action` in `page` (its whole markup), or ''."""
    found = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>.*?</form>', page, re.S)
    return found.group(0) if found else ""


def test_host_room_has_remove_admit_lock_and_end_and_they_come_back_to_the_room(alice_api, alice_web):
    meeting, _dana, dana, erin = _room_with_dana_in_and_erin_waiting(alice_api, alice_web)
    base = f"/meetings/{meeting.display_id}"
    room_url = f"{base}/room/"
    page = alice_web.get(room_url).content.decode()
    back = '<input type="hidden" name="back" value="room">'
    for action in (
        f"{base}/lobby/{dana.pk}/remove/",
        f"{base}/lobby/{erin.pk}/admit/",
        f"{base}/lock/",
        f"{base}/end/",
    ):
        form = _form(page, action)
        assert form and 'method="post"' in form and 'name="csrfmiddlewaretoken"' in form, action
        assert back in form, action
    assert f"{base}/lobby/{erin.pk}/remove/" in page  # a waiting person can be sent away too
    assert " hidden>" in _form(page, f"{base}/unlock/")  # unlocked: Unlock is there, hidden
    assert 'aria-label="Remove Dana"' in page and '<span class="role-badge">Host</span></li>' in page

    # Remove with back=room: the room again (post/redirect/get), and Dana is out.
    removed = alice_web.post(f"{base}/lobby/{dana.pk}/remove/", {"back": "room"})
    assert removed.status_code == 302 and removed["Location"] == room_url
    dana.refresh_from_db()
    assert dana.status == "left"
    admitted = alice_web.post(f"{base}/lobby/{erin.pk}/admit/", {"back": "room"})
    assert admitted["Location"] == room_url
    people = alice_web.get(f"{base}/room/people/").json()
    assert [(p["name"], p["role"]) for p in people["people"]] == [("alice", "host"), ("Erin", "participant")]
    assert people["locked"] is False
    assert [(e["id"], e["status"]) for e in people["entries"]] == [(erin.pk, "admitted")]

    locked = alice_web.post(f"{base}/lock/", {"back": "room"})
    assert locked.status_code == 302 and locked["Location"] == room_url
    meeting.refresh_from_db()
    assert meeting.is_locked and alice_web.get(f"{base}/room/people/").json()["locked"] is True
    page = alice_web.get(room_url).content.decode()
    assert " hidden>" in _form(page, f"{base}/lock/") and " hidden>" not in _form(page, f"{base}/unlock/")
    assert alice_web.post(f"{base}/unlock/", {"back": "room"})["Location"] == room_url
    meeting.refresh_from_db()
    assert not meeting.is_locked

    # Ending from the room leaves the host on the meeting page (the room is gone).
    ended = alice_web.post(f"{base}/end/", {"back": "room"})
    assert ended.status_code == 302 and ended["Location"] == meeting.get_absolute_url()
    meeting.refresh_from_db()
    assert meeting.is_ended
    # A room page left open elsewhere, reloaded: told the meeting ended, not to start it.
    reloaded = alice_web.get(room_url, follow=True).content.decode()
    assert "This meeting has ended." in reloaded and "Start the meeting first." not in reloaded


def test_participants_room_page_has_none_of_the_hosts_controls(alice_api, alice_web):
    meeting, dana_client, dana, _erin = _room_with_dana_in_and_erin_waiting(alice_api, alice_web)
    page = dana_client.get(f"/join/{dana.pk}/room/")
    html = page.content.decode()
    assert page.status_code == 200 and PERSON_DANA in html
    assert "<form" not in html and "data-action-base" not in html and "csrfmiddlewaretoken" not in html
    for control in ("/lock/", "/unlock/", "/end/", "/remove/", "/admit/", 'id="room-controls"', "Erin"):
        assert control not in html, control
    assert "entries" not in dana_client.get(f"/join/{dana.pk}/room/people/").json()


# --- 6. Icons and contrast -----------------------------------------------------------------------


def test_no_emoji_icons_and_svg_icons_are_hidden_from_assistive_tech(alice_web_verified, meeting_factory):
    meeting = meeting_factory(classification="secret").meeting
    for url in (meeting.get_absolute_url(), "/meetings/new/?level=secret"):
        page = alice_web_verified.get(url).content.decode()
        assert "🔒" not in page and "⚠" not in page
        assert '<svg class="icon" aria-hidden="true" focusable="false"' in page
        assert "Locked" in page  # the text the icon stands beside
    for template in (ROOT / "templates").rglob("*.html"):
        assert "🔒" not in template.read_text() and "⚠" not in template.read_text(), template


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_every_level_banner_has_at_least_4_5_to_1_contrast():
    css = (ROOT / "static/css/antechamber.css").read_text()
    for code in ("official", "official-sensitive", "secret", "top-secret"):
        colour = re.search(rf"--{code}: (#[0-9a-fA-F]{{6}});", css).group(1)
        ratio = (1.0 + 0.05) / (_luminance(colour) + 0.05)  # white text on the banner
        assert ratio >= 4.5, f"{code}: {ratio:.2f}:1"


# --- 8. Onboarding (part) --------------------------------------------------------------------


def test_participant_chooses_their_name_on_the_link_page(alice_api):
    from django.test import Client

    from meetings.models import LobbyEntry
    from tests.test_invitations import _invite_and_get_token

    _booked, token = _invite_and_get_token(alice_api)
    ann = Client()
    page = ann.get(f"/j/{token}/").content.decode()
    assert 'name="display_name"' in page and 'value="ann"' in page
    # A bad name is refused before anything is spent: the link still works afterwards.
    refused = ann.post(f"/j/{token}/", {"display_name": "Ann\x07"})
    assert refused.status_code == 400 and not LobbyEntry.objects.exists()
    response = ann.post(f"/j/{token}/", {"display_name": "Ann Example"}, follow=True)
    assert response.status_code == 200
    assert LobbyEntry.objects.get().display_name == "Ann Example"
    assert "Ann Example" in response.content.decode()


def test_backup_codes_are_offered_right_after_enrolment(alice_web_verified):
    page = alice_web_verified.get("/accounts/two_factor/setup/complete/").content.decode()
    assert 'action="/accounts/two_factor/backup/tokens/"' in page and "Make backup codes" in page


def test_booking_and_inviting_at_a_participant_mfa_level_warn_about_invitees_without_a_factor(
    alice_web_verified, bob, django_user_model
):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.create(user=bob, name="phone", confirmed=True)
    django_user_model.objects.create(username="sam", email="Sam@Example.org")  # an account, no factor
    booked = alice_web_verified.post(
        "/meetings/new/",
        {
            **form_data("secret"),
            "invitees": "bob@example.org, sam@example.org, zoe@example.org",
        },
        follow=True,
    )
    assert booked.status_code == 200
    warning = booked.content.decode().split('id="unready-invitees"', 1)[1].split("</div>", 1)[0]
    assert "sam@example.org" in warning and "zoe@example.org" in warning
    assert "bob@example.org" not in warning
    meeting = Meeting.objects.get()
    invitees = alice_web_verified.get(f"/meetings/{meeting.display_id}/invitations/").content.decode()
    assert 'id="unready-invitees"' in invitees

    official = alice_web_verified.post(
        "/meetings/new/", {**form_data("official"), "invitees": "zoe@example.org"}, follow=True
    )
    assert 'id="unready-invitees"' not in official.content.decode()  # OFFICIAL admits guests


def test_the_host_is_marked_by_role_not_by_a_name_anyone_can_type(alice_api, alice_web):
    """A participant who calls themself "Alice Host (host)" is listed as a participant;
    only the meeting's host account carries the host role and its badge."""
    from meetings.models import LobbyEntry
    from tests.test_lobby import join

    meeting_id, passcode = book(alice_api)
    spoof, joined = join(meeting_id, passcode, "Alice Host (host)")
    alice_web.post(f"/meetings/{meeting_id}/start/")
    alice_web.post(f"/meetings/{meeting_id}/lobby/{joined['entry']['id']}/admit/")
    entry = LobbyEntry.objects.get(pk=joined["entry"]["id"])
    assert entry.status == "admitted"

    for people in (
        alice_web.get(f"/meetings/{meeting_id}/room/people/").json()["people"],
        spoof.get(f"/join/{entry.pk}/room/people/").json()["people"],
    ):
        assert people == [
            {"name": "alice", "role": "host", "role_label": "Host"},
            {"name": "Alice Host (host)", "role": "participant", "role_label": ""},
        ]
    html = spoof.get(f"/join/{entry.pk}/room/").content.decode()
    assert re.findall(r'<li data-person data-role="(\w+)">(.*?)</li>', html) == [
        ("host", '<span class="name">alice</span> <span class="role-badge">Host</span>'),
        ("participant", '<span class="name">Alice Host (host)</span>'),
    ]
    host_page = alice_web.get(f"/meetings/{meeting_id}/room/").content.decode()
    assert (
        '<li data-host data-role="host"><span class="name">alice</span> <span class="role-badge">Host</span></li>'
        in host_page
    )
    assert host_page.count('class="role-badge"') == 1
