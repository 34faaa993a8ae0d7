"""Passcode flood through nginx: wrong guesses from 50 connections of one attacker at one
meeting (POST /api/v1/join/) while 10 other clients use the site normally (GET
/api/v1/meetings/ with their tokens); both driven by wrk (a native load generator).

nginx (deploy/render_nginx.py) limits the join endpoints per client address, so most
guesses are answered 429 by nginx and never reach gunicorn; the ones that do meet the app's
own limiter. The flood is 5,000 guesses, each connection pausing 100 ms between them (about
500/s, faster than the 338/s the Python-thread flood managed), so that it spans the normal
clients' window instead of being over in a fraction of a second.
Figures: argon2 verifications performed during the flood (counted as `passcode_join_failed`
audit rows, one per verification of a wrong passcode; target 10, the meeting's limit), and
the normal clients' p99 during the flood over their p99 without it (target 2 or less).
Run: .venv/bin/python benchmarks/passcode_flood.py   (or `make bench`)
"""

import json
import threading
from datetime import timedelta

import harness

GUESSES = 5000
ATTACKERS = 50  # connections, all from one address
PAUSE_MS = 100  # per connection, between guesses
NORMAL_CLIENTS = 10
NORMAL_SECONDS = 8
WORKERS = 4


def main() -> None:
    with harness.Stack() as stack:
        stack.redis()
        env = harness.configure(redis_url=stack.redis_url)
        harness.reset_database()
        from django.conf import settings
        from django.contrib.auth.models import User
        from django.utils import timezone

        from meetings.models import AuditEvent, ClassificationLevel
        from meetings.services import booking, tokens

        official = ClassificationLevel.objects.get(code="official")

        def book(host: User, title: str):
            return booking.meeting_book(
                host=host,
                title=title,
                starts_at=timezone.now() + timedelta(days=1),
                duration_minutes=60,
                classification=official,
                host_has_second_factor=True,
            )

        target = book(User.objects.create_user("target-host", "target@example.org"), "Board meeting")
        keys = []
        for n in range(NORMAL_CLIENTS):
            user = User.objects.create_user(f"host{n}", f"host{n}@example.org")
            for m in range(5):
                book(user, f"Meeting {m} of host {n}")
            keys.append(tokens.api_token_create(user=user, label="bench")[1])
        wrong = ("0" if target.passcode[0] != "0" else "1") + target.passcode[1:]
        url, _web = stack.web(env, workers=WORKERS)
        front = stack.nginx([url])

        normal_lines = [
            harness.wrk_line(
                "GET",
                "/api/v1/meetings/",
                headers={"Authorization": f"Token {key}", "X-Forwarded-For": f"198.51.100.{n}"},
            )
            for n, key in enumerate(keys)
        ]
        harness.wrk(front, normal_lines, connections=NORMAL_CLIENTS, once=False, seconds=3)  # warm up
        quiet = harness.wrk(
            front, normal_lines, connections=NORMAL_CLIENTS, once=False, seconds=NORMAL_SECONDS
        )

        body = json.dumps(
            {"meeting_id": target.meeting.display_id, "passcode": wrong, "display_name": "Mallory"}
        )
        guess = harness.wrk_line(
            "POST",
            "/api/v1/join/",
            body,
            {"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.66"},
        )
        flood_result: dict[str, harness.WrkResult] = {}

        def flood() -> None:
            flood_result["flood"] = harness.wrk(
                front, [guess] * GUESSES, connections=ATTACKERS, once=True, seconds=120, pause_ms=PAUSE_MS
            )

        flooding = threading.Thread(target=flood)
        flooding.start()
        threading.Event().wait(1)  # the flood is on before the normal clients start
        during = harness.wrk(
            front, normal_lines, connections=NORMAL_CLIENTS, once=False, seconds=NORMAL_SECONDS
        )
        flood_still_running = flooding.is_alive()
        flooding.join()
        verifications = AuditEvent.objects.filter(action="passcode_join_failed").count()
        lockouts = AuditEvent.objects.filter(action="passcode_join_locked").count()
        limit = settings.ANTECHAMBER_JOIN_MEETING_FAILURES
        harness.drop_data()

    flooded = flood_result["flood"]
    guesses = flooded.requests
    statuses = dict(sorted(flooded.statuses.items()))
    ratio = during.p99_ms / quiet.p99_ms
    normal_bad = {k: v for k, v in {**quiet.statuses, **during.statuses}.items() if k != 200}
    print(f"flood: {guesses} guesses in {flooded.seconds:.1f}s ({flooded.rate:.0f}/s), answers {statuses}")
    print(
        f"argon2 verifications (passcode_join_failed rows): {verifications} (target {limit}); lockout notices: {lockouts}"
    )
    print(
        f"normal clients without flood: {quiet.rate:.0f}/s, p50 {quiet.p50_ms:.1f} ms, p99 {quiet.p99_ms:.1f} ms"
    )
    print(
        f"normal clients during flood:  {during.rate:.0f}/s, p50 {during.p50_ms:.1f} ms, p99 {during.p99_ms:.1f} ms"
    )
    print(
        f"ratio p99 during/without: {ratio:.2f} (target <= 2); flood outlasted the normal clients: {flood_still_running}"
    )
    print(f"normal answers other than 200: {normal_bad or 'none'}; load average {harness.load_average()}")
    harness.record(
        [
            (
                "passcode flood (nginx, wrk): argon2 verifications for 5,000 wrong guesses",
                f"{limit}",
                f"{verifications}",
                f"{verifications / limit:.2f}",
            ),
            (
                "passcode flood (nginx, wrk): normal clients' p99 during flood / without",
                "<= 2",
                f"{during.p99_ms:.0f} ms / {quiet.p99_ms:.0f} ms",
                f"{ratio:.2f}",
            ),
        ],
        f"""{guesses} wrong guesses (POST /api/v1/join/, the real meeting ID, a wrong passcode) from wrk with
{ATTACKERS} connections, all from one client address, each pausing {PAUSE_MS} ms between guesses:
{flooded.seconds:.1f} s ({flooded.rate:.0f}/s), while {NORMAL_CLIENTS} other connections (wrk, each its own address and token)
made GET /api/v1/meetings/ requests (5 meetings each) for {NORMAL_SECONDS} s; the flood
{"outlasted" if flood_still_running else "did NOT outlast"} them. All through nginx (join endpoints: 5
requests/s per address, burst 20) to gunicorn with {WORKERS} sync workers, PostgreSQL, a private Redis
as cache, the limiter counting in PostgreSQL. Answers to the guesses: {statuses} (the 429s from nginx never reach
gunicorn). argon2 verifications, counted as `passcode_join_failed` audit rows: {verifications} (limit
{limit}); lockout notices to the host: {lockouts}. Normal clients: {quiet.rate:.0f}/s, p50
{quiet.p50_ms:.0f} ms, p99 {quiet.p99_ms:.0f} ms without the flood; {during.rate:.0f}/s, p50
{during.p50_ms:.0f} ms, p99 {during.p99_ms:.0f} ms during it; answers other than 200:
{normal_bad or "none"}.""",
    )


if __name__ == "__main__":
    main()
