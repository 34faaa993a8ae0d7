"""Every kind of calendar mail, read by calendar software that did not write it.

khal (Debian's package) imports each message in turn, as a person's calendar would, and
lists what it holds; vobject (not the icalendar library that wrote them) parses each one.
"""

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import vobject

from meetings.models import Invitation, Meeting
from tests import real_services as real
from tests.mail import NEW_YORK, dst_switch, leaf_parts, part, sent
from tests.test_emails import book, new_york, run_tasks  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db

KINDS = ["request", "update", "resend", "revoke", "resend after revoke", "cancel"]


@pytest.fixture
def calendar_mails(alice_api, run_tasks):  # noqa: F811 - the fixture imported above
    """One invitee's mail through a meeting's life, the time moved across a DST change:
    09:00 New York is 14:00 UTC before it and 13:00 UTC after."""
    starts = new_york(dst_switch() - timedelta(days=2))
    booked = book(alice_api, run_tasks, starts_at=starts)
    base = f"/api/v1/meetings/{booked['id']}"
    ann = Invitation.objects.get()
    moved = {"starts_at": (starts + timedelta(days=4)).isoformat()}
    run_tasks(lambda: alice_api.patch(f"{base}/", moved, format="json"))
    run_tasks(lambda: alice_api.post(f"{base}/invitations/{ann.pk}/resend/"))
    run_tasks(lambda: alice_api.post(f"{base}/invitations/{ann.pk}/revoke/"))
    run_tasks(lambda: alice_api.post(f"{base}/invitations/{ann.pk}/resend/"))
    run_tasks(lambda: alice_api.post(f"{base}/cancel/"))
    messages = sent()
    assert len(messages) == len(KINDS)
    return starts, messages


KHAL_CONFIG = """\
[calendars]
[[invites]]
path = {vdir}
type = calendar
[locale]
timeformat = %H:%M
dateformat = %Y-%m-%d
longdateformat = %Y-%m-%d
datetimeformat = %Y-%m-%d %H:%M
longdatetimeformat = %Y-%m-%d %H:%M
local_timezone = America/New_York
default_timezone = America/New_York
[sqlite]
path = {db}
"""


class Khal:
    """khal with a config and a vdir of its own under a temporary directory."""

    def __init__(self, executable: str, root: Path) -> None:
        self.executable = executable
        self.vdir = root / "vdir" / "invites"
        self.vdir.mkdir(parents=True)
        self.config = root / "khal.conf"
        self.config.write_text(KHAL_CONFIG.format(vdir=self.vdir, db=root / "khal.db"))
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(root), "LANG": "C.UTF-8", "TZ": "UTC"}

    def run(self, *args: str) -> str:
        result = subprocess.run(
            [self.executable, "-c", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def import_(self, ics: Path) -> None:
        self.run("import", "--batch", "-a", "invites", str(ics))

    def events(self, year: int) -> list[list[str]]:
        listing = self.run(
            "list",
            "--once",
            "--day-format",
            "",
            "--format",
            "EVENT|{start}|{end}|{status}|{title}",
            f"{year}-01-01",
            f"{year + 1}-01-01",
        )
        return [line.split("|")[1:] for line in listing.splitlines() if line.startswith("EVENT|")]


@pytest.fixture
def khal(tmp_path):
    executable = shutil.which("khal") or ("/usr/bin/khal" if Path("/usr/bin/khal").exists() else None)
    if executable is None:
        real.missing("khal is not installed (apt-get install khal; make test installs it as root)")
    return Khal(executable, tmp_path)


def test_khal_imports_each_calendar_mail_and_updates_replace_the_event(calendar_mails, khal, tmp_path):
    starts, messages = calendar_mails
    first_day, moved_day = starts.date(), (starts + timedelta(days=4)).date()
    # What khal lists after each import, in New York time: the time, the status, one event.
    expected = {
        "request": (first_day, "CONFIRMED"),
        "update": (moved_day, "CONFIRMED"),
        "resend": (moved_day, "CONFIRMED"),
        # An uninvitation is a CANCEL without STATUS (RFC 5546 §3.2.5). khal is a calendar,
        # not an iTIP agent: it stores the entry as sent (raised SEQUENCE, no STATUS)
        # rather than deleting it; mail clients act on the METHOD.
        "revoke": (moved_day, ""),
        "resend after revoke": (moved_day, "CONFIRMED"),
        "cancel": (moved_day, "CANCELLED"),
    }
    for number, (kind, message) in enumerate(zip(KINDS, messages, strict=True)):
        ics = tmp_path / f"{number}-{kind.replace(' ', '-')}.ics"
        ics.write_text(part(message, "text/calendar"))
        khal.import_(ics)
        day, status = expected[kind]
        assert khal.events(starts.year) == [
            [f"{day} 09:00", f"{day} 09:30", f"{status} " if status else "", "[OFFICIAL] Quarterly review"]
        ], kind
        [stored] = khal.vdir.iterdir()  # replaced, never a second copy
        sequence = next(line for line in stored.read_text().splitlines() if line.startswith("SEQUENCE:"))
        assert sequence == f"SEQUENCE:{number}", kind
    utc_start = next(line for line in stored.read_text().splitlines() if line.startswith("DTSTART")).rsplit(
        ":", 1
    )[1]
    assert utc_start == (starts + timedelta(days=4)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def test_vobject_reads_every_calendar_mail_as_sent(calendar_mails):
    starts, messages = calendar_mails
    meeting = Meeting.objects.get()
    moved = starts + timedelta(days=4)
    expected = {  # kind: (METHOD, STATUS, start)
        "request": ("REQUEST", "CONFIRMED", starts),
        "update": ("REQUEST", "CONFIRMED", moved),
        "resend": ("REQUEST", "CONFIRMED", moved),
        "revoke": ("CANCEL", None, moved),
        "resend after revoke": ("REQUEST", "CONFIRMED", moved),
        "cancel": ("CANCEL", "CANCELLED", moved),
    }
    for number, (kind, message) in enumerate(zip(KINDS, messages, strict=True)):
        inline = part(message, "text/calendar")
        [attached] = [p for p in leaf_parts(message) if p.get_content_disposition() == "attachment"]
        for text in (inline, attached.get_content().decode()):
            parsed = vobject.readOne(text)
            method, status, start = expected[kind]
            assert parsed.method.value == method, kind
            event = parsed.vevent
            assert event.uid.value == f"{meeting.ics_uid}@antechamber"
            assert int(event.sequence.value) == number, kind
            assert (event.status.value if hasattr(event, "status") else None) == status, kind
            assert event.dtstart.value == start and event.dtstart.value.utcoffset() == timedelta(0), kind
            assert event.dtstart.value.astimezone(NEW_YORK).hour == 9
            assert event.dtend.value - event.dtstart.value == timedelta(minutes=30)
            assert event.organizer.value == "mailto:alice@example.org"
            assert event.attendee.value == "mailto:ann@example.org"
            assert isinstance(event.dtstamp.value, datetime)
