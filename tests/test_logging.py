"""Logs never hold a secret: join tokens, passcodes, API keys, session cookies."""

import logging
import os
import re
import secrets
import subprocess
import sys
import textwrap
from urllib.parse import quote

import pytest
from django.test import Client

from meetings.audit import verify_chain
from meetings.logging import SCRUBBED, ScrubSecrets, scrub_text
from meetings.models import Meeting
from meetings.token_routes import TOKEN_ROUTES, TokenRoute, compiled, scrub_token_routes
from tests.real_services import ROOT
from tests.test_views import form_data

pytestmark = pytest.mark.django_db


def formatted(caplog) -> list[str]:
    return [caplog.handler.format(record) for record in caplog.records]


def test_a_booking_rotation_and_token_flow_logs_no_secret(alice_web_verified, caplog):
    caplog.set_level(logging.DEBUG)  # the root logger, everything
    secrets_seen: list[str] = []

    booked = alice_web_verified.post("/meetings/new/", form_data("official-sensitive"), follow=True)
    assert booked.status_code == 200
    secrets_seen.append(booked.context["passcode"])
    meeting = Meeting.objects.get()

    rotated = alice_web_verified.post(f"/meetings/{meeting.display_id}/passcode/", follow=True)
    assert rotated.status_code == 200
    secrets_seen.append(rotated.context["passcode"])

    created = alice_web_verified.post("/accounts/tokens/", {"label": "ci"})
    assert created.status_code == 200
    key = created.context["new_key"]
    secrets_seen.append(key)

    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/meetings/").status_code == 200
    assert Client(HTTP_AUTHORIZATION=f"Token {key}x").get("/api/v1/meetings/").status_code == 401
    rotated_api = api.post(f"/api/v1/meetings/{meeting.public_id}/passcode/")
    assert rotated_api.status_code == 200
    secrets_seen.append(rotated_api.json()["passcode"])

    # A one-time join link (the pages come with the invitation work): its path is logged.
    join_token = secrets.token_urlsafe(32)
    alice_web_verified.get(f"/j/{join_token}/")
    alice_web_verified.get(f"/join/{join_token}/?passcode={secrets_seen[0]}")
    secrets_seen.append(join_token)

    session_cookie = alice_web_verified.cookies["sessionid"].value
    secrets_seen.append(session_cookie)
    # Something that logs a request with its headers, as an error reporter would.
    logging.getLogger("django.request").error(
        "Failed request: Cookie: sessionid=%s; Authorization: Token %s", session_cookie, key
    )

    lines = formatted(caplog)
    assert any("request_finished" in line for line in lines), "request logging is on"
    assert any("/j/" + SCRUBBED in line for line in lines), "the join path was logged, scrubbed"
    for secret in secrets_seen:
        for line in lines:
            assert secret not in line and secret.replace("-", "") not in line, line
    assert verify_chain().intact


def test_request_logs_carry_a_request_id(alice_web_verified, caplog):
    caplog.set_level(logging.INFO)
    alice_web_verified.get("/meetings/")
    events = [
        r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "request_finished"
    ]
    assert events and re.fullmatch(r"[0-9a-f-]{36}", events[0]["request_id"])
    assert events[0]["code"] == 200


def test_the_scrubbing_filter_is_on_every_root_handler():
    handlers = logging.getLogger().handlers
    configured = [h for h in handlers if any(isinstance(f, ScrubSecrets) for f in h.filters)]
    assert configured, "settings.LOGGING attaches ScrubSecrets to the root handlers"


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("GET /j/Zx8Kq2bW9mYtR4vN6pLs0aDfGh1JkL3c/ 200", "Zx8Kq2bW9mYtR4vN6pLs0aDfGh1JkL3c"),
        ("Not Found: /invite/abcdefghijklmnopqrstuvwxyz0123/", "abcdefghijklmnopqrstuvwxyz0123"),
        ("Authorization: Token 3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c", "3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"),
        ("headers={'HTTP_AUTHORIZATION': 'Bearer abcdefgh12345678'}", "abcdefgh12345678"),
        ('{"meeting_id": "X", "passcode": "tiger-lamp-river-cloud"}', "tiger-lamp-river-cloud"),
        ("passcode=tiger-lamp-river&display_name=Bob", "tiger-lamp-river"),
        ("Cookie: sessionid=q1w2e3r4t5y6u7i8; csrftoken=zzz", "q1w2e3r4t5y6u7i8"),
        ("body key=0123456789abcdef0123", "0123456789abcdef0123"),
        ("X-CSRFToken: Qm9vYmFyYmF6cXV4LWNzcmYtdG9rZW4", "Qm9vYmFyYmF6cXV4LWNzcmYtdG9rZW4"),
        ("{'HTTP_X_CSRFTOKEN': 'Qm9vYmFyYmF6cXV4LWNzcmY'}", "Qm9vYmFyYmF6cXV4LWNzcmY"),
    ],
)
def test_scrub_text_removes_each_kind_of_secret(raw, secret):
    assert secret not in scrub_text(raw)
    assert SCRUBBED in scrub_text(raw)


def test_short_path_segments_and_ordinary_text_are_kept():
    assert scrub_text("GET /meetings/ABCD-EFGH/ 200") == "GET /meetings/ABCD-EFGH/ 200"
    assert scrub_text("GET /j/short/") == "GET /j/short/"


def test_a_structlog_event_dict_is_scrubbed_in_place():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, {"request": "GET /j/" + "a" * 30 + "/", "token": "t"}, None, None
    )
    ScrubSecrets().filter(record)
    assert record.msg == {"request": f"GET /j/{SCRUBBED}/", "token": SCRUBBED}


def test_a_traceback_is_scrubbed():
    try:
        raise ValueError("bad passcode=tiger-lamp-river")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    ScrubSecrets().filter(record)
    assert "tiger-lamp-river" not in logging.Formatter().format(record)


def test_the_invitation_and_join_flow_logs_no_token_passcode_or_key(alice, caplog):
    """The whole participant path, with every logger at DEBUG: no secret in any line."""
    from rest_framework.test import APIClient

    from meetings.models import OutboundMessage
    from meetings.services import tokens
    from tests.helpers import booking_body, token_of

    caplog.set_level(logging.DEBUG)
    _token, key = tokens.api_token_create(user=alice, label="flow")
    host = APIClient()
    host.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    booked = host.post(
        "/api/v1/meetings/", booking_body(invitees=["ann@example.org"], dial_in=True), format="json"
    ).json()
    meeting = Meeting.objects.get(public_id=booked["id"].replace("-", ""))
    join_token = token_of(OutboundMessage.objects.get(kind="invitation"))

    # The invitee: scanners fetch, the person confirms, a stranger gets 410.
    ann = Client()
    assert ann.get(f"/j/{join_token}/").status_code == 200
    assert ann.post(f"/j/{join_token}/", follow=True).status_code == 200
    assert Client().get(f"/j/{join_token}/").status_code == 410
    # Passcode joins, wrong then right, over the API and the form.
    wrong = booked["passcode"][:-1] + ("0" if booked["passcode"][-1] != "0" else "1")
    joiner = APIClient()
    body = {"meeting_id": booked["id"], "passcode": wrong, "display_name": "Guest"}
    assert joiner.post("/api/v1/join/", body, format="json").status_code == 403
    body["passcode"] = booked["passcode"]
    assert joiner.post("/api/v1/join/", body, format="json").status_code == 201
    form = Client().post("/join/", {**body, "passcode": wrong})
    assert form.status_code == 403
    # The host admits everyone.
    assert host.get(f"/api/v1/meetings/{booked['id']}/lobby/").status_code == 200
    for entry in host.get(f"/api/v1/meetings/{booked['id']}/lobby/").json():
        host.post(f"/api/v1/meetings/{booked['id']}/lobby/{entry['id']}/admit/")

    lines = formatted(caplog)
    assert any(join_token[:6] not in line and "/j/" in line for line in lines), "the link path was logged"
    secrets_seen = [join_token, booked["passcode"], wrong, key, meeting.dial_in_code]
    for secret in secrets_seen:
        for line in lines:
            assert secret not in line and secret.replace("-", "") not in line, line


@pytest.mark.parametrize(
    "line",
    [
        "GET /accounts/login/?next=/j/{t}/ 200",
        "GET /accounts/login/?next=%2Fj%2F{t}%2F 200",
        "Gone: /j/{t}/",
    ],
)
def test_join_tokens_are_scrubbed_plain_and_url_encoded(line):
    token = secrets.token_urlsafe(32)
    assert token not in scrub_text(line.format(t=token))


def _run_python(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter, so the test process's own logging (pytest's capture) plays no part."""
    environment = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    environment.update(DJANGO_SETTINGS_MODULE="scheduler.settings_test", **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("debug", ["0", "1"])
def test_every_handler_django_configures_scrubs(debug):
    """Django's DEFAULT_LOGGING handlers (runserver's django.server, django's console) included."""
    done = _run_python(
        """
        import logging
        import django
        from meetings.logging import ScrubSecrets

        django.setup()
        loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for logger in loggers:
            for handler in getattr(logger, "handlers", []):
                if isinstance(handler, logging.NullHandler):  # libraries' "no output" default
                    continue
                if not any(isinstance(f, ScrubSecrets) for f in handler.filters):
                    print("UNSCRUBBED", logger.name, handler)
        logging.getLogger("django.server").info('"GET /j/%s/ HTTP/1.1" 200 10', "T" * 43)
        logging.getLogger("django.request").warning("Gone: /j/%s/", "T" * 43)
        """,
        DJANGO_DEBUG=debug,
    )
    assert done.returncode == 0, done.stderr
    assert "UNSCRUBBED" not in done.stdout, done.stdout
    assert "T" * 43 not in done.stdout + done.stderr
    assert done.stderr.count(f"/j/{SCRUBBED}/") == 2, done.stderr


def test_a_celery_worker_s_logging_scrubs():
    """A worker replaces the root handlers with its own and redirects print(); both scrub."""
    token = secrets.token_urlsafe(32)
    done = _run_python(
        f"""
        import logging
        import django

        django.setup()
        from scheduler.celery import app

        app.log.setup(loglevel="INFO", redirect_stdouts=True)  # what `celery worker` does
        for name in ("celery.task", "celery.worker", "celery.redirected", "meetings.tasks"):
            logging.getLogger(name).warning("%s GET /j/%s/", name, "{token}")
        print("printed GET /j/{token}/")
        """
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert token not in output, output
    for name in ("celery.task", "celery.worker", "celery.redirected", "meetings.tasks", "printed"):
        assert f"{name} GET /j/{SCRUBBED}/" in output, output


def test_gunicorn_s_access_and_error_logs_scrub(capsys):
    """gunicorn logs before (and apart from) Django: its own logger class scrubs both logs."""
    import runpy

    from gunicorn.config import Config

    from scheduler.gunicorn_logging import ScrubbingLogger

    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["logger_class"] == (
        "scheduler.gunicorn_logging.ScrubbingLogger"
    )
    config = Config()
    config.set("accesslog", "-")
    config.set("errorlog", "-")
    gunicorn_logger = ScrubbingLogger(config)
    token = secrets.token_urlsafe(32)
    try:
        gunicorn_logger.access_log.info('"GET /j/%s/ HTTP/1.1" 410 "%s"', token, f"http://x/j/{token}/")
        gunicorn_logger.error("Error handling request /j/%s/", token)
    finally:
        for log in (gunicorn_logger.error_log, gunicorn_logger.access_log):
            log.handlers.clear()
            log.filters.clear()
    output = capsys.readouterr()
    assert token not in output.out + output.err
    assert f'"GET /j/{SCRUBBED}/ HTTP/1.1" 410' in output.out
    assert f"Error handling request /j/{SCRUBBED}/" in output.err


# --- One list of token routes (meetings/token_routes.py), every scrubber ------------


def route_path(route: TokenRoute, token: str) -> str:
    """A URL path of `route` carrying `token` (a uid where the route has one)."""
    return "/" + "/".join(route.prefix) + "/" + "MQ/" * route.before + token + "/"


def token_route_samples(routes: tuple[TokenRoute, ...] = TOKEN_ROUTES) -> list[tuple[str, str]]:
    """(request path and query, the token it carries) for every token route: the path
    itself, and as a `next=` value raw, URL-encoded once and twice, and inside an absolute
    URL. Shared by the nginx, gunicorn and runserver tests, so a route added to the list
    is checked against every server."""
    samples = []
    for route in routes:
        for shape in ("{p}", "{p}?x=1", "/accounts/login/?next={p}", "/accounts/login/?next={q}",
                      "/accounts/login/?next={qq}", "/accounts/login/?a=b&next={abs}"):  # fmt: skip
            token = secrets.token_urlsafe(32)
            path = route_path(route, token)
            sample = shape.format(
                p=path,
                q=quote(path, safe=""),
                qq=quote(quote(path, safe=""), safe=""),
                abs=quote(f"https://antechamber.example{path}", safe=""),
            )
            samples.append((sample, token))
    return samples


def test_every_token_route_is_scrubbed_in_path_and_next_raw_or_encoded():
    """The onboarding link (/accounts/welcome/<uid>/<token>/), the password-reset link
    (/accounts/reset/<uid>/<token>/) and `next=` values naming a token route, raw or
    URL-encoded, lose their token; nothing else in the line is touched."""
    samples = token_route_samples()
    prefixes = {route.prefix for route in TOKEN_ROUTES}
    assert prefixes >= {("j",), ("accounts", "welcome"), ("accounts", "reset")}
    for sample, token in samples:
        line = f'127.0.0.1 - - "GET {sample} HTTP/1.1" 302 0 "https://antechamber.example{sample}"'
        scrubbed = scrub_text(line)
        assert token not in scrubbed, scrubbed
        assert scrubbed.count(SCRUBBED) == 2 and scrubbed.startswith('127.0.0.1 - - "GET /'), scrubbed


def test_the_steps_beside_a_token_are_kept():
    kept = [
        "GET /accounts/welcome/MQ/set-password/ 200",
        "GET /accounts/reset/MQ/set-password/ 200",
        "GET /accounts/welcome/done/ 302",
        "GET /join/42/status/ 200",
        "GET /accounts/login/?next=/join/ 200",
        "GET /accounts/login/?next=%2Fmeetings%2FABCD-EFGH-JKMN-PQRS%2F 200",
    ]
    for line in kept:
        assert scrub_text(line) == line


def test_a_route_added_to_the_list_is_scrubbed_by_the_shared_patterns():
    """The patterns are built from the list, not written beside it."""
    invented = TokenRoute(("accounts", "email-confirm"), before=1, min_length=10)
    token = secrets.token_urlsafe(32)
    line = f"GET /accounts/login/?next={quote(route_path(invented, token), safe='')}"
    assert token in scrub_token_routes(line)
    assert token not in scrub_token_routes(line, compiled((*TOKEN_ROUTES, invented)))


def test_celery_and_django_loggers_scrub_every_token_route():
    """A worker's loggers (and runserver's django.server) with the reset and onboarding
    links and encoded `next=` values."""
    samples = token_route_samples()
    lines = [sample for sample, _token in samples]
    done = _run_python(
        f"""
        import logging
        import django

        django.setup()
        from scheduler.celery import app

        logging.getLogger("django.server").info('"GET %s HTTP/1.1" 200 10', {lines[0]!r})
        app.log.setup(loglevel="INFO", redirect_stdouts=True)  # what `celery worker` does
        for line in {lines!r}:
            for name in ("celery.task", "celery.worker", "meetings.tasks", "django.server"):
                logging.getLogger(name).warning("%s GET %s", name, line)
            print("printed GET", line)
        """
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    for _sample, token in samples:
        assert token not in output, output
    assert output.count(SCRUBBED) >= 5 * len(samples), output


def test_a_resolver_s_path_without_its_leading_slash_is_scrubbed():
    """DEBUG's Resolver404 names the path it tried without the leading slash
    ("'path': 'accounts/reset/MQ/<token>/'"): runserver printed it whole."""
    token = secrets.token_urlsafe(32)
    for path in (f"join/{token}/", f"accounts/reset/MQ/{token}/", f"j/{token}/"):
        assert token not in scrub_text(f"Resolver404: {{'tried': [], 'path': '{path}'}}")
    assert scrub_text(f"/static/abj/{token}/") == f"/static/abj/{token}/"  # not a route
