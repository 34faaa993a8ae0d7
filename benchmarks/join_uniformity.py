"""Unknown meeting ID vs wrong passcode: medians of N tries each, and their ratio.

Run: DJANGO_SETTINGS_MODULE=scheduler.settings_test .venv/bin/python benchmarks/join_uniformity.py
Uses a throw-away SQLite database and an in-process cache; the limiter is raised so
that every try reaches argon2 (as the first ten tries at a meeting do).
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler.settings_test")
os.environ.pop("DATABASE_URL", None)
os.environ.pop("REDIS_URL", None)
_db = Path(tempfile.mkdtemp()) / "bench.sqlite3"
os.environ["DATABASE_URL"] = f"sqlite:///{_db}"
os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
os.environ["ANTECHAMBER_JOIN_MEETING_FAILURES"] = "100000"
os.environ["ANTECHAMBER_JOIN_CLIENT_FAILURES"] = "100000"

import django  # noqa: E402

django.setup()

from datetime import timedelta  # noqa: E402

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from meetings import credentials  # noqa: E402
from meetings.models import ClassificationLevel  # noqa: E402
from meetings.services import booking  # noqa: E402

TRIES = int(os.environ.get("TRIES", "200"))


def main() -> None:
    call_command("migrate", verbosity=0)
    host = User.objects.create(username="bench-host", email="host@example.org")
    booked = booking.meeting_book(
        host=host,
        title="Benchmark",
        starts_at=timezone.now() + timedelta(days=1),
        duration_minutes=60,
        classification=ClassificationLevel.objects.get(code="official"),
        host_has_second_factor=True,
    )
    real_id = booked.meeting.display_id
    wrong = "0" + booked.passcode[1:] if booked.passcode[0] != "0" else "1" + booked.passcode[1:]
    client = Client()

    def timed(meeting_id: str) -> float:
        started = time.perf_counter()
        response = client.post(
            "/api/v1/join/",
            {"meeting_id": meeting_id, "passcode": wrong, "display_name": "Bench"},
            content_type="application/json",
        )
        elapsed = time.perf_counter() - started
        assert response.status_code == 403, response.content
        return elapsed

    timed(real_id)
    timed(credentials.format_meeting_id(credentials.new_meeting_id()))  # warm the dummy hash
    unknown_times, wrong_times = [], []
    for _ in range(TRIES):  # interleaved, so drift in machine load hits both alike
        unknown_times.append(timed(credentials.format_meeting_id(credentials.new_meeting_id())))
        wrong_times.append(timed(real_id))
    unknown = statistics.median(unknown_times) * 1000
    wrong_ms = statistics.median(wrong_times) * 1000
    print(f"tries each: {TRIES}")
    print(f"median unknown meeting ID: {unknown:.2f} ms")
    print(f"median wrong passcode:     {wrong_ms:.2f} ms")
    print(f"ratio wrong/unknown:       {wrong_ms / unknown:.3f}")
    from benchmarks import harness

    harness.record(
        [
            (
                "join uniformity: median wrong passcode / median unknown meeting ID (POST /api/v1/join/)",
                "within 10 % (0.90 to 1.10)",
                f"{wrong_ms:.1f} ms / {unknown:.1f} ms",
                f"{wrong_ms / unknown:.3f}",
            )
        ],
        f"{TRIES} tries each, interleaved, through the Django test client on a throw-away SQLite "
        "database with the limiter raised so that every try reaches argon2 (as the first ten tries "
        "at a meeting do). Both answer 403 with the same body; the unknown ID is verified against "
        "a dummy argon2 hash made with the same parameters.",
    )


if __name__ == "__main__":
    main()
