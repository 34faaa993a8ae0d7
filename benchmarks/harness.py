"""What every benchmark shares: a fresh PostgreSQL schema, real processes, timed clients,
and the table in docs/BENCHMARKS.md.

Processes (a private Redis, gunicorn, Celery workers) come from tests/real_services.py, so
the benchmarks and the fault tests start the stack the same way. Nothing here touches
Redis on 6379: every script starts its own on a free port.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/antechamber_bench")
RESULTS = ROOT / "docs" / "BENCHMARKS.md"
TABLE_START = "<!-- bench:table -->"
TABLE_END = "<!-- /bench:table -->"
HEADER = "| figure | target | measured | ratio | command |\n| --- | --- | --- | --- | --- |"


def configure(*, redis_url: str, smtp_port: int | None = None, **extra: str) -> dict[str, str]:
    """Environment of this driver and of every process it starts; then set Django up."""
    env = {
        "DJANGO_SETTINGS_MODULE": "scheduler.settings_test",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": redis_url,
        "ANTECHAMBER_CACHE_PREFIX": "bench",
        "DJANGO_DEBUG": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
        # The fan-out and storm benchmarks invite thousands at once, beyond the default caps.
        "ANTECHAMBER_INVITES_PER_REQUEST": "5000",
        "ANTECHAMBER_INVITES_PER_MEETING_PER_HOUR": "20000",
        **({"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port)} if smtp_port else {}),
        **extra,
    }
    os.environ.update(env)
    import django

    django.setup()
    return {**os.environ, **env}


def reset_database() -> None:
    """Recreate the schema of the benchmark database and migrate it: each run starts empty."""
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("the benchmarks need PostgreSQL: set BENCH_DATABASE_URL=postgres://...")
    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    call_command("migrate", verbosity=0)


def vacuum() -> None:
    """VACUUM ANALYZE the benchmark database: dead rows a phase left are not the next one's."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")


def drop_data() -> None:
    """Leave the benchmark database empty again (clean-up)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    connection.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack(contextlib.ExitStack):
    """Starts real processes; every one started is stopped on exit, also on failure."""

    def __init__(self) -> None:
        super().__init__()
        from tests import real_services as real

        self.real = real
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"

    def redis(self) -> None:
        process = self.real.private_redis(self.redis_port)
        process.start(ready=b"Ready to accept connections")
        self.callback(process.stop)

    def web(self, env: dict[str, str], *, workers: int) -> tuple[str, object]:
        """gunicorn (sync workers) serving benchmarks/bench_wsgi.py; returns (base URL, process)."""
        port = free_port()
        process = self.real.Process(
            f"bench-web-{port}",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "benchmarks.bench_wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                str(workers),
                "--timeout",
                "300",
                "--graceful-timeout",
                "5",
            ],
            env,
        )
        process.start(ready=b"Booting worker")
        self.callback(process.stop)
        url = f"http://127.0.0.1:{port}"
        self.real.wait_until(lambda: _answers(url), timeout=60, what="gunicorn")
        return url, process

    def nginx(self, upstreams: list[str], **options: str) -> str:
        """nginx from deploy/render_nginx.py in front of `upstreams` (base URLs); its URL.

        Trusts 127.0.0.1's X-Forwarded-For (as behind a balancer), so that wrk can speak for
        many client addresses: limit_req and the app then count each one on its own.
        """
        port = free_port()
        prefix = ROOT / "var" / f"bench-nginx-{port}"
        argv = [sys.executable, str(ROOT / "deploy" / "render_nginx.py"), "--listen", f"127.0.0.1:{port}"]
        for upstream in upstreams:
            argv += ["--upstream", upstream.removeprefix("http://")]
        argv += ["--prefix", str(prefix), "--trusted-proxy", "127.0.0.1", "--workers", "1"]
        for name, value in options.items():
            argv += [f"--{name.replace('_', '-')}", value]
        subprocess.run(argv, check=True, capture_output=True)  # noqa: S603 - our own script
        nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        process = self.real.Process(
            f"bench-nginx-{port}", [nginx_bin, "-p", str(prefix), "-c", "nginx.conf", "-g", "daemon off;"], {}
        )
        process.start()
        self.callback(process.stop)
        url = f"http://127.0.0.1:{port}"
        self.real.wait_until(lambda: _answers(url), timeout=30, what="nginx")
        return url

    def worker(self, env: dict[str, str], name: str, concurrency: int = 1) -> None:
        process = self.real.celery("worker", env, name, concurrency=concurrency)
        process.start(ready=b"ready.")
        self.callback(process.stop)

    def smtp(self):
        controller, mailbox = self.real.start_smtp()
        self.callback(controller.stop)
        return controller, mailbox


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(f"{url}/bench/bare/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def worker_pids(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the resident set's high-water mark of the process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)


def run_clients(
    clients: int, jobs: list, work: Callable[[object, object], None], *, deadline_seconds: float
) -> tuple[list[float], float, list[str]]:
    """`clients` threads take jobs from a shared list until it is empty or the deadline passes.

    `work(session, job)` does one request (raising on a wrong answer). Returns each job's
    latency in seconds, the wall time, and the errors (as text).
    """
    import requests

    lock = threading.Lock()
    pending = list(reversed(jobs))
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + deadline_seconds

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                if not pending:
                    return
                job = pending.pop()
            started = time.perf_counter()
            try:
                work(session, job)
            except Exception as exc:  # counted and reported, never hidden
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if pending:
        errors.append(f"deadline of {deadline_seconds}s passed with {len(pending)} job(s) not done")
    return latencies, wall, errors


WRK_SCRIPT = ROOT / "benchmarks" / "wrk_requests.lua"


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    statuses: dict[int, int]
    errors: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def count(self, *statuses: int) -> int:
        return sum(self.statuses.get(status, 0) for status in statuses)

    def merged(self, other: WrkResult) -> WrkResult:
        """Two runs of the same requests as one: their requests over their time; each
        percentile the worse of the two (the runs' latencies are not kept)."""
        statuses = {
            k: self.statuses.get(k, 0) + other.statuses.get(k, 0) for k in {*self.statuses, *other.statuses}
        }
        errors = {k: self.errors.get(k, 0) + other.errors.get(k, 0) for k in {*self.errors, *other.errors}}
        return WrkResult(
            requests=self.requests + other.requests,
            seconds=self.seconds + other.seconds,
            p50_ms=max(self.p50_ms, other.p50_ms),
            p90_ms=max(self.p90_ms, other.p90_ms),
            p99_ms=max(self.p99_ms, other.p99_ms),
            statuses=statuses,
            errors=errors,
        )


def wrk_line(method: str, path: str, body: str = "", headers: dict[str, str] | None = None) -> str:
    """One request for `wrk()`'s file (no tabs or newlines inside the parts)."""
    parts = [method, path, body, *(f"{k}: {v}" for k, v in (headers or {}).items())]
    assert not any("\t" in part or "\n" in part for part in parts)
    return "\t".join(parts)


def wrk(
    url: str,
    lines: list[str],
    *,
    connections: int,
    once: bool,
    seconds: float = 300,
    threads: int = 2,
    pause_ms: int = 0,
) -> WrkResult:
    """Run wrk (a native load generator: two threads, event loops, no Python) against url.

    once: each line is sent exactly once and the run ends when all are answered (a thread
    stops when its share is done); otherwise the lines cycle for `seconds`. pause_ms: each
    connection waits that long before each request (a paced load instead of a flat-out one).
    """
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("the benchmarks need wrk (apt-get install wrk)")
    (ROOT / "var").mkdir(exist_ok=True)
    requests_file = ROOT / "var" / f"wrk-requests-{os.getpid()}.txt"
    requests_file.write_text("\n".join(lines) + "\n")
    argv = [binary, "-t", str(threads), "-c", str(connections), "-d", f"{int(seconds)}s", "--timeout", "60s"]
    argv += [
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        str(requests_file),
        "once" if once else "cycle",
        str(threads),
        str(pause_ms),
    ]
    markers = [Path(f"{requests_file}.done.{n}") for n in range(1, threads + 1)]
    for marker in markers:
        marker.unlink(missing_ok=True)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
    if once:
        # wrk waits out -d even when every thread has stopped; SIGINT makes it report now.
        deadline = time.monotonic() + seconds
        while process.poll() is None and time.monotonic() < deadline:
            if all(marker.exists() for marker in markers):
                process.send_signal(signal.SIGINT)
                break
            time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=seconds + 60)
    done = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    answered = sum(data["statuses"].values())
    return WrkResult(
        # once: wrk's count also holds nothing else (a thread stops at its last answer).
        requests=answered if once else data["requests"],
        seconds=(data["span_us"] if once else data["duration_us"]) / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        statuses={int(k): v for k, v in data["statuses"].items()},
        errors={k: v for k, v in data["errors"].items() if v and k != "status"},
    )


# Processes whose CPU time cpu_use() reports, by what /proc says they are.
CPU_KINDS = (("gunicorn", "web"), ("postgres", "PostgreSQL"), ("nginx", "nginx"), ("redis-server", "Redis"))


def _cpu_by_process() -> dict[int, tuple[str, float]]:
    """pid -> (kind, CPU seconds so far) of this run's processes of a kind in CPU_KINDS:
    descendants of this process (web servers, nginx, Redis), and the PostgreSQL server's
    own processes and its backends of the benchmark database (not another database's)."""
    from django.conf import settings

    database = f" {settings.DATABASES['default']['NAME']} "
    tick = os.sysconf("SC_CLK_TCK")
    seen = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        kind = next((label for key, label in CPU_KINDS if key in command or name.startswith(key)), None)
        cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        seen[int(entry.name)] = (int(fields[1]), kind, command, cpu)

    def ours(pid: int) -> bool:
        while pid > 1:
            if pid == os.getpid():
                return True
            pid = seen[pid][0] if pid in seen else 1
        return False

    found = {}
    for pid, (_parent, kind, command, cpu) in seen.items():
        if kind == "PostgreSQL":
            backend = "(" in command  # "postgres: user database 127.0.0.1(port) ..."
            if backend and database not in command:
                continue
        elif kind is None or not ours(pid):
            continue
        found[pid] = (kind, cpu)
    return found


@dataclass
class CpuUse:
    seconds: dict[str, float]

    def per_request(self, requests: int) -> str:
        """'web 3.10, PostgreSQL 0.60, ... (all 4.50) ms' of CPU per request."""
        parts = [f"{kind} {seconds * 1000 / requests:.2f}" for kind, seconds in self.seconds.items()]
        total = sum(self.seconds.values()) * 1000 / requests
        return f"{', '.join(parts)} (all {total:.2f}) ms"

    def merged(self, other: CpuUse) -> CpuUse:
        return CpuUse({kind: self.seconds.get(kind, 0) + other.seconds.get(kind, 0) for kind in self.seconds})


@contextlib.contextmanager
def cpu_use() -> Iterator[CpuUse]:
    """CPU seconds spent during the block by the web servers, PostgreSQL, nginx and Redis
    (from /proc), by the load generator (children of this process that ended: wrk), and
    by this process (the driver: the sealer thread). On a 2-core machine the figures say
    where the cores went; their sum per request is what a request costs."""
    use = CpuUse({})
    before = _cpu_by_process()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    yield use
    after = _cpu_by_process()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    for _key, kind in CPU_KINDS:
        use.seconds[kind] = sum(
            seconds - before.get(pid, (kind, 0.0))[1] for pid, (of, seconds) in after.items() if of == kind
        )
    use.seconds["wrk"] = (children_after.ru_utime + children_after.ru_stime) - (
        children.ru_utime + children.ru_stime
    )
    use.seconds["driver"] = (own_after.ru_utime + own_after.ru_stime) - (own.ru_utime + own.ru_stime)


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def machine() -> str:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = match.group(1).strip() if match else cpu
    ram = "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        ram = f"{int(match.group(1)) / 1024 / 1024:.1f} GiB" if match else ram
    return (
        f"nproc {os.cpu_count()}, RAM {ram}, CPU {cpu}, Python {platform.python_version()}, "
        f"load average {load_average()} at the end (the machine is shared)"
    )


def command() -> str:
    return "python " + shlex.join(["benchmarks/" + Path(sys.argv[0]).name, *sys.argv[1:]])


def record(rows: list[tuple[str, str, str, str]], notes: str) -> None:
    """Replace this script's rows (by figure name) in docs/BENCHMARKS.md's table, and its notes.

    rows: (figure, target, measured, ratio); the command column is this script's.
    """
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if TABLE_START not in text:
        raise SystemExit(f"{RESULTS} has no {TABLE_START} marker")
    head, rest = text.split(TABLE_START, 1)
    table, tail = rest.split(TABLE_END, 1)
    existing = [line for line in table.strip().splitlines()[2:] if line.startswith("|")]
    names = {row[0] for row in rows}
    kept = [line for line in existing if line.split("|")[1].strip() not in names]
    cmd = f"`make bench` (or `.venv/bin/{command()}`)"
    new = [
        f"| {figure} | {target} | {measured} | {ratio} | {cmd} |" for figure, target, measured, ratio in rows
    ]
    # Keep the rows in the order of the scripts (booking, storm, flood, fan-out).
    order = ["booking", "join", "redemption", "passcode", "fan-out"]

    def rank(line: str) -> int:
        name = line.split("|")[1].strip()
        return next((i for i, word in enumerate(order) if name.startswith(word)), len(order))

    lines = sorted(kept + new, key=rank)
    table = "\n".join([HEADER, *lines])
    script = Path(sys.argv[0]).stem
    section_start, section_end = f"<!-- bench:{script} -->", f"<!-- /bench:{script} -->"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"{section_start}\n### {script}\n\n"
        f"Run {when} on {machine()}.\nCommand: `{command()}` (from `make bench`).\n\n{notes.strip()}\n"
        f"{section_end}"
    )
    tail = tail
    if section_start in tail:
        before, after = tail.split(section_start, 1)
        tail = before + section + after.split(section_end, 1)[1]
    else:
        tail = tail.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}")


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"  {label}: {time.perf_counter() - started:.2f}s", flush=True)


@contextlib.contextmanager
def profiled(name: str, pids: list[int]) -> Iterator[None]:
    """With BENCH_PROFILE=1, py-spy samples these processes (waits included) during the block;
    with BENCH_PROFILE=cpu, only while they run on a core.

    Collapsed stacks go to var/profile-<name>-<pid>.txt; benchmarks/profile_summary.py
    sums them by function. Without BENCH_PROFILE nothing is sampled.
    """
    mode = os.environ.get("BENCH_PROFILE")
    if mode not in ("1", "cpu"):
        yield
        return
    spy = str(Path(sys.executable).with_name("py-spy"))
    (ROOT / "var").mkdir(exist_ok=True)
    samplers = [
        subprocess.Popen(  # noqa: S603 - our own venv's py-spy, our own worker PIDs
            [
                spy,
                "record",
                "--pid",
                str(pid),
                *(["--idle"] if mode == "1" else []),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "-o",
                str(ROOT / "var" / f"profile-{name}-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]
    try:
        yield
    finally:
        for sampler in samplers:
            sampler.send_signal(signal.SIGINT)
        for sampler in samplers:
            sampler.wait(timeout=60)
