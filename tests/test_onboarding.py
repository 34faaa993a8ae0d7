"""Onboarding: staff invite a host by e-mail; the host sets a password from a one-time link
with the hygiene of a join link (never stored, sealed until sent, spent by use, not by GET)."""

import re

import pytest
from django.contrib.auth.models import User
from django.db import DatabaseError
from django.test import Client

from meetings import audit
from meetings.logging import scrub_text
from meetings.models import AuditEvent, OutboundMessage
from meetings.services import delivery
from tests.helpers import assert_nowhere_in_database
from tests.mail import part, sent

pytestmark = pytest.mark.django_db

WELCOME_RE = re.compile(r"https?://\S+?(/accounts/welcome/[^/\s]+/[^/\s]+/)")
NEW_PASSWORD = "a long and unusual passphrase 4711"


def _invite(client, **overrides):
    data = {"email": "Hana@Example.org", "username": "hana", "display_name": "Hana Ito", **overrides}
    return client.post("/accounts/hosts/invite/", data)


def test_only_staff_with_a_second_factor_invite_hosts(alice_web_verified, carol, verified_client):
    assert _invite(alice_web_verified).status_code == 403  # not staff
    staff_without_factor = Client()
    staff_without_factor.force_login(carol)
    assert _invite(staff_without_factor).status_code == 403
    assert not User.objects.filter(username="hana").exists()
    assert _invite(verified_client(carol)).status_code == 302
    again = _invite(verified_client(carol))
    assert again.status_code == 400 and "already has an account" in again.content.decode()


def test_an_invited_host_sets_a_password_once_from_the_mailed_link(carol, verified_client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert _invite(verified_client(carol)).status_code == 302
    hana = User.objects.get(username="hana")
    assert hana.email == "hana@example.org" and not hana.has_usable_password()
    assert AuditEvent.objects.filter(action="host_invited", subject="hana").count() == 1

    row = OutboundMessage.objects.get(kind="host_invitation")
    assert row.sealed_link and "/accounts/welcome/" not in row.body_text
    assert delivery.outbox_send(message_id=row.pk).sent
    [message] = sent()
    path = WELCOME_RE.search(part(message, "text/plain")).group(1)
    assert path in part(message, "text/html")
    token = path.strip("/").rsplit("/", 1)[-1]
    assert_nowhere_in_database(token)
    assert token not in scrub_text(f"GET {path} HTTP/1.1")

    browser = Client()
    landing = browser.get(path)  # a mail scanner's GET spends nothing
    assert landing.status_code == 302 and token not in landing["Location"]
    assert landing["Referrer-Policy"] == "no-referrer"
    form_page = browser.get(landing["Location"])
    assert form_page.status_code == 200 and "Set your password" in form_page.content.decode()
    done = browser.post(landing["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302
    hana.refresh_from_db()
    assert hana.check_password(NEW_PASSWORD)
    assert AuditEvent.objects.filter(action="host_password_set", actor_label="hana").count() == 1

    reused = Client().get(path)  # the link dies with the password it set
    assert reused.status_code == 200 and "no longer works" in reused.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_password_is_never_set_without_its_audit_row(carol, verified_client, settings, monkeypatch):
    # The password and its audit row commit together (services.accounts.host_password_set):
    # were the audit write to fail, the password stays unset and the link stays good.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert _invite(verified_client(carol)).status_code == 302
    delivery.outbox_send(message_id=OutboundMessage.objects.get(kind="host_invitation").pk)  # if not yet
    path = WELCOME_RE.search(part(sent()[0], "text/plain")).group(1)
    browser = Client()
    form_url = browser.get(path)["Location"]
    real_append = audit._append

    def failing(event):
        if event.action == "host_password_set":
            raise DatabaseError("the audit table is unavailable")
        return real_append(event)

    monkeypatch.setattr(audit, "_append", failing)
    with pytest.raises(DatabaseError):
        browser.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    hana = User.objects.get(username="hana")
    assert not hana.has_usable_password()
    monkeypatch.setattr(audit, "_append", real_append)
    assert (
        browser.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}).status_code
        == 302
    )
    hana.refresh_from_db()
    assert hana.check_password(NEW_PASSWORD)
