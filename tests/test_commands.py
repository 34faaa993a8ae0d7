from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import HttpRequest
from rest_framework.test import APIClient

from tests.helpers import assert_nowhere_in_database

pytestmark = pytest.mark.django_db


def test_create_api_token_prints_a_working_token_as_its_last_line(alice):
    out = StringIO()
    call_command("create_api_token", "alice", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/meetings/").status_code == 200
    from meetings.models import ApiToken, AuditEvent

    assert ApiToken.objects.get(user=alice).prefix == key[:8]
    assert_nowhere_in_database(key)
    assert AuditEvent.objects.filter(action="api_token_created").count() == 1


def test_create_api_token_for_unknown_user_fails_clearly():
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("create_api_token", "nobody")


def test_bootstrap_admin_creates_one_admin_only_on_an_empty_site(django_user_model, client):
    out = StringIO()
    call_command("bootstrap_admin", stdout=out)
    password = next(line.split()[-1] for line in out.getvalue().splitlines() if "Password:" in line)
    # django-axes counts attempts per request, so authenticate() needs one.
    assert client.login(request=HttpRequest(), username="admin", password=password)
    again = StringIO()
    call_command("bootstrap_admin", stdout=again)
    assert "Users exist already" in again.getvalue()
    assert django_user_model.objects.count() == 1


def test_openapi_schema_and_docs_are_served(alice_api):
    schema = alice_api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/meetings/{meeting_id}/passcode/" in document["paths"]
    assert alice_api.get("/api/docs/").status_code == 200
