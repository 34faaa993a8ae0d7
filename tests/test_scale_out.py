"""Scale-out: the Procfile's two web servers, two workers and beat, run by honcho.

One scenario (book with invitations, redeem the one-time links from the mail, join with
the passcode, admit) is driven through both web servers alternately, the same person's
GET and POST landing on different servers, and again through one server. The outcomes
(rows, lobby states, mail, audit chain) must be the same.
"""

import re
import sys
from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
import requests
from django.core.management import call_command

from meetings.models import AuditEvent, Invitation, LobbyEntry, Meeting, OutboundMessage
from tests import real_services as real
from tests.helpers import booking_body

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

INVITEES = 4
PASSCODE_JOINERS = 3
LINK_RE = re.compile(r"https?://[^/\s]+(/j/[A-Za-z0-9_-]+/)")
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def honcho_stack(tmp_path):
    real.needs_shared_database()
    controller, mailbox = real.start_smtp()
    redis_port, web1, web2, front = real.free_port(), real.free_port(), real.free_port(), real.free_port()
    redis = real.private_redis(redis_port)
    empty_env_file = tmp_path / "empty.env"  # the test's environment, not a developer's .env
    empty_env_file.write_text("")
    env = real.app_env(
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        smtp_port=controller.port,
        PATH=f"{Path(sys.executable).parent}:{real.os.environ.get('PATH', '')}",
        WEB1_PORT=str(web1),
        WEB2_PORT=str(web2),
        NGINX_PORT=str(front),
        NGINX_PREFIX=str(tmp_path / "nginx"),
        STATIC_ROOT_DIR=str(tmp_path / "static"),
        WEB_CONCURRENCY="1",
        WORKER_CONCURRENCY="1",
        BEAT_SCHEDULE=str(tmp_path / "beat-schedule"),
        SITE_URL=f"http://127.0.0.1:{web1}",
        DJANGO_DEBUG="0",
        ANTECHAMBER_OUTBOX_FLUSH_SECONDS="2",
    )
    honcho = real.Process(
        "honcho",
        [sys.executable, "-m", "honcho", "-e", str(empty_env_file), "-f", "Procfile", "start"],
        env,
    )
    try:
        redis.start(ready=b"Ready to accept connections")
        honcho.start()
        for port in (web1, web2):
            real.wait_until(lambda p=port: _answers(p), timeout=60, what=f"gunicorn on {port}")
        real.wait_until(
            lambda: (
                honcho.log_path.read_bytes().count(b"ready.") >= 2
                and b"beat: Starting" in honcho.log_path.read_bytes()
            ),
            timeout=60,
            what="two workers and beat",
        )
        # nginx, the Procfile's front door, passes requests on to the two servers.
        real.wait_until(lambda: _answers(front), timeout=30, what=f"nginx on {front}")
        yield [f"http://127.0.0.1:{web1}", f"http://127.0.0.1:{web2}"], mailbox
    finally:
        honcho.stop()
        redis.stop()
        controller.stop()


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _scenario(servers: list[str], mailbox: real.Mailbox, headers: dict[str, str], tag: str) -> dict:
    """Drive one meeting through `servers` in turn; return what can be compared."""
    turn = iter(range(10_000))

    def server() -> str:
        return servers[next(turn) % len(servers)]

    invitees = [f"{tag}-{i}@example.org" for i in range(INVITEES)]
    booked = requests.post(
        f"{server()}/api/v1/meetings/", json=booking_body(invitees=invitees), headers=headers, timeout=30
    )
    assert booked.status_code == 201, booked.text
    meeting_id, passcode = booked.json()["id"], booked.json()["passcode"]

    def invitations_for_us():
        return [m for m in mailbox.messages if m["To"] in invitees]

    real.wait_until(lambda: len(invitations_for_us()) >= INVITEES, timeout=60, what="the invitations")
    for message in invitations_for_us():
        body = message.get_body(preferencelist=("plain",)).get_content()
        path = LINK_RE.search(body).group(1)
        browser = requests.Session()
        # A mail scanner's GET on one server, the person's POST on another: both must agree.
        page = browser.get(f"{server()}{path}", timeout=30)
        assert page.status_code == 200, page.text[:500]
        csrf = CSRF_RE.search(page.text).group(1)
        redeemed = browser.post(f"{server()}{path}", data={"csrfmiddlewaretoken": csrf}, timeout=30)
        assert redeemed.status_code == 200 and "/join/" in redeemed.url, (redeemed.status_code, redeemed.url)
        someone_else = requests.get(f"{server()}{path}", timeout=30)  # spent, on every server
        assert someone_else.status_code == 410, someone_else.status_code

    for i in range(PASSCODE_JOINERS):
        joined = requests.post(
            f"{server()}/api/v1/join/",
            json={"meeting_id": meeting_id, "passcode": passcode, "display_name": f"Guest {i}"},
            timeout=30,
        )
        assert joined.status_code == 201, joined.text

    lobby = requests.get(f"{server()}/api/v1/meetings/{meeting_id}/lobby/", headers=headers, timeout=30)
    assert lobby.status_code == 200
    entries = sorted(lobby.json(), key=lambda e: e["display_name"])
    assert len(entries) == INVITEES + PASSCODE_JOINERS
    for n, entry in enumerate(entries):
        decision = "deny" if n == 0 else "admit"  # one refused, the rest let in
        decided = requests.post(
            f"{server()}/api/v1/meetings/{meeting_id}/lobby/{entry['id']}/{decision}/",
            headers=headers,
            timeout=30,
        )
        assert decided.status_code == 200, decided.text

    real.wait_until(
        lambda: (
            not OutboundMessage.objects.filter(
                meeting__public_id=_public(meeting_id), status__in=["pending", "sending"]
            ).exists()
        ),
        timeout=60,
        what="the outbox to drain",
    )  # noqa: E501
    meeting = Meeting.objects.get(public_id=_public(meeting_id))
    lobby_rows = LobbyEntry.objects.filter(meeting=meeting)
    return {
        "lobby": sorted(
            (_untagged(e.display_name, tag), e.status, e.source, e.invitation_id is not None)
            for e in lobby_rows
        ),
        "invitations": Invitation.objects.filter(meeting=meeting).count(),
        "links_spent": Invitation.objects.filter(meeting=meeting, links__redeemed_at__isnull=False).count(),
        "mail_sent": OutboundMessage.objects.filter(meeting=meeting, status="sent").count(),
        "mail_received": len(invitations_for_us()),
        "duplicates": len(invitations_for_us()) - len({m["Message-ID"] for m in invitations_for_us()}),
        "audit": Counter(
            AuditEvent.objects.filter(meeting_public_id=meeting.public_id).values_list("action", flat=True)
        ),
    }


def _public(display_id: str) -> str:
    from meetings.credentials import normalize_meeting_id

    return normalize_meeting_id(display_id)


def _untagged(name: str, tag: str) -> str:
    return name.replace(tag, "x")


def test_two_servers_give_the_same_outcome_as_one(honcho_stack, alice):
    from meetings.services import tokens

    servers, mailbox = honcho_stack
    _token, key = tokens.api_token_create(user=alice, label="scale-out")
    headers = {"Authorization": f"Token {key}"}

    through_both = _scenario(servers, mailbox, headers, tag="both")
    through_one = _scenario(servers[:1], mailbox, headers, tag="one")

    assert through_both == through_one
    assert through_both["mail_received"] == INVITEES and through_both["duplicates"] == 0
    statuses = Counter(status for _name, status, _source, _invited in through_both["lobby"])
    assert statuses == {"denied": 1, "admitted": INVITEES + PASSCODE_JOINERS - 1}
    out = StringIO()
    call_command("verify_audit", stdout=out)  # raises (non-zero exit) on a broken chain
    print(f"\nscale-out: same outcome through 2 servers and 1: {dict(statuses)}; {out.getvalue().strip()}")
