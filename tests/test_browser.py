"""Headless Chromium (Debian's) driven by Playwright against the live server."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from meetings.models import ClassificationLevel, Meeting
from meetings.services import levels, tokens
from tests import real_services as real
from tests.helpers import totp_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = os.environ.get("ANTECHAMBER_SCREENSHOT_DIR")


@pytest.fixture(scope="module")
def browser():
    if not real.chromium_available():
        real.missing("Chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        real.missing("playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=real.CHROMIUM, headless=True, args=real.CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def shoot(page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def wait_as_guest(page, live_server, meeting_id: str, passcode: str, name: str) -> None:
    """A guest joins by meeting ID and passcode and lands in the waiting room."""
    page.goto(f"{live_server.url}/join/")
    page.fill("#id_meeting_id", meeting_id)
    page.fill("#id_passcode", passcode)
    page.fill("#id_display_name", name)
    page.click("button:has-text('Join')")
    page.wait_for_selector("text=Please wait: the host will let you in.")


def sign_in(
    page, live_server, username: str, password: str, device=None, next_path: str = "/meetings/"
) -> None:
    """The two-step sign-in (django-two-factor-auth): password, then the TOTP code if there is a device."""
    suffix = f"?next={next_path}" if next_path != "/meetings/" else ""
    page.goto(f"{live_server.url}/accounts/login/{suffix}")
    page.fill("#id_auth-username", username)
    page.fill("#id_auth-password", password)
    page.click("button[type=submit]:has-text('Next')")
    if device is not None:
        page.wait_for_selector("#id_token-otp_token")
        page.fill("#id_token-otp_token", totp_now(device))
        page.click("button[type=submit]:has-text('Next')")
    page.wait_for_url(f"{live_server.url}{next_path}")


def test_sign_in_book_and_see_the_passcode_once(page, live_server, alice, password):
    sign_in(page, live_server, "alice", password)
    page.click("text=Book a meeting")

    # The level comes first: choosing SECRET applies its locks in place (no reload). Wait
    # for booking.js to take over (it hides the no-JavaScript "Apply level" button): a
    # loaded machine can run the choice before the script listens for it.
    page.wait_for_selector("#apply-level", state="hidden")
    page.select_option("#id_classification", "secret")
    page.wait_for_url("**/meetings/new/?level=secret")
    assert page.is_disabled("#id_cloud_recording")
    assert page.is_disabled("#id_dial_in")
    assert "Cloud recording is not allowed for SECRET meetings." in page.content()
    assert page.inner_text(".banner") == "SECRET"
    shoot(page, "booking-form-secret")

    page.select_option("#id_classification", "official")
    page.wait_for_url("**/meetings/new/?level=official")
    assert page.is_enabled("#id_cloud_recording")
    starts = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    page.fill("#id_title", "Budget committee")
    page.fill("#id_starts_at", starts)
    page.select_option("#id_timezone", "Europe/London")
    page.fill("#id_duration_minutes", "90")
    page.check("#id_dial_in")
    shoot(page, "booking-form")
    page.click("button:has-text('Book')")

    page.wait_for_selector("#passcode")
    passcode = page.inner_text("#passcode")
    meeting_id = page.inner_text("#meeting-id")
    assert "only now" in page.content()
    assert page.url.endswith(f"/meetings/{page.inner_text('#meeting-id')}/booked/")
    shoot(page, "booking-confirmation")
    meeting = Meeting.objects.get()
    assert meeting.display_id == meeting_id and meeting.dial_in is True
    assert len(passcode.replace("-", "")) * 5 >= 60

    # Shown once: the meeting page and the list never show it again.
    page.click("text=Go to the meeting page")
    page.wait_for_selector(".banner")
    assert passcode not in page.content()
    shoot(page, "meeting-page")
    page.goto(f"{live_server.url}/meetings/")
    assert passcode not in page.content() and meeting_id in page.content()
    shoot(page, "my-meetings")


def test_booking_form_fits_a_phone(browser, live_server, alice, password):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        sign_in(page, live_server, "alice", password)
        page.goto(f"{live_server.url}/meetings/new/?level=official-sensitive")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
        shoot(page, "booking-form-phone")
    finally:
        context.close()


def test_host_invites_two_people_and_sees_a_link_redeemed(
    browser, page, live_server, alice, password, tasks_run
):
    import re

    mailbox = tasks_run
    sign_in(page, live_server, "alice", password)
    page.goto(f"{live_server.url}/meetings/new/?level=official")
    page.fill("#id_title", "Audit committee")
    page.fill("#id_starts_at", (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_invitees", "ann@example.org, ben@example.org")
    page.click("button:has-text('Book')")
    page.wait_for_selector("#passcode")
    passcode = page.inner_text("#passcode")
    meeting = Meeting.objects.get()

    messages = mailbox.wait_for(2)
    to_ann = next(m for m in messages if m["To"] == "ann@example.org")
    text = to_ann.get_body(("plain",)).get_content()
    assert passcode not in to_ann.as_string()
    link = re.search(r"https?://\S+/j/[A-Za-z0-9_-]{43}/", text).group(0)
    path = link.split("/j/", 1)[1]

    # Ann opens her link in her own browser.
    ann = browser.new_context(viewport={"width": 700, "height": 700})
    ann_page = ann.new_page()
    try:
        ann_page.goto(f"{live_server.url}/j/{path}")
        assert "Join “Audit committee”?" in ann_page.content()
        shoot(ann_page, "join-confirmation")
        ann_page.click("#join")
        ann_page.wait_for_selector("text=the host will let you in")
    finally:
        ann.close()

    page.goto(f"{live_server.url}/meetings/{meeting.display_id}/invitations/")
    ann_row = page.locator("tr[data-email='ann@example.org'] .redemption").inner_text()
    ben_row = page.locator("tr[data-email='ben@example.org'] .redemption").inner_text()
    assert ann_row.startswith("redeemed") and ben_row == "live"
    shoot(page, "invitees")


def test_enrol_an_authenticator_then_book_official_sensitive(page, live_server, alice, password):
    from base64 import b32decode

    from django_otp.oath import totp

    sign_in(page, live_server, "alice", password)
    page.goto(f"{live_server.url}/meetings/new/?level=official-sensitive")
    assert "need a second factor" in page.inner_text("#level-needs-factor")
    assert page.is_visible("#level-needs-factor")
    page.click("text=sign in with your authenticator app (or set one up)")
    page.wait_for_url("**/accounts/two_factor/setup/**")
    page.click("button[type=submit]:has-text('Next')")  # past the welcome step
    page.wait_for_selector("img[alt='QR Code']")
    secret = page.inner_text("#totp-secret").strip()
    assert "otpauth://" not in page.content()
    shoot(page, "two-factor-enrolment")
    page.fill("#id_generator-token", f"{totp(b32decode(secret)):06d}")
    page.click("button[type=submit]:has-text('Next')")
    page.wait_for_url("**/meetings/new/?level=official-sensitive")
    assert page.is_hidden("#level-needs-factor")
    assert "Make backup codes under Security" in page.inner_text(".messages")


def test_staff_read_the_audit_log_in_the_admin(page, live_server, carol, password):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=carol, name="default", confirmed=True)
    level = ClassificationLevel.objects.get(code="official")
    levels.level_update(level=level, actor=carol, changes={"retention_days": 200})
    tokens.api_token_create(user=carol, label="reporting")
    sign_in(page, live_server, "carol", password, device=device, next_path="/admin/meetings/auditevent/")
    page.wait_for_selector("#result_list")
    page.set_viewport_size({"width": 1500, "height": 900})
    content = page.content()
    assert "level_changed" in content and "api_token_created" in content and "second_factor_passed" in content
    shoot(page, "admin-audit-log")


def test_api_docs_render_under_the_content_security_policy(page, live_server, alice, password):
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    sign_in(page, live_server, "alice", password)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "Antechamber API" in page.inner_text(".swagger-ui .info .title")
    assert violations == []
