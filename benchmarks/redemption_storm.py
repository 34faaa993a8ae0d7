"""Redemption storm: 2,000 one-time links redeemed by 50 concurrent clients against
gunicorn (4 sync workers) and PostgreSQL.

Each invitee first opens their link (GET: the confirmation page, which spends nothing
and gives the browser its CSRF cookie), as people do when the mail arrives; then all
2,000 click "Join" at once (POST: the redemption, answered 302 into the waiting room).
The storm is the POSTs: redemptions/s, p50, p99. Baseline, on the same server with the
same 50 clients: /bench/bare/ (benchmarks/bench_wsgi.py), one indexed SELECT through the
same middleware. Target: redemptions/s over bare requests/s of 0.5 or more. Also the peak
resident memory (VmHWM) of each gunicorn worker.
Run: .venv/bin/python benchmarks/redemption_storm.py   (or `make bench`)
"""

import re
from datetime import timedelta

import harness

INVITEES = 2000
CLIENTS = 50
WORKERS = 4
DEADLINE = 240  # seconds per phase; a phase that runs out is reported as an error
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
LINK = re.compile(r"/j/([A-Za-z0-9_-]+)/")


def main() -> None:
    with harness.Stack() as stack:
        stack.redis()
        env = harness.configure(redis_url=stack.redis_url)
        harness.reset_database()
        import requests
        from django.contrib.auth.models import User
        from django.utils import timezone

        from meetings import sealing
        from meetings.models import AuditEvent, ClassificationLevel, JoinLink, OutboundMessage
        from meetings.services import booking, invitations

        host = User.objects.create_user("bench-host", "host@example.org")
        with harness.timed(f"booking and inviting {INVITEES} (in the driver)"):
            booked = booking.meeting_book(
                host=host,
                title="All hands",
                starts_at=timezone.now() + timedelta(minutes=5),
                duration_minutes=60,
                classification=ClassificationLevel.objects.get(code="official"),
                host_has_second_factor=True,
            )
            invitations.invitations_create(
                meeting=booked.meeting,
                actor=host,
                emails_to_invite=[f"person{i}@example.org" for i in range(INVITEES)],
                host_has_second_factor=True,
            )
        # The raw tokens exist only in the mail: open the outbox rows' sealed links, as sending does.
        tokens = [
            LINK.search(sealing.unseal(sealed, row_id=message_id)).group(1)
            for sealed, message_id in OutboundMessage.objects.values_list("sealed_link", "message_id")
        ]
        assert len(set(tokens)) == INVITEES

        url, web = stack.web(env, workers=WORKERS)

        def bare(session, token):
            response = session.get(f"{url}/bench/bare/", params={"t": token}, timeout=60)
            if response.status_code != 200 or not response.json()["found"]:
                raise RuntimeError(f"bare: {response.status_code}")

        harness.run_clients(CLIENTS, tokens[:200], bare, deadline_seconds=DEADLINE)  # warm every worker
        bare_latencies, bare_wall, bare_errors = harness.run_clients(
            CLIENTS, tokens, bare, deadline_seconds=DEADLINE
        )

        opened: dict[str, tuple[requests.Session, str]] = {}

        def open_link(_thread_session, token):
            person = requests.Session()  # one browser per invitee
            response = person.get(f"{url}/j/{token}/", timeout=60)
            match = CSRF_FIELD.search(response.text)
            if response.status_code != 200 or match is None:
                raise RuntimeError(f"confirmation page: {response.status_code}")
            opened[token] = (person, match.group(1))

        open_latencies, open_wall, open_errors = harness.run_clients(
            CLIENTS, tokens, open_link, deadline_seconds=DEADLINE
        )

        def redeem(_thread_session, token):
            person, csrf = opened[token]
            response = person.post(
                f"{url}/j/{token}/", data={"csrfmiddlewaretoken": csrf}, allow_redirects=False, timeout=60
            )
            if response.status_code != 302 or "/invited/" not in response.headers.get("Location", ""):
                raise RuntimeError(f"redemption: {response.status_code}")

        with harness.profiled("storm", harness.worker_pids(web.process.pid)):
            storm_latencies, storm_wall, storm_errors = harness.run_clients(
                CLIENTS, [t for t in tokens if t in opened], redeem, deadline_seconds=DEADLINE
            )
        peaks = [harness.peak_rss_mib(pid) for pid in harness.worker_pids(web.process.pid)]
        redeemed = JoinLink.objects.filter(redeemed_at__isnull=False).count()
        audited = AuditEvent.objects.filter(action="invitation_redeemed").count()
        harness.drop_data()

    errors = bare_errors + open_errors + storm_errors
    bare_rate = len(bare_latencies) / bare_wall
    open_rate = len(open_latencies) / open_wall
    storm_rate = len(storm_latencies) / storm_wall
    ratio = storm_rate / bare_rate
    ms = lambda values, pct: harness.percentile(values, pct) * 1000  # noqa: E731
    print(f"{INVITEES} invitees, {CLIENTS} clients, gunicorn {WORKERS} sync workers, PostgreSQL")
    print(
        f"bare (1 indexed SELECT): {bare_rate:.0f}/s, p50 {ms(bare_latencies, 50):.1f} ms, p99 {ms(bare_latencies, 99):.1f} ms"
    )
    print(
        f"confirmation page GET:   {open_rate:.0f}/s, p50 {ms(open_latencies, 50):.1f} ms, p99 {ms(open_latencies, 99):.1f} ms"
    )
    print(
        f"redemption POST:         {storm_rate:.0f}/s, p50 {ms(storm_latencies, 50):.1f} ms, p99 {ms(storm_latencies, 99):.1f} ms"
    )
    print(f"ratio redemptions/bare:  {ratio:.2f} (target >= 0.5)")
    print(f"links redeemed: {redeemed}, audited: {audited}, errors: {len(errors)}")
    print(f"peak RSS per worker (VmHWM): {', '.join(f'{p:.0f}' for p in peaks)} MiB")
    for error in errors[:5]:
        print("  error:", error)
    harness.record(
        [
            (
                "redemption storm: redemptions/s / bare SELECT requests/s",
                ">= 0.5",
                f"{storm_rate:.0f}/s (p50 {ms(storm_latencies, 50):.0f} ms, p99 {ms(storm_latencies, 99):.0f} ms)"
                f" / {bare_rate:.0f}/s (p50 {ms(bare_latencies, 50):.0f} ms, p99 {ms(bare_latencies, 99):.0f} ms)",
                f"{ratio:.2f}",
            ),
            (
                "redemption storm: peak RSS per gunicorn worker (VmHWM)",
                "(reported)",
                ", ".join(f"{p:.0f}" for p in peaks) + " MiB",
                "-",
            ),
        ],
        f"""{INVITEES} invitations of one meeting, redeemed by {CLIENTS} client threads (Python `requests`,
in the driver process on the same {harness.os.cpu_count()} cores) against gunicorn with {WORKERS} sync
workers on PostgreSQL. Every invitee first opened their link (GET, confirmation page:
{open_rate:.0f}/s, p50 {ms(open_latencies, 50):.0f} ms, p99 {ms(open_latencies, 99):.0f} ms); the
storm is the 2,000 POSTs that spend the links: {storm_rate:.0f}/s, p50 {ms(storm_latencies, 50):.0f} ms,
p99 {ms(storm_latencies, 99):.0f} ms. Baseline: `/bench/bare/` from `benchmarks/bench_wsgi.py` (the
site plus one benchmark-only URL that does one indexed SELECT, a join link by its token
digest, through the same middleware), {INVITEES} requests from the same {CLIENTS} clients:
{bare_rate:.0f}/s. Links redeemed: {redeemed} of {INVITEES}, audited: {audited}; errors: {len(errors)}.""",
    )


if __name__ == "__main__":
    main()
