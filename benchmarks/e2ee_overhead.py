"""End-to-end encryption's cost: the same two-party call (host and one participant, fake
camera 320x240 at 15 fps and fake microphone) without and with E2EE.

Figures per browser (each a Chromium of its own): CPU seconds per second of call, summed
over the browser's whole process tree (browser, renderer, GPU and utility processes), and
the frames per second of the other's video as its page decoded them; measured over
MEASURE_SECONDS once both pictures are playing. Runs in a private network namespace, as the
browser tests do (tests/e2ee_namespace.py; needs root, Janus, Chromium). One run each way:
the figures of a shared machine, not a distribution.
Run: sudo .venv/bin/python benchmarks/e2ee_overhead.py   (not part of `make bench`)
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURE_SECONDS = 30
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root_pid: int) -> float:
    """utime + stime of `root_pid` and every process under it, now."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = int(fields[11]) + int(fields[12])

    def under(pid: int) -> bool:
        while pid > 1:
            if pid == root_pid:
                return True
            pid = parents.get(pid, 1)
        return False

    return sum(t for pid, t in times.items() if under(pid)) / CLOCK_TICKS


def browser_pid(known: set[int]) -> int:
    """The Chromium browser process launched since `known` was taken."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in known:
            try:
                argv = (entry / "cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if Path(argv[0]).name == "chromium" and "--remote-debugging-pipe" in argv:
                return int(entry.name)
    raise RuntimeError("no new Chromium browser process")


def inside(workdir: Path, interface: str) -> dict:
    """Run in the namespace: both calls, one after the other, in the same two browsers."""
    from playwright.sync_api import sync_playwright

    from tests import e2ee_namespace as run
    from tests.media_namespace import app_and_janus

    figures: dict = {}
    with app_and_janus(workdir, interface, lambda _janus: run.prepare(workdir)) as (_janus, web, rooms):
        url = web.url
        videos = workdir / "videos"
        videos.mkdir()
        with sync_playwright() as playwright:
            pids = {}
            browsers = {}
            for who in ("alice", "dana"):
                known = {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}
                browsers[who] = run.launch(playwright, videos, who)
                pids[who] = browser_pid(known)
            try:
                alice = run.page_in(browsers["alice"])
                alice.goto(f"{url}/accounts/login/")
                alice.fill("#id_auth-username", "alice")
                alice.fill("#id_auth-password", run.PASSWORD)
                alice.click("button[type=submit]:has-text('Next')")
                alice.wait_for_url(f"{url}/meetings/")
                for mode in ("plain", "e2ee"):
                    room = rooms[mode]
                    seat = run.admit(room["pk"], "Dana Guest")
                    dana = run.page_in(browsers["dana"])
                    dana.context.add_cookies([{**seat["cookie"], "url": url}])
                    alice.goto(f"{url}/meetings/{room['meeting_id']}/room/")
                    dana.goto(f"{url}/join/{seat['entry']}/room/")
                    alice.click("#media-join")
                    dana.click("#media-join")
                    views = {
                        "alice": (alice, run.REMOTE.format(feed=seat["feed"])),
                        "dana": (dana, run.REMOTE.format(feed=room["host_feed"])),
                    }
                    for page, selector in views.values():
                        page.wait_for_function(run.PLAYING, arg=selector, timeout=30_000, polling=250)
                    time.sleep(3)  # past the start-up (key frames, bandwidth estimation)
                    cpu0 = {who: tree_cpu_seconds(pid) for who, pid in pids.items()}
                    frames0 = {
                        who: page.evaluate(run.SAMPLE, sel)["tileFrames"]
                        for who, (page, sel) in views.items()
                    }
                    started = time.monotonic()
                    time.sleep(MEASURE_SECONDS)
                    elapsed = time.monotonic() - started
                    cpu1 = {who: tree_cpu_seconds(pid) for who, pid in pids.items()}
                    samples = {who: page.evaluate(run.SAMPLE, sel) for who, (page, sel) in views.items()}
                    figures[mode] = {
                        who: {
                            "cpu_per_second": round((cpu1[who] - cpu0[who]) / elapsed, 3),
                            "fps_received": round((samples[who]["tileFrames"] - frames0[who]) / elapsed, 1),
                            "picture_ok": run.close_to(
                                samples[who]["rgb"], run.COLOURS["dana" if who == "alice" else "alice"]
                            ),
                        }
                        for who in pids
                    }
                    if mode == "e2ee":
                        figures[mode]["encrypted_shown"] = run.e2ee_state(alice) == "encrypted"
                    alice.click("#media-leave")
                    dana.click("#media-leave")
                    dana.context.close()
                    time.sleep(2)
            finally:
                for browser in browsers.values():
                    browser.close()
    return figures


def main() -> int:
    if len(sys.argv) == 3:
        print(json.dumps(inside(Path(sys.argv[1]), sys.argv[2])))
        return 0
    sys.path.insert(0, str(ROOT))
    from tests.test_browser_media_flow import INTERFACE, private_namespace

    workdir = Path(tempfile.mkdtemp(prefix="antechamber-e2ee-bench-"))
    with private_namespace() as namespace:
        done = subprocess.run(  # noqa: S603 - ip and our own interpreter, fixed arguments
            ["ip", "netns", "exec", namespace, sys.executable, "-m", "benchmarks.e2ee_overhead"]
            + [str(workdir), INTERFACE],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if done.returncode != 0:
        print(done.stderr[-4000:], file=sys.stderr)
        return 1
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(figures, indent=1))
    print(f"\n| call | browser | CPU s per s ({MEASURE_SECONDS} s) | fps received | picture |")
    print("| --- | --- | --- | --- | --- |")
    for mode in ("plain", "e2ee"):
        for who in ("alice", "dana"):
            f = figures[mode][who]
            print(
                f"| {mode} | {who} | {f['cpu_per_second']} | {f['fps_received']} | {'ok' if f['picture_ok'] else 'WRONG'} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
