"""The servers' own output never holds a secret: `manage.py runserver` (DEBUG, as `make run`)
and gunicorn with its access log on, each driven through a whole invitation and join flow.

The frameworks log on their own (runserver's request lines, django.request's
"Gone: /j/<token>/", gunicorn's access log), so this reads what the processes printed,
not what a test handler captured. Mail goes to an SMTP server on loopback, never to the
server log, so a token found in the log can only have come from the log.
"""

import os
import re
import subprocess
import sys

import pytest
import requests

from meetings.logging import SCRUBBED
from tests import real_services as real
from tests.helpers import booking_body
from tests.test_logging import token_route_samples
from tests.test_scale_out import CSRF_RE, LINK_RE

pytestmark = pytest.mark.services

INVITEES = 2


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=real.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _site_env(tmp_path, smtp_port: int) -> dict[str, str]:
    """A site of the test's own: its SQLite file, tasks in-process, mail to the test's SMTP."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'site.sqlite3'}",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_port),
        PYTHONUNBUFFERED="1",
        DJANGO_LOG_LEVEL="DEBUG",  # every logger that has anything to say
    )
    return env


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/accounts/login/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _flow(url: str, mailbox: real.Mailbox, api_key: str, tag: str) -> list[str]:
    """Book with invitees, use the links from the mail, join by passcode; return the secrets."""
    headers = {"Authorization": f"Token {api_key}"}
    invitees = [f"{tag}-{i}@example.org" for i in range(INVITEES)]
    booked = requests.post(
        f"{url}/api/v1/meetings/", json=booking_body(invitees=invitees), headers=headers, timeout=30
    )
    assert booked.status_code == 201, booked.text
    meeting_id, passcode = booked.json()["id"], booked.json()["passcode"]
    seen = [passcode, passcode.replace("-", "")]

    real.wait_until(
        lambda: sum(m["To"] in invitees for m in mailbox.messages) >= INVITEES, timeout=60, what="the mail"
    )
    for message in [m for m in mailbox.messages if m["To"] in invitees]:
        path = LINK_RE.search(message.get_body(preferencelist=("plain",)).get_content()).group(1)
        seen.append(path.strip("/").split("/")[-1])
        browser = requests.Session()
        page = browser.get(f"{url}{path}", timeout=30)
        assert page.status_code == 200, page.text[:500]
        csrf = CSRF_RE.search(page.text).group(1)
        redeemed = browser.post(
            f"{url}{path}",
            data={"csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{url}{path}"},
            timeout=30,
        )
        assert redeemed.status_code == 200 and "/join/" in redeemed.url, (redeemed.status_code, redeemed.url)
        assert requests.get(f"{url}{path}", timeout=30).status_code == 410  # spent: "Gone: /j/<token>/"
        assert requests.post(f"{url}{path}", timeout=30).status_code in {403, 410}

    wrong = "wrong-" + passcode[::-1]
    seen.append(wrong)
    refused = requests.post(
        f"{url}/api/v1/join/",
        json={"meeting_id": meeting_id, "passcode": wrong, "display_name": "Mallory"},
        timeout=30,
    )
    assert refused.status_code in {400, 403}, refused.text
    joined = requests.post(
        f"{url}/api/v1/join/",
        json={"meeting_id": meeting_id, "passcode": passcode, "display_name": "Guest"},
        timeout=30,
    )
    assert joined.status_code == 201, joined.text
    return seen


def _token_routes(url: str, welcome_path: str) -> list[str]:
    """A live onboarding link (GET moves its token to .../set-password/), and every token
    route's sample (reset links, /login/?next=/j/<token>/ raw and encoded, ...); return the
    tokens."""
    browser = requests.Session()
    welcomed = browser.get(f"{url}{welcome_path}", timeout=30)
    assert welcomed.status_code == 200 and welcomed.url.endswith("/set-password/"), welcomed.url
    samples = token_route_samples()
    for sample, _token in samples:
        answer = requests.get(f"{url}{sample}", timeout=30, allow_redirects=False)
        assert answer.status_code in {200, 302, 404, 410}, (sample, answer.status_code)
    quoted = welcome_path.replace("/", "%2F")
    assert requests.get(f"{url}/accounts/login/?next={quoted}", timeout=30).status_code == 200
    return [welcome_path.strip("/").split("/")[-1], *(token for _sample, token in samples)]


def _assert_no_secret(log: str, secrets_seen: list[str], server: str) -> None:
    for secret in secrets_seen:
        for line in log.splitlines():
            assert secret not in line, f"{server} logged a secret: {line}"


def test_runserver_and_gunicorn_logs_hold_no_token_passcode_or_key(tmp_path):
    controller, mailbox = real.start_smtp()
    env = _site_env(tmp_path, controller.port)
    dev_port, gunicorn_port = real.free_port(), real.free_port()
    dev_url, gunicorn_url = f"http://127.0.0.1:{dev_port}", f"http://127.0.0.1:{gunicorn_port}"
    # `make run`: the plain settings with DJANGO_DEBUG=1 (autoreloader and all).
    dev_env = {
        **env,
        "DJANGO_SETTINGS_MODULE": "scheduler.settings",
        "DJANGO_DEBUG": "1",
        "SITE_URL": dev_url,
    }
    # Production-like: DEBUG off (the test settings only add a key and plain-HTTP cookies).
    prod_env = {
        **env,
        "DJANGO_SETTINGS_MODULE": "scheduler.settings_test",
        "DJANGO_DEBUG": "0",
        "SITE_URL": gunicorn_url,
    }
    _manage(dev_env, "migrate", "--noinput")
    _manage(dev_env, "bootstrap_admin", "--username", "alice")
    api_key = _manage(dev_env, "create_api_token", "alice").strip().splitlines()[-1]
    # A live onboarding (set-password) link for alice, as a host invitation mails it.
    welcome_url = (
        _manage(
            dev_env,
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; from meetings.services.accounts import "
            "welcome_link; print(welcome_link(get_user_model().objects.get(username='alice')))",
        )
        .strip()
        .splitlines()[-1]
    )
    welcome_path = "/accounts/welcome/" + welcome_url.split("/accounts/welcome/", 1)[1]

    runserver = real.Process(
        f"runserver-{dev_port}", [sys.executable, "manage.py", "runserver", f"127.0.0.1:{dev_port}"], dev_env
    )
    gunicorn = real.gunicorn(gunicorn_port, prod_env, workers=1, threads=2)  # --access-logfile -
    try:
        runserver.start()
        gunicorn.start()
        real.wait_until(lambda: _answers(dev_url), timeout=60, what="runserver to answer")
        real.wait_until(lambda: _answers(gunicorn_url), timeout=60, what="gunicorn to answer")
        from_runserver = _flow(dev_url, mailbox, api_key, "dev") + _token_routes(dev_url, welcome_path)
        mailbox.clear()
        from_gunicorn = _flow(gunicorn_url, mailbox, api_key, "prod") + _token_routes(
            gunicorn_url, welcome_path
        )
    finally:
        runserver.stop()
        gunicorn.stop()
        controller.stop()

    secrets_seen = [api_key, *from_runserver, *from_gunicorn]
    dev_log = runserver.log_path.read_text(errors="replace")
    gunicorn_log = gunicorn.log_path.read_text(errors="replace")
    _assert_no_secret(dev_log, secrets_seen, "runserver")
    _assert_no_secret(gunicorn_log, secrets_seen, "gunicorn")
    # The request lines are there, scrubbed: the test would notice if nothing were logged.
    assert re.search(rf"GET /j/{re.escape(SCRUBBED)}/ HTTP/1\.1\S* 410", dev_log), dev_log[-3000:]
    assert re.search(rf"GET /j/{re.escape(SCRUBBED)}/ HTTP/1\.1\" 410", gunicorn_log), gunicorn_log[-3000:]
    # Onboarding and reset links, and next= values naming them (on main the reset path and
    # encoded welcome next= values were logged whole by both servers).
    welcomed = rf"GET /accounts/welcome/\w+/{re.escape(SCRUBBED)}/ HTTP/1\.1\S* 302"
    reset = rf"GET /accounts/reset/MQ/{re.escape(SCRUBBED)}/ HTTP/1\.1\S* 404"
    for log in (dev_log, gunicorn_log):
        assert re.search(welcomed, log) and re.search(reset, log), log[-3000:]
        assert "GET /accounts/login/?next=%2Faccounts%2Fwelcome%2F" in log, log[-3000:]
