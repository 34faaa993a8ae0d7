"""Real services for tests: SMTP on loopback, a Celery worker process, Chromium.

Each is skipped with a reason when missing, and fails instead when
ANTECHAMBER_REQUIRE_SERVICES=1 (as in .ci/run).
"""

import email
import email.policy
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
]


def services_required() -> bool:
    return os.environ.get("ANTECHAMBER_REQUIRE_SERVICES", "") == "1"


def missing(reason: str) -> None:
    if services_required():
        pytest.fail(f"{reason} (ANTECHAMBER_REQUIRE_SERVICES=1, so this is a failure)")
    pytest.skip(reason)


def wait_until(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Mailbox:
    """Collects what a real SMTP server on loopback received."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler protocol
        with self.lock:
            self.messages.append(
                email.message_from_bytes(envelope.original_content, policy=email.policy.default)
            )
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.envelopes.clear()

    def wait_for(self, count: int, timeout: float = 20) -> list[Message]:
        wait_until(lambda: len(self.messages) >= count, timeout=timeout, what=f"{count} message(s)")
        with self.lock:
            return list(self.messages)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_smtp() -> tuple[Controller, Mailbox]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller, mailbox


def database_url_for_test_db() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        user = db.get("USER") or "postgres"
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"
    raise RuntimeError("a worker process can only share a file or server database")


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


class Process:
    """A real subprocess with its own log, stopped (or killed) as a process group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = ROOT / "var" / f"test-{name}-{os.getpid()}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: bytes | None = None, timeout: float = 60) -> "Process":
        self.log_path.parent.mkdir(exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        if ready is not None:
            wait_until(
                lambda: ready in self.log_path.read_bytes() or self.process.poll() is not None,
                timeout=timeout,
                what=f"{self.name} to be ready",
            )
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} died:\n" + self.log_path.read_text()[-3000:])
        return self

    def kill(self) -> None:
        """SIGKILL the whole group: no clean-up, as a crash."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def private_redis(port: int, *options: str) -> Process:
    """A Redis of the test's own, so stopping it disturbs nothing else on the machine.
    `options`: more of redis-server's arguments (`--maxmemory`, `2mb`, ...)."""
    redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
    return Process(
        f"redis-{port}",
        [
            redis_server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            *options,
        ],
        dict(os.environ),
    )


def app_env(*, redis_url: str, smtp_port: int, **extra: str) -> dict[str, str]:
    """The environment of an app process (web, worker, beat) sharing the test database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "scheduler.settings_test",
        "DATABASE_URL": database_url_for_test_db(),
        "REDIS_URL": redis_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        **extra,
    }


def gunicorn(port: int, env: dict[str, str], workers: int = 2, threads: int = 1) -> Process:
    return Process(
        f"web-{port}",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "scheduler.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "120",
            "--access-logfile",
            "-",
            "--graceful-timeout",
            "5",
        ],
        env,
    )


def celery(kind: str, env: dict[str, str], name: str, concurrency: int = 2) -> Process:
    if kind == "worker":
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "scheduler",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"{name}@%h",
        ]
    else:
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "scheduler",
            "beat",
            "--loglevel=INFO",
            "--schedule",
            str(ROOT / "var" / f"beat-{name}-{os.getpid()}"),
        ]
    return Process(f"{kind}-{name}", argv, env)


def needs_shared_database() -> None:
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        missing("several processes need a shared database: run with DATABASE_URL=postgres://...")
    if not shutil.which("redis-server") and not Path("/usr/bin/redis-server").exists():
        missing("redis-server is not installed")


def web_server_env(settings_) -> dict[str, str]:
    """The environment for a web server process sharing this test's database and cache keys."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "scheduler.settings_test",
        "DATABASE_URL": database_url_for_test_db(),
        "REDIS_URL": settings_.REDIS_URL,
        "ANTECHAMBER_CACHE_PREFIX": settings_.CACHES["default"].get("KEY_PREFIX", ""),
        "DJANGO_DEBUG": "0",
    }


class WebServer:
    """A real gunicorn process on a free loopback port (one worker, several threads)."""

    def __init__(self, env: dict[str, str], threads: int = 4) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = gunicorn(self.port, env, workers=1, threads=threads)

    def start(self) -> None:
        self.process.start(ready=b"Booting worker")
        wait_until(self._answers, timeout=30, what="gunicorn to listen")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.process.stop()


def unreachable_redis_caches() -> dict:
    """CACHES for a Redis cache with nothing on its port: Redis down, as the app sees it."""
    return {
        "default": {
            "BACKEND": "scheduler.redis_cache.ReusedClientRedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
