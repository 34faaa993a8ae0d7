"""Redemption storm: one-time links redeemed by 50 concurrent connections from wrk (a
native load generator) through nginx, against gunicorn and PostgreSQL; side by side with
one gunicorn server (4 sync workers) and with two (2 sync workers each) behind nginx.

Each configuration gets its own 2,000 invitations. Phases, each with the same 50
connections through the same nginx: the baseline, `/bench/bare/` (benchmarks/bench_wsgi.py,
one indexed SELECT through the same middleware), cycling over the tokens for 8 s; the
confirmation pages (GET /j/<token>/, which spend nothing) for 5 s; then the storm: every
link POSTed exactly once (answered 302 into the waiting room). Every invitee speaks from
an address of their own (X-Forwarded-For, believed from 127.0.0.1 as from a balancer), so
nginx's per-address limit on /j/ does not apply to one invitee's one click. A sealer
thread runs as beat would (every 2 s), so the audit chain's cost is in the figure.
Target: redemptions/s over bare requests/s of 0.5 or more. Each phase also reports the
CPU time per request of every process involved (harness.cpu_use): the machine is
CPU-bound in both phases, so that is where the ratio comes from.
Run: .venv/bin/python benchmarks/redemption_storm.py   (or `make bench`);
BENCH_PROFILE=1 samples the web workers during the storm with py-spy (harness.profiled;
`benchmarks/profile_summary.py storm-1` and `storm-2` sum the samples).
"""

import threading
from datetime import timedelta

import harness

INVITEES = 2000
CONNECTIONS = 50
BARE_SECONDS = 8
OPEN_SECONDS = 5
CONFIGURATIONS = [("one server, 4 workers", [4]), ("two servers, 2 workers each", [2, 2])]


def _address(n: int) -> str:
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


def main() -> None:
    results = []
    with harness.Stack() as stack:
        stack.redis()
        env = harness.configure(redis_url=stack.redis_url)
        harness.reset_database()
        from django.contrib.auth.models import User
        from django.middleware.csrf import _get_new_csrf_string
        from django.utils import timezone

        from meetings import sealing
        from meetings.audit import audit_seal, verify_chain
        from meetings.models import AuditEvent, ClassificationLevel, JoinLink, OutboundMessage
        from meetings.services import booking, invitations

        host = User.objects.create_user("bench-host", "host@example.org")
        token_sets = []
        for index, _config in enumerate(CONFIGURATIONS):
            with harness.timed(f"booking and inviting {INVITEES} (in the driver)"):
                booked = booking.meeting_book(
                    host=host,
                    title=f"All hands {index}",
                    starts_at=timezone.now() + timedelta(minutes=5),
                    duration_minutes=60,
                    classification=ClassificationLevel.objects.get(code="official"),
                    host_has_second_factor=True,
                )
                invitations.invitations_create(
                    meeting=booked.meeting,
                    actor=host,
                    emails_to_invite=[f"person{index}-{i}@example.org" for i in range(INVITEES)],
                    host_has_second_factor=True,
                )
            # The raw tokens exist only in the mail: open them from the sealed outbox rows.
            rows = OutboundMessage.objects.filter(invitation__meeting=booked.meeting).values_list(
                "sealed_link", "message_id"
            )
            tokens = [
                sealing.unseal(sealed, row_id=message_id).rstrip("/").rsplit("/", 1)[-1]
                for sealed, message_id in rows
            ]
            assert len(set(tokens)) == INVITEES
            token_sets.append(tokens)
        audit_seal()

        stop_sealing = threading.Event()

        def sealer() -> None:  # what beat's audit-seal does, every 2 s
            while not stop_sealing.wait(2):
                audit_seal()

        seal_thread = threading.Thread(target=sealer, daemon=True)
        seal_thread.start()
        for (label, workers), tokens in zip(CONFIGURATIONS, token_sets, strict=True):
            started = [stack.web(env, workers=w) for w in workers]
            servers = [url for url, _process in started]
            front = stack.nginx(servers)
            bare_lines = [harness.wrk_line("GET", f"/bench/bare/?t={t}") for t in tokens]
            harness.wrk(front, bare_lines[:500], connections=CONNECTIONS, once=True)  # warm every worker
            with harness.cpu_use() as bare_cpu:
                bare = harness.wrk(
                    front, bare_lines, connections=CONNECTIONS, once=False, seconds=BARE_SECONDS
                )
            opened = harness.wrk(
                front,
                [
                    harness.wrk_line("GET", f"/j/{t}/", headers={"X-Forwarded-For": _address(n)})
                    for n, t in enumerate(tokens)
                ],
                connections=CONNECTIONS,
                once=False,
                seconds=OPEN_SECONDS,
            )
            storm_lines = []
            for n, token in enumerate(tokens):
                csrf = _get_new_csrf_string()  # what the confirmation page's cookie and form carry
                storm_lines.append(
                    harness.wrk_line(
                        "POST",
                        f"/j/{token}/",
                        f"csrfmiddlewaretoken={csrf}&display_name=Person+{n}",
                        {
                            "Content-Type": "application/x-www-form-urlencoded",
                            "Cookie": f"csrftoken={csrf}",
                            "X-Forwarded-For": _address(n),
                        },
                    )
                )
            web_workers = [
                pid for _url, process in started for pid in harness.worker_pids(process.process.pid)
            ]
            with harness.profiled(f"storm-{len(workers)}", web_workers), harness.cpu_use() as storm_cpu:
                storm = harness.wrk(front, storm_lines, connections=CONNECTIONS, once=True)
            redeemed = JoinLink.objects.filter(
                invitation__meeting__title=f"All hands {CONFIGURATIONS.index((label, workers))}",
                redeemed_at__isnull=False,
            ).count()
            cpu = (bare_cpu.per_request(bare.requests), storm_cpu.per_request(INVITEES))
            results.append((label, bare, opened, storm, redeemed, cpu))
            print(
                f"{label}: bare {bare.rate:.0f}/s (p99 {bare.p99_ms:.0f} ms); confirmation GET {opened.rate:.0f}/s; "
                f"storm {storm.rate:.0f}/s (p50 {storm.p50_ms:.0f} ms, p99 {storm.p99_ms:.0f} ms), "
                f"answers {storm.statuses}, errors {storm.errors}; ratio {storm.rate / bare.rate:.2f}\n"
                f"  CPU per bare request: {cpu[0]}\n  CPU per redemption: {cpu[1]}",
                flush=True,
            )
        stop_sealing.set()
        seal_thread.join()
        audit_seal()
        audited = AuditEvent.objects.filter(action="invitation_redeemed").count()
        report = verify_chain()
        harness.drop_data()

    load = harness.load_average()
    rows = []
    notes = []
    for label, bare, opened, storm, redeemed, cpu in results:
        ratio = storm.rate / bare.rate
        rows.append(
            (
                f"redemption storm ({label}, nginx, wrk): redemptions/s / bare SELECT requests/s",
                ">= 0.5",
                f"{storm.rate:.0f}/s (p50 {storm.p50_ms:.0f} ms, p99 {storm.p99_ms:.0f} ms)"
                f" / {bare.rate:.0f}/s (p50 {bare.p50_ms:.0f} ms, p99 {bare.p99_ms:.0f} ms)",
                f"{ratio:.2f}",
            )
        )
        notes.append(
            f"- {label}: bare {bare.rate:.0f}/s (p50 {bare.p50_ms:.0f} ms, p99 {bare.p99_ms:.0f} ms);"
            f" confirmation pages {opened.rate:.0f}/s (p50 {opened.p50_ms:.0f} ms); storm {storm.rate:.0f}/s"
            f" (p50 {storm.p50_ms:.0f} ms, p99 {storm.p99_ms:.0f} ms), answers {storm.statuses},"
            f" socket errors {storm.errors or 'none'}; links redeemed {redeemed} of {INVITEES}; ratio {ratio:.2f}."
            f" CPU per bare request: {cpu[0]}; per redemption: {cpu[1]}."
        )
    print(
        f"audited redemptions {audited}; chain intact {report.intact}, sealed rows {report.rows}, unsealed {report.unsealed}"
    )
    print(f"load average at the end: {load}")
    harness.record(
        rows,
        f"""{INVITEES} invitations per configuration, each link POSTed once by wrk ({CONNECTIONS}
connections, 2 threads, on the same {harness.os.cpu_count()} cores) through nginx
(deploy/render_nginx.py, 1 worker process) to gunicorn sync workers on PostgreSQL, with a
private Redis (cache, sessions in `cached_db`). Baseline in the same configuration, just
before: `/bench/bare/` (one indexed SELECT through the same middleware), {BARE_SECONDS} s of
wrk with the same connections. A sealer ran every 2 s as beat's audit-seal does (in the
driver). CPU per request: by process kind, as /proc counts it around each phase (wrk: the
load generator; driver: the sealer).

{chr(10).join(notes)}

Redemptions audited: {audited}; after the run the chain verified intact ({report.rows} sealed
rows, {report.unsealed} unsealed).""",
    )


if __name__ == "__main__":
    main()
