"""Bad input is a clear 400 naming what is wrong, never a 500, and writes nothing."""

from datetime import date, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from meetings.models import LobbyEntry, Meeting
from tests.helpers import booking_body, row_counts
from tests.join_helpers import book, join_data
from tests.test_views import form_data

pytestmark = pytest.mark.django_db

DEEP = [
    pytest.param("[" * 1000, id="unclosed"),
    pytest.param("[" * 1000 + "]" * 1000, id="closed"),
    pytest.param('{"a":' * 1000 + "1" + "}" * 1000, id="objects"),
]


def _counts():
    return (*row_counts(), LobbyEntry.objects.count())


@pytest.mark.parametrize("body", DEEP)
@pytest.mark.parametrize(
    ("method", "path", "signed_in"),
    [
        ("post", "/api/v1/join/", False),
        ("post", "/api/v1/meetings/", True),
        ("patch", "/api/v1/classifications/official/", True),
    ],
)
def test_deeply_nested_json_is_a_400(alice_api, carol_api, method, path, signed_in, body):
    client = (carol_api if "classifications" in path else alice_api) if signed_in else APIClient()
    before = _counts()
    response = getattr(client, method)(path, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "nested" in response.json()["detail"]
    assert _counts() == before


# --- Control characters: a line break in a title used to be stored, then break every mail.

CONTROL = [
    pytest.param("Board\nmeeting", id="newline"),
    pytest.param("Board\r\nBcc: all@example.org", id="header-injection"),
    pytest.param("Board\tmeeting", id="tab"),
    pytest.param("Board\x1bmeeting", id="escape"),
    pytest.param("Board\x85meeting", id="c1-next-line"),
    pytest.param("Board\u2028meeting", id="line-separator"),
]


@pytest.mark.parametrize("title", CONTROL)
def test_api_booking_refuses_control_characters_in_the_title(alice_api, title):
    before = _counts()
    response = alice_api.post("/api/v1/meetings/", booking_body(title=title, invitees=["ann@example.org"]))
    assert response.status_code == 400
    assert "control characters" in response.json()["title"][0]
    assert _counts() == before


@pytest.mark.parametrize("title", CONTROL)
def test_api_update_refuses_control_characters_in_the_title(alice_api, title):
    meeting_id, _passcode = book(alice_api)
    response = alice_api.patch(f"/api/v1/meetings/{meeting_id}/", {"title": title}, format="json")
    assert response.status_code == 400
    assert "control characters" in response.json()["title"][0]
    assert Meeting.objects.get().title == "Quarterly review"


@pytest.mark.parametrize("title", CONTROL)
def test_web_booking_refuses_control_characters_in_the_title(alice_web_verified, title):
    before = _counts()
    response = alice_web_verified.post("/meetings/new/", {**form_data("official"), "title": title})
    assert response.status_code == 400
    assert "control characters" in str(response.context["form"].errors["title"])
    assert _counts() == before


@pytest.mark.parametrize("name", CONTROL)
def test_api_join_refuses_control_characters_in_the_display_name(alice_api, name):
    meeting_id, passcode = book(alice_api)
    before = _counts()
    response = APIClient().post("/api/v1/join/", join_data(meeting_id, passcode, name=name), format="json")
    assert response.status_code == 400
    assert "control characters" in response.json()["display_name"][0]
    assert _counts() == before


@pytest.mark.parametrize("name", CONTROL)
def test_web_join_refuses_control_characters_in_the_display_name(alice_api, client, name):
    meeting_id, passcode = book(alice_api)
    before = _counts()
    response = client.post("/join/", join_data(meeting_id, passcode, name=name))
    assert response.status_code == 400
    assert "control characters" in str(response.context["form"].errors["display_name"])
    assert _counts() == before


def test_ordinary_titles_and_names_still_pass(alice_api):
    meeting_id, passcode = book(alice_api, title="Café – Q3 review 🙂 (Zoë's team)")
    joined = APIClient().post("/api/v1/join/", join_data(meeting_id, passcode, name="Zoë O'Brien-Łukasz"))
    assert joined.status_code == 201, joined.content


# --- A wall-clock time the clocks skip: London goes from 01:00 to 02:00 on the last Sunday
# of March, so 01:30 that day does not exist there.


def _next_gap_day() -> str:
    """The next last Sunday of March in London, as YYYY-MM-DD (within the booking window)."""
    today = timezone.now().date()
    for year in (today.year, today.year + 1):
        day = date(year, 3, 31)
        day -= timedelta(days=(day.weekday() + 1) % 7)  # back to Sunday
        if day > today + timedelta(days=1):
            return day.isoformat()
    raise AssertionError("unreachable")


GAP_DAY = _next_gap_day()
DAY_AFTER = (date.fromisoformat(GAP_DAY) + timedelta(days=1)).isoformat()


def test_web_booking_refuses_a_time_in_the_dst_gap(alice_web_verified):
    before = _counts()
    data = {**form_data("official"), "starts_at": f"{GAP_DAY}T01:30", "timezone": "Europe/London"}
    response = alice_web_verified.post("/meetings/new/", data)
    assert response.status_code == 400
    message = str(response.context["form"].errors["starts_at"])
    assert "01:30" in message and "Europe/London" in message and "from 01:00 to 02:00" in message
    assert _counts() == before


def test_web_booking_takes_the_times_either_side_of_the_gap(alice_web_verified):
    for wall, utc in ((f"{GAP_DAY}T00:59", "00:59"), (f"{GAP_DAY}T02:00", "01:00")):
        data = {**form_data("official"), "starts_at": wall, "timezone": "Europe/London"}
        assert alice_web_verified.post("/meetings/new/", data).status_code == 302
        assert Meeting.objects.latest("id").starts_at.strftime("%H:%M") == utc


@pytest.mark.parametrize(
    "starts_at",
    [
        pytest.param(f"{GAP_DAY}T01:30:00+00:00", id="winter-offset"),
        pytest.param(f"{GAP_DAY}T01:30:00+01:00", id="summer-offset"),
    ],
)
def test_api_refuses_a_local_time_in_the_dst_gap(alice_api, starts_at):
    before = _counts()
    response = alice_api.post(
        "/api/v1/meetings/", booking_body(starts_at=starts_at, timezone="Europe/London"), format="json"
    )
    assert response.status_code == 400
    assert "from 01:00 to 02:00" in response.json()["starts_at"][0]
    assert _counts() == before


@pytest.mark.parametrize(
    ("starts_at", "zone"),
    [
        # The same wall-clock digits in another zone's offset: an instant, not a London time.
        pytest.param(f"{GAP_DAY}T01:30:00+05:00", "Europe/London", id="someone-else-s-offset"),
        # Paris does not use +00:00, so this is UTC, which has no gap.
        pytest.param(f"{GAP_DAY}T02:30:00+00:00", "Europe/Paris", id="utc-for-paris"),
        pytest.param(f"{GAP_DAY}T02:30:00+01:00", "Europe/London", id="right-after-the-gap"),
        pytest.param(f"{GAP_DAY}T00:30:00+00:00", "Europe/London", id="right-before-the-gap"),
    ],
)
def test_api_takes_instants_that_are_not_a_skipped_local_time(alice_api, starts_at, zone):
    response = alice_api.post(
        "/api/v1/meetings/", booking_body(starts_at=starts_at, timezone=zone), format="json"
    )
    assert response.status_code == 201, response.content


def test_api_update_refuses_a_gap_time_in_the_meeting_s_own_zone(alice_api):
    meeting_id, _passcode = book(alice_api, starts_at=f"{DAY_AFTER}T10:00:00+01:00", timezone="Europe/London")
    response = alice_api.patch(
        f"/api/v1/meetings/{meeting_id}/", {"starts_at": f"{GAP_DAY}T01:30:00+00:00"}, format="json"
    )
    assert response.status_code == 400
    assert "from 01:00 to 02:00" in response.json()["starts_at"][0]
    assert Meeting.objects.get().starts_at.date().isoformat() == DAY_AFTER


def test_web_booking_across_the_clock_change_lasts_its_duration(alice_web_verified):
    data = {
        **form_data("official"),
        "starts_at": f"{GAP_DAY}T00:30",
        "timezone": "Europe/London",
        "duration_minutes": "120",
    }
    assert alice_web_verified.post("/meetings/new/", data).status_code == 302
    meeting = Meeting.objects.get()
    assert meeting.ends_at - meeting.starts_at == timedelta(minutes=120)
    assert meeting.ends_at.strftime("%H:%M") == "02:30"  # UTC: 03:30 in London, after the change
