import pytest

from meetings.models import AuditEvent, ClassificationLevel

pytestmark = pytest.mark.django_db

SPEC_FIELDS = {
    "code",
    "name",
    "rank",
    "bookable",
    "allow_cloud_recording",
    "allow_dial_in",
    "require_waiting_room",
    "allow_guests",
    "allow_passcode_join",
    "require_host_mfa",
    "require_participant_mfa",
    "max_link_lifetime_hours",
    "allowed_invitee_domains",
    "min_passcode_bits",
    "retention_days",
    "link_in_calendar",
    "e2ee",
}


def test_signed_in_users_list_the_seeded_levels_with_every_field(bob_api):
    response = bob_api.get("/api/v1/classifications/")
    assert response.status_code == 200
    levels = response.json()
    assert [lv["code"] for lv in levels] == ["official", "official-sensitive", "secret", "top-secret"]
    assert all(set(lv) == SPEC_FIELDS for lv in levels)
    secret = levels[2]
    assert secret["name"] == "SECRET"
    assert (secret["allow_cloud_recording"], secret["allow_dial_in"], secret["allow_guests"]) == (
        False,
        False,
        False,
    )
    assert (secret["require_host_mfa"], secret["require_participant_mfa"]) == (True, True)
    assert levels[3]["bookable"] is False


def test_anonymous_cannot_list_levels(client):
    assert client.get("/api/v1/classifications/").status_code in (401, 403)


def test_bob_gets_403_when_he_tries_to_change_a_level(bob_api):
    response = bob_api.patch("/api/v1/classifications/official/", {"allow_dial_in": False}, format="json")
    assert response.status_code == 403
    assert ClassificationLevel.objects.get(code="official").allow_dial_in is True
    assert not AuditEvent.objects.filter(action="level_changed").exists()


def test_staff_change_a_level_and_it_is_audited(carol_api, carol):
    response = carol_api.patch(
        "/api/v1/classifications/official/",
        {"allowed_invitee_domains": ["Example.GOV", "@example.org"], "min_passcode_bits": 72},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["allowed_invitee_domains"] == ["example.gov", "example.org"]
    event = AuditEvent.objects.get(action="level_changed")
    assert event.actor == carol and event.subject == "official"
    assert event.detail["min_passcode_bits"] == {"old": 60, "new": 72}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"min_passcode_bits": 40}, "min_passcode_bits"),
        ({"max_link_lifetime_hours": 0}, "max_link_lifetime_hours"),
        ({"allowed_invitee_domains": ["not a domain"]}, "allowed_invitee_domains"),
        ({"rank": 30}, "rank"),
        ({"code": "renamed"}, "code"),
        ({"bookable": "no"}, "bookable"),
    ],
)
def test_bad_level_changes_are_refused_by_field(carol_api, payload, field):
    response = carol_api.patch("/api/v1/classifications/official/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not AuditEvent.objects.filter(action="level_changed").exists()


def test_staff_session_without_second_factor_cannot_change_levels(carol, client):
    client.force_login(carol)
    response = client.patch(
        "/api/v1/classifications/official/", {"allow_dial_in": False}, content_type="application/json"
    )
    assert response.status_code == 403
    assert "second factor" in response.json()["detail"]
    assert ClassificationLevel.objects.get(code="official").allow_dial_in is True


def test_unknown_level_is_404(carol_api):
    assert carol_api.patch("/api/v1/classifications/nope/", {"name": "x"}, format="json").status_code == 404
