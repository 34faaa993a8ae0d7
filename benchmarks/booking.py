"""Booking: median time of POST /api/v1/meetings/ (token auth, through gunicorn, on
PostgreSQL) over the median time of one argon2 hash with the configured parameters.

The hash is the floor: a booking must hash its passcode once. Target: 1.5 or less.
The two are measured interleaved, so drift in the machine's load hits both alike.
Run: .venv/bin/python benchmarks/booking.py   (or `make bench`)
"""

import time
from datetime import timedelta

import harness

ROUNDS = 40
WARM_UP = 3


def main() -> None:
    with harness.Stack() as stack:
        stack.redis()
        env = harness.configure(redis_url=stack.redis_url)
        harness.reset_database()
        import requests
        from django.conf import settings
        from django.contrib.auth.models import User
        from django.utils import timezone

        from meetings import credentials
        from meetings.services import tokens

        host = User.objects.create_user("bench-host", "host@example.org")
        _token, key = tokens.api_token_create(user=host, label="bench")
        url, _web = stack.web(env, workers=2)
        session = requests.Session()
        session.headers["Authorization"] = f"Token {key}"

        def book(n: int) -> float:
            body = {
                "title": f"Benchmark {n}",
                "starts_at": (timezone.now() + timedelta(days=1)).isoformat(),
                "duration_minutes": 60,
                "timezone": "Europe/London",
                "classification": "official",
                "cloud_recording": False,
                "dial_in": False,
                "waiting_room": True,
            }
            started = time.perf_counter()
            response = session.post(f"{url}/api/v1/meetings/", json=body, timeout=30)
            elapsed = time.perf_counter() - started
            if response.status_code != 201:
                raise SystemExit(f"booking failed: {response.status_code} {response.text[:300]}")
            return elapsed

        def hash_once() -> float:
            passcode, _bits = credentials.new_passcode(60)
            started = time.perf_counter()
            credentials.hash_passcode(passcode)
            return time.perf_counter() - started

        for n in range(WARM_UP):
            book(-n)
            hash_once()
        bookings, hashes = [], []
        for n in range(ROUNDS):
            bookings.append(book(n))
            hashes.append(hash_once())
        harness.drop_data()

    booking_ms = harness.median(bookings) * 1000
    hash_ms = harness.median(hashes) * 1000
    ratio = booking_ms / hash_ms
    params = (
        f"t={settings.ANTECHAMBER_ARGON2_TIME_COST}, m={settings.ANTECHAMBER_ARGON2_MEMORY_KIB} KiB, "
        f"p={settings.ANTECHAMBER_ARGON2_PARALLELISM}"
    )
    print(f"bookings: {ROUNDS} (after {WARM_UP} warm-up), argon2id {params}")
    print(f"median booking:     {booking_ms:.1f} ms (p90 {harness.percentile(bookings, 90) * 1000:.1f} ms)")
    print(f"median argon2 hash: {hash_ms:.1f} ms")
    print(f"ratio:              {ratio:.2f} (target <= 1.5)")
    harness.record(
        [
            (
                "booking: median POST /api/v1/meetings/ / median argon2 hash",
                "<= 1.5",
                f"{booking_ms:.1f} ms / {hash_ms:.1f} ms",
                f"{ratio:.2f}",
            )
        ],
        f"{ROUNDS} bookings (token auth, no invitees, level `official`) through gunicorn (2 sync "
        f"workers) on PostgreSQL, interleaved with {ROUNDS} hashes in the driver process "
        f"(argon2id {params}). Median booking {booking_ms:.1f} ms, p90 "
        f"{harness.percentile(bookings, 90) * 1000:.1f} ms; median hash {hash_ms:.1f} ms.",
    )


if __name__ == "__main__":
    main()
