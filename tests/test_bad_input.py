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


# --- Over-long addresses: 255 characters passed the e-mail check (which allows 320) and
# overflowed the 254-character column (a 500 on PostgreSQL; SQLite stored it).

LONG_ADDRESS = "a" * 60 + "@" + ("b" * 60 + ".") * 3 + "example.org"
assert len(LONG_ADDRESS) == 255


def _says_254(errors) -> bool:
    return "254" in str(errors)


def test_api_booking_refuses_an_invitee_address_over_254_characters(alice_api):
    before = _counts()
    body = booking_body(invitees=["ann@example.org", LONG_ADDRESS])
    response = alice_api.post("/api/v1/meetings/", body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert _says_254(response.json()["invitees"])
    assert _counts() == before


def test_api_invitations_refuse_an_address_over_254_characters(alice_api):
    meeting_id, _passcode = book(alice_api)
    before = _counts()
    response = alice_api.post(
        f"/api/v1/meetings/{meeting_id}/invitations/", {"emails": [LONG_ADDRESS]}, format="json"
    )
    assert response.status_code == 400, response.content[:300]
    assert _says_254(response.json()["emails"])
    assert _counts() == before


def test_web_booking_refuses_an_invitee_address_over_254_characters(alice_web_verified):
    before = _counts()
    response = alice_web_verified.post(
        "/meetings/new/", {**form_data("official"), "invitees": f"ann@example.org {LONG_ADDRESS}"}
    )
    assert response.status_code == 400
    assert _says_254(response.context["form"].errors["invitees"])
    assert _counts() == before


def test_web_invitations_refuse_an_address_over_254_characters(alice_api, alice_web_verified):
    meeting_id, _passcode = book(alice_api)
    before = _counts()
    response = alice_web_verified.post(f"/meetings/{meeting_id}/invitations/", {"emails": LONG_ADDRESS})
    assert response.status_code == 400
    assert "254" in response.content.decode()
    assert _counts() == before


def test_host_invite_refuses_an_address_over_254_characters(carol, verified_client):
    from django.contrib.auth.models import User

    data = {"email": LONG_ADDRESS, "username": "hana", "display_name": "Hana Ito"}
    response = verified_client(carol).post("/accounts/hosts/invite/", data)
    assert response.status_code == 400
    assert _says_254(response.context["form"].errors["email"])
    assert not User.objects.filter(username="hana").exists()


# --- NUL: PostgreSQL refuses it in text, so a NUL that reached a query was a 500.


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/classifications/off%00icial/", "code"),
        ("/api/v1/meetings/ABCD%00/", "meeting_id"),
        ("/api/v1/meetings/ABCD%00/invitations/", "meeting_id"),
        ("/api/v1/meetings/ABCD%00/lobby/", "meeting_id"),
    ],
)
def test_api_refuses_nul_in_a_url_naming_the_part(alice_api, path, name):
    response = alice_api.get(path)
    assert response.status_code == 400, response.content[:300]
    assert "NUL" in response.json()[name][0]


def test_api_refuses_nul_in_a_query_parameter_naming_it(alice_api):
    book(alice_api)
    response = alice_api.get("/api/v1/meetings/?status=sched%00uled")
    assert response.status_code == 400, response.content[:300]
    assert "NUL" in response.json()["status"][0]


@pytest.mark.parametrize(
    ("path", "body", "name"),
    [
        ("/api/v1/meetings/", booking_body(classification="off\x00icial"), "classification"),
        ("/api/v1/meetings/", booking_body(timezone="Europe/Lon\x00don"), "timezone"),
        ("/api/v1/meetings/", booking_body(title="Board\x00"), "title"),
        ("/api/v1/meetings/", booking_body(invitees=["ann\x00@example.org"]), "invitees"),
    ],
)
def test_api_refuses_nul_in_json_strings_naming_the_field(alice_api, path, body, name):
    before = _counts()
    response = alice_api.post(path, body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert name in response.json()
    assert _counts() == before


def test_api_join_refuses_nul_in_the_meeting_id(alice_api):
    meeting_id, passcode = book(alice_api)
    response = APIClient().post(
        "/api/v1/join/", join_data(meeting_id[:4] + "\x00" + meeting_id[4:], passcode), format="json"
    )
    assert response.status_code == 400
    assert "meeting_id" in response.json()


@pytest.mark.parametrize(
    "path", ["/meetings/ABCD%00/", "/meetings/ABCD%00/lobby/", "/meetings/?status=x%00", "/j/abc%00def/"]
)
def test_pages_refuse_nul_in_the_url(alice_web_verified, path):
    response = alice_web_verified.get(path)
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


def test_web_booking_refuses_nul_in_the_level(alice_web_verified):
    before = _counts()
    response = alice_web_verified.post("/meetings/new/", {**form_data("official"), "classification": "o\x00"})
    assert response.status_code == 400
    assert "classification: NUL" in response.content.decode()
    assert _counts() == before


# --- The ends of the calendar: a wall-clock time near year 1 or 9999 in an offset zone
# overflowed converting to UTC (OverflowError, a 500).

CALENDAR_ENDS = [
    pytest.param("0001-01-01T00:30", "Pacific/Kiritimati", id="year-1-at-+14"),
    pytest.param("0001-01-01T00:30", "Asia/Tokyo", id="year-1-at-+9"),
    pytest.param("9999-12-31T23:30", "Pacific/Pago_Pago", id="year-9999-at--11"),
    pytest.param("9999-12-31T23:30", "America/New_York", id="year-9999-in-new-york"),
]


@pytest.mark.parametrize(("starts_at", "zone"), CALENDAR_ENDS)
def test_web_booking_refuses_a_time_at_the_ends_of_the_calendar(alice_web_verified, starts_at, zone):
    before = _counts()
    data = {**form_data("official"), "starts_at": starts_at, "timezone": zone}
    response = alice_web_verified.post("/meetings/new/", data)
    assert response.status_code == 400
    message = str(response.context["form"].errors["starts_at"])
    assert "0002" in message and "9998" in message, message
    assert _counts() == before


@pytest.mark.parametrize(
    "starts_at",
    ["0001-01-01T00:30:00+14:00", "9999-12-31T23:30:00-12:00", "0001-01-01T00:00:00+00:00"],
)
@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT+12", "UTC"])
def test_api_booking_and_update_refuse_times_at_the_ends_of_the_calendar(alice_api, starts_at, zone):
    before = _counts()
    response = alice_api.post(
        "/api/v1/meetings/", booking_body(starts_at=starts_at, timezone=zone), format="json"
    )
    assert response.status_code == 400, response.content[:300]
    assert "starts_at" in response.json()
    assert _counts() == before
    meeting_id, _passcode = book(alice_api)
    changed = alice_api.patch(
        f"/api/v1/meetings/{meeting_id}/", {"starts_at": starts_at, "timezone": zone}, format="json"
    )
    assert changed.status_code == 400, changed.content[:300]
    assert "starts_at" in changed.json()


def test_web_edit_refuses_a_time_at_the_ends_of_the_calendar(alice_api, alice_web_verified):
    meeting_id, _passcode = book(alice_api)
    data = {**form_data("official"), "starts_at": "0001-01-01T00:30", "timezone": "Pacific/Kiritimati"}
    response = alice_web_verified.post(f"/meetings/{meeting_id}/edit/", data)
    assert response.status_code == 400
    assert "starts_at" in response.context["form"].errors


# --- Invisible formatting: bidi controls and zero-width characters let a name or a title
# read differently from what it is (a participant passing as someone else).

INVISIBLE = [
    pytest.param("Alice\u202eecilA", id="right-to-left-override"),
    pytest.param("Alice\u2066Host\u2069", id="isolate"),
    pytest.param("Ali\u200bce", id="zero-width-space"),
    pytest.param("Ali\u200dce", id="zero-width-joiner"),
    pytest.param("Alice\u200f", id="right-to-left-mark"),
    pytest.param("Alice\u061c", id="arabic-letter-mark"),
    pytest.param("\ufeffAlice", id="byte-order-mark"),
    pytest.param("Alice\u2060", id="word-joiner"),
    pytest.param("Alice\x00", id="nul"),
]


@pytest.mark.parametrize("name", INVISIBLE)
def test_api_join_refuses_invisible_characters_in_the_display_name(alice_api, name):
    meeting_id, passcode = book(alice_api)
    before = _counts()
    response = APIClient().post("/api/v1/join/", join_data(meeting_id, passcode, name=name), format="json")
    assert response.status_code == 400
    assert response.json()["display_name"]
    assert _counts() == before


@pytest.mark.parametrize("name", INVISIBLE)
def test_web_join_refuses_invisible_characters_in_the_display_name(alice_api, client, name):
    meeting_id, passcode = book(alice_api)
    before = _counts()
    response = client.post("/join/", join_data(meeting_id, passcode, name=name))
    assert response.status_code == 400
    if "\x00" in name:  # refused before the view, naming the field
        assert "display_name: NUL" in response.content.decode()
    else:
        assert response.context["form"].errors["display_name"]
    assert _counts() == before


@pytest.mark.parametrize("title", INVISIBLE[:4])
def test_titles_refuse_invisible_characters(alice_api, alice_web_verified, title):
    before = _counts()
    response = alice_api.post("/api/v1/meetings/", booking_body(title=title), format="json")
    assert response.status_code == 400 and response.json()["title"]
    page = alice_web_verified.post("/meetings/new/", {**form_data("official"), "title": title})
    assert page.status_code == 400 and page.context["form"].errors["title"]
    assert _counts() == before
    meeting_id, _passcode = book(alice_api)
    changed = alice_api.patch(f"/api/v1/meetings/{meeting_id}/", {"title": title}, format="json")
    assert changed.status_code == 400 and changed.json()["title"]


def test_host_invite_refuses_invisible_characters_in_the_name(carol, verified_client):
    from django.contrib.auth.models import User

    data = {"email": "hana@example.org", "username": "hana", "display_name": "Hana\u202e"}
    response = verified_client(carol).post("/accounts/hosts/invite/", data)
    assert response.status_code == 400
    assert response.context["form"].errors["display_name"]
    assert not User.objects.filter(username="hana").exists()


def test_level_name_refuses_invisible_characters(carol_api):
    response = carol_api.patch("/api/v1/classifications/official/", {"name": "Off\u200bicial"}, format="json")
    assert response.status_code == 400 and response.json()["name"]


def test_models_clean_refuses_invisible_characters(alice_api):
    from django.core.exceptions import ValidationError

    book(alice_api)
    meeting = Meeting.objects.get()
    meeting.title = "Board\u202e"
    with pytest.raises(ValidationError) as refused:
        meeting.full_clean()
    assert "title" in refused.value.message_dict


def test_ordinary_scripts_and_emoji_still_pass(alice_api):
    for name in ("Zoë O'Brien-Łukasz", "محمد علي", "שרה כהן", "李小龙", "Dana 🙂"):
        meeting_id, passcode = book(alice_api)
        joined = APIClient().post("/api/v1/join/", join_data(meeting_id, passcode, name=name), format="json")
        assert joined.status_code == 201, (name, joined.content)
