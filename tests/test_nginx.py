"""nginx in front of gunicorn (deploy/nginx-site.conf.template, rendered by
deploy/render_nginx.py): per-address limits on the join endpoints, the client's address
passed on, static files, request size limits, no token of any token route in its log. And
the app's side: REMOTE_ADDR from X-Real-IP only when the peer is a trusted proxy, which in
the Procfile layout is nginx's own proxy_bind address alone; sessions in Redis."""

import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from django.test import RequestFactory

from meetings.authentication import client_address
from meetings.logging import SCRUBBED
from meetings.middleware import TrustedProxyMiddleware
from tests import real_services as real
from tests.test_logging import token_route_samples

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TOKEN = "Zm9vYmFyYmF6cXV4LW9uZS10aW1lLXRva2VuLTQzY2hhcnM"


class _Echo(BaseHTTPRequestHandler):
    """The upstream: answers every request with what it was given."""

    seen: list[dict] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = {"path": self.path, "real_ip": self.headers.get("X-Real-IP"), "body": len(body)}
        _Echo.seen.append(record)
        payload = json.dumps(record).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def nginx(tmp_path):
    if not os.path.exists(NGINX):
        real.missing("nginx is not installed (apt-get install nginx; .ci/run installs it)")
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    _Echo.seen = []
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "site.abc123.css").write_text("body{}")
    extra = ["--trusted-proxy", "127.0.0.1", "--join-rate", "1r/s", "--join-burst", "3"]
    try:
        with _running_nginx(tmp_path, [upstream], static, *extra) as running:
            yield running
    finally:
        upstream.shutdown()


@contextlib.contextmanager
def _running_nginx(tmp_path, upstreams, static: Path, *extra: str) -> Iterator[tuple[str, Path]]:
    """nginx as deploy/render_nginx.py writes it, in front of `upstreams`: (url, prefix)."""
    port = real.free_port()
    prefix = tmp_path / "nginx"
    servers = [arg for u in upstreams for arg in ("--upstream", f"127.0.0.1:{u.server_address[1]}")]
    subprocess.run(
        [
            sys.executable, "deploy/render_nginx.py", "--listen", f"127.0.0.1:{port}", *servers,
            "--static-root", str(static), "--prefix", str(prefix), "--workers", "1", *extra,
        ],
        cwd=real.ROOT, check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", "nginx.conf", "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        real.wait_until(lambda: _up(url), timeout=15, what="nginx")
        yield url, prefix
    finally:
        process.terminate()
        process.wait(timeout=10)


def _up(url: str) -> bool:
    try:
        requests.get(f"{url}/static/css/site.abc123.css", timeout=1)
        return True
    except requests.RequestException:
        return False


def _statuses(url: str, path: str, client: str, count: int) -> list[int]:
    with requests.Session() as session:
        return [
            session.post(f"{url}{path}", json={}, headers={"X-Forwarded-For": client}, timeout=5).status_code
            for _ in range(count)
        ]


def test_join_endpoints_are_limited_per_client_address_and_nothing_else_is(nginx):
    url, _prefix = nginx
    # One budget per address for the three join endpoints: 1/s with a burst of 3.
    for path in ("/api/v1/join/", "/join/", f"/j/{TOKEN}/"):
        flood = _statuses(url, path, "203.0.113.7", 10)
        assert flood.count(429) >= 6, (path, flood)
        assert set(flood) <= {200, 429}
    assert len([r for r in _Echo.seen if r["real_ip"] == "203.0.113.7"]) <= 8
    # Another client is not held back by the first one's flood.
    assert _statuses(url, "/api/v1/join/", "198.51.100.9", 1) == [200]
    assert set(_statuses(url, "/api/v1/meetings/", "203.0.113.7", 20)) == {200}
    # The app is told who the client is (nginx trusts 127.0.0.1's X-Forwarded-For here).
    assert {record["real_ip"] for record in _Echo.seen} == {"203.0.113.7", "198.51.100.9"}


def test_static_files_come_from_nginx_and_large_bodies_stop_there(nginx):
    url, _prefix = nginx
    response = requests.get(f"{url}/static/css/site.abc123.css", timeout=5)
    assert response.status_code == 200 and response.text == "body{}"
    assert "max-age" in response.headers["Cache-Control"]
    assert not [r for r in _Echo.seen if r["path"].startswith("/static/")]
    too_big = requests.post(f"{url}/api/v1/meetings/", data=b"x" * (2 * 1024 * 1024), timeout=10)
    assert too_big.status_code == 413
    assert requests.post(f"{url}/api/v1/meetings/", data=b"x" * 200_000, timeout=10).status_code == 200


def test_the_access_log_never_holds_a_join_token(nginx):
    url, prefix = nginx
    requests.get(f"{url}/j/{TOKEN}/", timeout=5)
    requests.get(f"{url}/j/{TOKEN}/?x=1", timeout=5)
    log = real.wait_until(
        lambda: (prefix / "access.log").read_text() if (prefix / "access.log").exists() else "",
        timeout=5,
        what="the access log",
    )
    assert "/j/[token]/" in log
    assert TOKEN not in log
    assert TOKEN not in (prefix / "error.log").read_text() if (prefix / "error.log").exists() else True


def _access_log(prefix: Path, lines: int) -> str:
    path = prefix / "access.log"
    return real.wait_until(
        lambda: path.read_text() if path.exists() and path.read_text().count("\n") >= lines else "",
        timeout=10,
        what=f"{lines} lines in the access log",
    )


def test_the_access_log_holds_no_token_of_any_token_route(nginx):
    """Onboarding and password-reset links, and `next=` values naming any token route
    (raw, encoded once or twice, in an absolute URL), as well as join links: the map nginx
    logs through is written from meetings/token_routes.py. (On main nginx rewrote /j/ only:
    /accounts/welcome/<uid>/<token>/ and ?next=/j/<token>/ were logged whole.)"""
    url, prefix = nginx
    samples = token_route_samples()
    kept = ["/accounts/welcome/MQ/set-password/", "/join/42/", "/api/v1/meetings/?page=2"]
    for sample, _token in samples:
        assert requests.get(f"{url}{sample}", timeout=5).status_code == 200
    for path in kept:
        requests.get(f"{url}{path}", timeout=5)
    log = _access_log(prefix, len(samples) + len(kept))
    for sample, token in samples:
        assert token not in log, sample
    # The upstream got every request whole: only the log is rewritten.
    assert {s for s, _t in samples} <= {record["path"] for record in _Echo.seen}
    assert "GET /accounts/welcome/[token]/" in log and "GET /accounts/reset/[token]/" in log
    assert "GET /accounts/login/?[token]" in log and "GET /j/[token]/" in log
    for path in kept:
        assert f"GET {path}" in log, log
    error_log = prefix / "error.log"
    for _sample, token in samples:
        assert not error_log.exists() or token not in error_log.read_text()


def _through(middleware_peer: str, real_ip: str | None, settings) -> str:
    settings.ANTECHAMBER_TRUSTED_PROXIES = frozenset({"127.0.0.1"})
    extra = {"HTTP_X_REAL_IP": real_ip} if real_ip else {}
    request = RequestFactory().get("/api/v1/join/", REMOTE_ADDR=middleware_peer, **extra)
    seen: list[str] = []
    TrustedProxyMiddleware(lambda r: seen.append(client_address(r)) or None)(request)
    return seen[0]


def test_the_app_counts_the_client_named_by_a_trusted_proxy_only(settings):
    assert _through("127.0.0.1", "203.0.113.7", settings) == "203.0.113.7"
    assert _through("198.51.100.1", "203.0.113.7", settings) == "198.51.100.1"  # not our proxy
    assert _through("127.0.0.1", None, settings) == "127.0.0.1"
    assert _through("127.0.0.1", "not-an-address", settings) == "127.0.0.1"


@pytest.mark.parametrize(
    ("redis_url", "engine"),
    [("redis://127.0.0.1:1/0", "meetings.sessions"), ("", "meetings.sessions_db")],
)
def test_sessions_are_read_from_redis_when_there_is_redis(redis_url, engine):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "scheduler.settings_test", "REDIS_URL": redis_url}
    probe = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
         "print(settings.SESSION_ENGINE)"],
        cwd=real.ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert probe.stdout.strip().splitlines()[-1] == engine


def _server(hold: threading.Event | None):
    """An upstream that counts what it receives; with `hold`, it answers only once released
    (a gunicorn server whose workers are all busy)."""
    received = threading.Semaphore(0)
    counts = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            counts["n"] += 1
            received.release()
            if hold is not None:
                hold.wait()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, counts, received


def test_requests_go_to_the_server_with_fewer_requests_in_hand(tmp_path):
    """least_conn: while one server is stuck on a request, the others get the next ones.
    (nginx's default, round robin, sent every other request to the stuck server, where it
    queued behind a busy worker while the other server's workers idled.)"""
    if not os.path.exists(NGINX):
        real.missing("nginx is not installed (apt-get install nginx; .ci/run installs it)")
    release = threading.Event()
    stuck, stuck_count, stuck_received = _server(release)
    free, free_count, _ = _server(None)
    try:
        with _running_nginx(tmp_path, [stuck, free], tmp_path) as (url, _prefix):
            asked: list[threading.Thread] = []
            try:
                _send_ten(url, stuck_received, asked)
            finally:
                release.set()  # the held request is answered before nginx stops
                for thread in asked:
                    thread.join(timeout=30)
        assert stuck_count["n"] <= 1 and free_count["n"] >= 9, (stuck_count, free_count)
    finally:
        release.set()
        stuck.shutdown()
        free.shutdown()


def _send_ten(url: str, stuck_received: threading.Semaphore, asked: list[threading.Thread]) -> None:
    """Ten requests, each sent once the one before was answered or is held by the stuck server."""
    for _ in range(10):
        answered = threading.Event()

        def ask(done: threading.Event = answered) -> None:
            try:
                requests.get(f"{url}/anything/", timeout=60)
            finally:
                done.set()

        asked.append(threading.Thread(target=ask, daemon=True))
        asked[-1].start()
        # Either the free server answered, or the request is held by the stuck one.
        while not answered.is_set() and not stuck_received.acquire(timeout=0.05):
            pass


# --- The Procfile layout: real nginx and gunicorn, as `make scaleout` runs them ---------

PROBE_URLS = """
from django.http import HttpResponse
from django.urls import path

from scheduler.urls import handler404, handler500, urlpatterns as site


def probe(request):
    return HttpResponse(f"{request.META['REMOTE_ADDR']} {request.scheme}", content_type="text/plain")


urlpatterns = [path("probe/", probe), *site]
"""
WELCOME_LINK = (
    "from django.contrib.auth import get_user_model; from meetings.services.accounts import welcome_link; "
    "user = get_user_model().objects.create_user('newhost', 'newhost@example.org'); print(welcome_link(user))"
)


@pytest.fixture(scope="module")
def procfile_stack(tmp_path_factory):
    """The Procfile's nginx, web1 and web2 under honcho (real nginx, real gunicorn, the
    app's middleware and URLs unchanged) plus /probe/, which prints the address and scheme
    the app sees; a SQLite site of its own with a new host's onboarding link.
    Yields (web ports, nginx port, nginx prefix, honcho process, welcome path)."""
    if not os.path.exists(NGINX):
        real.missing("nginx is not installed (apt-get install nginx; .ci/run installs it)")
    tmp_path = tmp_path_factory.mktemp("procfile")
    (tmp_path / "procfile_probe_urls.py").write_text(PROBE_URLS)
    (tmp_path / "procfile_probe_settings.py").write_text(
        "from scheduler.settings_test import *  # noqa: F403\nROOT_URLCONF = 'procfile_probe_urls'\n"
    )
    (tmp_path / "empty.env").write_text("")
    web1, web2, front = real.free_port(), real.free_port(), real.free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "DATABASE_URL", "ANTECHAMBER_TRUSTED_PROXIES", "NGINX_PROXY_BIND"}
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}:{os.path.dirname(NGINX)}:{env.get('PATH', '')}",
        PYTHONPATH=f"{tmp_path}:{real.ROOT}",
        DJANGO_SETTINGS_MODULE="procfile_probe_settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'probe.sqlite3'}",
        DJANGO_DEBUG="0",
        SITE_URL=f"http://127.0.0.1:{front}",
        WEB1_PORT=str(web1),
        WEB2_PORT=str(web2),
        NGINX_PORT=str(front),
        NGINX_PREFIX=str(tmp_path / "nginx"),
        STATIC_ROOT_DIR=str(tmp_path),
        WEB_CONCURRENCY="1",
    )
    for command in (["migrate", "--noinput"], ["shell", "-c", WELCOME_LINK]):
        done = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=real.ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    welcome_path = "/accounts/welcome/" + done.stdout.strip().splitlines()[-1].split("/accounts/welcome/")[1]
    honcho = real.Process(
        f"honcho-probe-{front}",
        [sys.executable, "-m", "honcho", "-e", str(tmp_path / "empty.env"), "-f", "Procfile",
         "start", "nginx", "web1", "web2"],
        env,
    )  # fmt: skip
    try:
        honcho.start()
        for port in (web1, web2, front):
            real.wait_until(lambda p=port: _probe_answers(p), timeout=60, what=f"the probe on {port}")
        yield (web1, web2), front, tmp_path / "nginx", honcho, welcome_path
    finally:
        honcho.stop()


def test_nginx_may_not_connect_from_the_address_every_local_process_uses():
    from deploy.render_nginx import render_site

    site = {
        "listen": "127.0.0.1:8000", "upstreams": ["127.0.0.1:8001"], "static_root": ".",
        "access_log": "off", "trusted_proxies": [], "join_rate": "5r/s", "join_burst": 20, "max_body": "1m",
    }  # fmt: skip
    assert "proxy_bind 127.0.0.2;" in render_site(**site, proxy_bind="127.0.0.2")
    for address in ("127.0.0.1", "::1"):
        with pytest.raises(SystemExit, match="an address of nginx's own"):
            render_site(**site, proxy_bind=address)


def _get_from(source: str, port: int, headers: dict[str, str]) -> str:
    """GET /probe/ from the loopback address `source` (the peer gunicorn or nginx sees)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", "/probe/", headers=headers)
        response = connection.getresponse()
        assert response.status == 200, response.read()[:500]
        return response.read().decode()
    finally:
        connection.close()


def _probe_answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/probe/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_the_procfile_layout_believes_x_real_ip_from_its_nginx_alone(procfile_stack):
    """A direct peer on 127.0.0.1 naming another client in X-Real-IP, or claiming https,
    is taken as itself (on main the Procfile trusted every 127.0.0.1 peer, and gunicorn's
    default believed X-Forwarded-Proto from it); through nginx, which connects from
    NGINX_PROXY_BIND, the client's own address is seen."""
    web_ports, front, _prefix, _honcho, _welcome = procfile_stack
    lie = {"X-Real-IP": "203.0.113.9", "X-Forwarded-Proto": "https"}
    for port in web_ports:
        assert _get_from("127.0.0.1", port, lie) == "127.0.0.1 http"
        assert _get_from("127.0.0.3", port, lie) == "127.0.0.3 http"
    # Through nginx: it overwrites X-Real-IP with the peer it saw, and the app believes it.
    for _ in range(4):  # both web servers
        assert _get_from("127.0.0.3", front, lie) == "127.0.0.3 http"
        assert _get_from("127.0.0.4", front, {}) == "127.0.0.4 http"


def test_the_procfile_layout_logs_no_onboarding_reset_or_join_token(procfile_stack):
    """A new host's live set-password link, reset links and /login/?next=/j/<token>/ (raw
    and encoded), through the Procfile's nginx to gunicorn: neither nginx's access log nor
    gunicorn's (in honcho's output) holds a token. On main nginx logged
    /accounts/welcome/<uid>/<token>/ whole: the red team's takeover from one log line."""
    _web_ports, front, prefix, honcho, welcome_path = procfile_stack
    url = f"http://127.0.0.1:{front}"
    welcomed = requests.get(f"{url}{welcome_path}", timeout=30)
    assert welcomed.status_code == 200 and welcomed.url.endswith("/set-password/"), welcomed.url
    welcome_token = welcome_path.strip("/").split("/")[-1]
    samples = token_route_samples()
    quoted = welcome_path.replace("/", "%2F")
    for sample in [f"/accounts/login/?next={quoted}", *(sample for sample, _token in samples)]:
        answer = requests.get(f"{url}{sample}", timeout=30, allow_redirects=False)
        assert answer.status_code in {200, 302, 404, 410}, (sample, answer.status_code)
    access_log = _access_log(prefix, len(samples) + 3)
    real.wait_until(
        lambda: honcho.log_path.read_text(errors="replace").count("GET /accounts/login/?next=") >= 5,
        timeout=10,
        what="gunicorn's access lines",
    )
    gunicorn_log = honcho.log_path.read_text(errors="replace")
    for token in [welcome_token, *(token for _sample, token in samples)]:
        assert token not in access_log, access_log
        assert token not in gunicorn_log, gunicorn_log[-3000:]
    assert "GET /accounts/welcome/[token]/" in access_log and "GET /accounts/login/?[token]" in access_log
    assert re.search(r"GET /accounts/welcome/\w+/set-password/", access_log), access_log
    assert re.search(rf"GET /accounts/welcome/\w+/{re.escape(SCRUBBED)}/ HTTP/1\.\d\" 302", gunicorn_log)
