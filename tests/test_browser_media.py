"""The meeting room page in headless Chromium with a real Janus: janus.js loads under the
CSP and joins the room with the token the page was given.

This does not show media flowing: Janus never gathers ICE candidates on loopback, so
on 127.0.0.1 the peer connections cannot complete. tests/test_browser_media_flow.py does,
inside a network namespace of its own.
"""

import pytest

from meetings.models import ConferenceRoom, LobbyEntry
from meetings.services import lobby
from tests import real_services as real
from tests.janus_server import JanusParticipant
from tests.test_browser import sign_in
from tests.test_conference import media_token_of, started_meeting

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAKE_MEDIA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture(scope="module")
def media_browser():
    if not real.chromium_available():
        real.missing("Chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        real.missing("playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=real.CHROMIUM, headless=True, args=[*real.CHROMIUM_ARGS, *FAKE_MEDIA]
        )
        yield browser
        browser.close()


@pytest.fixture
def janus_csp(janus, settings):
    """The page may talk to this test's Janus (as settings do for JANUS_URL at start-up)."""
    origin = "/".join(janus.url.split("/")[:3])
    directives = dict(settings.CONTENT_SECURITY_POLICY["DIRECTIVES"])
    directives["connect-src"] = ["'self'", origin]
    settings.CONTENT_SECURITY_POLICY = {**settings.CONTENT_SECURITY_POLICY, "DIRECTIVES": directives}
    return janus


def csp_violations(page) -> list[str]:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return violations


def test_host_and_participant_join_the_janus_room_from_their_pages(
    media_browser, live_server, janus_csp, alice, password
):
    meeting, room = started_meeting(alice, "official")
    entered = lobby.lobby_enter(meeting=meeting, display_name="Dana", source=LobbyEntry.Source.PASSCODE)
    lobby.lobby_admit(meeting=meeting, entry_id=entered.entry.pk, actor=alice, host_has_second_factor=True)
    entered.entry.refresh_from_db()
    room = ConferenceRoom.objects.get(pk=room.pk)

    host = media_browser.new_context()
    guest = media_browser.new_context()
    try:
        host_page = host.new_page()
        host_page.set_default_timeout(20_000)
        host_violations = csp_violations(host_page)
        sign_in(host_page, live_server, "alice", password)
        host_page.goto(f"{live_server.url}/meetings/{meeting.display_id}/room/")
        assert host_page.get_attribute("#media", "data-media") == "configured"
        assert host_page.evaluate("typeof Janus === 'function' && typeof adapter === 'object'")
        host_page.click("#media-join")
        host_page.wait_for_selector("#media-state:text-is('Audio and video: joined.')")

        # Dana's browser holds her waiting-room entry the way the join page leaves it.
        guest_page = guest.new_page()
        guest_page.set_default_timeout(20_000)
        guest_violations = csp_violations(guest_page)
        guest_page.goto(f"{live_server.url}/join/")
        session_cookie = _bind_entry(live_server, entered)
        guest.add_cookies([session_cookie])
        guest_page.goto(f"{live_server.url}/join/{entered.entry.pk}/room/")
        guest_page.click("#media-join")
        guest_page.wait_for_selector("#media-state:text-is('Audio and video: joined.')")
        assert media_token_of(entered.entry) not in guest_page.url

        observer = JanusParticipant(janus_csp.url)
        try:
            people = observer.request(
                {"request": "listparticipants", "room": room.number, "secret": room.secret}
            )
        finally:
            observer.close()
        assert {p["id"] for p in people["participants"]} == {room.host_feed_id, entered.entry.media_feed_id}
        assert host_violations == [] and guest_violations == []

        guest_page.click("#media-leave")
        guest_page.wait_for_selector("#media-state:has-text('left')")
    finally:
        host.close()
        guest.close()


def test_without_janus_the_room_says_media_is_not_configured(media_browser, live_server, alice, settings):
    settings.JANUS_URL = ""
    meeting, _room = started_meeting(alice, "official")
    entered = lobby.lobby_enter(meeting=meeting, display_name="Dana", source=LobbyEntry.Source.PASSCODE)
    lobby.lobby_admit(meeting=meeting, entry_id=entered.entry.pk, actor=alice, host_has_second_factor=True)
    context = media_browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/join/")
        context.add_cookies([_bind_entry(live_server, entered)])
        page.goto(f"{live_server.url}/join/{entered.entry.pk}/room/")
        assert page.get_attribute("#media", "data-media") == "not-configured"
        assert "Media is not configured" in page.inner_text("#media")
        assert page.query_selector("#media-config") is None
        assert "Dana" in page.inner_text("#people")
    finally:
        context.close()


def _bind_entry(live_server, entered) -> dict:
    """A session that holds this entry's secret, as a cookie for the live server."""
    from importlib import import_module

    from django.conf import settings

    from meetings.authentication import lobby_secret_bind

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    lobby_secret_bind(store, entered.entry.pk, entered.secret)
    store.save()
    return {"name": settings.SESSION_COOKIE_NAME, "value": store.session_key, "url": live_server.url}
