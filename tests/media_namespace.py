"""The two-browser media run, executed inside a network namespace the test made.

tests/test_browser_media_flow.py runs `ip netns exec <ns> python -m tests.media_namespace
<workdir> <interface>`: everything here (Janus, the web server, Chromium) sees only that
namespace's `lo` and the veth interface the test gave an address, so no media can reach
any address outside the test. The result is one JSON object on stdout's last line.

The PostgreSQL and Redis a test run may use are outside the namespace and unreachable
from it, so this run has its own SQLite file database in <workdir>, migrated here.
"""

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

FAKE_MEDIA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
# Janus ignores mDNS candidates (ignore_mdns in tests/janus/janus.jcfg): Chromium must
# offer the interface's real address instead of a .local name.
EXTRA_DISABLED_FEATURES = ["WebRtcHideLocalIpsWithMdns"]
# The functional timeout: each page receives the other's video within this.
MEDIA_TIMEOUT_MS = 30_000
PASSWORD = "correct horse battery staple"

# Wraps RTCPeerConnection so the test can read inbound-rtp statistics: janus.js keeps its
# peer connections private. Runs before any page script (CDP, so the CSP does not apply).
RECORD_PEER_CONNECTIONS = """
(() => {
  const Original = window.RTCPeerConnection;
  window.__peerConnections = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Original(...args);
    window.__peerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Original);
})();
"""

# The other's video is playing in this page, in the tile for their feed.
PLAYING = """
(feed) => {
  const v = document.querySelector(`#media-videos figure.remote[data-feed="${feed}"] video`);
  return Boolean(v && v.videoWidth > 0 && !v.paused);
}
"""

# What this page receives from the other: the remote tile for that feed, and the decoded
# video frames and ICE pair of every connection.
RECEIVED = """
async (feed) => {
  const video = document.querySelector(`#media-videos figure.remote[data-feed="${feed}"] video`);
  let framesDecoded = 0, inboundVideo = 0, pairs = [];
  for (const pc of window.__peerConnections || []) {
    const stats = await pc.getStats();
    const byId = new Map();
    stats.forEach((s) => byId.set(s.id, s));
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        inboundVideo += 1;
        framesDecoded += s.framesDecoded || 0;
      }
      if (s.type === "candidate-pair" && s.state === "succeeded" && s.nominated) {
        const local = byId.get(s.localCandidateId), remote = byId.get(s.remoteCandidateId);
        pairs.push(`${local && local.address} -> ${remote && remote.address}`);
      }
    });
  }
  return {
    tile: Boolean(video),
    caption: video ? video.parentElement.querySelector("figcaption").textContent : null,
    videoWidth: video ? video.videoWidth : 0,
    videoHeight: video ? video.videoHeight : 0,
    framesDecoded, inboundVideo, pairs,
    state: document.getElementById("media-state").textContent,
  };
}
"""


def step(what: str) -> None:
    """Progress on stderr: where a failed or stuck run got to."""
    print(f"media run: {what}", file=sys.stderr, flush=True)


def playwright_disabled_features() -> str:
    """The `--disable-features=...` switch the installed Playwright passes to Chromium.

    Chromium honours only the last --disable-features on its command line, so adding a
    second one would silently re-enable everything Playwright disables. Instead the test
    drops Playwright's switch (ignore_default_args needs it verbatim) and passes one
    merged list. Read from Playwright's own chromiumSwitches source, so it follows upgrades.
    """
    import playwright

    bundle = Path(playwright.__file__).parent / "driver" / "package" / "lib" / "coreBundle.js"
    text = bundle.read_text()
    match = re.search(r"disabledFeatures = \[(.*?)\]\.filter\(Boolean\)", text, re.S)
    if match is None:
        raise RuntimeError(f"no disabledFeatures list in {bundle}: Playwright changed")
    body = re.sub(r"//[^\n]*", "", match.group(1))
    return ",".join(re.findall(r'"([^"]+)"', body))


def chromium_command_lines(root_pid: int) -> list[list[str]]:
    """Command lines of the Chromium browser processes (Playwright's) under `root_pid`."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])

    def descends(pid: int) -> bool:
        while pid in parents and pid > 1:
            if parents[pid] == root_pid:
                return True
            pid = parents[pid]
        return False

    lines = []
    for pid in parents:
        if not descends(pid):
            continue
        try:
            argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        # The browser process itself: not its renderers and helpers (--type=...), nor
        # chrome_crashpad_handler, which also lives under /usr/lib/chromium.
        if Path(argv[0]).name == "chromium" and "--remote-debugging-pipe" in argv:
            lines.append(argv)
    return lines


def prepare(workdir: Path, janus) -> dict:
    """Migrate the run's database; Alice, an official meeting, started (its Janus room made)."""
    from datetime import timedelta

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", "--noinput", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from meetings.models import ClassificationLevel, ConferenceRoom
    from meetings.services import booking, lifecycle

    alice = get_user_model().objects.create_user("alice", "alice@example.org", PASSWORD)
    booked = booking.meeting_book(
        host=alice,
        title="Media check",
        starts_at=timezone.now() + timedelta(minutes=5),
        duration_minutes=60,
        classification=ClassificationLevel.objects.get(code="official"),
        cloud_recording=False,
        waiting_room=True,
        host_has_second_factor=True,
    )
    meeting = lifecycle.meeting_start(meeting=booked.meeting, actor=alice, host_has_second_factor=True)
    room = ConferenceRoom.objects.get(meeting=meeting)
    return {
        "pk": meeting.pk,
        "meeting_id": meeting.display_id,
        "passcode": booked.passcode,
        "room": room.number,
    }


def feeds(meeting_pk: int) -> dict:
    from meetings.models import ConferenceRoom, LobbyEntry

    room = ConferenceRoom.objects.get(meeting_id=meeting_pk)
    entry = LobbyEntry.objects.get(meeting=room.meeting, display_name="Dana Guest")
    return {"host": room.host_feed_id, "guest": entry.media_feed_id, "status": entry.status}


def drive_browsers(url: str, meeting: dict) -> dict:
    from playwright.sync_api import sync_playwright

    from tests import real_services as real

    switch = playwright_disabled_features()
    merged = ",".join([*switch.split(","), *EXTRA_DISABLED_FEATURES])
    args = [
        *real.CHROMIUM_ARGS,
        *FAKE_MEDIA,
        "--allow-loopback-in-peer-connection",
        f"--disable-features={merged}",
    ]
    result: dict = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=real.CHROMIUM,
            headless=True,
            args=args,
            ignore_default_args=[f"--disable-features={switch}"],
        )
        try:
            lines = chromium_command_lines(os.getpid())
            result["chromium_disable_features"] = [
                [a for a in argv if a.startswith("--disable-features=")] for argv in lines
            ]
            host = browser.new_context()
            guest = browser.new_context()
            for context in (host, guest):
                context.add_init_script(RECORD_PEER_CONNECTIONS)
            host_page, guest_page = host.new_page(), guest.new_page()
            for page in (host_page, guest_page):
                page.set_default_timeout(20_000)

            step("signing in the host")
            # Alice signs in and opens her waiting room.
            host_page.goto(f"{url}/accounts/login/")
            host_page.fill("#id_auth-username", "alice")
            host_page.fill("#id_auth-password", PASSWORD)
            host_page.click("button[type=submit]:has-text('Next')")
            host_page.wait_for_url(f"{url}/meetings/")
            host_page.goto(f"{url}/meetings/{meeting['meeting_id']}/lobby/")

            step("the participant joins with the passcode")
            # Dana joins with the passcode and waits.
            guest_page.goto(f"{url}/join/")
            guest_page.fill("#id_meeting_id", meeting["meeting_id"])
            guest_page.fill("#id_passcode", meeting["passcode"])
            guest_page.fill("#id_display_name", "Dana Guest")
            guest_page.click("button:has-text('Join')")
            guest_page.wait_for_selector("text=Please wait: the host will let you in.")

            step("the host admits the participant")
            # The host admits her; her page moves to the room by itself.
            row = host_page.wait_for_selector("tr:has(td.name:text-is('Dana Guest'))")
            row.query_selector("button:has-text('Admit')").click()
            host_page.wait_for_selector("tr:has(td.name:text-is('Dana Guest')) td.status:text-is('admitted')")
            guest_page.wait_for_url("**/room/")
            result["feeds"] = ids = feeds(meeting["pk"])

            step("both pages join the media room")
            host_page.goto(f"{url}/meetings/{meeting['meeting_id']}/room/")
            host_page.click("#media-join")
            guest_page.click("#media-join")
            started = time.monotonic()
            deadline = started + MEDIA_TIMEOUT_MS / 1000
            waits = {"host": (host_page, ids["guest"]), "guest": (guest_page, ids["host"])}
            for name, (page, other_feed) in waits.items():
                step(f"waiting for the {name} page to receive video")
                # Playwright reads a timeout of 0 as "no timeout": once the 30 s are
                # spent, look once instead of waiting.
                remaining_ms = (deadline - time.monotonic()) * 1000
                try:
                    if remaining_ms > 0:
                        page.wait_for_function(PLAYING, arg=other_feed, timeout=remaining_ms, polling=250)
                    elif not page.evaluate(PLAYING, other_feed):
                        raise TimeoutError(f"no video after {MEDIA_TIMEOUT_MS} ms")
                    result[f"{name}_seconds"] = round(time.monotonic() - started, 1)
                except Exception as error:  # noqa: BLE001 - reported with the page's state below
                    result[f"{name}_error"] = str(error).splitlines()[0]
            # A second more of decoding, so the figures reported are not those of a first frame only.
            time.sleep(1)
            for name, (page, other_feed) in waits.items():
                step(f"reading the {name} page's statistics")
                result[name] = page.evaluate(RECEIVED, other_feed)
            step("closing the browser")
            host.close()
            guest.close()
        finally:
            browser.close()
    return result


@contextlib.contextmanager
def app_and_janus(
    workdir: Path, interface: str, prepare: Callable[[Any], Any]
) -> Iterator[tuple[Any, Any, Any]]:
    """Inside the namespace: the app on a SQLite file in `workdir`, a Janus of its own on
    `interface`, `prepare(janus)` run against both, then a web server; yields (janus, web,
    what prepare returned) and stops both servers afterwards."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "scheduler.settings_test",
            "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
            "DJANGO_DEBUG": "0",
        }
    )
    # Redis and SMTP of the outer run are unreachable here: tasks run in-process, mail
    # goes to the console.
    for name in ("REDIS_URL", "EMAIL_HOST"):
        os.environ.pop(name, None)

    from tests import janus_server
    from tests import real_services as real

    janus = janus_server.start_janus(ice_interface=interface)
    web = None
    try:
        os.environ.update(
            {
                "JANUS_URL": janus.url,
                "JANUS_ADMIN_KEY": janus.admin_key,
                "ANTECHAMBER_JANUS_BROWSER_URL": janus.url,
            }
        )
        prepared = prepare(janus)
        web = real.WebServer(dict(os.environ), threads=8)
        web.start()
        yield janus, web, prepared
    finally:
        if web is not None:
            web.stop()
        janus.stop()


def main() -> int:
    workdir, interface = Path(sys.argv[1]), sys.argv[2]
    with app_and_janus(workdir, interface, lambda janus: prepare(workdir, janus)) as (janus, web, meeting):
        result = {"meeting": meeting, **drive_browsers(web.url, meeting)}
        result["janus_log_tail"] = janus.process.log_path.read_text()[-1500:]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
