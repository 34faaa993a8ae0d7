"""The API's contract as clients see it: JSON bodies only, `Token` or `Bearer`, and an
OpenAPI document that says so, documents every error an operation can answer and where
the server is (SPEC "Interfaces (contract)"; issue 12)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from meetings.services import tokens
from tests.helpers import booking_body

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.django_db


@pytest.fixture
def document(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def _operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


# --- JSON bodies only -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["multipart", "form"])
def test_a_form_or_multipart_body_gets_415_in_json(alice_api, fmt):
    if fmt == "multipart":
        response = alice_api.post("/api/v1/meetings/", booking_body(), format="multipart")
    else:
        body = "&".join(f"{name}={value}" for name, value in booking_body().items())
        response = alice_api.generic(
            "POST", "/api/v1/meetings/", body, content_type="application/x-www-form-urlencoded"
        )
    assert response.status_code == 415
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "unsupported_media_type"
    assert "Unsupported media type" in response.json()["detail"]
    # The same body as JSON books.
    assert alice_api.post("/api/v1/meetings/", booking_body(), format="json").status_code == 201


def test_the_join_endpoint_takes_only_json_too(client):
    response = client.post(
        "/api/v1/join/", {"meeting_id": "x", "passcode": "y", "display_name": "Dana"}
    )  # Django's test client: multipart
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_every_request_body_in_the_schema_is_json_only(document):
    bodies = {label: op["requestBody"] for label, op in _operations(document) if "requestBody" in op}
    assert "POST /api/v1/meetings/" in bodies
    assert {label: sorted(body["content"]) for label, body in bodies.items()} == {
        label: ["application/json"] for label in bodies
    }


# --- Token and Bearer -----------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["Token", "Bearer", "bearer"])
def test_a_token_is_accepted_as_token_or_bearer(alice, keyword):
    _token, key = tokens.api_token_create(user=alice, label="cli")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"{keyword} {key}")
    response = api.post("/api/v1/meetings/", booking_body(), format="json")
    assert response.status_code == 201, response.content
    assert api.get("/api/v1/meetings/").json()[0]["id"] == response.json()["id"]


def test_a_wrong_bearer_token_gets_401():
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-real-token")
    response = api.get("/api/v1/meetings/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked token.", "code": "authentication_failed"}


def test_the_security_schemes_name_token_and_bearer(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearerAuth"]["description"],
    }
    assert schemes["tokenAuth"]["type"] == "apiKey" and schemes["tokenAuth"]["name"] == "Authorization"
    assert "Token <key>" in schemes["tokenAuth"]["description"]
    assert "Bearer <key>" in schemes["tokenAuth"]["description"]
    meetings_list = document["paths"]["/api/v1/meetings/"]["get"]
    # Either will do (OR): two requirements, not one that needs both.
    assert {"tokenAuth": []} in meetings_list["security"]
    assert {"bearerAuth": []} in meetings_list["security"]


def test_join_is_documented_as_needing_no_credentials(document):
    assert document["paths"]["/api/v1/join/"]["post"]["security"] == []
    # Everything else needs them.
    for label, operation in _operations(document):
        if label != "POST /api/v1/join/":
            assert {} not in operation["security"] and operation["security"], label


# --- Errors, documented ---------------------------------------------------------------


def test_every_operation_documents_401_with_the_error_schema(document):
    for label, operation in _operations(document):
        assert "401" in operation["responses"], label
        content = operation["responses"]["401"]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorOutput"}, label


def test_every_write_documents_403_and_every_meeting_scoped_operation_404(document):
    for label, operation in _operations(document):
        if not label.startswith("GET"):
            assert "403" in operation["responses"], label
        if "{meeting_id}" in label or "{code}" in label:
            assert "404" in operation["responses"], label
        if "requestBody" in operation:
            assert "415" in operation["responses"], label


def test_join_documents_429_and_the_state_changes_document_409(document):
    assert "429" in document["paths"]["/api/v1/join/"]["post"]["responses"]
    for path in ("cancel", "passcode", "invitations", "start", "lock", "end", "lobby/{entry_id}/admit"):
        operation = document["paths"][f"/api/v1/meetings/{{meeting_id}}/{path}/"]["post"]
        assert "409" in operation["responses"], path


def test_error_schemas_are_typed(document):
    schemas = document["components"]["schemas"]
    assert schemas["ErrorOutput"]["required"] == ["code", "detail"]
    assert set(schemas["ErrorOutput"]["properties"]) == {"detail", "code"}
    field_errors = schemas["ValidationErrorOutput"]
    assert field_errors["type"] == "object"
    assert {"type": "array", "items": {"type": "string"}} in field_errors["additionalProperties"]["oneOf"]
    bad_booking = document["paths"]["/api/v1/meetings/"]["post"]["responses"]["400"]
    assert bad_booking["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BadRequestOutput"
    }
    assert schemas["BadRequestOutput"] == {
        "oneOf": [
            {"$ref": "#/components/schemas/ValidationErrorOutput"},
            {"$ref": "#/components/schemas/ErrorOutput"},
        ]
    }


def test_field_errors_and_detail_errors_match_their_schemas(alice_api):
    """What the 400 schema promises: field names to lists of messages (or, for an item of
    a list, its index to a list of messages), else detail and code."""
    by_field = alice_api.post("/api/v1/meetings/", {"title": ""}, format="json").json()
    assert by_field["title"] == ["This field may not be blank."]
    assert all(isinstance(messages, list) for messages in by_field.values())
    by_item = alice_api.post(
        "/api/v1/meetings/", booking_body(invitees=["ok@example.org", "not-an-address"]), format="json"
    ).json()
    assert by_item == {"invitees": {"1": ["Enter a valid email address."]}}
    malformed = alice_api.generic(
        "POST", "/api/v1/meetings/", "{not json", content_type="application/json"
    ).json()
    assert malformed["code"] == "parse_error" and malformed["detail"].startswith("JSON parse error")


def test_an_unknown_object_answers_404_with_detail_and_code(alice_api):
    response = alice_api.get("/api/v1/classifications/no-such-level/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No such classification level.", "code": "not_found"}


# --- Where the server is --------------------------------------------------------------


def test_the_schema_names_the_server_from_site_url():
    """SITE_URL is read when settings load, so this takes a process of its own."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "scheduler.settings_test",
        "SITE_URL": "https://meet.example.org/",
    }
    out = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--format", "openapi-json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert json.loads(out[out.index("{") :])["servers"] == [{"url": "https://meet.example.org"}]


def test_a_path_under_the_api_that_matches_no_route_answers_404_in_json(alice_api, client):
    """A lobby entry ID must be a number; `-1000` matched no route and got the HTML page
    (found by the fuzz test once its generated cases changed)."""
    response = alice_api.post("/api/v1/meetings/AAAA-BBBB-CCCC-DDDD/lobby/-1000/admit/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "code": "not_found"}
    # Pages keep their own 404 page.
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
