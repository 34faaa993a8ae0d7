"""Passcode flood: 5,000 wrong guesses from 50 clients at one meeting (POST /api/v1/join/)
while 10 other clients use the site normally (GET /api/v1/meetings/ with their tokens).

Figures: argon2 verifications performed during the flood (counted as `passcode_join_failed`
audit rows, one per verification of a wrong passcode; target 10, the meeting's limit), and
the normal clients' p99 during the flood over their p99 without it (target 2 or less).
Run: .venv/bin/python benchmarks/passcode_flood.py   (or `make bench`)
"""

import threading
from collections import Counter
from datetime import timedelta

import harness

GUESSES = 5000
ATTACKERS = 50
NORMAL_CLIENTS = 10
NORMAL_REQUESTS = 600  # per phase, shared by the normal clients
WORKERS = 4
DEADLINE = 240


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
        url, web = stack.web(env, workers=WORKERS)

        def normal(session, key):
            response = session.get(
                f"{url}/api/v1/meetings/", headers={"Authorization": f"Token {key}"}, timeout=60
            )
            if response.status_code != 200 or len(response.json()) != 5:
                raise RuntimeError(f"my meetings: {response.status_code}")

        normal_jobs = [keys[i % NORMAL_CLIENTS] for i in range(NORMAL_REQUESTS)]
        harness.run_clients(NORMAL_CLIENTS, normal_jobs[:100], normal, deadline_seconds=DEADLINE)  # warm up
        quiet, quiet_wall, quiet_errors = harness.run_clients(
            NORMAL_CLIENTS, normal_jobs, normal, deadline_seconds=DEADLINE
        )

        statuses: Counter[int] = Counter()
        lock = threading.Lock()
        body = {"meeting_id": target.meeting.display_id, "passcode": wrong, "display_name": "Mallory"}

        def guess(session, _n):
            response = session.post(f"{url}/api/v1/join/", json=body, timeout=60)
            with lock:
                statuses[response.status_code] += 1
            if response.status_code not in (403, 429):
                raise RuntimeError(f"guess: {response.status_code}")

        flood_result: dict[str, object] = {}

        def flood() -> None:
            flood_result["latencies"], flood_result["wall"], flood_result["errors"] = harness.run_clients(
                ATTACKERS, list(range(GUESSES)), guess, deadline_seconds=DEADLINE
            )

        flooding = threading.Thread(target=flood)
        flooding.start()
        with harness.profiled("flood", harness.worker_pids(web.process.pid)):
            during, during_wall, during_errors = harness.run_clients(
                NORMAL_CLIENTS, normal_jobs, normal, deadline_seconds=DEADLINE
            )
        flood_still_running = flooding.is_alive()
        flooding.join()
        verifications = AuditEvent.objects.filter(action="passcode_join_failed").count()
        lockouts = AuditEvent.objects.filter(action="passcode_join_locked").count()
        limit = settings.ANTECHAMBER_JOIN_MEETING_FAILURES
        harness.drop_data()

    errors = quiet_errors + during_errors + list(flood_result["errors"])
    flood_wall = float(flood_result["wall"])
    ms = lambda values, pct: harness.percentile(values, pct) * 1000  # noqa: E731
    ratio = ms(during, 99) / ms(quiet, 99)
    print(
        f"flood: {sum(statuses.values())} guesses in {flood_wall:.1f}s ({sum(statuses.values()) / flood_wall:.0f}/s), answers {dict(statuses)}"
    )
    print(
        f"argon2 verifications (passcode_join_failed rows): {verifications} (target {limit}); lockout notices: {lockouts}"
    )
    print(f"normal clients without flood: p50 {ms(quiet, 50):.1f} ms, p99 {ms(quiet, 99):.1f} ms")
    print(f"normal clients during flood:  p50 {ms(during, 50):.1f} ms, p99 {ms(during, 99):.1f} ms")
    print(
        f"ratio p99 during/without: {ratio:.2f} (target <= 2); flood outlasted the normal clients: {flood_still_running}"
    )
    for error in errors[:5]:
        print("  error:", error)
    harness.record(
        [
            (
                "passcode flood: argon2 verifications for 5,000 wrong guesses",
                f"{limit}",
                f"{verifications}",
                f"{verifications / limit:.2f}",
            ),
            (
                "passcode flood: normal clients' p99 during flood / without",
                "<= 2",
                f"{ms(during, 99):.0f} ms / {ms(quiet, 99):.0f} ms",
                f"{ratio:.2f}",
            ),
        ],
        f"""{GUESSES} wrong guesses (POST /api/v1/join/, the real meeting ID, a wrong passcode) from
{ATTACKERS} client threads, while {NORMAL_CLIENTS} other clients made {NORMAL_REQUESTS} GET /api/v1/meetings/
requests with their own tokens (5 meetings each); gunicorn with {WORKERS} sync workers, PostgreSQL, a
private Redis as cache and limiter store. Answers to the guesses: {dict(sorted(statuses.items()))}; the flood
ran {flood_wall:.1f}s ({sum(statuses.values()) / flood_wall:.0f}/s) and {"outlasted" if flood_still_running else "did NOT outlast"}
the normal clients' run. argon2 verifications, counted as `passcode_join_failed` audit rows:
{verifications} (limit {limit}); lockout notices to the host: {lockouts}. Normal clients: p50
{ms(quiet, 50):.0f} ms, p99 {ms(quiet, 99):.0f} ms without the flood; p50 {ms(during, 50):.0f} ms, p99
{ms(during, 99):.0f} ms during it. Errors: {len(errors)}.""",
    )


if __name__ == "__main__":
    main()
