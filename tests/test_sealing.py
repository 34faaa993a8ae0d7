"""Join links at rest (spec, "Credentials"): a live token exists in the sent mail and
nowhere else; until sending, the outbox row holds it sealed under a key not in the database."""

import re

import pytest
from django.core import mail

from meetings import sealing
from meetings.models import OutboundMessage
from meetings.services import delivery
from tests.helpers import assert_nowhere_in_database, booking_body, database_text
from tests.mail import calendar, part, sent

pytestmark = pytest.mark.django_db

TOKEN_RE = re.compile(r"/j/([A-Za-z0-9_-]{43})/")


def _book_with_invitees(api, level="official"):
    """Book without running the outbox tasks: the rows stay pending, as with a broker outage."""
    response = api.post(
        "/api/v1/meetings/",
        booking_body(classification=level, invitees=["ann@example.org", "ben@example.org"]),
        format="json",
    )
    assert response.status_code == 201, response.content
    return OutboundMessage.objects.filter(kind="invitation").order_by("id")


def test_no_token_the_mails_carry_is_in_the_database_before_or_after_sending(alice_api, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    rows = _book_with_invitees(alice_api)
    assert rows.count() == 2 and all(row.sealed_link for row in rows)
    before = database_text()

    for row in rows:
        assert delivery.outbox_send(message_id=row.pk).sent
    messages = sent()
    tokens = set()
    for message in messages:
        text, html = part(message, "text/plain"), part(message, "text/html")
        ics = str(calendar(message).walk("VEVENT")[0]["DESCRIPTION"])
        [token] = TOKEN_RE.findall(text)
        assert f"/j/{token}/" in html and f"/j/{token}/" in ics  # OFFICIAL: the link in the calendar too
        assert sealing.LINK_PLACEHOLDER not in text + html + ics
        tokens.add(token)
    assert len(tokens) == 2

    assert not [token for token in tokens if token in before], "a token was stored before sending"
    assert_nowhere_in_database(*tokens)
    assert not OutboundMessage.objects.exclude(sealed_link="").exists()  # sending erased them


def test_a_sealed_link_opens_only_with_its_key_and_on_its_own_row(settings):
    sealed = sealing.seal("https://example.org/j/" + "t" * 43 + "/", row_id="<a@example.org>")
    assert "t" * 43 not in sealed
    assert sealing.unseal(sealed, row_id="<a@example.org>").endswith("t" * 43 + "/")
    with pytest.raises(sealing.Unsealable):
        sealing.unseal(sealed, row_id="<b@example.org>")  # moved to another row
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    with pytest.raises(sealing.Unsealable):
        sealing.unseal(sealed, row_id="<a@example.org>")


def test_a_row_whose_key_is_gone_fails_without_sending_and_forgets_the_link(alice_api, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    row = _book_with_invitees(alice_api).first()
    settings.SECRET_KEY = "rotated-without-fallback-" + "y" * 40
    result = delivery.outbox_send(message_id=row.pk)
    row.refresh_from_db()
    assert not result.sent and row.status == OutboundMessage.Status.FAILED
    assert row.sealed_link == "" and "does not open" in row.last_error
    assert mail.outbox == []


def test_a_long_link_is_placed_whole_in_the_folded_calendar(alice_api, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = "https://meetings.a-rather-long-host-name-for-folding.example.org:8443"
    row = _book_with_invitees(alice_api).first()
    assert delivery.outbox_send(message_id=row.pk).sent
    [message] = sent()
    description = str(calendar(message).walk("VEVENT")[0]["DESCRIPTION"])
    [token] = TOKEN_RE.findall(part(message, "text/plain"))
    assert f"{settings.SITE_URL}/j/{token}/" in description
    raw = part(message, "text/calendar")
    assert all(len(line.encode()) <= 75 for line in raw.splitlines())
