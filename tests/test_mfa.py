"""Second factors: the sign-in wizard, enrolment, the admin, the policy API and booking."""

import re
from base64 import b32decode, b32encode

import pytest
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from meetings.models import AuditEvent, Meeting
from tests.helpers import database_text, login_password_step, login_token_step, totp_now
from tests.test_views import form_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_device(alice):
    return TOTPDevice.objects.create(user=alice, name="default", confirmed=True)


@pytest.fixture
def carol_device(carol):
    return TOTPDevice.objects.create(user=carol, name="default", confirmed=True)


def _verified(client: Client) -> bool:
    return client.get("/accounts/tokens/").context["verified"]


# --- Sign-in -------------------------------------------------------------------------


def test_password_alone_does_not_sign_in_a_user_with_a_device(alice_device, password):
    client = Client()
    response = login_password_step(client, "alice", password)
    assert response.status_code == 200  # the token step, not a redirect
    assert b"token-otp_token" in response.content
    assert "_auth_user_id" not in client.session
    assert client.get("/meetings/").status_code == 302


def test_totp_completes_sign_in_and_the_session_key_changes(alice_device, password):
    client = Client()
    login_password_step(client, "alice", password)
    key_before_factor = client.session.session_key
    assert key_before_factor

    response = login_token_step(client, totp_now(alice_device))

    assert response.status_code == 302 and response["Location"] == "/meetings/"
    assert client.session.session_key != key_before_factor
    assert client.session["otp_device_id"] == alice_device.persistent_id
    assert _verified(client)
    assert AuditEvent.objects.filter(action="second_factor_passed", actor_label="alice").count() == 1


def test_a_used_totp_code_is_refused_the_second_time(alice_device, password):
    code = f"{totp(alice_device.bin_key):06d}"  # straight from the device key
    first = Client()
    login_password_step(first, "alice", password)
    assert login_token_step(first, code).status_code == 302

    replay = Client()
    login_password_step(replay, "alice", password)
    response = login_token_step(replay, code)

    assert response.status_code == 200
    assert response.context["form"].errors  # the token step again, with an error
    assert "_auth_user_id" not in replay.session
    alice_device.refresh_from_db()
    assert alice_device.last_t >= 0  # the device remembers the step it accepted


def test_a_wrong_code_is_refused(alice_device, password):
    client = Client()
    login_password_step(client, "alice", password)
    good = int(totp_now(alice_device))
    response = login_token_step(client, f"{(good + 1) % 1_000_000:06d}")
    assert response.status_code == 200 and "_auth_user_id" not in client.session


def test_enrolment_verifies_the_session_and_changes_its_key(alice, password):
    client = Client()
    client.force_login(alice)
    key_before = client.session.session_key
    page = client.get("/accounts/two_factor/setup/")
    assert page.status_code == 200
    response = client.post(
        "/accounts/two_factor/setup/", {"second_factor_setup_view-current_step": "welcome"}
    )
    assert b"generator-token" in response.content
    assert b'src="/accounts/two_factor/qrcode/"' in response.content
    assert client.get("/accounts/two_factor/qrcode/")["Content-Type"].startswith("image/svg")

    secret = b32decode(client.session["django_two_factor-qr_secret_key"])
    response = client.post(
        "/accounts/two_factor/setup/",
        {"second_factor_setup_view-current_step": "generator", "generator-token": f"{totp(secret):06d}"},
    )

    assert response.status_code == 302
    assert TOTPDevice.objects.filter(user=alice, confirmed=True).count() == 1
    assert client.session.session_key != key_before
    assert _verified(client)


def test_a_session_without_the_existing_device_cannot_enrol_another(alice, alice_device):
    client = Client()
    client.force_login(alice)  # e.g. signed in before the device was added elsewhere
    response = client.post(
        "/accounts/two_factor/setup/", {"second_factor_setup_view-current_step": "welcome"}
    )
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert TOTPDevice.objects.filter(user=alice).count() == 1


def _secrets_stored(*secrets: str) -> list[str]:
    """Those of `secrets` in any row of any table, or in any stored session's data."""
    from importlib import import_module

    from django.conf import settings

    store = import_module(settings.SESSION_ENGINE).SessionStore
    text = database_text() + "\n".join(
        repr(store().decode(row.session_data)) for row in store.get_model_class().objects.all()
    )
    return [secret for secret in secrets if secret in text or secret.lower() in text.lower()]


BACKUP_CODE_IN_PAGE = re.compile(r"<li>(?:<code>)?([a-z2-7]{8})(?:</code>)?</li>")


def make_backup_codes(client: Client) -> list[str]:
    """New backup codes, as the page that made them shows them (on main: the page after)."""
    response = client.post("/accounts/two_factor/backup/tokens/", follow=True)
    codes = BACKUP_CODE_IN_PAGE.findall(response.content.decode())
    assert len(codes) == 10
    return codes


def _backup_step(client: Client, code: str):
    """From the token step (after the password step), a backup code instead."""
    client.post("/accounts/login/", {"login_view-current_step": "token", "wizard_goto_step": "backup"})
    return client.post("/accounts/login/", {"login_view-current_step": "backup", "backup-otp_token": code})


def test_backup_codes_are_shown_once_stored_as_digests_and_sign_in_once_each(
    alice_device, alice_web_verified, password
):
    response = alice_web_verified.post("/accounts/two_factor/backup/tokens/")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    codes = response.context["new_codes"]
    assert len(set(codes)) == 10 and all(code.encode() in response.content for code in codes)
    # SECURITY: shown in the response that made them, and never again.
    page = alice_web_verified.get("/accounts/two_factor/backup/tokens/")
    assert page.status_code == 200 and b"10 unused backup codes" in page.content
    assert not [code for code in codes if code.encode() in page.content]
    assert _secrets_stored(*codes) == []

    client = Client()
    login_password_step(client, "alice", password)
    assert _backup_step(client, codes[0].upper()).status_code == 302  # typed in capitals too
    assert _verified(client)
    again = Client()
    login_password_step(again, "alice", password)
    assert _backup_step(again, codes[0]).status_code == 200  # spent
    assert "_auth_user_id" not in again.session
    from django_otp.plugins.otp_static.models import StaticToken

    stored = list(StaticToken.objects.values_list("token", flat=True))
    assert len(stored) == 9
    assert _backup_step(again, stored[0]).status_code == 200  # a digest is not a code
    assert "_auth_user_id" not in again.session


def test_backup_codes_made_before_a_key_rotation_still_sign_in(
    alice_device, alice_web_verified, password, settings
):
    codes = make_backup_codes(alice_web_verified)
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "rotated-" + "k" * 50, [old_key]
    client = Client()
    login_password_step(client, "alice", password)
    assert _backup_step(client, codes[3]).status_code == 302 and _verified(client)


def test_an_enrolled_seed_is_stored_sealed_and_signs_in(alice, password):
    client = Client()
    client.force_login(alice)
    client.get("/accounts/two_factor/setup/")
    client.post("/accounts/two_factor/setup/", {"second_factor_setup_view-current_step": "welcome"})
    b32_secret = client.session["django_two_factor-qr_secret_key"]
    secret = b32decode(b32_secret)
    response = client.post(
        "/accounts/two_factor/setup/",
        {"second_factor_setup_view-current_step": "generator", "generator-token": f"{totp(secret):06d}"},
    )
    assert response.status_code == 302
    device = TOTPDevice.objects.get(user=alice)
    assert device.bin_key == secret  # read through the sealed field
    # SECURITY: neither spelling of the seed in any row, nor in the session, after enrolment.
    assert _secrets_stored(secret.hex(), b32_secret, b32_secret.rstrip("=")) == []
    assert client.get("/accounts/two_factor/qrcode/").status_code == 404  # not shown again

    signing_in = Client()
    login_password_step(signing_in, "alice", password)
    later = totp(secret, t0=-30)  # the next step's code: the enrolment spent this one
    assert login_token_step(signing_in, f"{later:06d}").status_code == 302
    assert _verified(signing_in)


def test_repeated_wrong_passwords_lock_sign_in_even_with_the_right_one(alice, password, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login_password_step(client, "alice", "wrong password").status_code == 200
    assert login_password_step(client, "alice", "wrong password").status_code == 429
    response = login_password_step(client, "alice", password)
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert AuditEvent.objects.filter(action="login_locked_out", subject="alice").exists()
    # Another account from the same address is not locked out by Alice's attacker.
    from django.contrib.auth.models import User

    User.objects.create_user("dave", password=password)
    assert login_password_step(Client(), "dave", password).status_code == 302


# --- The admin and the policy API -------------------------------------------------------


def test_staff_without_a_device_are_sent_from_the_admin_to_enrol(carol):
    client = Client()
    client.force_login(carol)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"] == "/admin/login/?next=/admin/"
    response = client.get(response["Location"])
    assert response.status_code == 302
    assert response["Location"] == "/accounts/two_factor/setup/?next=%2Fadmin%2F"


def test_staff_with_a_device_but_an_unverified_session_are_sent_to_sign_in(carol, carol_device):
    client = Client()
    client.force_login(carol)
    response = client.get("/admin/meetings/auditevent/", follow=True)
    assert response.redirect_chain[-1] == ("/accounts/login/?next=%2Fadmin%2Fmeetings%2Fauditevent%2F", 302)
    assert b"auth-password" in response.content


def test_staff_who_passed_a_second_factor_reach_the_admin(carol, carol_device, password):
    client = Client()
    login_password_step(client, "carol", password)
    login_token_step(client, totp_now(carol_device))
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/meetings/auditevent/").status_code == 200


def test_the_admin_shows_staff_no_seed_no_qr_code_and_no_backup_code(
    carol, carol_device, alice, alice_web_verified, password
):
    codes = make_backup_codes(alice_web_verified)
    from django.contrib.auth.models import Permission

    carol.user_permissions.set(  # all a staff member can be given on devices
        Permission.objects.filter(content_type__app_label__in=["otp_totp", "otp_static"])
    )
    device = TOTPDevice.objects.get(user=alice)
    seed = device.key
    b32_seed = b32encode(device.bin_key).decode()
    client = Client()
    login_password_step(client, "carol", password)
    login_token_step(client, totp_now(carol_device))
    listing = client.get("/admin/otp_totp/totpdevice/")
    page = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")
    assert listing.status_code == page.status_code == 200 and b"alice" in page.content
    static = client.get(f"/admin/otp_static/staticdevice/{alice.staticdevice_set.get().pk}/change/")
    assert static.status_code == 200
    shown = listing.content + page.content + static.content
    for secret in (seed, b32_seed, b32_seed.rstrip("="), *codes):
        assert secret.encode() not in shown
    assert b"qrcode" not in shown.lower() and b"otpauth" not in shown
    for view in ("config", "qrcode"):  # django-otp's QR pages are gone
        response = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/{view}/", follow=True)
        assert seed.encode() not in response.content
        assert not response["Content-Type"].startswith("image/")
    assert client.get("/admin/otp_totp/totpdevice/add/").status_code == 403  # nobody sets a seed


def test_policy_api_refuses_a_staff_session_without_a_second_factor(carol, carol_device, password):
    unverified = Client()
    unverified.force_login(carol)
    response = unverified.patch(
        "/api/v1/classifications/official/", {"allow_dial_in": False}, content_type="application/json"
    )
    assert response.status_code == 403

    verified = Client()
    login_password_step(verified, "carol", password)
    login_token_step(verified, totp_now(carol_device))
    response = verified.patch(
        "/api/v1/classifications/official/", {"allow_dial_in": False}, content_type="application/json"
    )
    assert response.status_code == 200


# --- Booking --------------------------------------------------------------------------


def test_host_without_a_second_factor_cannot_book_official_sensitive_but_can_book_official(alice_web):
    refused = alice_web.post("/meetings/new/", form_data("official-sensitive"))
    assert refused.status_code == 400
    assert "second factor" in str(refused.context["form"].errors)
    # The page says how to get one, and links to it.
    assert b'href="/accounts/two_factor/setup/?next=' in refused.content
    assert not Meeting.objects.exists()

    booked = alice_web.post("/meetings/new/", form_data("official"))
    assert booked.status_code == 302
    assert Meeting.objects.get().classification.code == "official"


def test_host_with_a_second_factor_can_book_official_sensitive(alice_web_verified):
    response = alice_web_verified.post("/meetings/new/", form_data("official-sensitive"))
    assert response.status_code == 302
    assert Meeting.objects.get().classification.code == "official-sensitive"


def test_booking_page_sends_a_host_with_a_device_to_sign_in_with_it(alice_web, alice_device):
    page = alice_web.get("/meetings/new/?level=official-sensitive")
    assert b'href="/accounts/login/?next=%2Fmeetings%2Fnew%2F%3Flevel%3Dofficial-sensitive"' in page.content
