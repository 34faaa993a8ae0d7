"""Redemption storm: one-time links redeemed by 50 concurrent connections from wrk (a
native load generator) through nginx, against gunicorn and PostgreSQL; side by side with
one gunicorn server (4 sync workers) and with two (2 sync workers each) behind nginx.

Three rounds; each round runs both configurations (in turn first), each run on 2,000
invitations of its own and servers of its own. Phases, each with the same 50 connections
through the same nginx: the confirmation pages (GET /j/<token>/, which spend nothing) for
5 s; the baseline, `/bench/bare/` (benchmarks/bench_wsgi.py, one indexed SELECT through
the same middleware), cycling over the tokens for 4 s; the storm: every link POSTed
exactly once (answered 302 into the waiting room); the storm's last audit rows sealed and
the database vacuumed; the baseline for 4 s more. The two halves of the baseline, taken
together, cancel a drift of the machine's speed during the storm (it drifts by a quarter
within minutes), and the median of the three rounds is the figure. Every invitee speaks
from an address of their own (X-Forwarded-For, believed from 127.0.0.1 as from a
balancer), so nginx's per-address limit on /j/ does not apply to one invitee's one click.
A sealer thread runs as beat would (every 2 s), so the audit chain's cost is in the figure.
Target: redemptions/s over bare requests/s of 0.5 or more. Each phase also reports the
CPU time per request of every process involved (harness.cpu_use): the machine is
CPU-bound in both phases, so that is where the ratio comes from.
Run: .venv/bin/python benchmarks/redemption_storm.py   (or `make bench`);
BENCH_PROFILE=1 (or =cpu: on-core samples only) samples the web workers with py-spy
(harness.profiled; `benchmarks/profile_summary.py storm-4` sums the storms' samples,
bare-before-4 and bare-after-4 the baseline's).
"""

import statistics
import threading
from dataclasses import dataclass
from datetime import timedelta

import harness

INVITEES = 2000
CONNECTIONS = 50
BARE_SECONDS = 8
OPEN_SECONDS = 5
ROUNDS = 3
CONFIGURATIONS = [("one server, 4 workers", [4]), ("two servers, 2 workers each", [2, 2])]


def _address(n: int) -> str:
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


@dataclass
class Run:
    label: str
    round: int
    bare: harness.WrkResult
    bare_halves: tuple[float, float]
    opened: harness.WrkResult
    storm: harness.WrkResult
    redeemed: int
    cpu: tuple[str, str]

    @property
    def ratio(self) -> float:
        return self.storm.rate / self.bare.rate

    def line(self) -> str:
        bare, storm = self.bare, self.storm
        return (
            f"round {self.round}, {self.label}: bare {bare.rate:.0f}/s (p50 {bare.p50_ms:.0f} ms, p99"
            f" {bare.p99_ms:.0f} ms; {self.bare_halves[0]:.0f}/s before the storm, {self.bare_halves[1]:.0f}/s"
            f" after); confirmation pages {self.opened.rate:.0f}/s; storm {storm.rate:.0f}/s (p50"
            f" {storm.p50_ms:.0f} ms, p99 {storm.p99_ms:.0f} ms), answers {storm.statuses}, socket errors"
            f" {storm.errors or 'none'}; links redeemed {self.redeemed} of {INVITEES}; ratio {self.ratio:.2f}."
            f" CPU per bare request: {self.cpu[0]}; per redemption: {self.cpu[1]}."
        )


def main() -> None:
    runs: list[Run] = []
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

        def invite(title: str) -> list[str]:
            with harness.timed(f"booking and inviting {INVITEES} (in the driver)"):
                booked = booking.meeting_book(
                    host=host,
                    title=title,
                    starts_at=timezone.now() + timedelta(minutes=5),
                    duration_minutes=60,
                    classification=ClassificationLevel.objects.get(code="official"),
                    host_has_second_factor=True,
                )
                invitations.invitations_create(
                    meeting=booked.meeting,
                    actor=host,
                    emails_to_invite=[f"{title.replace(' ', '-')}-{i}@example.org" for i in range(INVITEES)],
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
            return tokens

        def run(round_: int, label: str, workers: list[int], title: str, tokens: list[str]) -> Run:
            started = [stack.web(env, workers=w) for w in workers]
            front = stack.nginx([url for url, _process in started])
            web_workers = [
                pid for _url, process in started for pid in harness.worker_pids(process.process.pid)
            ]
            bare_lines = [harness.wrk_line("GET", f"/bench/bare/?t={t}") for t in tokens]
            harness.wrk(front, bare_lines[:500], connections=CONNECTIONS, once=True)  # warm every worker

            def baseline(half: str) -> tuple[harness.WrkResult, harness.CpuUse]:
                with (
                    harness.profiled(f"bare-{half}-{len(web_workers)}", web_workers),
                    harness.cpu_use() as used,
                ):
                    result = harness.wrk(
                        front, bare_lines, connections=CONNECTIONS, once=False, seconds=BARE_SECONDS // 2
                    )
                return result, used

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
            before, before_cpu = baseline("before")
            with harness.profiled(f"storm-{len(web_workers)}", web_workers), harness.cpu_use() as storm_cpu:
                storm = harness.wrk(front, storm_lines, connections=CONNECTIONS, once=True)
            # What the storm left behind is not the baseline's to pay for: its last audit rows
            # are sealed and the tables it wrote vacuumed before the second half.
            audit_seal(wait=True)
            harness.vacuum()
            after, after_cpu = baseline("after")
            for _url, process in started:
                process.stop()
            bare = before.merged(after)
            redeemed = JoinLink.objects.filter(
                invitation__meeting__title=title, redeemed_at__isnull=False
            ).count()
            cpu = (before_cpu.merged(after_cpu).per_request(bare.requests), storm_cpu.per_request(INVITEES))
            return Run(label, round_, bare, (before.rate, after.rate), opened, storm, redeemed, cpu)

        plan = []
        for round_ in range(1, ROUNDS + 1):
            order = CONFIGURATIONS if round_ % 2 else CONFIGURATIONS[::-1]  # each goes first in turn
            for label, workers in order:
                title = f"All hands {round_} {len(workers)}"
                plan.append((round_, label, workers, title, invite(title)))
        audit_seal()

        stop_sealing = threading.Event()

        def sealer() -> None:  # what beat's audit-seal does, every 2 s
            while not stop_sealing.wait(2):
                audit_seal()

        seal_thread = threading.Thread(target=sealer, daemon=True)
        seal_thread.start()
        for planned in plan:
            runs.append(run(*planned))
            print(runs[-1].line(), flush=True)
        stop_sealing.set()
        seal_thread.join()
        audit_seal()
        audited = AuditEvent.objects.filter(action="invitation_redeemed").count()
        report = verify_chain()
        harness.drop_data()

    load = harness.load_average()
    rows = []
    for label, _workers in CONFIGURATIONS:
        mine = sorted((r for r in runs if r.label == label), key=lambda r: r.ratio)
        median = mine[len(mine) // 2]
        ratios = ", ".join(f"{r.ratio:.2f}" for r in sorted(mine, key=lambda r: r.round))
        rows.append(
            (
                f"redemption storm ({label}, nginx, wrk): redemptions/s / bare SELECT requests/s,"
                f" median of {len(mine)} rounds",
                ">= 0.5",
                f"{median.storm.rate:.0f}/s (p99 {median.storm.p99_ms:.0f} ms) / {median.bare.rate:.0f}/s"
                f" (p99 {median.bare.p99_ms:.0f} ms); rounds {ratios}",
                f"{statistics.median(r.ratio for r in mine):.2f}",
            )
        )
    print(
        f"audited redemptions {audited}; chain intact {report.intact}, sealed rows {report.rows}, unsealed {report.unsealed}"
    )
    print(f"load average at the end: {load}")
    harness.record(
        rows,
        f"""{ROUNDS} rounds of both configurations, {INVITEES} invitations each, each link POSTed
once by wrk ({CONNECTIONS} connections, 2 threads, on the same {harness.os.cpu_count()} cores)
through nginx (deploy/render_nginx.py, 1 worker process) to gunicorn sync workers on
PostgreSQL, with a private Redis (cache, sessions in `cached_db`). Baseline in the same
configuration: `/bench/bare/` (one indexed SELECT through the same middleware), {BARE_SECONDS // 2} s
of wrk with the same connections just before the storm and {BARE_SECONDS // 2} s just after it,
taken together (percentiles: the worse half's); between the storm and the second half the
storm's last audit rows were sealed and the database vacuumed. A sealer ran every 2 s as
beat's audit-seal does (in the driver). CPU per request: by process kind, as /proc counts
it around each phase (wrk: the load generator; driver: the sealer).

{chr(10).join("- " + r.line() for r in runs)}

Redemptions audited: {audited}; after the run the chain verified intact ({report.rows} sealed
rows, {report.unsealed} unsealed).""",
    )


if __name__ == "__main__":
    main()
