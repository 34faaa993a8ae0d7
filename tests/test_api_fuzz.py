"""Fuzz every operation of the OpenAPI schema with schemathesis, as a host and as staff.

Checks: no 5xx, every status code is documented, and every response body matches the
documented schema. Bounded and reproducible: a fixed number of examples per operation,
derandomized, no deadline (argon2 makes some requests slow on purpose).

The schema is loaded from the running app (`from_wsgi`), not through schemathesis's
pytest plugin, whose `from_fixture` breaks on pytest 9.2. Requests go to the WSGI app in
this process, on the test's own database connection (as Django's test client does), and
each operation runs in a savepoint that is rolled back, so one operation's side effects
(a cancelled meeting, a tightened level) cannot hide another's bugs.
"""

import os
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from meetings.models import ClassificationLevel, LobbyEntry
from meetings.services import booking, lobby, tokens
from tests.helpers import booking_body

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

# Examples per operation and per user; ANTECHAMBER_FUZZ_EXAMPLES raises it for a long run.
EXAMPLES = int(os.environ.get("ANTECHAMBER_FUZZ_EXAMPLES", "30"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@contextmanager
def _requests_share_the_test_connection():
    """Django's test client does the same: a request must not close the connection that
    holds the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@contextmanager
def _rolled_back():
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def _real_objects(user) -> dict[str, str]:
    """A meeting of the user's with an invitation and someone waiting: path parameters
    that reach the code behind the 404s."""
    booked = booking.meeting_book(
        host=user,
        title="Fuzzed",
        starts_at=timezone.now() + timedelta(days=1),
        duration_minutes=60,
        classification=ClassificationLevel.objects.get(code="official"),
        invitees=["invitee@example.org"],
        host_has_second_factor=True,
    )
    meeting = booked.meeting
    entered = lobby.lobby_enter(meeting=meeting, display_name="Dana", source=LobbyEntry.Source.PASSCODE)
    return {
        "meeting_id": meeting.display_id,
        "invitation_id": str(meeting.invitations.get().pk),
        "entry_id": entered.entry.pk,
        "code": "official",
    }


def _plausible_meeting(partial: bool):
    """Bodies that get past the parser to the rules: known levels, times from the year 1 to
    9999 in zones from -12 to +14 hours, durations around the limits. Schema-generated
    bodies almost never name a real level, so without these few bookings would succeed."""
    zones = st.sampled_from(
        [UTC, ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12"), ZoneInfo("Europe/London")]
    )
    fields = {
        "title": st.text(min_size=1, max_size=200),
        "starts_at": st.one_of(
            st.datetimes(timezones=zones),  # anywhere in 1..9999
            st.sampled_from(
                ["9999-12-31T23:59:00+00:00", "0001-01-01T00:00:00+00:00", "2030-01-01T10:00:00+14:00"]
            ),
            st.integers(-120, 24 * 3650).map(lambda h: (datetime.now(UTC) + timedelta(hours=h)).isoformat()),
        ).map(lambda d: d if isinstance(d, str) else d.isoformat()),
        "duration_minutes": st.integers(-1, 1441),
        "classification": st.sampled_from(["official", "official-sensitive", "secret", "top-secret"]),
        "timezone": st.sampled_from(["UTC", "Europe/London", "Not/A_Zone"]),
        "cloud_recording": st.booleans(),
        "dial_in": st.booleans(),
        "waiting_room": st.booleans(),
    }
    if partial:
        return st.fixed_dictionaries({}, optional=fields)
    required = ("title", "starts_at", "duration_minutes", "classification")
    return st.fixed_dictionaries(
        {name: fields[name] for name in required},
        optional={
            **{name: s for name, s in fields.items() if name not in required},
            "invitees": st.lists(st.emails(), max_size=3),
        },
    )


def _strategy(operation, fixed: dict[str, str]):
    names = {p.name for p in operation.path_parameters}
    real = {name: value for name, value in fixed.items() if name in names}
    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    if operation.label in ("POST /api/v1/meetings/", "PATCH /api/v1/meetings/{meeting_id}/"):
        strategies.append(
            _plausible_meeting(partial=operation.method.upper() == "PATCH").flatmap(
                lambda body: operation.as_strategy(
                    generation_mode=GenerationMode.POSITIVE,
                    path_parameters=real or None,
                    body=body,
                    media_type="application/json",
                )
            )
        )
    if real:
        strategies.append(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=real)
        )
    if operation.body:
        # Malformed bodies against real objects: where a missing check would show as a 500.
        strategies.append(
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE, path_parameters=real or None)
        )
    return st.one_of(strategies)


@pytest.fixture
def schema():
    with _requests_share_the_test_connection():
        yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.mark.parametrize("who", ["alice", "carol"])
def test_every_operation_survives_fuzzing_and_matches_the_schema(schema, who, request):
    user = request.getfixturevalue(who)  # alice hosts; carol is staff
    _token, key = tokens.api_token_create(user=user, label="fuzz")
    headers = {"Authorization": f"Token {key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    statuses: Counter[tuple[str, int]] = Counter()
    failures: dict[tuple[str, int, str], str] = {}

    with _requests_share_the_test_connection():
        for operation in operations:
            with _rolled_back():
                fixed = _real_objects(user)

                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    derandomize=True,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                    phases=["explicit", "generate", "shrink"],
                )
                @given(case=_strategy(operation, fixed))
                def fuzz(case):
                    with transaction.atomic():  # a request that fails mid-way must not poison the next
                        response = case.call(headers=headers)
                        statuses[(operation.label, response.status_code)] += 1
                        try:
                            case.validate_response(response, checks=CHECKS, headers=headers)
                        except FailureGroup as group:
                            # Collected rather than raised, so one run reports every operation's
                            # failures (the first example of each kind is enough to reproduce it).
                            for failure in group.exceptions:
                                key = (operation.label, response.status_code, failure.title)
                                failures.setdefault(key, case.as_curl_command(headers=headers))

                fuzz()

    assert not failures, "\n".join(f"{k}: {curl}" for k, curl in sorted(failures.items()))
    labels = {label for label, _status in statuses}
    assert labels == {op.label for op in operations}
    # Fuzzing reached past the 404s: real objects were acted on successfully.
    assert any(200 <= code < 300 for (label, code) in statuses if "{meeting_id}" in label)
    # And it ran as who it says: only staff changed a level; a host was refused.
    level_change = "PATCH /api/v1/classifications/{code}/"
    if user.is_staff:
        assert statuses[(level_change, 200)] > 0
    else:
        assert statuses[(level_change, 200)] == 0 and statuses[(level_change, 403)] > 0
    summary = ", ".join(
        f"{code}: {n}" for code, n in sorted(Counter(c for _l, c in statuses.elements()).items())
    )
    print(f"\nfuzz as {who}: {sum(statuses.values())} requests over {len(labels)} operations ({summary})")


# --- Regressions found by fuzzing ---------------------------------------------------


def test_a_form_body_with_too_many_fields_gets_a_json_answer(alice_api):
    """Django refuses more than DATA_UPLOAD_MAX_NUMBER_FIELDS form fields; the API used to
    answer with the site's HTML error page instead of JSON. Form bodies are now refused
    before they are parsed (JSON only), still in JSON."""
    meeting_id = alice_api.post("/api/v1/meetings/", booking_body(), format="json").json()["id"]
    body = "&".join(f"emails=person{i}%40example.org" for i in range(1500))
    response = alice_api.generic(
        "POST",
        f"/api/v1/meetings/{meeting_id}/invitations/",
        body,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 415
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "unsupported_media_type"


def test_an_unknown_classification_code_of_any_shape_gets_a_json_404(carol_api):
    response = carol_api.get("/api/v1/classifications/not a slug!/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No such classification level.", "code": "not_found"}


# Past 9998 the time is refused before the 10-year rule: an offset could take it off the calendar.
FAR_AHEAD = {
    "9999": "Choose a time between 0002-01-01 00:00 and 9998-12-31 23:59 "
    "(further out, a time zone's offset can take it off the calendar)."
}


@pytest.mark.parametrize("starts_at", ["9999-12-31T23:00:00+00:00", "2999-01-01T10:00:00+01:00"])
def test_a_start_centuries_ahead_is_refused_naming_the_field(alice_api, starts_at):
    """A start near datetime.max used to overflow when the end time was computed: a 500
    (found by probing, then by the fuzz test once it generated plausible meeting bodies)."""
    response = alice_api.post("/api/v1/meetings/", booking_body(starts_at=starts_at), format="json")
    assert response.status_code == 400
    assert response.json() == {"starts_at": [FAR_AHEAD.get(starts_at[:4], "Book at most 10 years ahead.")]}


def test_moving_a_meeting_centuries_ahead_is_refused_naming_the_field(alice_api):
    meeting_id = alice_api.post("/api/v1/meetings/", booking_body(), format="json").json()["id"]
    response = alice_api.patch(
        f"/api/v1/meetings/{meeting_id}/", {"starts_at": "9999-12-31T23:00:00+00:00"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"starts_at": [FAR_AHEAD["9999"]]}
    assert alice_api.get(f"/api/v1/meetings/{meeting_id}/").json()["starts_at"] != "9999-12-31T23:00:00Z"
