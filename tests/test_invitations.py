import re
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from icalendar import Calendar

from meetings import credentials
from meetings.models import AuditEvent, ClassificationLevel, Invitation, JoinLink, Meeting, OutboundMessage
from tests.helpers import assert_nowhere_in_database, booking_body, row_counts, token_of

LINK_RE = re.compile(r"https?://[^\s\"'<>]+/j/([A-Za-z0-9_-]{43})/")
URL_RE = re.compile(r"""(?:https?://|tel:|sip:)[^\s"'<>]+""")
SECRET_PARAM = re.compile(r"pwd|pass|pin|secret|token|code|key|auth", re.I)


def parts_of(message) -> dict[str, str]:
    found = {}
    for part in message.walk():
        if part.is_multipart():
            continue
        content = part.get_content()
        found[part.get_content_type()] = content.decode() if isinstance(content, bytes) else content
    return found


def links_in(message) -> list[str]:
    return LINK_RE.findall(parts_of(message)["text/plain"])


def calendar_of(message) -> Calendar:
    return Calendar.from_ical(parts_of(message)["text/calendar"])


def assert_no_credential_in_urls(text: str, *secrets: str) -> None:
    for url in URL_RE.findall(text):
        assert not url.startswith("tel:"), url
        for secret in secrets:
            if secret:
                assert secret not in url and secret.replace("-", "") not in url, url
        for name in parse_qs(urlsplit(url).query):
            assert not SECRET_PARAM.search(name), url


@pytest.mark.django_db(transaction=True)
def test_booking_with_invitees_sends_credential_free_mail_with_a_calendar_entry(alice_api, tasks_run):
    mailbox = tasks_run
    booked = alice_api.post(
        "/api/v1/meetings/",
        booking_body(invitees=["Ann@Example.org", "ben@example.org"], dial_in=True),
        format="json",
    ).json()
    meeting = Meeting.objects.get(public_id=booked["id"].replace("-", ""))
    messages = mailbox.wait_for(2)
    assert sorted(m["To"] for m in messages) == ["ann@example.org", "ben@example.org"]
    tokens = set()
    for message in messages:
        assert message["Message-ID"]
        raw = message.as_string()
        parts = parts_of(message)
        assert set(parts) == {"text/plain", "text/html", "text/calendar", "application/ics"}
        # SECURITY: the passcode is nowhere, in any spelling, in any part.
        for spelling in (booked["passcode"], booked["passcode"].replace("-", "")):
            assert spelling not in raw and spelling.lower() not in raw.lower()
        for part in parts.values():
            assert_no_credential_in_urls(part, booked["passcode"], meeting.dial_in_code)
        text = parts["text/plain"]
        assert "Quarterly review" in text and "OFFICIAL" in text
        assert "Europe/London" in text and "UTC" in text
        assert meeting.dial_in_code in text  # as text, where dial-in is on
        assert "tel:" not in raw
        [token] = links_in(message)
        assert token in parts["text/html"]
        tokens.add(token)
        calendar = calendar_of(message)
        assert calendar["METHOD"] == "REQUEST"
        [event] = calendar.walk("VEVENT")
        assert str(event["UID"]) == f"{meeting.ics_uid}@antechamber"
        assert int(event["SEQUENCE"]) == 0
        assert event.decoded("DTSTART") == meeting.starts_at
    assert len(tokens) == 2  # personal links
    assert_nowhere_in_database(*tokens)  # only digests, and the links sealed until sent (then gone)
    assert OutboundMessage.objects.filter(status="sent").count() == 2


@pytest.mark.django_db(transaction=True)
def test_update_and_cancellation_keep_the_uid_and_raise_the_sequence(alice_api, tasks_run):
    mailbox = tasks_run
    booked = alice_api.post(
        "/api/v1/meetings/", booking_body(invitees=["ann@example.org"]), format="json"
    ).json()
    [invite] = mailbox.wait_for(1)
    alice_api.patch(f"/api/v1/meetings/{booked['id']}/", {"title": "Moved review"}, format="json")
    update = mailbox.wait_for(2)[1]
    alice_api.post(f"/api/v1/meetings/{booked['id']}/cancel/")
    cancel = mailbox.wait_for(3)[2]
    events = [calendar_of(m).walk("VEVENT")[0] for m in (invite, update, cancel)]
    assert len({str(e["UID"]) for e in events}) == 1
    sequences = [int(e["SEQUENCE"]) for e in events]
    assert sequences[0] < sequences[1] < sequences[2]
    assert calendar_of(update)["METHOD"] == "REQUEST" and "Moved review" in parts_of(update)["text/plain"]
    assert calendar_of(cancel)["METHOD"] == "CANCEL"
    assert str(events[2]["STATUS"]) == "CANCELLED"
    # The update carried a fresh link and killed the first one; the cancellation kills all.
    first, second = links_in(invite)[0], links_in(update)[0]
    assert first != second
    anyone = Client()
    assert anyone.get(f"/j/{first}/").status_code == 410
    response = anyone.get(f"/j/{second}/")
    assert response.status_code == 410 and "cancelled" in response.content.decode()


@pytest.mark.django_db
def test_dial_in_details_are_left_out_where_dial_in_is_off(alice_api, django_capture_on_commit_callbacks):
    alice_api.post("/api/v1/meetings/", booking_body(invitees=["ann@example.org"]), format="json")
    body = OutboundMessage.objects.get().body_text
    assert "dial-in" not in body.lower() and "conference code" not in body


@pytest.mark.django_db
def test_invitee_domains_are_checked_against_the_level(alice_api, carol_api):
    carol_api.patch(
        "/api/v1/classifications/official/", {"allowed_invitee_domains": ["example.gov"]}, format="json"
    )
    before = row_counts()
    response = alice_api.post(
        "/api/v1/meetings/", booking_body(invitees=["ok@example.gov", "eve@gmail.com"]), format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "invitees": ["eve@gmail.com: invitees of OFFICIAL meetings must have an address at example.gov."]
    }
    assert row_counts() == before and not Invitation.objects.exists()
    booked = alice_api.post(
        "/api/v1/meetings/", booking_body(invitees=["ok@example.gov"]), format="json"
    ).json()
    response = alice_api.post(
        f"/api/v1/meetings/{booked['id']}/invitations/", {"emails": ["x@evil.com"]}, format="json"
    )
    assert response.status_code == 400 and "x@evil.com" in response.json()["emails"][0]


@pytest.mark.django_db
def test_inviting_the_same_person_twice_is_refused_by_name(alice_api):
    booked = alice_api.post(
        "/api/v1/meetings/", booking_body(invitees=["ann@example.org"]), format="json"
    ).json()
    response = alice_api.post(
        f"/api/v1/meetings/{booked['id']}/invitations/", {"emails": ["ANN@example.org"]}, format="json"
    )
    assert response.status_code == 400
    assert "ann@example.org is already invited" in response.json()["emails"][0]


def _invite_and_get_token(alice_api, **overrides) -> tuple[dict, str]:
    """Book with one invitee; the token the invitee's mail will hold (opened from the sealed row)."""
    booked = alice_api.post(
        "/api/v1/meetings/", booking_body(invitees=["ann@example.org"], **overrides), format="json"
    ).json()
    assert "id" in booked, booked
    message = OutboundMessage.objects.filter(kind="invitation").latest("id")
    return booked, token_of(message)


@pytest.mark.django_db
def test_link_scanners_spend_nothing_and_the_human_post_succeeds(alice_api):
    booked, token = _invite_and_get_token(alice_api)
    for _ in range(3):
        response = Client().get(f"/j/{token}/")  # a fresh client: no cookies
        assert response.status_code == 200
        assert "Join “Quarterly review”?" in response.content.decode()
        assert response["Referrer-Policy"] == "no-referrer"
        assert response["Cache-Control"] == "no-store"
    for _ in range(2):
        assert Client().head(f"/j/{token}/").status_code == 200
    assert JoinLink.objects.get().redeemed_at is None

    human = Client(enforce_csrf_checks=True)
    page = human.get(f"/j/{token}/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = human.post(f"/j/{token}/", {"csrfmiddlewaretoken": csrf})
    assert response.status_code == 302
    waiting = human.get(response["Location"], follow=True)
    assert waiting.status_code == 200 and "the host will let you in" in waiting.content.decode()
    waiting_url = waiting.redirect_chain[-1][0]
    # The host sees the entry, and which invitation it came by.
    [entry] = alice_api.get(f"/api/v1/meetings/{booked['id']}/lobby/").json()
    assert (entry["status"], entry["source"], entry["invited_email"]) == (
        "waiting",
        "invitation",
        "ann@example.org",
    )
    assert JoinLink.objects.get().redeemed_at is not None
    assert AuditEvent.objects.filter(action="invitation_redeemed", subject="ann@example.org").count() == 1
    # The same browser comes back with the same link, to the same entry; anyone else gets 410.
    assert human.get(f"/j/{token}/", follow=True).redirect_chain[-1][0] == waiting_url
    assert len(alice_api.get(f"/api/v1/meetings/{booked['id']}/lobby/").json()) == 1
    gone = Client().get(f"/j/{token}/")
    assert gone.status_code == 410 and "already been used" in gone.content.decode()
    assert Client().post(f"/j/{token}/").status_code == 410
    assert Client().get(response["Location"]).status_code == 404  # not bound to that browser


@pytest.mark.django_db
def test_expired_revoked_and_resent_links_answer_410_saying_which(alice_api):
    booked, token = _invite_and_get_token(alice_api)
    JoinLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = Client().get(f"/j/{token}/")
    assert response.status_code == 410 and "expired" in response.content.decode()
    assert Client().post(f"/j/{token}/").status_code == 410

    invitation = Invitation.objects.get()
    base = f"/api/v1/meetings/{booked['id']}/invitations/{invitation.pk}/"
    assert alice_api.post(base + "resend/").status_code == 200
    new_token = token_of(OutboundMessage.objects.filter(kind="invitation").latest("id"))
    assert new_token != token
    # The old link says why it died: replaced by the new one, not revoked by the host.
    assert JoinLink.objects.get(token_hash=credentials.token_digest(token)).revoked_reason == "replaced"
    assert Client().get(f"/j/{new_token}/").status_code == 200
    assert alice_api.post(base + "revoke/").status_code == 200
    response = Client().get(f"/j/{new_token}/")
    assert response.status_code == 410 and "withdrawn" in response.content.decode()
    assert OutboundMessage.objects.filter(kind="invitation_cancel", to_email="ann@example.org").count() == 1
    assert Client().get("/j/" + "x" * 43 + "/").status_code == 404


@pytest.mark.django_db
def test_host_sees_delivery_and_redemption_state(alice_api, bob_api):
    booked, token = _invite_and_get_token(alice_api)
    rows = alice_api.get(f"/api/v1/meetings/{booked['id']}/invitations/").json()
    assert [(r["email"], r["redemption_state"], r["redeemed_at"]) for r in rows] == [
        ("ann@example.org", "live", None)
    ]
    assert rows[0]["delivery_status"] in ("pending", "sent")
    assert "token" not in str(rows) and token not in str(rows)
    Client().post(f"/j/{token}/")
    [row] = alice_api.get(f"/api/v1/meetings/{booked['id']}/invitations/").json()
    assert row["redemption_state"] == "spent" and row["redeemed_at"]
    invitation = Invitation.objects.get()
    for response in (
        bob_api.get(f"/api/v1/meetings/{booked['id']}/invitations/"),
        bob_api.post(
            f"/api/v1/meetings/{booked['id']}/invitations/", {"emails": ["b@example.org"]}, format="json"
        ),
        bob_api.post(f"/api/v1/meetings/{booked['id']}/invitations/{invitation.pk}/resend/"),
        bob_api.post(f"/api/v1/meetings/{booked['id']}/invitations/{invitation.pk}/revoke/"),
    ):
        assert response.status_code == 404
    assert Invitation.objects.count() == 1 and Invitation.objects.get().revoked_at is None


@pytest.mark.django_db
def test_invitee_list_uses_the_same_queries_for_10_and_1000_rows(
    alice_api, django_assert_num_queries, settings
):
    settings.ANTECHAMBER_INVITES_PER_REQUEST = 1000
    small = alice_api.post(
        "/api/v1/meetings/", booking_body(invitees=[f"p{i}@example.org" for i in range(10)]), format="json"
    ).json()
    large = alice_api.post(
        "/api/v1/meetings/", booking_body(invitees=[f"q{i}@example.org" for i in range(1000)]), format="json"
    ).json()
    counts = []
    for booked in (small, large):
        from django.db import connection as conn
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(conn) as queries:
            rows = alice_api.get(f"/api/v1/meetings/{booked['id']}/invitations/").json()
        counts.append(len(queries))
        assert len(rows) in (10, 1000)
    assert counts[0] == counts[1]


@pytest.mark.django_db
def test_secret_links_need_the_invited_account_with_a_second_factor(
    alice_api, django_user_model, bob, verified_client
):

    booked, token = _invite_and_get_token(alice_api, classification="secret")
    # The link alone lets nobody in, and spends nothing.
    page = Client().get(f"/j/{token}/").content.decode()
    assert "sign in as ann@example.org" in page
    assert Client().post(f"/j/{token}/").status_code == 403
    someone_else = Client()
    someone_else.force_login(bob)
    assert someone_else.post(f"/j/{token}/").status_code == 403
    ann = django_user_model.objects.create_user("ann", "ann@example.org", "irrelevant-pass-phrase")
    no_factor = Client()
    no_factor.force_login(ann)
    response = no_factor.post(f"/j/{token}/")
    assert response.status_code == 403 and "second factor" in response.content.decode()
    assert JoinLink.objects.get().redeemed_at is None

    verified = verified_client(ann)
    assert verified.post(f"/j/{token}/").status_code == 302
    assert JoinLink.objects.get().redeemed_at is not None


@pytest.mark.django_db
def test_guests_only_where_the_level_allows_them(alice_api, bob):
    ClassificationLevel.objects.filter(code="official").update(allow_guests=False)
    booked, token = _invite_and_get_token(alice_api)
    response = Client().post(f"/j/{token}/")
    assert response.status_code == 403 and "do not admit guests" in response.content.decode()
    signed_in = Client()
    signed_in.force_login(bob)
    assert signed_in.post(f"/j/{token}/").status_code == 302


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(20))
def test_fifty_simultaneous_redemptions_have_exactly_one_winner(alice_api, round_):
    booked, token = _invite_and_get_token(alice_api)
    barrier = threading.Barrier(50)
    statuses: list[int] = []
    lock = threading.Lock()

    def redeem() -> None:
        client = Client()
        try:
            barrier.wait(timeout=30)
            status = client.post(f"/j/{token}/").status_code
        finally:
            connection.close()
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=redeem) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == 50
    assert statuses.count(302) == 1, statuses
    assert statuses.count(410) == 49, statuses
    assert AuditEvent.objects.filter(action="invitation_redeemed").count() == 1


@pytest.mark.django_db
def test_host_invitee_page_invites_resends_and_revokes(alice_web, django_capture_on_commit_callbacks):
    from tests.test_views import form_data

    booked = alice_web.post(
        "/meetings/new/",
        {**form_data("official"), "invitees": "ann@example.org, ben@example.org"},
        follow=True,
    )
    assert booked.status_code == 200, booked.content
    meeting = booked.context["meeting"]
    page = alice_web.get(f"/meetings/{meeting.display_id}/invitations/").content.decode()
    assert "ann@example.org" in page and "ben@example.org" in page
    response = alice_web.post(
        f"/meetings/{meeting.display_id}/invitations/", {"emails": "cy@example.org not-an-address"}
    )
    assert (
        response.status_code == 400 and "not-an-address is not an e-mail address" in response.content.decode()
    )
    assert Invitation.objects.count() == 2
    alice_web.post(f"/meetings/{meeting.display_id}/invitations/", {"emails": "cy@example.org"})
    assert Invitation.objects.count() == 3
    ann = Invitation.objects.get(email="ann@example.org")
    alice_web.post(f"/meetings/{meeting.display_id}/invitations/{ann.pk}/revoke/")
    assert Invitation.objects.get(pk=ann.pk).revoked_at is not None
    alice_web.post(f"/meetings/{meeting.display_id}/invitations/{ann.pk}/resend/")
    assert Invitation.objects.get(pk=ann.pk).revoked_at is None
    assert JoinLink.objects.filter(invitation=ann, revoked_at__isnull=True).count() == 1


@pytest.mark.django_db
def test_link_post_accepts_the_null_origin_of_a_no_referrer_page_but_still_checks_the_token(alice_api):
    _booked, token = _invite_and_get_token(alice_api)
    forged = Client(enforce_csrf_checks=True)
    # A cross-site post (no CSRF token) fails, with any Origin.
    assert forged.post(f"/j/{token}/", HTTP_ORIGIN="https://evil.example").status_code == 403
    assert forged.post(f"/j/{token}/", HTTP_ORIGIN="null").status_code == 403
    # Another page of ours refuses Origin: null as Django always did.
    other = Client(enforce_csrf_checks=True)
    other.force_login(Invitation.objects.get().meeting.host)
    assert other.post("/meetings/new/", HTTP_ORIGIN="null").status_code == 403
    assert JoinLink.objects.get().redeemed_at is None
    human = Client(enforce_csrf_checks=True)
    page = human.get(f"/j/{token}/").content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = human.post(f"/j/{token}/", {"csrfmiddlewaretoken": csrf}, HTTP_ORIGIN="null")
    assert response.status_code == 302


@pytest.mark.django_db
def test_a_locked_meeting_takes_no_new_invitee_into_the_waiting_room(alice_api):
    booked, token = _invite_and_get_token(alice_api)
    assert alice_api.post(f"/api/v1/meetings/{booked['id']}/lock/").status_code == 200
    response = Client().post(f"/j/{token}/", follow=True)
    assert response.status_code == 409  # the meeting's state refuses it
    assert "no one new can join" in response.content.decode()
    assert alice_api.get(f"/api/v1/meetings/{booked['id']}/lobby/").json() == []
