"""With the database down, every request answers 503 (JSON under /api/, a page elsewhere),
never a 500: the same promise as a cache outage (tests/test_cache_outage.py)."""

import json
import os
import subprocess
import sys

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from tests.real_services import ROOT, free_port

pytestmark = pytest.mark.django_db

# Runs in a process of its own whose DATABASE_URL names a port nobody listens on: every
# query fails to connect, wherever it is made (a view, the session middleware, DRF's token
# authentication). Django's test client, production settings (DEBUG off).
_PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
client.cookies["sessionid"] = "x" * 32
answers = {}
for method, path, extra in [
    ("get", "/api/v1/meetings/", {"HTTP_AUTHORIZATION": "Token " + "k" * 40}),
    ("get", "/api/v1/classifications/", {}),
    ("get", "/meetings/", {}),
    ("get", "/j/" + "t" * 43 + "/", {}),
]:
    response = getattr(client, method)(path, **extra)
    answers[path] = [response.status_code, response["Content-Type"], response.get("Retry-After"),
                     response.content.decode()]
print(json.dumps(answers))
"""


def test_every_request_with_the_database_down_is_a_503_not_a_500():
    closed = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "scheduler.settings_test",  # DEBUG off, no static manifest needed
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed}/nowhere",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "s" * 60,
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DJANGO_LOG_LEVEL": "CRITICAL",
    }
    env.pop("REDIS_URL", None)
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    answers = json.loads(probe.stdout.strip().splitlines()[-1])
    for path, (status, content_type, retry_after, body) in answers.items():
        assert status == 503, (path, status, body[:500])
        assert retry_after
        if path.startswith("/api/"):
            assert content_type == "application/json"
            assert json.loads(body)["code"] == "unavailable"
        else:
            assert content_type.startswith("text/html")
            assert "temporarily unavailable" in body


def test_a_database_error_in_an_api_view_is_a_json_503(alice_api, monkeypatch):
    from meetings import selectors

    def down(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(selectors, "meetings_for_host", down)
    response = alice_api.get("/api/v1/meetings/")
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert response["Retry-After"]


def test_other_errors_are_still_a_500(monkeypatch):
    from meetings import selectors

    def broken(*args, **kwargs):
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(selectors, "meetings_for_host", broken)
    from django.contrib.auth.models import User

    from meetings.services import tokens

    user = User.objects.create(username="dave")
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {tokens.api_token_create(user=user, label='t')[1]}")
    assert client.get("/api/v1/meetings/").status_code == 500
