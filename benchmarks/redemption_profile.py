"""Where a redemption's time goes, in one process: the mean time of POST /j/<token>/ (a
fresh browser each, so each starts a session) over the mean time of the bare SELECT
endpoint the storm compares with, both through Django's test client and the whole
middleware stack, on PostgreSQL and a private Redis. No server, no load generator: the
ratio says what the code costs, the storm (benchmarks/redemption_storm.py) what the
machine makes of it.

Not part of `make bench` (it writes no table row). With `--profile`, prints the functions
that took the most time (cProfile; the profiler itself slows every call down).
Run: .venv/bin/python benchmarks/redemption_profile.py [links] [--profile [--cumulative]]
"""

import cProfile
import io
import pstats
import sys
import time
from datetime import timedelta

import harness


def main() -> None:
    links = next((int(arg) for arg in sys.argv[1:] if arg.isdigit()), 300)
    with harness.Stack() as stack:
        stack.redis()
        harness.configure(redis_url=stack.redis_url, DJANGO_ALLOWED_HOSTS="testserver")
        harness.reset_database()
        import bench_wsgi  # noqa: F401 - adds /bench/bare/
        from django.contrib.auth.models import User
        from django.test import Client
        from django.utils import timezone

        from meetings.models import ClassificationLevel, OutboundMessage
        from meetings.services import booking
        from tests.helpers import token_of

        host = User.objects.create_user("bench-host", "host@example.org")
        booked = booking.meeting_book(
            host=host,
            title="Redemption profile",
            starts_at=timezone.now() + timedelta(hours=1),
            duration_minutes=60,
            classification=ClassificationLevel.objects.get(code="official"),
            waiting_room=True,
            invitees=[f"person{n}@example.org" for n in range(links)],
            host_has_second_factor=True,
        )
        tokens = [token_of(row) for row in OutboundMessage.objects.filter(meeting=booked.meeting)]
        browser = Client()
        started, cpu_started = time.perf_counter(), time.process_time()
        for token in tokens:
            browser.get(f"/bench/bare/?t={token}")
        bare = (time.perf_counter() - started) / len(tokens)
        bare_cpu = (time.process_time() - cpu_started) / len(tokens)

        profile = cProfile.Profile() if "--profile" in sys.argv else None
        answers: dict[int, int] = {}
        started, cpu_started = time.perf_counter(), time.process_time()
        if profile is not None:
            profile.enable()
        for token in tokens:
            # A fresh browser each (no cookies), through one handler: a new Client would
            # load the middleware again on every request, which no server does.
            browser.cookies.clear()
            status = browser.post(
                f"/j/{token}/", "display_name=", content_type="application/x-www-form-urlencoded"
            ).status_code
            answers[status] = answers.get(status, 0) + 1
        if profile is not None:
            profile.disable()
        redemption = (time.perf_counter() - started) / len(tokens)
        redemption_cpu = (time.process_time() - cpu_started) / len(tokens)
        harness.drop_data()

    print(f"{len(tokens)} links; answers {answers}; load average {harness.load_average()}")
    print(
        f"bare SELECT {bare * 1000:.2f} ms, redemption {redemption * 1000:.2f} ms: ratio {bare / redemption:.2f}"
    )
    print(
        f"this process's CPU: bare SELECT {bare_cpu * 1000:.2f} ms, redemption {redemption_cpu * 1000:.2f} ms"
        f" (the rest of the time it waited for PostgreSQL and Redis)"
    )
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(
            *(["cumulative"] if "--cumulative" in sys.argv else ["tottime"])
        ).print_stats(70)
        print(out.getvalue())


if __name__ == "__main__":
    main()
