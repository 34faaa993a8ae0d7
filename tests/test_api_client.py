"""A client generated from the live OpenAPI document works unedited (SPEC "Interfaces
(contract)"; issue 12).

openapi-python-client (pinned in the dev extras) generates a package from what
/api/schema/ serves; the test imports every module of it as generated and drives a real
server with it: the host books, invites, lists invitations; a participant with no
credentials joins by passcode; the host lists the lobby and admits. The host's client is
the generator's AuthenticatedClient, which sends `Authorization: Bearer <key>`.
"""

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from meetings.models import LobbyEntry
from meetings.services import tokens
from tests.helpers import future

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "antechamber_client"
# No post-hooks: the generator's default runs `ruff` over the output, which is not the
# point here and would tie the test to ruff's rules.
CONFIG = "post_hooks: []\n"


@pytest.fixture
def generated_client(live_server, tmp_path, monkeypatch):
    """The generated package, imported whole from tmp_path; forgotten afterwards."""
    response = requests.get(f"{live_server.url}/api/schema/", params={"format": "json"}, timeout=30)
    response.raise_for_status()
    (tmp_path / "schema.json").write_bytes(response.content)
    (tmp_path / "config.yaml").write_text(CONFIG)
    generated = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path", "schema.json",
            "--output-path", PACKAGE,
            "--meta", "none",
            "--config", "config.yaml",
            "--fail-on-warning",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stdout + generated.stderr

    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    package = importlib.import_module(PACKAGE)
    # Every module, not only the ones used below: a client that fails on import fails here.
    modules = [
        importlib.import_module(info.name) for info in pkgutil.walk_packages(package.__path__, f"{PACKAGE}.")
    ]
    assert any(name.endswith(".v1_join_create") for name in (m.__name__ for m in modules))
    yield package
    for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


@pytest.mark.django_db(transaction=True)
def test_a_generated_client_books_invites_joins_and_admits(
    generated_client, live_server, alice, tasks_in_process
):
    from antechamber_client import AuthenticatedClient, Client

    _token, key = tokens.api_token_create(user=alice, label="generated client")
    host = AuthenticatedClient(base_url=live_server.url, token=key, raise_on_unexpected_status=True)
    assert host.prefix == "Bearer"
    anyone = Client(base_url=live_server.url, raise_on_unexpected_status=True)
    # Closed at the end: a kept-alive connection holds a server thread, and with it a
    # database connection that would keep PostgreSQL from dropping the test database.
    with host, anyone:
        _book_invite_join_admit(host, anyone)


def _book_invite_join_admit(host, anyone):
    from antechamber_client.api.v1 import (
        v1_join_create,
        v1_meetings_create,
        v1_meetings_invitations_create,
        v1_meetings_invitations_list,
        v1_meetings_list,
        v1_meetings_lobby_admit_create,
        v1_meetings_lobby_list,
    )
    from antechamber_client.models import (
        ErrorOutput,
        InvitationsCreateInputRequest,
        JoinedOutput,
        JoinInputRequest,
        LobbyEntryStatusEnum,
        MeetingBookInputRequest,
        MeetingWithPasscodeOutput,
        ValidationErrorOutput,
    )

    # Book.
    booking = MeetingBookInputRequest.from_dict(
        {
            "title": "Board meeting",
            "starts_at": future(),
            "duration_minutes": 60,
            "timezone": "Europe/London",
            "classification": "official",
            "waiting_room": True,
        }
    )
    booked = v1_meetings_create.sync_detailed(client=host, body=booking)
    assert booked.status_code == 201, booked.content
    meeting = booked.parsed
    assert isinstance(meeting, MeetingWithPasscodeOutput)
    assert meeting.passcode and meeting.classification == "official"
    assert [m.id for m in v1_meetings_list.sync(client=host)] == [meeting.id]

    # Invite, and list the invitations.
    invited = v1_meetings_invitations_create.sync_detailed(
        meeting.id,
        client=host,
        body=InvitationsCreateInputRequest(emails=["dana@example.org", "eve@example.org"]),
    )
    assert invited.status_code == 201, invited.content
    listed = v1_meetings_invitations_list.sync(meeting.id, client=host)
    assert sorted(invitation.email for invitation in listed) == ["dana@example.org", "eve@example.org"]

    # Join by passcode, with no credentials at all.
    joined = v1_join_create.sync_detailed(
        client=anyone,
        body=JoinInputRequest(meeting_id=meeting.id, passcode=meeting.passcode, display_name="Frank"),
    )
    assert joined.status_code == 201, joined.content
    assert isinstance(joined.parsed, JoinedOutput)
    entry = joined.parsed.entry
    assert entry.status == LobbyEntryStatusEnum.WAITING

    # The host sees Frank waiting and admits him.
    lobby = v1_meetings_lobby_list.sync(meeting.id, client=host)
    assert [(e.id, e.display_name, e.status) for e in lobby] == [
        (entry.id, "Frank", LobbyEntryStatusEnum.WAITING)
    ]
    admitted = v1_meetings_lobby_admit_create.sync(meeting.id, entry.id, client=host)
    assert admitted.status == LobbyEntryStatusEnum.ADMITTED
    assert LobbyEntry.objects.get(pk=entry.id).status == LobbyEntry.Status.ADMITTED
    assert v1_meetings_lobby_list.sync(meeting.id, client=host)[0].status == LobbyEntryStatusEnum.ADMITTED

    # Refusals parse into the documented error types.
    wrong = v1_join_create.sync(
        client=anyone,
        body=JoinInputRequest(meeting_id=meeting.id, passcode="not-the-passcode", display_name="Mallory"),
    )
    assert isinstance(wrong, ErrorOutput) and wrong.code == "wrong"
    bad = v1_meetings_invitations_create.sync(
        meeting.id, client=host, body=InvitationsCreateInputRequest(emails=["not-an-address"])
    )
    assert isinstance(bad, ValidationErrorOutput)
    assert bad["emails"].to_dict() == {"0": ["Enter a valid email address."]}
    unsigned = v1_meetings_list.sync_detailed(client=anyone)
    assert unsigned.status_code == 401
    assert isinstance(unsigned.parsed, ErrorOutput) and unsigned.parsed.code == "not_authenticated"
