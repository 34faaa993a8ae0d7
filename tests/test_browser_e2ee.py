"""Issue 14's browser test: end-to-end encrypted media between real browsers, through a
real Janus, in a network namespace of its own (as tests/test_browser_media_flow.py).

One run (tests/e2ee_namespace.py) does everything in turn, because each step needs the
browsers of the step before; each test below asserts one behaviour on its report.
"""

import json

import pytest

from tests.e2ee_namespace import COLOURS, close_to
from tests.test_browser_media_flow import _prerequisites, private_namespace, run_in_namespace

pytestmark = pytest.mark.browser

RUN_TIMEOUT = 420  # a hang guard for the whole run, not a timing assertion


@pytest.fixture(scope="module")
def run() -> dict:
    _prerequisites()
    with private_namespace() as namespace:
        return run_in_namespace(namespace, "tests.e2ee_namespace", timeout=RUN_TIMEOUT)


def report(run: dict) -> str:
    return json.dumps({k: v for k, v in run.items() if k != "janus_log_tail"}, indent=1)


def test_two_browsers_in_an_e2ee_room_decrypt_and_show_each_others_picture(run):
    assert isinstance(run["alice_sees_dana_wait"], float), report(run)
    assert isinstance(run["dana_sees_alice_wait"], float), report(run)
    assert close_to(run["alice_sees_dana"]["rgb"], COLOURS["dana"]), report(run)
    assert close_to(run["dana_sees_alice"]["rgb"], COLOURS["alice"]), report(run)
    assert run["alice_sees_dana"]["framesDecoded"] > 0 and run["dana_sees_alice"]["framesDecoded"] > 0
    # "End-to-end encrypted" is shown once every incoming stream decrypts.
    assert run["encrypted_shown"] == {"alice": True, "dana": True}, report(run)


def test_a_tap_shows_a_plain_rooms_picture_but_not_an_e2ee_rooms(run):
    # The control: the same tap, on a room that is not end-to-end encrypted, sees Alice.
    assert isinstance(run["plain_tap_wait"], float), report(run)
    assert close_to(run["plain_tap"]["rgb"], COLOURS["alice"]), report(run)
    # On the E2EE room it subscribes and receives packets, but shows neither picture.
    assert sorted(run["e2ee_tap_feeds"]) == sorted([run["feeds"]["alice"], run["feeds"]["dana"]]), report(run)
    for who, seen in run["e2ee_tap"].items():
        assert seen["packetsReceived"] > 50, report(run)
        assert not close_to(seen["rgb"], COLOURS[who]), report(run)


def test_everyone_sees_the_same_security_code_and_it_changes_when_someone_joins(run):
    two, three = run["codes_two"], run["codes_three"]
    assert two["alice"] and two["alice"] == two["dana"], report(run)
    assert len(two["alice"].split()) == 6
    assert three["alice"] == three["dana"] == three["erin"], report(run)
    assert three["alice"] != two["alice"], report(run)
    assert isinstance(run["erin_sees_alice_wait"], float), report(run)
    assert isinstance(run["alice_sees_erin_wait"], float), report(run)
    # Dana left: the code changed again, for those still in.
    after = run["codes_after_removal"]
    assert after["alice"] == after["erin"] and after["alice"] not in (two["alice"], three["alice"]), report(
        run
    )


def test_a_removed_participant_stops_decoding_within_5_seconds_and_the_others_carry_on(run):
    assert run["dana_before_removal"]["framesDecoded"] > 0, report(run)
    at_5s, at_8s = run["dana_after_5s"], run["dana_after_8s"]
    assert at_5s["framesDecoded"] == at_8s["framesDecoded"], report(run)
    # Her page was told: it left the media, and the room page sent her back to the waiting room.
    assert "/room/" not in run["dana_page_after"]["path"] or "removed you" in run["dana_page_after"]["state"]
    carried_on = run["alice_sees_erin_after"]
    assert carried_on["frames_during"] > 30, report(run)
    assert close_to(carried_on["rgb"], COLOURS["erin"]), report(run)
    assert run["encrypted_after_removal"], report(run)
    # Her picture left the others' pages.
    dana = str(run["feeds"]["dana"])
    assert all(dana not in [feed for feed, _ in tiles] for tiles in run["tiles_after_removal"].values()), (
        report(run)
    )
    # Those still in made new sender keys, so Dana could not read what follows.
    before, after = run["send_keys"]["before"], run["send_keys"]["after"]
    assert all(after[who] and after[who] != before[who] for who in ("alice", "erin")), report(run)


def test_a_browser_with_only_the_older_encoded_streams_api_takes_part(run):
    # Erin's page had createEncodedStreams and no RTCRtpScriptTransform: the other path.
    assert run["erin_api"] == "streams", report(run)
    assert close_to(run["alice_sees_erin_after"]["rgb"], COLOURS["erin"]), report(run)


def test_a_browser_without_an_encoded_transform_api_is_refused_and_never_connects(run):
    fay = run["fay"]
    assert fay["join_disabled"], report(run)
    assert "cannot encrypt" in fay["state"], report(run)
    assert fay["peer_connections"] == 0 and not fay["in_janus"], report(run)


def test_a_browser_that_sends_without_encrypting_is_stopped(run):
    # Its sender transform does nothing; Janus cannot tell (it trusts the offer's e2ee
    # flag), so the page's watchdog must: it sees packets leave with no frame encrypted.
    gus = run["gus"]
    assert "Stopped: this browser sent" in gus["state"], report(run)
    assert not gus["in_janus"], report(run)
    # The page said so once and nothing after it replaced the reason (janus.js's teardown
    # of the session it left used to, as "Lost the media server").
    stopped = [i for i, text in enumerate(gus["states"]) if "Stopped: this browser sent" in text]
    assert stopped and all("Lost the media server" not in t for t in gus["states"][stopped[0] :]), report(run)
