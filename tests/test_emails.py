"""What invitees' mail says and how it is packed (RFC 5545, 5546, 6047), through the API."""

import re
from datetime import UTC, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from html import unescape

import pytest
from django.core import mail
from django.utils import timezone

from meetings.models import ClassificationLevel, Invitation, Meeting, OutboundMessage
from tests.helpers import booking_body
from tests.mail import NEW_YORK, alternative, calendar, dst_switch, event, leaf_parts, part, sent

pytestmark = pytest.mark.django_db


def unfold(ics: str) -> str:
    return re.sub(r"\r?\n[ \t]", "", ics)


LINK_RE = re.compile(r"https?://[^\s\"'<>]+/j/[A-Za-z0-9_-]{43}/")


@pytest.fixture
def run_tasks(django_capture_on_commit_callbacks, tasks_in_process):
    """Tasks run in-process on commit, as without REDIS_URL; mail lands in mail.outbox."""

    def run(call):
        with django_capture_on_commit_callbacks(execute=True):
            response = call()
        assert response.status_code < 300, response.content
        return response

    return run


def book(alice_api, run_tasks, *, starts_at: datetime, **overrides) -> dict:
    data = booking_body(
        starts_at=starts_at.isoformat(),
        duration_minutes=30,
        timezone="America/New_York",
        invitees=["ann@example.org"],
        **overrides,
    )
    return run_tasks(lambda: alice_api.post("/api/v1/meetings/", data, format="json")).json()


def new_york(day, hour: int = 9) -> datetime:
    return datetime.combine(day, time(hour), NEW_YORK)


# Wall-clock times either side of the spring-forward day: 09:00 New York is 14:00 UTC in
# winter (EST, -05:00) and 13:00 UTC in summer (EDT, -04:00).
DST_CASES = [(-2, "14:00–14:30", "EST"), (+2, "13:00–13:30", "EDT")]


@pytest.mark.parametrize(("days", "utc", "abbreviation"), DST_CASES, ids=["before-dst", "after-dst"])
def test_every_part_says_the_host_wall_clock_time_and_utc(alice_api, run_tasks, days, utc, abbreviation):
    starts = new_york(dst_switch() + timedelta(days=days))
    book(alice_api, run_tasks, starts_at=starts)
    [message] = sent()
    description = str(event(message)["DESCRIPTION"])
    for text in (part(message, "text/plain"), unescape(part(message, "text/html")), description):
        assert f"09:00–09:30 {abbreviation} (America/New_York, the host's time zone)" in text, text
        assert f"{utc} UTC" in text, text
        assert starts.strftime("%A %-d %B %Y") in text
    assert event(message).decoded("DTSTART") == starts
    assert (
        event(message)["DTSTART"].to_ical() == starts.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ").encode()
    )  # calendars in UTC


@pytest.mark.parametrize(("days", "utc", "abbreviation"), DST_CASES, ids=["before-dst", "after-dst"])
def test_a_cancellation_says_when_the_meeting_was_in_the_host_zone(
    alice_api, run_tasks, days, utc, abbreviation
):
    booked = book(alice_api, run_tasks, starts_at=new_york(dst_switch() + timedelta(days=days)))
    mail.outbox.clear()
    run_tasks(lambda: alice_api.post(f"/api/v1/meetings/{booked['id']}/cancel/"))
    [message] = sent()
    for text in (
        part(message, "text/plain"),
        unescape(part(message, "text/html")),
        str(event(message)["DESCRIPTION"]),
    ):
        assert "Was: " in text
        assert f"09:00–09:30 {abbreviation} (America/New_York, the host's time zone)" in text, text
        assert f"{utc} UTC" in text, text


def test_an_invitation_is_imip_inside_the_alternative_with_one_charset(alice_api, run_tasks):
    book(alice_api, run_tasks, starts_at=new_york(dst_switch() + timedelta(days=3)))
    [message] = sent()
    assert message.get_content_type() == "multipart/mixed"
    inner = alternative(message)
    assert [p.get_content_type() for p in inner.iter_parts()] == ["text/plain", "text/html", "text/calendar"]
    calendar_part = list(inner.iter_parts())[2]
    content_type = calendar_part["Content-Type"]
    assert calendar_part.get_param("method") == "REQUEST"
    assert content_type.lower().count("charset") == 1, content_type
    assert calendar_part.get_content_charset() == "utf-8"
    assert calendar_part.get_content_disposition() is None  # the inline iMIP body, not an attachment
    # The same calendar as an .ics attachment, for clients that only look there.
    [attached] = [p for p in leaf_parts(message) if p.get_content_disposition() == "attachment"]
    assert attached.get_filename() == "invite.ics"
    assert attached.get_content().decode().replace("\r\n", "\n") == part(message, "text/calendar")
    for leaf in leaf_parts(message):
        assert str(leaf["Content-Type"]).lower().count("charset") <= 1, leaf["Content-Type"]
    # A real zone: "-0000" would say the zone is unknown (RFC 5322 §3.3).
    date_header = str(message["Date"])
    assert re.search(r"[+-]\d{4}$", date_header) and not date_header.endswith("-0000"), date_header
    assert abs(parsedate_to_datetime(date_header) - timezone.now()) < timedelta(minutes=1)


def test_organizer_is_the_sender_address_when_the_host_has_none(alice_api, alice, run_tasks, settings):
    alice.email = ""
    alice.save()
    settings.DEFAULT_FROM_EMAIL = "Antechamber <meetings@antechamber.example>"
    book(alice_api, run_tasks, starts_at=new_york(dst_switch() + timedelta(days=3)))
    [message] = sent()
    assert str(event(message)["ORGANIZER"]) == "mailto:meetings@antechamber.example"


def test_organizer_is_the_hosts_own_address(alice_api, alice, run_tasks):
    assert alice.email
    book(alice_api, run_tasks, starts_at=new_york(dst_switch() + timedelta(days=3)))
    [message] = sent()
    assert str(event(message)["ORGANIZER"]) == f"mailto:{alice.email}"


def sequences_and_methods(messages) -> list[tuple[str, int, str | None]]:
    result = []
    for message in messages:
        vevent = event(message)
        status = str(vevent["STATUS"]) if "STATUS" in vevent else None
        result.append((str(calendar(message)["METHOD"]), int(vevent["SEQUENCE"]), status))
    return result


def test_sequence_rises_on_every_resend_revoke_change_and_cancel(alice_api, run_tasks):
    booked = book(alice_api, run_tasks, starts_at=new_york(dst_switch() + timedelta(days=3)))
    ann = Invitation.objects.get()
    base = f"/api/v1/meetings/{booked['id']}"
    run_tasks(lambda: alice_api.post(f"{base}/invitations/{ann.pk}/resend/"))
    run_tasks(lambda: alice_api.post(f"{base}/invitations/{ann.pk}/revoke/"))
    run_tasks(lambda: alice_api.post(f"{base}/invitations/{ann.pk}/resend/"))
    run_tasks(lambda: alice_api.patch(f"{base}/", {"title": "Renamed"}, format="json"))
    run_tasks(lambda: alice_api.post(f"{base}/cancel/"))
    seen = sequences_and_methods(sent())
    assert [method for method, _, _ in seen] == [
        "REQUEST",
        "REQUEST",
        "CANCEL",
        "REQUEST",
        "REQUEST",
        "CANCEL",
    ]
    numbers = [number for _, number, _ in seen]
    assert numbers == sorted(set(numbers)), numbers  # strictly rising, one invitee's view
    # Uninviting one attendee is a CANCEL without STATUS (RFC 5546 §3.2.5); the whole
    # meeting's cancellation carries STATUS:CANCELLED.
    assert seen[2][2] is None and seen[5][2] == "CANCELLED"


def test_revoking_one_invitee_sends_that_attendee_a_cancel_naming_them(alice_api, run_tasks):
    booked = alice_api.post(
        "/api/v1/meetings/",
        booking_body(invitees=["ann@example.org", "ben@example.org"]),
        format="json",
    ).json()
    ann = Invitation.objects.get(email="ann@example.org")
    run_tasks(lambda: alice_api.post(f"/api/v1/meetings/{booked['id']}/invitations/{ann.pk}/revoke/"))
    [message] = sent()
    assert message["To"] == "ann@example.org"
    vevent = event(message)
    assert str(calendar(message)["METHOD"]) == "CANCEL"
    assert "STATUS" not in vevent
    assert str(vevent["ATTENDEE"]) == "mailto:ann@example.org"  # the one being removed
    meeting = Meeting.objects.get()
    assert str(vevent["UID"]) == f"{meeting.ics_uid}@antechamber"
    assert int(vevent["SEQUENCE"]) == meeting.sequence > 0
    assert "withdrew your invitation" in part(message, "text/plain")


def test_an_update_says_what_changed(alice_api, run_tasks):
    starts = new_york(dst_switch() - timedelta(days=2))
    booked = book(alice_api, run_tasks, starts_at=starts)
    mail.outbox.clear()
    moved = starts + timedelta(days=4)  # same wall-clock hour, now in summer time
    run_tasks(
        lambda: alice_api.patch(
            f"/api/v1/meetings/{booked['id']}/",
            {"starts_at": moved.isoformat(), "title": "Moved review", "duration_minutes": 45},
            format="json",
        )
    )
    [message] = sent()
    for text in (part(message, "text/plain"), unescape(part(message, "text/html"))):
        assert "Time changed: was " in text, text
        was, now = text.split("Time changed: was ", 1)[1].split(", now ", 1)
        assert "09:00–09:30 EST" in was and "14:00–14:30 UTC" in was
        assert "09:00–09:45 EDT" in now and "13:00–13:45 UTC" in now
        assert "Title changed: was “Quarterly review”, now “Moved review”" in text
        assert "passcode" not in text.lower()


def test_cancelling_a_meeting_that_has_ended_sends_nothing(alice_api, run_tasks, settings):
    booked = book(alice_api, run_tasks, starts_at=new_york(dst_switch() + timedelta(days=3)))
    mail.outbox.clear()
    meeting = Meeting.objects.get()
    Meeting.objects.filter(pk=meeting.pk).update(
        starts_at=timezone.now() - timedelta(hours=2), ends_at=timezone.now() - timedelta(hours=1)
    )
    refused = alice_api.post(f"/api/v1/meetings/{booked['id']}/cancel/")
    assert refused.status_code == 409 and refused.json()["code"] == "meeting_ended"
    assert sent() == []
    assert not OutboundMessage.objects.filter(kind="invitation_cancel").exists()


@pytest.mark.parametrize(
    ("level", "in_calendar"),
    [("official", True), ("official-sensitive", False), ("secret", False)],
)
def test_the_personal_link_is_in_the_calendar_only_where_the_level_allows(
    alice_api, run_tasks, level, in_calendar
):
    ClassificationLevel.objects.filter(code__in=["official-sensitive", "secret"]).update(
        require_host_mfa=False, require_participant_mfa=False, allowed_invitee_domains=[]
    )
    book(alice_api, run_tasks, starts_at=new_york(dst_switch() + timedelta(days=3)), classification=level)
    [message] = sent()
    [link] = LINK_RE.findall(part(message, "text/plain"))
    assert link in unescape(part(message, "text/html"))
    ics = part(message, "text/calendar")
    unfolded = unfold(ics)
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert (token in unfolded) is in_calendar
    [attached] = [p for p in leaf_parts(message) if p.get_content_disposition() == "attachment"]
    assert (token in unfold(attached.get_content().decode())) is in_calendar
    if not in_calendar:
        assert "use the personal join link in the invitation mail" in str(event(message)["DESCRIPTION"])


def test_levels_say_whether_the_link_may_be_in_the_calendar(bob_api, carol_api):
    levels = {lv["code"]: lv["link_in_calendar"] for lv in bob_api.get("/api/v1/classifications/").json()}
    assert levels == {"official": True, "official-sensitive": False, "secret": False, "top-secret": False}
    response = carol_api.patch(
        "/api/v1/classifications/official/", {"link_in_calendar": False}, format="json"
    )
    assert response.status_code == 200, response.content
    assert ClassificationLevel.objects.get(code="official").link_in_calendar is False


# Addresses whose ATTENDEE line folds (long ones), or holds characters beyond ASCII.
FANOUT_ADDRESSES = [
    "ann@example.org",
    "first.last+calendar@example.org",
    "a-very-long-local-part-that-makes-the-attendee-line-fold@sub.domain.example.org",
    "x" * 60 + "@" + "y" * 60 + ".example.org",
    "ünïcode@bücher.example",
]


def _description(ics: str) -> str:
    from icalendar import Calendar

    return str(Calendar.from_ical(ics).walk("VEVENT")[0]["DESCRIPTION"])


def test_a_fanout_gives_every_invitee_the_calendar_entry_rendering_it_alone_would(alice_api, monkeypatch):
    # The invitations of one request are rendered once, the calendar entry with a
    # placeholder attendee; each address's entry must still be, byte for byte, the one
    # _calendar builds for that address alone.
    from meetings import emails, sealing

    response = alice_api.post("/api/v1/meetings/", booking_body(dial_in=True), format="json")
    assert response.status_code == 201, response.content
    meeting = Meeting.objects.get(host__username="alice")
    stamp = timezone.now()
    monkeypatch.setattr(emails.timezone, "now", lambda: stamp)  # one DTSTAMP for the comparison
    for update, link in [(False, sealing.LINK_PLACEHOLDER), (True, None)]:
        messages = emails.invitations(meeting=meeting, emails=FANOUT_ADDRESSES, link_url=link, update=update)
        assert len({(m.subject, m.text, m.html) for m in messages}) == 1
        for address, message in zip(FANOUT_ADDRESSES, messages, strict=True):
            assert f"mailto:{address}" in unfold(message.ics_text)
            assert message.ics_text == emails._calendar(
                meeting=meeting,
                attendee=address,
                method="REQUEST",
                description=_description(message.ics_text),
            )
    cancelled = emails.invitations_cancelled(meeting=meeting, emails=FANOUT_ADDRESSES, reason="Off.")
    for address, message in zip(FANOUT_ADDRESSES, cancelled, strict=True):
        assert message.ics_text == emails._calendar(
            meeting=meeting, attendee=address, method="CANCEL", description=message.text
        )


def test_inviting_many_renders_each_template_once(alice_api):
    # 30 invitees in one request: the templates are rendered once for all, not once each.
    from collections import Counter

    from django.test.signals import template_rendered

    response = alice_api.post("/api/v1/meetings/", booking_body(), format="json")
    assert response.status_code == 201, response.content
    rendered: Counter[str] = Counter()

    def count(sender, template, **kwargs):
        if template.name and template.name.startswith("meetings/email/"):
            rendered[template.name] += 1

    template_rendered.connect(count)
    try:
        response = alice_api.post(
            f"/api/v1/meetings/{response.json()['id']}/invitations/",
            {"emails": [f"guest{n}@example.org" for n in range(30)]},
            format="json",
        )
    finally:
        template_rendered.disconnect(count)
    assert response.status_code == 201, response.content
    assert OutboundMessage.objects.filter(kind="invitation").count() == 30
    assert rendered == {
        "meetings/email/invitation.txt": 1,
        "meetings/email/invitation.html": 1,
        "meetings/email/invitation_calendar.txt": 1,
    }


def test_the_mail_as_received_has_the_dial_in_code_that_no_stored_body_has(alice_api, run_tasks):
    from meetings import sealing

    booked = book(
        alice_api, run_tasks, starts_at=new_york(timezone.now().date() + timedelta(days=3)), dial_in=True
    )
    code = booked["dial_in_code"]
    # SECURITY: the stored copy names the code by a placeholder, and nothing sealed is left.
    [row] = OutboundMessage.objects.filter(kind="invitation")
    assert code not in row.body_text + row.body_html + row.ics_text
    [message] = sent()
    text, html = part(message, "text/plain"), part(message, "text/html")
    assert f"then the conference code {code}." in text
    assert f"<strong>{code}</strong>" in html
    assert f"then the conference code {code}." in str(event(message)["DESCRIPTION"])
    raw = message.as_string()
    assert sealing.DIAL_IN_PLACEHOLDER not in raw and "tel:" not in raw
    assert sealing.DIAL_IN_PLACEHOLDER in row.body_text
    assert row.sealed_dial_in_code == "" and row.status == OutboundMessage.Status.SENT
