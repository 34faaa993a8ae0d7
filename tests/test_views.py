from datetime import timedelta

import pytest
from django.utils import timezone

from meetings.models import AuditEvent, Meeting
from tests.helpers import row_counts
from tests.test_api_meetings import CASES, MATRIX, expected_refusals

pytestmark = pytest.mark.django_db


def form_data(level: str, **options) -> dict[str, str]:
    starts = timezone.now() + timedelta(days=2)
    data = {
        "classification": level,
        "title": "Board meeting",
        "starts_at": starts.strftime("%Y-%m-%dT%H:%M"),
        "timezone": "Europe/London",
        "duration_minutes": "45",
    }
    # A checkbox is sent only when ticked; "waiting room on" is the default, and where the
    # level requires E2EE the page sends it on (a hidden input beside the locked box).
    required_e2ee = level in ("secret", "top-secret")
    wanted = {
        "cloud_recording": False,
        "dial_in": False,
        "waiting_room": True,
        "e2ee": required_e2ee,
        **options,
    }
    data.update({name: "on" for name, on in wanted.items() if on})
    return data


@pytest.mark.parametrize(("level", "case"), MATRIX, ids=[f"{lv}-{c}" for lv, c in MATRIX])
def test_policy_matrix_through_the_web_form(alice_web_verified, level, case):
    options, _field = CASES[case]
    before = row_counts()
    response = alice_web_verified.post("/meetings/new/", form_data(level, **options), follow=True)
    refused = expected_refusals(level, case)
    if refused:
        assert response.status_code == 400
        errors = response.context["form"].errors
        for field in refused:
            assert field in errors or (field == "classification" and "classification" in errors)
        assert row_counts() == before
    else:
        assert response.status_code == 200
        meeting = Meeting.objects.get()
        assert response.redirect_chain == [(f"/meetings/{meeting.display_id}/booked/", 302)]
        assert meeting.classification.code == level
        for name, value in options.items():
            assert getattr(meeting, name) is value
        content = response.content.decode()
        assert response.context["passcode"] in content
        assert meeting.display_id in content
        assert response["Cache-Control"].startswith("max-age=0")


def test_form_shows_every_locked_option_disabled_with_the_reason(alice_web):
    response = alice_web.get("/meetings/new/?level=secret")
    content = response.content.decode()
    assert response.status_code == 200
    assert 'class="banner level-secret"' in content
    for reason in (
        "Cloud recording is not allowed for SECRET meetings.",
        "Telephone dial-in is not allowed for SECRET meetings.",
        "The waiting room cannot be turned off for SECRET meetings.",
    ):
        assert reason in content
    assert content.count("disabled") >= 3
    assert "need a second factor" in content
    official = alice_web.get("/meetings/new/?level=official").content.decode()
    assert "Locked by" not in official and "disabled" not in official


def test_host_without_second_factor_cannot_book_at_official_sensitive_but_can_at_official(alice_web):
    refused = alice_web.post("/meetings/new/", form_data("official-sensitive"))
    assert refused.status_code == 400
    assert "needs a second factor" in refused.content.decode()
    assert alice_web.post("/meetings/new/", form_data("official")).status_code == 302
    assert Meeting.objects.get().classification.code == "official"


def test_form_reads_the_time_in_the_chosen_zone(alice_web):
    data = form_data("official")
    data.update({"starts_at": "2031-07-01T09:00", "timezone": "Europe/Paris"})
    assert alice_web.post("/meetings/new/", data).status_code == 302
    meeting = Meeting.objects.get()
    assert meeting.starts_at.isoformat() == "2031-07-01T07:00:00+00:00"  # CEST is UTC+2
    assert meeting.timezone == "Europe/Paris"


def test_list_and_detail_pages_show_the_banner_and_hide_the_passcode(alice_web):
    booked = alice_web.post("/meetings/new/", form_data("official", cloud_recording=True), follow=True)
    meeting, passcode = booked.context["meeting"], booked.context["passcode"]
    listing = alice_web.get("/meetings/").content.decode()
    assert meeting.display_id in listing and "Board meeting" in listing
    detail = alice_web.get(meeting.get_absolute_url()).content.decode()
    assert 'class="banner level-official"' in detail
    assert "Cloud recording: on" in detail
    assert passcode not in detail and passcode not in listing


def test_rotate_and_cancel_from_the_meeting_page(alice_web):
    booked = alice_web.post("/meetings/new/", form_data("official"), follow=True)
    meeting, old = booked.context["meeting"], booked.context["passcode"]
    rotated = alice_web.post(f"/meetings/{meeting.display_id}/passcode/", follow=True)
    assert rotated.status_code == 200
    new = rotated.context["passcode"]
    assert new != old and new in rotated.content.decode()
    cancelled = alice_web.post(f"/meetings/{meeting.display_id}/cancel/", follow=True)
    assert "This meeting was cancelled." in cancelled.content.decode()
    assert Meeting.objects.get().status == "cancelled"
    assert list(AuditEvent.objects.values_list("action", flat=True)) == [
        "meeting_booked",
        "passcode_rotated",
        "meeting_cancelled",
    ]


def test_bob_gets_404_on_alices_meeting_pages(alice_web, bob, client):
    meeting = alice_web.post("/meetings/new/", form_data("official"), follow=True).context["meeting"]
    client.force_login(bob)
    for url in (meeting.get_absolute_url(),):
        assert client.get(url).status_code == 404
    assert client.post(f"/meetings/{meeting.display_id}/cancel/").status_code == 404
    assert client.post(f"/meetings/{meeting.display_id}/passcode/").status_code == 404
    assert Meeting.objects.get().status == "scheduled"


def test_pages_need_sign_in(client):
    response = client.get("/meetings/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_my_meetings_uses_a_fixed_number_of_queries(alice_web, django_assert_max_num_queries):
    for _ in range(3):
        alice_web.post("/meetings/new/", form_data("official"))
    with django_assert_max_num_queries(6):
        assert alice_web.get("/meetings/").status_code == 200
