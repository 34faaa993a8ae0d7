"""Two browsers: a participant joins with the passcode and waits; the host admits them live."""

import pytest

from tests.join_helpers import book
from tests.test_browser import browser as browser  # the module-scoped fixture
from tests.test_browser import shoot, sign_in, wait_as_guest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The pages poll once a second; allow a few polls of slack on a loaded machine.
LIVE = 4_000


def test_participant_waits_host_admits_participant_moves_to_the_room(
    browser, live_server, alice_api, password
):  # noqa: F811
    meeting_id, passcode = book(alice_api, title="Board meeting")
    host = browser.new_context(viewport={"width": 1100, "height": 800})
    guest = browser.new_context(viewport={"width": 900, "height": 700})
    try:
        host_page = host.new_page()
        host_page.set_default_timeout(15_000)
        sign_in(host_page, live_server, "alice", password)
        host_page.goto(f"{live_server.url}/meetings/{meeting_id}/")
        host_page.click("button:has-text('Start the meeting')")
        host_page.goto(f"{live_server.url}/meetings/{meeting_id}/lobby/")
        assert "No one yet." in host_page.inner_text("#lobby-entries")

        guest_page = guest.new_page()
        guest_page.set_default_timeout(15_000)
        guest_page.goto(f"{live_server.url}/join/")
        guest_page.fill("#id_meeting_id", meeting_id)
        guest_page.fill("#id_passcode", passcode)
        guest_page.fill("#id_display_name", "Dana Guest")
        guest_page.click("button:has-text('Join')")
        guest_page.wait_for_selector("text=Please wait: the host will let you in.")
        assert passcode not in guest_page.url and passcode not in guest_page.content()
        shoot(guest_page, "waiting-page")

        # The host's page shows Dana without a reload.
        row = host_page.wait_for_selector("tr:has(td.name:text-is('Dana Guest'))", timeout=LIVE)
        assert row.query_selector("td.status").inner_text() == "waiting"
        assert row.query_selector("td.source").inner_text() == "passcode"
        shoot(host_page, "lobby")
        row.query_selector("button:has-text('Admit')").click()
        host_page.wait_for_selector("tr:has(td.name:text-is('Dana Guest')) td.status:text-is('admitted')")

        # The participant's page moves to the meeting room by itself.
        guest_page.wait_for_url("**/room/", timeout=LIVE)
        assert guest_page.inner_text(".banner") == "OFFICIAL"
        assert "Dana Guest" in guest_page.inner_text("#people")
        assert guest_page.query_selector("[data-media-container]") is not None
        shoot(guest_page, "meeting-room")
    finally:
        host.close()
        guest.close()


def _guest_waits(browser, live_server, meeting_id: str, passcode: str, name: str):
    context = browser.new_context(viewport={"width": 900, "height": 700})
    page = context.new_page()
    page.set_default_timeout(15_000)
    wait_as_guest(page, live_server, meeting_id, passcode, name)
    return context, page


def test_host_removes_admits_and_locks_from_the_room_page_without_leaving_it(
    browser, live_server, alice_api, password
):  # noqa: F811
    from meetings.models import LobbyEntry, Meeting

    meeting_id, passcode = book(alice_api, title="Board meeting")
    host = browser.new_context(viewport={"width": 1100, "height": 800})
    contexts = [host]
    try:
        host_page = host.new_page()
        host_page.set_default_timeout(15_000)
        sign_in(host_page, live_server, "alice", password)
        host_page.goto(f"{live_server.url}/meetings/{meeting_id}/")
        host_page.click("button:has-text('Start the meeting')")
        dana_context, dana = _guest_waits(browser, live_server, meeting_id, passcode, "Dana Guest")
        contexts.append(dana_context)
        dana_entry = LobbyEntry.objects.get(display_name="Dana Guest")
        assert (
            alice_api.post(f"/api/v1/meetings/{meeting_id}/lobby/{dana_entry.pk}/admit/").status_code == 200
        )
        dana.wait_for_url("**/room/", timeout=LIVE)

        host_page.goto(f"{live_server.url}/meetings/{meeting_id}/room/")
        room_url = host_page.url
        host_page.evaluate("window.__notReloaded = true")
        people = "#people"
        dana_row = f"{people} li[data-entry]:has(.name:text-is('Dana Guest'))"
        assert "in the room" in host_page.inner_text(dana_row)
        assert "Host" in host_page.inner_text(f"{people} li[data-host][data-role=host] .role-badge")

        # Erin asks to join: her row appears live, with Admit, and is announced.
        erin_context, _erin = _guest_waits(browser, live_server, meeting_id, passcode, "Erin Guest")
        contexts.append(erin_context)
        erin_row = f"{people} li[data-entry]:has(.name:text-is('Erin Guest'))"
        host_page.wait_for_selector(f"{erin_row} button[data-decision=admit]", timeout=LIVE)
        host_page.wait_for_function(
            "document.getElementById('people-announcer').textContent.includes('Erin Guest is waiting')",
            timeout=LIVE,
        )

        # Remove Dana by keyboard: her row goes, focus moves to the next row's first button,
        # the change is announced, and the host never left the room page.
        host_page.focus("button[aria-label='Remove Dana Guest']")
        host_page.keyboard.press("Enter")
        host_page.wait_for_selector(dana_row, state="detached", timeout=LIVE)
        host_page.wait_for_function(
            "document.getElementById('people-announcer').textContent.includes('Dana Guest is no longer in the list')",
            timeout=LIVE,
        )
        assert host_page.evaluate("document.activeElement.getAttribute('aria-label')") == "Admit Erin Guest"
        dana_entry.refresh_from_db()
        assert dana_entry.status == "left"
        dana.wait_for_url(lambda url: not url.endswith("/room/"), timeout=LIVE)

        # Admit Erin from the room: her row turns into "in the room" in place.
        host_page.keyboard.press("Enter")
        host_page.wait_for_selector(f"{erin_row} .status:text-is('in the room')", timeout=LIVE)
        assert host_page.is_visible(f"{erin_row} button[data-decision=remove]")

        # Lock, then unlock: sent without a reload (the call goes on), focus kept.
        host_page.focus("#room-lock")
        host_page.keyboard.press("Enter")
        host_page.wait_for_selector("#room-unlock", state="visible", timeout=LIVE)
        assert host_page.is_hidden("#room-lock")
        assert host_page.evaluate("document.activeElement.id") == "room-unlock"
        assert "Locked" in host_page.inner_text("#room-state")
        assert "The meeting is locked" in host_page.inner_text("#people-announcer")
        assert Meeting.objects.get().is_locked
        host_page.keyboard.press("Enter")
        host_page.wait_for_selector("#room-lock", state="visible", timeout=LIVE)
        assert not Meeting.objects.get().is_locked
        assert host_page.url == room_url and host_page.evaluate("window.__notReloaded") is True
    finally:
        for context in contexts:
            context.close()
