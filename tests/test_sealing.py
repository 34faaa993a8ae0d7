"""Join links at rest (spec, "Credentials"): a live token exists in the sent mail and
nowhere else; until sending, the outbox row holds it sealed under a key not in the database."""

import re

import pytest
from django.core import mail
from django.db import transaction

from meetings import sealing
from meetings.models import OutboundMessage
from meetings.services import delivery
from tests.helpers import assert_nowhere_in_database, booking_body, database_text
from tests.mail import calendar, part, sent
from tests.test_mfa import make_backup_codes

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


# --- Second factors and dial-in codes at rest --------------------------------------------

DIAL_IN_RE = re.compile(r"conference code (\d{10})")


def _stored(*secrets: str) -> list[str]:
    """Those of `secrets` (short ones too: a backup code, a dial-in code) in any row of any table."""
    text = database_text()
    return [secret for secret in secrets if secret in text]


def test_no_dial_in_code_is_in_the_database_before_or_after_the_mail_that_carries_it(
    alice_api, alice_web_verified, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = alice_api.post(
        "/api/v1/meetings/", booking_body(dial_in=True, invitees=["ann@example.org"]), format="json"
    )
    assert response.status_code == 201, response.content
    code = response.json()["dial_in_code"]  # the host is shown it
    assert code.isdigit() and len(code) == 10
    assert _stored(code) == [], "the dial-in code is stored in the clear before sending"
    [row] = OutboundMessage.objects.filter(kind="invitation")
    assert row.sealed_dial_in_code and sealing.DIAL_IN_PLACEHOLDER in row.body_text

    page = alice_web_verified.get(f"/meetings/{response.json()['id']}/")
    assert code.encode() in page.content and b"tel:" not in page.content  # opened where shown

    assert delivery.outbox_send(message_id=row.pk).sent
    [message] = sent()
    text, html = part(message, "text/plain"), part(message, "text/html")
    description = str(calendar(message).walk("VEVENT")[0]["DESCRIPTION"])
    assert DIAL_IN_RE.findall(text) == [code] and f"<strong>{code}</strong>" in html
    assert f"conference code {code}" in description
    raw = message.as_string()
    assert sealing.DIAL_IN_PLACEHOLDER not in raw and "tel:" not in raw
    assert _stored(code) == [], "the dial-in code is stored in the clear after sending"
    row.refresh_from_db()
    assert row.sealed_dial_in_code == "" and sealing.DIAL_IN_PLACEHOLDER in row.body_text


def test_a_sealed_dial_in_code_moved_to_another_meeting_does_not_open(meeting_factory):
    from meetings.models import Meeting

    first = meeting_factory(dial_in=True).meeting
    second = meeting_factory(dial_in=True).meeting
    code = Meeting.objects.get(pk=first.pk).dial_in_code
    stored = Meeting.objects.filter(pk=first.pk).values_list("dial_in_code", flat=True).get()
    assert stored.startswith("sealed:") and code not in stored
    Meeting.objects.filter(pk=second.pk).update(dial_in_code=stored)  # a copy of the sealed value
    moved = Meeting.objects.get(pk=second.pk)
    assert moved.dial_in_code == ""  # no code, rather than another meeting's
    moved.save()  # and the row keeps what it holds
    assert Meeting.objects.filter(pk=second.pk).values_list("dial_in_code", flat=True).get() == stored


def test_a_plain_secret_is_refused_on_every_way_to_the_database(alice, meeting_factory):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from meetings.models import Meeting

    meeting = meeting_factory(dial_in=True).meeting
    device = TOTPDevice.objects.create(user=alice, name="default", confirmed=True)
    device.key = "ab" * 20
    with pytest.raises(ValueError, match="stored sealed"), transaction.atomic():
        Meeting.objects.filter(pk=meeting.pk).update(dial_in_code="1234567890")
    with pytest.raises(ValueError, match="stored sealed"), transaction.atomic():
        TOTPDevice.objects.bulk_update([device], ["key"])
    assert _stored("1234567890", "ab" * 20) == []


def test_a_seed_opens_only_for_its_own_user_and_after_a_key_rotation(alice, bob, password, settings):
    from django.test import Client
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.helpers import login_password_step, login_token_step, totp_now

    alice_device = TOTPDevice.objects.create(user=alice, name="default", confirmed=True)
    bob_device = TOTPDevice.objects.create(user=bob, name="default", confirmed=True)
    code = totp_now(alice_device)
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "rotated-" + "s" * 50, [old_key]
    assert TOTPDevice.objects.get(pk=alice_device.pk).key == alice_device.key  # opens with the fallback

    # SECURITY: Alice's sealed seed copied onto Bob's device does not make her codes his.
    sealed = TOTPDevice.objects.filter(pk=alice_device.pk).values_list("key", flat=True).get()
    TOTPDevice.objects.filter(pk=bob_device.pk).update(key=sealed)
    client = Client()
    login_password_step(client, "bob", password)
    response = login_token_step(client, code)
    assert response.status_code == 200 and "_auth_user_id" not in client.session  # refused, not a 500
    assert TOTPDevice.objects.filter(pk=bob_device.pk).values_list("key", flat=True).get() == sealed


def test_a_search_of_every_table_finds_no_seed_no_backup_code_and_no_dial_in_code(
    alice, alice_api, password, settings
):
    from base64 import b32encode

    from django.test import Client
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.helpers import login_password_step, login_token_step, totp_now

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    device = TOTPDevice.objects.create(user=alice, name="default", confirmed=True)
    client = Client()
    login_password_step(client, "alice", password)
    assert login_token_step(client, totp_now(device)).status_code == 302
    codes = make_backup_codes(client)
    booked = alice_api.post(
        "/api/v1/meetings/", booking_body(dial_in=True, invitees=["ann@example.org"]), format="json"
    ).json()
    for row in OutboundMessage.objects.all():
        delivery.outbox_send(message_id=row.pk)
    seed = TOTPDevice.objects.get(pk=device.pk).key
    b32_seed = b32encode(bytes.fromhex(seed)).decode()
    secrets = {"seed": seed, "seed (base32)": b32_seed.rstrip("="), "dial-in code": booked["dial_in_code"]}
    secrets.update({f"backup code {n}": code for n, code in enumerate(codes)})
    text = database_text()
    found = [name for name, secret in secrets.items() if secret in text or secret.lower() in text.lower()]
    assert found == [], f"stored in the clear: {found}"


def test_migration_0018_seals_and_digests_what_was_stored_in_the_clear(
    alice, meeting_factory, password, settings
):
    """Rows as today's main writes them (plain seed, code and bodies), converted in place."""
    from importlib import import_module

    from django.db import connection
    from django.db.migrations.loader import MigrationLoader
    from django.test import Client
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from meetings.models import Meeting
    from tests.helpers import login_password_step, login_token_step, totp_now

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    migration = import_module("meetings.migrations.0018_second_factor_and_dial_in_at_rest")
    device = TOTPDevice.objects.create(user=alice, name="default", confirmed=True)
    seed = device.key
    static = StaticDevice.objects.create(user=alice, name="backup")
    meeting = meeting_factory(dial_in=True, invitees=["ann@example.org"]).meeting
    code = Meeting.objects.get(pk=meeting.pk).dial_in_code
    [row] = OutboundMessage.objects.filter(kind="invitation")
    plain = {
        name: getattr(row, name).replace(sealing.DIAL_IN_PLACEHOLDER, code)
        for name in ("body_text", "body_html")
    }
    plain["ics_text"] = sealing.put_in_calendar(row.ics_text, sealing.DIAL_IN_PLACEHOLDER, code)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:  # what main stored: every secret in the clear
        cursor.execute(f"UPDATE {quote('otp_totp_totpdevice')} SET {quote('key')} = %s", [seed])
        cursor.execute(
            f"INSERT INTO {quote('otp_static_statictoken')} ({quote('device_id')}, {quote('token')}) VALUES (%s, %s)",
            [static.pk, "abcd2345"],
        )
        cursor.execute(f"UPDATE {quote('meetings_meeting')} SET {quote('dial_in_code')} = %s", [code])
        cursor.execute(
            f"UPDATE {quote('meetings_outboundmessage')} SET {quote('body_text')} = %s, {quote('body_html')} = %s,"
            f" {quote('ics_text')} = %s, {quote('sealed_dial_in_code')} = '' WHERE {quote('id')} = %s",
            [plain["body_text"], plain["body_html"], plain["ics_text"], row.pk],
        )
    assert _stored(seed, "abcd2345", code) == [seed, "abcd2345", code]

    state = MigrationLoader(connection).project_state(
        ("meetings", migration.Migration.__module__.rsplit(".", 1)[1])
    )
    migration.forwards(state.apps, None)

    assert _stored(seed, "abcd2345", code) == []
    assert Meeting.objects.get(pk=meeting.pk).dial_in_code == code
    assert TOTPDevice.objects.get(pk=device.pk).key == seed
    client = Client()
    login_password_step(client, "alice", password)
    assert login_token_step(client, totp_now(device)).status_code == 302
    assert StaticDevice.objects.get(pk=static.pk).verify_token("abcd2345")
    assert delivery.outbox_send(message_id=row.pk).sent
    [message] = sent()
    assert DIAL_IN_RE.findall(part(message, "text/plain")) == [code]
    assert f"conference code {code}" in str(calendar(message).walk("VEVENT")[0]["DESCRIPTION"])
