"""Accessibility as a gate: axe-core on every page of the journey at 1280 and 390 px, and
keyboard-only booking and admitting.

axe-core comes from npm (package.json + package-lock.json; `make test` runs `npm ci`).
Without it these tests are skipped, and fail under ANTECHAMBER_REQUIRE_SERVICES=1.
"""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from meetings.models import Meeting
from tests import real_services as real
from tests.helpers import totp_now
from tests.join_helpers import book
from tests.test_browser import browser as browser  # the module-scoped fixture
from tests.test_browser import shoot, sign_in, wait_as_guest
from tests.test_invitations import _invite_and_get_token

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = real.ROOT / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (1280, 390)
# Serious and critical findings fail; so does content outside a landmark (`region`).
FAILING_IMPACTS = {"serious", "critical"}
LIVE = 4_000
REPORT = real.ROOT / "var" / "axe-report.json"


@pytest.fixture(scope="module")
def axe_script() -> Path:
    if not AXE.exists():
        real.missing("axe-core is not installed (make test runs npm ci; needs node and npm)")
    return AXE


def axe_violations(page, axe_script: Path) -> list[dict]:
    page.add_script_tag(path=str(axe_script))
    return page.evaluate(
        """async () => {
            const result = await axe.run(document, { resultTypes: ["violations"] });
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
            }));
        }"""
    )


class Auditor:
    """Runs axe on each page, records every result, and collects what fails the gate."""

    def __init__(self, axe_script: Path, width: int) -> None:
        self.axe_script = axe_script
        self.width = width
        self.results: dict[str, list[dict]] = {}

    def check(self, page, name: str) -> None:
        page.wait_for_load_state("load")
        violations = axe_violations(page, self.axe_script)
        self.results[name] = violations
        scroll = page.evaluate("document.documentElement.scrollWidth")
        if scroll > self.width:
            violations.append(
                {"id": "horizontal-scroll", "impact": "serious", "help": f"{scroll}px", "nodes": []}
            )

    def failures(self) -> dict[str, list[dict]]:
        return {
            name: bad
            for name, found in self.results.items()
            if (bad := [v for v in found if v["impact"] in FAILING_IMPACTS or v["id"] == "region"])
        }

    def save(self) -> None:
        REPORT.parent.mkdir(exist_ok=True)
        report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
        report[str(self.width)] = {
            name: [{"id": v["id"], "impact": v["impact"]} for v in found]
            for name, found in self.results.items()
        }
        REPORT.write_text(json.dumps(report, indent=1, sort_keys=True))


def new_page(browser, width: int, **options):
    height = 844 if width < 600 else 900
    context = browser.new_context(
        viewport={"width": width, "height": height}, is_mobile=width < 600, bypass_csp=True, **options
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    return context, page


def guest_joins(browser, live_server, meeting_id: str, passcode: str, name: str, width: int = 900):
    context, page = new_page(browser, width)
    wait_as_guest(page, live_server, meeting_id, passcode, name)
    return context, page


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_of_the_journey_passes_axe(
    browser, live_server, alice, alice_api, password, axe_script, width
):
    audit = Auditor(axe_script, width)
    contexts = []
    try:
        host_context, host = new_page(browser, width)
        contexts.append(host_context)
        host.goto(f"{live_server.url}/accounts/login/")
        audit.check(host, "sign-in")
        sign_in(host, live_server, "alice", password)
        for level in ("official", "official-sensitive", "secret", "top-secret"):
            host.goto(f"{live_server.url}/meetings/new/?level={level}")
            audit.check(host, f"booking {level}")
        host.goto(f"{live_server.url}/meetings/new/?level=official")
        host.fill("#id_title", "Audit committee")
        host.fill("#id_starts_at", (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"))
        host.fill("#id_invitees", "ann@example.org")
        host.click("#submit-booking")
        host.wait_for_selector("#passcode")
        audit.check(host, "confirmation")
        meeting = Meeting.objects.get(title="Audit committee")
        host.goto(f"{live_server.url}/meetings/")
        audit.check(host, "my meetings")
        host.goto(f"{live_server.url}{meeting.get_absolute_url()}")
        audit.check(host, "meeting page")
        host.goto(f"{live_server.url}/meetings/{meeting.display_id}/edit/")
        audit.check(host, "edit")
        host.goto(f"{live_server.url}/meetings/{meeting.display_id}/invitations/")
        audit.check(host, "invitees")
        host.goto(f"{live_server.url}/accounts/profile/")
        audit.check(host, "time zone")
        host.goto(f"{live_server.url}/accounts/tokens/")
        audit.check(host, "API tokens")
        host.goto(f"{live_server.url}/accounts/two_factor/")
        audit.check(host, "security")
        host.goto(f"{live_server.url}/accounts/two_factor/setup/")
        audit.check(host, "two-factor enrolment")

        # A participant: the join form with an error, the link confirmation, the waiting page.
        meeting_id, passcode = book(alice_api, title="Board meeting")
        guest_context, guest = new_page(browser, width)
        contexts.append(guest_context)
        guest.goto(f"{live_server.url}/join/")
        guest.fill("#id_meeting_id", meeting_id)
        guest.fill("#id_passcode", "wrong-wrong-wrong")
        guest.fill("#id_display_name", "Dana Guest")
        guest.click("button:has-text('Join')")
        guest.wait_for_selector("#join-error")
        audit.check(guest, "join form with an error")
        _booked, token = _invite_and_get_token(alice_api)
        guest.goto(f"{live_server.url}/j/{token}/")
        audit.check(guest, "link confirmation")
        guest.click("#join")
        guest.wait_for_selector("text=the host will let you in")
        audit.check(guest, "waiting page")
        guest.goto(f"{live_server.url}/j/{token}/")  # the same browser comes back: still fine
        other_context, other = new_page(browser, width)
        contexts.append(other_context)
        other.goto(f"{live_server.url}/j/{token}/")
        assert "already been used" in other.content()
        audit.check(other, "gone (spent link)")
        other.goto(f"{live_server.url}/accounts/welcome/MQ/spent-or-forged-token/")
        audit.check(other, "onboarding link gone")
        other.goto(f"{live_server.url}/j/{'x' * 43}/")
        audit.check(other, "unknown link")

        # The host's lobby with people waiting, then the room.
        waiting_context, _waiting = guest_joins(
            browser, live_server, meeting_id, passcode, "Erin Waiting", width
        )
        contexts.append(waiting_context)
        host.goto(f"{live_server.url}/meetings/{meeting_id}/lobby/")
        host.wait_for_selector("tr:has(td.name:text-is('Erin Waiting'))", timeout=LIVE)
        audit.check(host, "lobby with people waiting")
        host.click("#lobby-start")
        host.wait_for_url(f"**/meetings/{meeting_id}/lobby/")
        host.click("tr:has(td.name:text-is('Erin Waiting')) button[data-decision=admit]")
        _waiting.wait_for_url("**/room/", timeout=LIVE)
        audit.check(_waiting, "room (participant)")
        # The host's room carries the host's controls: Erin is in, Frank waits to come in.
        frank_context, _frank = guest_joins(
            browser, live_server, meeting_id, passcode, "Frank Waiting", width
        )
        contexts.append(frank_context)
        host.goto(f"{live_server.url}/meetings/{meeting_id}/room/")
        host.wait_for_selector("#people button[aria-label='Admit Frank Waiting']", timeout=LIVE)
        audit.check(host, "room (host)")
        # Removing Erin from the room page: the list updates in place, and still passes.
        host.click("#people button[aria-label='Remove Erin Waiting']")
        host.wait_for_selector("#people li[data-entry]:has(.name:text-is('Erin Waiting'))", state="detached")
        assert host.url.endswith(f"/meetings/{meeting_id}/room/")
        audit.check(host, "room (host) after a removal")
    finally:
        audit.save()
        for context in contexts:
            context.close()
    assert audit.failures() == {}, json.dumps(audit.failures(), indent=1)
    # The host's room with its controls: no violation of any impact, before and after a live update.
    rooms = {name: found for name, found in audit.results.items() if name.startswith("room")}
    assert len(rooms) == 3 and not any(rooms.values()), json.dumps(rooms, indent=1)


def focused(page) -> str:
    return page.evaluate(
        "() => { const el = document.activeElement; return el ? (el.id || el.getAttribute('data-decision') || el.tagName) : ''; }"
    )


def tab_to(page, predicate_js: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => {{ const el = document.activeElement; return !!el && ({predicate_js}); }}"):
            return
    raise AssertionError(f"Tab never reached {predicate_js}")


def test_keyboard_only_booking_keeps_input_and_focus_when_the_level_changes(
    browser, live_server, alice, password
):
    context, page = new_page(browser, 1280, timezone_id="Asia/Tokyo")
    try:
        sign_in(page, live_server, "alice", password)
        page.goto(f"{live_server.url}/meetings/new/?level=official")
        # The browser's zone is the form's starting zone.
        assert page.eval_on_selector("#id_timezone", "el => el.value") == "Asia/Tokyo"
        assert page.is_hidden("#apply-level")
        page.evaluate("window.__notReloaded = true")
        tab_to(page, "el.id === 'id_title'")
        page.keyboard.type("Keyboard booking")
        tab_to(page, "el.id === 'id_dial_in'")
        page.keyboard.press("Space")
        tab_to(page, "el.id === 'id_invitees'")
        page.keyboard.type("ann@example.org")
        # Back to the level list, then the arrow keys: the locks change in place.
        page.focus("#id_title")
        page.keyboard.press("Shift+Tab")
        assert focused(page) == "id_classification"
        page.keyboard.press("ArrowDown")  # OFFICIAL-SENSITIVE
        page.keyboard.press("ArrowDown")  # SECRET
        assert page.evaluate("window.__notReloaded") is True, "choosing a level reloaded the page"
        assert focused(page) == "id_classification"
        assert page.input_value("#id_classification") == "secret"
        assert page.inner_text("#level-banner") == "SECRET"
        assert page.is_disabled("#id_dial_in") and not page.is_checked("#id_dial_in")
        assert "Locked by SECRET" in page.inner_text("#lock-dial_in")
        assert page.input_value("#id_title") == "Keyboard booking"
        assert page.input_value("#id_invitees") == "ann@example.org"
        assert "SECRET" in page.inner_text("#level-summary")
        page.keyboard.press("ArrowUp")
        page.keyboard.press("ArrowUp")  # back to OFFICIAL: the host's dial-in choice returns
        assert page.is_enabled("#id_dial_in") and page.is_checked("#id_dial_in")
        assert page.is_hidden("#lock-dial_in")
        shoot(page, "booking-form")
        tab_to(page, "el.id === 'id_starts_at'")
        # The one exception to keys only: headless Chromium's datetime-local ignores typed
        # digits (checked: the value stays empty), so the value is filled in.
        page.fill("#id_starts_at", (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"))
        tab_to(page, "el.id === 'submit-booking'")
        page.keyboard.press("Enter")
        page.wait_for_selector("#passcode, .errorlist")
        assert page.query_selector(".errorlist") is None, page.inner_text("main")
        meeting = Meeting.objects.get()
        assert meeting.title == "Keyboard booking" and meeting.dial_in and meeting.timezone == "Asia/Tokyo"
        # Reloading the confirmation neither shows the passcode again nor books again.
        page.reload()
        page.wait_for_selector("#passcode-gone")
        assert Meeting.objects.count() == 1
    finally:
        context.close()


def test_keyboard_only_admitting_in_a_live_lobby_that_keeps_focus(browser, live_server, alice_api, password):
    meeting_id, passcode = book(alice_api, title="Board meeting")
    host_context, host = new_page(browser, 390)
    contexts = [host_context]
    try:
        sign_in(host, live_server, "alice", password)
        host.goto(f"{live_server.url}/meetings/{meeting_id}/lobby/")
        dana_context, dana = guest_joins(browser, live_server, meeting_id, passcode, "Dana Guest")
        contexts.append(dana_context)
        host.wait_for_selector("tr:has(td.name:text-is('Dana Guest'))", timeout=LIVE)
        host.wait_for_function(
            "document.getElementById('lobby-announcer').textContent.includes('Dana Guest is waiting')",
            timeout=LIVE,
        )
        # Focus on Dana's Admit button survives polls, and the row is the same element.
        tab_to(host, "el.dataset.decision === 'admit'")
        host.evaluate("document.querySelector('tr[data-entry]').__same = true")
        erin_context, _erin = guest_joins(browser, live_server, meeting_id, passcode, "Erin Guest")
        contexts.append(erin_context)
        host.wait_for_selector("tr:has(td.name:text-is('Erin Guest'))", timeout=LIVE)
        host.wait_for_timeout(1500)
        assert host.evaluate("document.querySelector('tr[data-entry]').__same") is True
        assert focused(host) == "admit"
        assert (
            host.evaluate("document.activeElement.closest('tr').querySelector('.name').textContent")
            == "Dana Guest"
        )
        assert "Erin Guest is waiting" in host.inner_text("#lobby-announcer")
        assert host.evaluate("document.documentElement.scrollWidth") <= 390
        shoot(host, "lobby-phone")
        # Enter admits; focus moves to what is left in Dana's row; the change is announced.
        host.keyboard.press("Enter")
        host.wait_for_selector(
            "tr:has(td.name:text-is('Dana Guest')) td.status:text-is('admitted')", timeout=LIVE
        )
        host.wait_for_function(
            "document.activeElement && document.activeElement.dataset.decision === 'remove'"
        )
        assert (
            host.evaluate("document.activeElement.closest('tr').querySelector('.name').textContent")
            == "Dana Guest"
        )
        # Start from the lobby by keyboard; Dana reaches the room, which lists the host too.
        host.focus("#lobby-start")
        host.keyboard.press("Enter")
        host.wait_for_url(f"**/meetings/{meeting_id}/lobby/")
        dana.wait_for_url("**/room/", timeout=LIVE)
        people = dana.inner_text("#people")
        assert "Host" in dana.inner_text("#people li[data-role=host] .role-badge") and "Dana Guest" in people
        host.goto(f"{live_server.url}/meetings/{meeting_id}/lobby/")
        tab_to(host, "el.dataset.decision === 'admit'")  # Erin's
        host.keyboard.press("Enter")
        dana.wait_for_function(
            "document.getElementById('people').textContent.includes('Erin Guest')", timeout=LIVE
        )
        assert "Erin Guest joined" in dana.inner_text("#people-announcer")
    finally:
        for context in contexts:
            context.close()


def test_participant_pages_show_times_in_the_browsers_zone_with_utc_beside(browser, live_server, alice_api):
    _booked, token = _invite_and_get_token(alice_api, starts_at="2031-07-01T07:00:00+00:00")
    context, page = new_page(browser, 900, timezone_id="America/New_York")
    try:
        page.goto(f"{live_server.url}/j/{token}/")
        when = page.inner_text(".when")
        assert "03:00 America/New York" in when and "(Tue 1 Jul 2031, 07:00 UTC)" in when, when
    finally:
        context.close()


def test_edit_page_at_phone_width(browser, live_server, alice_api, alice, password):
    meeting_id, _passcode = book(alice_api, title="Board meeting", classification="official")
    context, page = new_page(browser, 390)
    try:
        sign_in(page, live_server, "alice", password)
        page.goto(f"{live_server.url}/meetings/{meeting_id}/edit/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shoot(page, "edit-phone")
        page.fill("#id_title", "Board meeting (moved)")
        page.click("#submit-booking")
        page.wait_for_selector("text=Saved.")
        assert Meeting.objects.get().title == "Board meeting (moved)"
        shoot(page, "meeting-page-after-edit")
    finally:
        context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_onboarding_pages_pass_axe(
    browser, live_server, carol, password, axe_script, width, settings, tasks_in_process
):
    """Staff invite a host; the host opens the set-password link (both at 1280 and 390 px)."""
    from django.core import mail
    from django_otp.plugins.otp_totp.models import TOTPDevice

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    audit = Auditor(axe_script, width)
    device = TOTPDevice.objects.create(user=carol, name="default", confirmed=True)
    contexts = []
    try:
        staff_context, staff = new_page(browser, width)
        contexts.append(staff_context)
        # The two-factor step of the sign-in, then on to the page.
        staff.goto(f"{live_server.url}/accounts/login/?next=/accounts/hosts/invite/")
        staff.fill("#id_auth-username", "carol")
        staff.fill("#id_auth-password", password)
        staff.click("button[type=submit]:has-text('Next')")
        staff.wait_for_selector("#id_token-otp_token")
        audit.check(staff, "sign-in: two-factor step")
        staff.fill("#id_token-otp_token", totp_now(device))
        staff.click("button[type=submit]:has-text('Next')")
        staff.wait_for_url(f"{live_server.url}/accounts/hosts/invite/")
        audit.check(staff, "onboarding: invite a host")
        shoot(staff, f"onboarding-invite-{width}")
        staff.fill("#id_email", "hana@example.org")
        staff.fill("#id_username", "hana")
        staff.fill("#id_display_name", "Hana Ito")
        staff.click("button:has-text('Send the invitation')")
        staff.wait_for_selector("text=Invited hana@example.org")
        audit.check(staff, "onboarding: invited")

        [welcome] = [m for m in mail.outbox if m.to == ["hana@example.org"]]
        path = welcome.body.split(settings.SITE_URL, 1)[1].split()[0]
        host_context, host = new_page(browser, width)
        contexts.append(host_context)
        host.goto(f"{live_server.url}{path}")
        host.wait_for_selector("text=Set your password")
        audit.check(host, "onboarding: set your password")
        shoot(host, f"onboarding-password-{width}")
    finally:
        for context in contexts:
            context.close()
    audit.save()
    assert not audit.failures(), audit.failures()
