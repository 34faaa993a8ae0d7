"""Two browsers: a participant joins with the passcode and waits; the host admits them live."""

import pytest

from tests.join_helpers import book
from tests.test_browser import browser as browser  # the module-scoped fixture
from tests.test_browser import shoot, sign_in

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
