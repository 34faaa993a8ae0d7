"""An invitation mail's HTML part as a mail client's web view shows it (headless Chromium)."""

from datetime import timedelta

import pytest

from tests.mail import dst_switch, part, sent
from tests.test_browser import browser, shoot  # noqa: F401 - the fixture
from tests.test_emails import book, new_york, run_tasks  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_invitation_mail_reads_well_in_a_browser(alice_api, run_tasks, browser):  # noqa: F811
    book(
        alice_api,
        run_tasks,
        starts_at=new_york(dst_switch() - timedelta(days=2)),
        title="Budget review with the regional leads",
        dial_in=True,
    )
    [message] = sent()
    context = browser.new_context(viewport={"width": 760, "height": 640}, java_script_enabled=False)
    page = context.new_page()
    try:
        page.set_content(part(message, "text/html"))
        body = page.inner_text("body")
        assert "09:00–09:30 EST (America/New_York, the host's time zone)" in body
        assert "14:00–14:30 UTC" in body
        link = page.get_by_role("link", name="Open your personal join link")
        assert link.is_visible() and "/j/" in (link.get_attribute("href") or "")
        shoot(page, "invitation-mail")
    finally:
        context.close()
