"""Invitation fan-out: one request inviting 5,000 people, then 2 Celery worker processes
hand all 5,000 messages to a loopback SMTP server (aiosmtpd).

Figures: the request's time, and the time from the request's start until the SMTP server
holds all 5,000; over the time a bare script (smtplib) takes to send 5,000 messages of the
same size over one SMTP connection to the same server.
Run: .venv/bin/python benchmarks/fanout.py   (or `make bench`)
"""

import re
import smtplib
import threading
import time
from collections import Counter
from datetime import timedelta

import harness

INVITEES = 5000
DEADLINE = 420
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.M | re.I)


class CountingMailbox:
    """Counts what arrives by Message-ID; parses nothing else, so the server stays cheap."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: Counter[bytes] = Counter()
        self.last_at = 0.0

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler protocol
        match = MESSAGE_ID.search(envelope.original_content or envelope.content)
        with self.lock:
            self.ids[match.group(1) if match else b"?"] += 1
            self.last_at = time.perf_counter()
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return sum(self.ids.values())


def main() -> None:
    from aiosmtpd.controller import Controller

    with harness.Stack() as stack:
        mailbox = CountingMailbox()
        smtp = Controller(mailbox, hostname="127.0.0.1", port=harness.free_port())
        smtp.start()
        stack.callback(smtp.stop)
        stack.redis()
        env = harness.configure(redis_url=stack.redis_url, smtp_port=smtp.port)
        harness.reset_database()
        import requests
        from django.conf import settings
        from django.contrib.auth.models import User
        from django.utils import timezone

        from meetings import emails
        from meetings.models import ClassificationLevel, OutboundMessage
        from meetings.services import booking, delivery, tokens

        host = User.objects.create_user("bench-host", "host@example.org")
        key = tokens.api_token_create(user=host, label="bench")[1]
        booked = booking.meeting_book(
            host=host,
            title="All hands",
            starts_at=timezone.now() + timedelta(days=1),
            duration_minutes=60,
            classification=ClassificationLevel.objects.get(code="official"),
            host_has_second_factor=True,
        )

        # Baseline: the same message (text, HTML and ICS parts) 5,000 times over one connection.
        from django.core.mail import EmailMultiAlternatives

        sample = emails.invitation(
            meeting=booked.meeting,
            email="someone@example.org",
            link_url="http://127.0.0.1/j/" + "x" * 43 + "/",
            update=False,
        )
        mime = EmailMultiAlternatives(subject=sample.subject, body=sample.text, to=["someone@example.org"])
        mime.attach_alternative(sample.html, "text/html")
        mime.attach("invite.ics", sample.ics_text, "text/calendar; method=REQUEST; charset=utf-8")
        raw = mime.message().as_bytes(linesep="\r\n")  # as Django's SMTP backend sends it
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", smtp.port) as connection:
            for n in range(INVITEES):
                connection.sendmail("antechamber@localhost", [f"person{n}@example.org"], raw)
        bare_seconds = time.perf_counter() - started
        stack.real.wait_until(lambda: mailbox.count() >= INVITEES, timeout=60, what="the bare messages")
        mailbox.ids.clear()

        stack.worker(env, "fanout-1")
        stack.worker(env, "fanout-2")
        url, _web = stack.web(env, workers=2)
        started = time.perf_counter()
        response = requests.post(
            f"{url}/api/v1/meetings/{booked.meeting.display_id}/invitations/",
            json={"emails": [f"person{n}@example.org" for n in range(INVITEES)]},
            headers={"Authorization": f"Token {key}"},
            timeout=DEADLINE,
        )
        request_seconds = time.perf_counter() - started
        if response.status_code != 201 or len(response.json()) != INVITEES:
            raise SystemExit(f"invite failed: {response.status_code} {response.text[:300]}")
        stack.real.wait_until(
            lambda: len(mailbox.ids) >= INVITEES, timeout=DEADLINE, interval=0.2, what=f"{INVITEES} messages"
        )
        delivered_seconds = mailbox.last_at - started
        time.sleep(2)  # anything sent twice would have arrived by now
        distinct = len(mailbox.ids)
        duplicates = sum(count - 1 for count in mailbox.ids.values())
        sent_rows = OutboundMessage.objects.filter(status="sent").count()
        harness.drop_data()

    ratio = delivered_seconds / bare_seconds
    print(
        f"bare smtplib, one connection: {INVITEES} messages ({len(raw)} bytes each) in {bare_seconds:.1f}s ({INVITEES / bare_seconds:.0f}/s)"
    )
    print(f"request inviting {INVITEES}: {request_seconds:.1f}s")
    print(
        f"request start to all {INVITEES} at the SMTP server (2 workers): {delivered_seconds:.1f}s ({INVITEES / delivered_seconds:.0f}/s)"
    )
    print(
        f"ratio delivered/bare: {ratio:.1f}; distinct {distinct}, duplicates {duplicates}, rows sent {sent_rows}"
    )
    harness.record(
        [
            (
                "fan-out: request inviting 5,000 / bare SMTP send of 5,000",
                "(reported)",
                f"{request_seconds:.1f} s / {bare_seconds:.1f} s",
                f"{request_seconds / bare_seconds:.1f}",
            ),
            (
                "fan-out: all 5,000 at the SMTP server via 2 workers / bare SMTP send of 5,000",
                "<= 3",
                f"{delivered_seconds:.1f} s / {bare_seconds:.1f} s",
                f"{ratio:.1f}",
            ),
        ],
        f"""One POST /api/v1/meetings/<id>/invitations/ with {INVITEES} addresses (token auth, gunicorn, PostgreSQL):
{request_seconds:.1f}s, in which it writes {INVITEES} invitations, links and outbox rows (the message rendered
once: text, HTML, ICS, each invitee's ATTENDEE line and sealed link apart) and publishes one Celery task per
{settings.ANTECHAMBER_OUTBOX_BATCH} messages after commit. Two `celery worker --concurrency=1` processes then send
each batch over one SMTP connection (Django's SMTP backend), claiming rows {delivery.CLAIM_CHUNK} at a time
(`UPDATE … RETURNING`) and recording them sent once per {delivery.CLAIM_CHUNK}, to an aiosmtpd server on loopback: all {INVITEES} had arrived {delivered_seconds:.1f}s after the request began
({INVITEES / delivered_seconds:.0f}/s); distinct Message-IDs {distinct}, duplicates {duplicates}, rows marked
sent {sent_rows}. Baseline: a bare smtplib loop sending the same {len(raw)}-byte message {INVITEES} times over
one connection to the same server: {bare_seconds:.1f}s ({INVITEES / bare_seconds:.0f}/s). Target for the
delivery figure: 3 or less. Load average at the end: {harness.load_average()}.""",
    )


if __name__ == "__main__":
    main()
