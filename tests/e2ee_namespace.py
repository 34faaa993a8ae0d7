"""The end-to-end encrypted media run, executed inside a network namespace the test made.

tests/test_browser_e2ee.py runs `ip netns exec <ns> python -m tests.e2ee_namespace <workdir>
<interface>` (as tests/media_namespace.py is run): Janus, the web server and the browsers see
only that namespace. Each person's browser is a Chromium of its own whose fake camera shows
a picture of one colour (a .y4m file), so a received video can be told apart by its pixels.

What it does, in order, reporting every observation in one JSON object (last line of stdout):
1. control: Alice alone in a plain (not E2EE) room; a tap, a browser that subscribes straight
   through Janus with the room's number, pin and secret, shows her picture;
2. Alice and Dana in an E2EE room see each other's picture and the same security code;
3. the same tap on the E2EE room receives packets but cannot show either picture;
4. Erin joins: the security code changes, the same for all three;
5. the host removes Dana: Dana's page stops decoding, Alice's carries on with Erin;
6. a browser without an encoded-transform API is refused and never connects;
7. a browser whose sender transform silently does nothing is stopped by the page.
"""

import json
import sys
import time
from pathlib import Path

from tests.media_namespace import (
    EXTRA_DISABLED_FEATURES,
    PASSWORD,
    RECORD_PEER_CONNECTIONS,
    app_and_janus,
    playwright_disabled_features,
    step,
)

# Each sender's camera: one colour, far from the others' (RGB).
COLOURS = {"alice": (220, 40, 40), "dana": (40, 60, 220), "erin": (40, 200, 60)}
# How far a sampled mean colour may be from the sent one, per channel (codec, YUV round trip).
TOLERANCE = 45
WAIT_MS = 30_000

# A browser whose sender transform silently does nothing (as a browser bug could): frames
# would leave unencrypted, and the page's watchdog must stop it.
BROKEN_SENDER_TRANSFORM = """
Object.defineProperty(RTCRtpSender.prototype, "transform", { set() {}, get() { return null; } });
"""

# Every text the media state line shows, in order (a later message must not hide an earlier reason).
RECORD_STATES = """
() => {
  const line = document.getElementById("media-state");
  window.__states = [];
  new MutationObserver(() => window.__states.push(line.innerText)).observe(
    line, { childList: true, characterData: true, subtree: true });
}
"""

ONLY_ENCODED_STREAMS = """
delete window.RTCRtpScriptTransform;
"""

NO_TRANSFORM_API = """
delete window.RTCRtpScriptTransform;
delete RTCRtpSender.prototype.createEncodedStreams;
delete RTCRtpReceiver.prototype.createEncodedStreams;
"""

# The mean colour of the middle of a video element, and what its decoder did.
SAMPLE = """
async (selector) => {
  const video = document.querySelector(selector);
  let framesDecoded = 0, bytesReceived = 0, packetsReceived = 0, fps = 0;
  for (const pc of window.__peerConnections || []) {
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        framesDecoded += s.framesDecoded || 0;
        bytesReceived += s.bytesReceived || 0;
        packetsReceived += s.packetsReceived || 0;
        fps += s.framesPerSecond || 0;
      }
    });
  }
  const out = { framesDecoded, bytesReceived, packetsReceived, fps, width: 0, height: 0, rgb: null, tileFrames: 0,
    path: location.pathname };
  if (!video || !video.videoWidth) return out;
  out.tileFrames = video.getVideoPlaybackQuality().totalVideoFrames; // this video element's own
  out.width = video.videoWidth;
  out.height = video.videoHeight;
  const canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 48;
  const g = canvas.getContext("2d");
  g.drawImage(video, video.videoWidth / 4, video.videoHeight / 4, video.videoWidth / 2, video.videoHeight / 2, 0, 0, 64, 48);
  const data = g.getImageData(0, 0, 64, 48).data;
  const sum = [0, 0, 0];
  for (let i = 0; i < data.length; i += 4) for (let c = 0; c < 3; c++) sum[c] += data[i + c];
  out.rgb = sum.map((v) => Math.round(v / (data.length / 4)));
  return out;
}
"""

REMOTE = 'figure.remote[data-feed="{feed}"] video'

# Where a page is, and what its media says (a removed person's page moves to the waiting room).
PAGE_STATE = """
() => ({ path: location.pathname, state: document.getElementById("media-state")?.textContent || null })
"""

TILES = """
() => [...document.querySelectorAll("#media-videos figure.remote")].map((t) => [t.dataset.feed, t.dataset.e2ee])
"""

PLAYING = """
(selector) => {
  const v = document.querySelector(selector);
  return Boolean(v && v.videoWidth > 0 && !v.paused);
}
"""

# A tap: talks to Janus directly, as anyone holding the room's secrets could (the media
# server's operator, or whoever took them from it). It puts a token of its own on the
# room's allowed list with the secret, joins as a publisher that publishes nothing (the
# room wants a private_id to subscribe), subscribes to every feed, and shows what arrives.
TAP = """
async ({ server, room, pin, secret }) => {
  const attach = (janus, handlers) => new Promise((ok, fail) => janus.attach({
    plugin: "janus.plugin.videoroom", success: ok, error: fail, ...handlers,
  }));
  await new Promise((ok) => Janus.init({ debug: false, dependencies: Janus.useDefaultDependencies(), callback: ok }));
  const janus = await new Promise((ok, fail) => { const j = new Janus({ server, success: () => ok(j), error: fail }); });
  const token = "tap-" + Math.random().toString(36).slice(2);
  const admin = await attach(janus, {});
  await new Promise((ok, fail) => admin.send({
    message: { request: "allowed", secret, room, action: "add", allowed: [token] },
    success: (r) => (r && r.error ? fail(new Error(r.error)) : ok(r)), error: fail,
  }));
  let joined;
  const publishers = new Promise((ok) => (joined = ok));
  await attach(janus, {
    onmessage: (msg) => { if (msg.videoroom === "joined") joined(msg); },
  }).then((h) => h.send({ message: { request: "join", ptype: "publisher", room, pin, token, display: "tap" } }));
  const info = await publishers;
  const feeds = (info.publishers || []).map((p) => p.id);
  const midToFeed = new Map();
  let sub;
  sub = await attach(janus, {
    onmessage: (msg, jsep) => {
      for (const s of msg.streams || []) if (s.feed_id !== undefined) midToFeed.set(s.mid, s.feed_id);
      if (jsep) sub.createAnswer({ jsep, tracks: [{ type: "data" }],
        success: (answer) => sub.send({ message: { request: "start", room }, jsep: answer }) });
    },
    onremotetrack: (track, mid, on) => {
      if (!on || track.kind !== "video") return;
      const video = document.createElement("video");
      video.dataset.feed = String(midToFeed.get(mid));
      video.autoplay = true; video.muted = true; video.playsInline = true;
      video.srcObject = new MediaStream([track]);
      document.body.append(video);
      video.play().catch(() => {});
    },
  });
  sub.send({ message: { request: "join", ptype: "subscriber", room, pin, token,
    private_id: info.private_id, streams: feeds.map((feed) => ({ feed })) } });
  return feeds;
}
"""


def y4m(path: Path, rgb: tuple[int, int, int], width: int = 320, height: int = 240, frames: int = 2) -> Path:
    r, g, b = rgb
    y = round(0.299 * r + 0.587 * g + 0.114 * b)
    u = round(128 - 0.168736 * r - 0.331264 * g + 0.5 * b)
    v = round(128 + 0.5 * r - 0.418688 * g - 0.081312 * b)
    plane = bytes([y]) * (width * height)
    chroma = bytes([u]) * (width * height // 4) + bytes([v]) * (width * height // 4)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F15:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + plane + chroma)
    return path


def close_to(rgb: list[int] | None, expected: tuple[int, int, int]) -> bool:
    return rgb is not None and all(abs(a - b) <= TOLERANCE for a, b in zip(rgb, expected, strict=True))


def prepare(workdir: Path) -> dict:
    """Migrate; Alice hosts two started official meetings: one E2EE, one plain (the control)."""
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
    rooms = {}
    for name, e2ee in (("e2ee", True), ("plain", False)):
        booked = booking.meeting_book(
            host=alice,
            title=f"{name} media check",
            starts_at=timezone.now() + timedelta(minutes=5),
            duration_minutes=60,
            classification=ClassificationLevel.objects.get(code="official"),
            waiting_room=True,
            e2ee=e2ee,
            host_has_second_factor=True,
        )
        meeting = lifecycle.meeting_start(meeting=booked.meeting, actor=alice, host_has_second_factor=True)
        room = ConferenceRoom.objects.get(meeting=meeting)
        assert room.e2ee is e2ee and room.opened_at is not None
        rooms[name] = {
            "pk": meeting.pk,
            "meeting_id": meeting.display_id,
            "room": room.number,
            "pin": room.pin,
            "secret": room.secret,
            "host_feed": room.host_feed_id,
        }
    return rooms


def admit(meeting_pk: int, name: str) -> dict:
    """Someone admitted to the meeting, and a session cookie that holds their entry."""
    from importlib import import_module

    from django.conf import settings

    from meetings.authentication import lobby_secret_bind
    from meetings.models import LobbyEntry, Meeting
    from meetings.services import lobby

    meeting = Meeting.objects.get(pk=meeting_pk)
    entered = lobby.lobby_enter(meeting=meeting, display_name=name, source=LobbyEntry.Source.PASSCODE)
    lobby.lobby_admit(
        meeting=meeting, entry_id=entered.entry.pk, actor=meeting.host, host_has_second_factor=True
    )
    entered.entry.refresh_from_db()
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    lobby_secret_bind(store, entered.entry.pk, entered.secret)
    store.save()
    return {
        "entry": entered.entry.pk,
        "feed": entered.entry.media_feed_id,
        "cookie": {"name": settings.SESSION_COOKIE_NAME, "value": store.session_key},
    }


def remove(meeting_pk: int, entry_id: int) -> None:
    from meetings.models import Meeting
    from meetings.services import lobby

    meeting = Meeting.objects.get(pk=meeting_pk)
    lobby.lobby_remove(meeting=meeting, entry_id=entry_id, actor=meeting.host, host_has_second_factor=True)


def janus_feeds(janus_url: str, room: dict) -> set[int]:
    from tests.janus_server import JanusParticipant

    observer = JanusParticipant(janus_url)
    try:
        listed = observer.request(
            {"request": "listparticipants", "room": room["room"], "secret": room["secret"]}
        )
    finally:
        observer.close()
    return {p["id"] for p in listed.get("participants", [])}


def launch(playwright, videos: Path, who: str):
    from tests import real_services as real

    switch = playwright_disabled_features()
    merged = ",".join([*switch.split(","), *EXTRA_DISABLED_FEATURES])
    return playwright.chromium.launch(
        executable_path=real.CHROMIUM,
        headless=True,
        args=[
            *real.CHROMIUM_ARGS,
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m(videos / f'{who}.y4m', COLOURS[who])}",
            "--allow-loopback-in-peer-connection",
            f"--disable-features={merged}",
        ],
        ignore_default_args=[f"--disable-features={switch}"],
    )


def page_in(browser, *, init: str = RECORD_PEER_CONNECTIONS):
    context = browser.new_context()
    context.add_init_script(RECORD_PEER_CONNECTIONS)
    if init is not RECORD_PEER_CONNECTIONS:
        context.add_init_script(init)
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


def wait_playing(page, selector: str) -> float | str:
    started = time.monotonic()
    try:
        page.wait_for_function(PLAYING, arg=selector, timeout=WAIT_MS, polling=250)
    except Exception as error:  # noqa: BLE001 - reported, the test asserts on it
        return f"error: {str(error).splitlines()[0]}"
    return round(time.monotonic() - started, 1)


def code_of(page) -> str | None:
    return page.evaluate("() => document.getElementById('media-e2ee-code')?.dataset.code || null")


def send_key_of(page) -> str | None:
    return page.evaluate("() => document.getElementById('media-e2ee')?.dataset.sendKeyId || null")


def e2ee_state(page) -> str | None:
    return page.evaluate("() => document.getElementById('media-e2ee')?.dataset.state || null")


def wait_for(predicate, timeout: float = 30, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def open_tap(browser, url: str, janus_url: str, room: dict):
    context = browser.new_context(bypass_csp=True)
    context.add_init_script(RECORD_PEER_CONNECTIONS)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{url}/accounts/login/")
    page.add_script_tag(url=f"{url}/static/vendor/webrtc-adapter/adapter.js")
    page.add_script_tag(url=f"{url}/static/vendor/janus-gateway/janus.js")
    feeds = page.evaluate(
        TAP, {"server": janus_url, "room": room["room"], "pin": room["pin"], "secret": room["secret"]}
    )
    return page, feeds


def drive(url: str, janus_url: str, rooms: dict, workdir: Path) -> dict:
    from playwright.sync_api import sync_playwright

    result: dict = {}
    plain, secret = rooms["plain"], rooms["e2ee"]
    videos = workdir / "videos"
    videos.mkdir()
    with sync_playwright() as playwright:
        browsers = {who: launch(playwright, videos, who) for who in COLOURS}
        try:
            alice = page_in(browsers["alice"])
            step("signing in the host")
            alice.goto(f"{url}/accounts/login/")
            alice.fill("#id_auth-username", "alice")
            alice.fill("#id_auth-password", PASSWORD)
            alice.click("button[type=submit]:has-text('Next')")
            alice.wait_for_url(f"{url}/meetings/")

            # 1. The control: a plain room, and the tap sees Alice.
            step("control: Alice in the plain room, and a tap")
            alice.goto(f"{url}/meetings/{plain['meeting_id']}/room/")
            alice.click("#media-join")
            alice.wait_for_selector("#media-state:text-is('Audio and video: joined.')")
            tap, tapped = open_tap(browsers["alice"], url, janus_url, plain)
            result["plain_tap_feeds"] = tapped
            selector = f"video[data-feed='{plain['host_feed']}']"
            result["plain_tap_wait"] = wait_playing(tap, selector)
            time.sleep(2)
            result["plain_tap"] = tap.evaluate(SAMPLE, selector)
            tap.context.close()
            alice.click("#media-leave")

            # 2. Alice and Dana in the E2EE room.
            step("Alice and Dana join the E2EE room")
            dana_seat = admit(secret["pk"], "Dana Guest")
            erin_seat = admit(secret["pk"], "Erin Guest")
            result["feeds"] = {
                "alice": secret["host_feed"],
                "dana": dana_seat["feed"],
                "erin": erin_seat["feed"],
            }
            dana = page_in(browsers["dana"])
            dana.context.add_cookies([{**dana_seat["cookie"], "url": url}])
            alice.goto(f"{url}/meetings/{secret['meeting_id']}/room/")
            dana.goto(f"{url}/join/{dana_seat['entry']}/room/")
            alice.click("#media-join")
            dana.click("#media-join")
            result["alice_sees_dana_wait"] = wait_playing(alice, REMOTE.format(feed=dana_seat["feed"]))
            result["dana_sees_alice_wait"] = wait_playing(dana, REMOTE.format(feed=secret["host_feed"]))
            result["encrypted_shown"] = {
                name: bool(wait_for(lambda p=page: e2ee_state(p) == "encrypted", timeout=15))
                for name, page in (("alice", alice), ("dana", dana))
            }
            time.sleep(1)
            result["alice_sees_dana"] = alice.evaluate(SAMPLE, REMOTE.format(feed=dana_seat["feed"]))
            result["dana_sees_alice"] = dana.evaluate(SAMPLE, REMOTE.format(feed=secret["host_feed"]))
            result["codes_two"] = {"alice": code_of(alice), "dana": code_of(dana)}
            result["janus_in_room_two"] = sorted(janus_feeds(janus_url, secret))

            # 3. The tap on the E2EE room.
            step("a tap on the E2EE room")
            tap, tapped = open_tap(browsers["erin"], url, janus_url, secret)
            result["e2ee_tap_feeds"] = tapped

            def tap_samples(tap=tap, dana_feed=dana_seat["feed"]) -> dict:
                return {
                    who: tap.evaluate(SAMPLE, f"video[data-feed='{feed}']")
                    for who, feed in (("alice", secret["host_feed"]), ("dana", dana_feed))
                }

            # Long enough to have shown a picture, were there one; longer on a busy machine,
            # until each stream has delivered what the test asks of it (bounded).
            time.sleep(5)
            wait_for(lambda: all(s["packetsReceived"] > 50 for s in tap_samples().values()), 25, 1)
            result["e2ee_tap"] = tap_samples()
            tap.context.close()

            # 4. Erin joins: a new security code, the same for everyone.
            step("Erin joins")
            # Erin's browser has only the older API (createEncodedStreams): the other path.
            erin = page_in(browsers["erin"], init=ONLY_ENCODED_STREAMS)
            erin.context.add_cookies([{**erin_seat["cookie"], "url": url}])
            erin.goto(f"{url}/join/{erin_seat['entry']}/room/")
            erin.click("#media-join")
            before = result["codes_two"]["alice"]
            wait_for(
                lambda: (
                    code_of(alice) not in (None, before) and code_of(erin) == code_of(alice) == code_of(dana)
                )
            )
            result["codes_three"] = {"alice": code_of(alice), "dana": code_of(dana), "erin": code_of(erin)}
            result["erin_api"] = erin.evaluate("() => window.AntechamberE2ee.transformApi()")
            result["erin_sees_alice_wait"] = wait_playing(erin, REMOTE.format(feed=secret["host_feed"]))
            result["alice_sees_erin_wait"] = wait_playing(alice, REMOTE.format(feed=erin_seat["feed"]))

            # 5. The host removes Dana.
            step("the host removes Dana")
            dana_remote_alice = REMOTE.format(feed=secret["host_feed"])
            alice_remote_erin = REMOTE.format(feed=erin_seat["feed"])
            result["dana_before_removal"] = dana.evaluate(SAMPLE, dana_remote_alice)
            alice_before = alice.evaluate(SAMPLE, alice_remote_erin)
            send_keys_before = {"alice": send_key_of(alice), "erin": send_key_of(erin)}
            removed_at = time.monotonic()
            remove(secret["pk"], dana_seat["entry"])
            time.sleep(max(0.0, removed_at + 5 - time.monotonic()))
            result["dana_after_5s"] = dana.evaluate(SAMPLE, dana_remote_alice)
            time.sleep(3)
            result["dana_after_8s"] = dana.evaluate(SAMPLE, dana_remote_alice)
            result["dana_page_after"] = dana.evaluate(PAGE_STATE)
            alice_after = alice.evaluate(SAMPLE, alice_remote_erin)
            result["alice_sees_erin_after"] = {
                "frames_during": alice_after["tileFrames"] - alice_before["tileFrames"],
                **alice_after,
            }
            result["encrypted_after_removal"] = bool(
                wait_for(lambda: e2ee_state(alice) == "encrypted" and e2ee_state(erin) == "encrypted", 20)
            )
            result["codes_after_removal"] = {"alice": code_of(alice), "erin": code_of(erin)}
            result["tiles_after_removal"] = {
                name: page.evaluate(TILES) for name, page in (("alice", alice), ("erin", erin))
            }
            result["send_keys"] = {
                "before": send_keys_before,
                "after": {"alice": send_key_of(alice), "erin": send_key_of(erin)},
            }

            # 6. A browser without the encoded-transform API.
            step("a browser without an encoded-transform API")
            fay_seat = admit(secret["pk"], "Fay Guest")
            fay = page_in(browsers["erin"], init=NO_TRANSFORM_API)
            fay.context.add_cookies([{**fay_seat["cookie"], "url": url}])
            fay.goto(f"{url}/join/{fay_seat['entry']}/room/")
            fay.wait_for_selector("#media[data-e2ee='unsupported']")
            time.sleep(2)
            result["fay"] = {
                "join_disabled": fay.is_disabled("#media-join"),
                "state": fay.inner_text("#media-state"),
                "peer_connections": fay.evaluate("() => (window.__peerConnections || []).length"),
                "in_janus": fay_seat["feed"] in janus_feeds(janus_url, secret),
            }

            # 7. A browser whose sender transform does nothing is stopped by the page.
            step("a browser whose sender transform does nothing")
            gus_seat = admit(secret["pk"], "Gus Guest")
            gus = page_in(browsers["dana"], init=BROKEN_SENDER_TRANSFORM)
            gus.context.add_cookies([{**gus_seat["cookie"], "url": url}])
            gus_console: list[str] = []
            gus.on("console", lambda message: gus_console.append(f"{message.type}: {message.text}"[:300]))
            gus.goto(f"{url}/join/{gus_seat['entry']}/room/")
            gus.evaluate(RECORD_STATES)
            gus.click("#media-join")
            wait_for(lambda: "Stopped" in gus.inner_text("#media-state"), timeout=20)
            # Whatever janus.js does while it tears the session down comes after this: the
            # reason shown must still be the watchdog's.
            time.sleep(3)
            result["gus"] = {
                "state": gus.inner_text("#media-state"),
                "states": gus.evaluate("() => window.__states"),
                "console_errors": [line for line in gus_console if line.startswith("error")][-10:],
                "in_janus": gus_seat["feed"] in janus_feeds(janus_url, secret),
            }
        finally:
            for browser in browsers.values():
                browser.close()
    return result


def main() -> int:
    workdir, interface = Path(sys.argv[1]), sys.argv[2]
    with app_and_janus(workdir, interface, lambda _janus: prepare(workdir)) as (janus, web, rooms):
        result = {"rooms": {k: {"room": v["room"]} for k, v in rooms.items()}}
        result.update(drive(web.url, janus.url, rooms, workdir))
        result["janus_log_tail"] = janus.process.log_path.read_text()[-1500:]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
