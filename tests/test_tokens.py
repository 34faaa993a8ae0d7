"""The API tokens page: see, create (only after a second factor), revoke."""

import pytest
from django.test import Client

from meetings.credentials import token_digest
from meetings.models import ApiToken, AuditEvent
from meetings.services import tokens
from tests.helpers import assert_nowhere_in_database

pytestmark = pytest.mark.django_db


def test_a_session_without_a_second_factor_cannot_create_a_token(alice_web):
    page = alice_web.get("/accounts/tokens/")
    assert page.status_code == 200
    assert b"Create token" not in page.content
    assert b'href="/accounts/two_factor/setup/?next=%2Faccounts%2Ftokens%2F"' in page.content

    response = alice_web.post("/accounts/tokens/", {"label": "sneaky"})
    assert response.status_code == 403
    assert not ApiToken.objects.exists()


def test_a_verified_session_creates_a_token_shown_once(alice, alice_web_verified):
    response = alice_web_verified.post("/accounts/tokens/", {"label": "calendar sync"})
    assert response.status_code == 200
    key = response.context["new_key"]
    assert key.encode() in response.content
    token = ApiToken.objects.get(user=alice)
    assert token.key_hash == token_digest(key) and token.label == "calendar sync"
    assert_nowhere_in_database(key)

    again = alice_web_verified.get("/accounts/tokens/")
    assert key.encode() not in again.content
    assert token.prefix.encode() in again.content and b"calendar sync" in again.content
    assert Client(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/meetings/").status_code == 200


def test_a_label_that_is_too_long_is_a_form_error(alice_web_verified):
    response = alice_web_verified.post("/accounts/tokens/", {"label": "x" * 101})
    assert response.status_code == 400
    assert "label" in response.context["form"].errors
    assert not ApiToken.objects.exists()


def test_revoking_a_token_stops_it_at_once_and_is_audited(alice, alice_web):
    token, key = tokens.api_token_create(user=alice, label="old")
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/meetings/").status_code == 200

    response = alice_web.post(f"/accounts/tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    assert api.get("/api/v1/meetings/").status_code == 401
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_token_revoked", detail__token_id=token.pk).count() == 1

    # Twice: refused with a message, audited once.
    alice_web.post(f"/accounts/tokens/{token.pk}/revoke/")
    assert AuditEvent.objects.filter(action="api_token_revoked").count() == 1


def test_a_user_cannot_see_or_revoke_someone_elses_token(alice, bob):
    token, key = tokens.api_token_create(user=alice, label="alice's")
    bob_web = Client()
    bob_web.force_login(bob)
    assert b"alice&#x27;s" not in bob_web.get("/accounts/tokens/").content
    bob_web.post(f"/accounts/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is None


def test_revoke_needs_post(alice, alice_web):
    token, _key = tokens.api_token_create(user=alice)
    assert alice_web.get(f"/accounts/tokens/{token.pk}/revoke/").status_code == 405
