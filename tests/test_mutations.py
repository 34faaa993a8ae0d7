"""Tests that kill the mutations a code review found the suite let live (issue 11): each
would pass if the rule it names were quietly broken."""

import re
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from meetings import credentials
from meetings.audit import audit_seal
from meetings.models import AuditEvent, ClassificationLevel, JoinLink
from tests.helpers import booking_body
from tests.test_audit_chain import TABLE, broken_at

pytestmark = pytest.mark.django_db


def test_passcodes_use_every_symbol_so_their_reported_bits_are_real():
    """A digits-only passcode reported as 5 bits a character would pass a length check."""
    seen: Counter[str] = Counter()
    for _ in range(300):
        passcode, bits = credentials.new_passcode(60)
        symbols = passcode.replace("-", "")
        assert bits == len(symbols) * 5 >= 60
        seen.update(symbols)
    assert set(seen) == set(credentials.CROCKFORD)  # all 32 symbols: 5 bits each


def test_a_link_never_outlives_the_levels_cap(alice_api, carol_api):
    assert (
        carol_api.patch(
            "/api/v1/classifications/official/", {"max_link_lifetime_hours": 2}, format="json"
        ).status_code
        == 200
    )
    starts = (timezone.now() + timedelta(days=3)).replace(microsecond=0).isoformat()
    response = alice_api.post(
        "/api/v1/meetings/", booking_body(starts_at=starts, invitees=["ann@example.org"]), format="json"
    )
    assert response.status_code == 201
    expires = JoinLink.objects.get().expires_at
    assert timezone.now() < expires <= timezone.now() + timedelta(hours=2)
    assert ClassificationLevel.objects.get(code="official").max_link_lifetime_hours == 2


def test_the_row_hash_covers_prev_hash_so_a_row_cannot_be_cut_out_and_relinked(alice_api):
    for n in range(3):
        alice_api.post("/api/v1/meetings/", booking_body(title=f"m{n}"), format="json")
    audit_seal()  # the chain covers sealed rows (beat seals every 2 s)
    first, second, third = list(AuditEvent.objects.order_by("id"))[-3:]
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [second.pk])
        cursor.execute(f"UPDATE {TABLE} SET prev_hash = %s WHERE id = %s", [first.row_hash, third.pk])
    assert f"row id={third.pk}:" in broken_at()


def test_origin_null_is_accepted_only_on_join_pages_even_with_a_valid_csrf_token(alice):
    host = Client(enforce_csrf_checks=True)
    host.force_login(alice)
    page = host.get("/meetings/new/").content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = host.post("/meetings/new/", {"csrfmiddlewaretoken": csrf}, HTTP_ORIGIN="null")
    assert response.status_code == 403  # Django's origin check, untouched outside join pages
    assert (
        host.post("/meetings/new/", {"csrfmiddlewaretoken": csrf}).status_code == 400
    )  # the form's own answer


def test_changing_a_meeting_at_an_mfa_level_over_a_session_without_the_factor_is_refused(
    alice_web, meeting_factory
):
    meeting = meeting_factory(classification="official-sensitive").meeting
    response = alice_web.patch(
        f"/api/v1/meetings/{meeting.display_id}/", {"title": "Renamed"}, content_type="application/json"
    )
    assert response.status_code == 403 and response.json()["code"] == "second_factor_required"
    rotated = alice_web.post(f"/api/v1/meetings/{meeting.display_id}/passcode/")
    assert rotated.status_code == 403 and rotated.json()["code"] == "second_factor_required"
    meeting.refresh_from_db()
    assert meeting.title == "Weekly sync"


def test_a_url_under_the_api_that_matches_nothing_answers_json(alice_api):
    """Found by fuzzing: a negative entry ID matched no URL and got the site's HTML 404."""
    response = alice_api.post("/api/v1/meetings/ABCD-EFGH-JKMN-PQRS/lobby/-1000/admit/")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"
