"""Headers and cookies on the main pages, and the production checks."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent

PAGES = ["/accounts/login/", "/meetings/", "/meetings/new/", "/api/v1/classifications/", "/api/docs/"]


def csp_directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.mark.parametrize("path", PAGES)
def test_main_pages_send_the_security_headers(alice_web_verified, path):
    response = alice_web_verified.get(path)
    assert response.status_code == 200, path
    csp = csp_directives(response)
    script_src = csp.get("script-src", csp["default-src"])
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"


def test_pages_have_no_inline_script(alice_web_verified):
    """The CSP forbids inline script, so any the pages carried would be dead code in browsers."""
    for path in ["/accounts/login/", "/meetings/", "/meetings/new/", "/api/docs/", "/accounts/tokens/"]:
        html = alice_web_verified.get(path).content.decode()
        for chunk in html.split("<script")[1:]:
            tag = chunk.split(">", 1)[0]
            # A JSON data block (json_script) is not script: browsers never run it.
            assert tag.strip().startswith("src=") or " src=" in tag or 'type="application/json"' in tag, path


def test_api_docs_load_swagger_from_our_own_static_files(alice_web_verified):
    html = alice_web_verified.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()


def test_every_form_on_the_main_pages_carries_a_csrf_token(alice_web_verified):
    for path in ["/accounts/login/", "/meetings/new/", "/accounts/tokens/", "/accounts/two_factor/"]:
        html = alice_web_verified.get(path).content.decode()
        for form in html.split("<form")[1:]:
            body = form.split("</form>", 1)[0]
            method = body.split(">", 1)[0].lower()
            if 'method="get"' in method:
                continue
            assert "csrfmiddlewaretoken" in body, path


def test_csrf_is_enforced_on_the_booking_form(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/meetings/new/", {"classification": "official"}).status_code == 403


@override_settings(SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True)
def test_cookies_are_httponly_samesite_and_secure_in_production(alice, password):
    client = Client()
    page = client.get("/accounts/login/")
    csrf = page.cookies["csrftoken"]
    assert csrf["httponly"] and csrf["samesite"] == "Lax" and csrf["secure"]
    response = client.post(
        "/accounts/login/",
        {"login_view-current_step": "auth", "auth-username": "alice", "auth-password": password},
    )
    session = response.cookies["sessionid"]
    assert session["httponly"] and session["samesite"] == "Lax" and session["secure"]


def _production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="scheduler.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="example.org",
        **extra,
    )
    return env


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_passes_in_production_mode():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=_production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_when_https_is_switched_off():
    """The check above could not pass by accident: weaken one setting and it fails."""
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING", env=_production_env(DJANGO_SECURE_SSL_REDIRECT="0")
    )
    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr


def test_production_mode_refuses_to_start_without_a_secret_key():
    env = _production_env()
    del env["DJANGO_SECRET_KEY"]
    env["DJANGO_SECRET_KEY"] = ""
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_production_mode_sends_hsts_and_redirects_to_https():
    code = (
        "import django; django.setup();"
        "from django.conf import settings as s;"
        "print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD,"
        " s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["31536000", "True", "True", "True", "True", "True"], result.stderr


@override_settings(
    SECURE_SSL_REDIRECT=True, SECURE_HSTS_SECONDS=31536000, SECURE_HSTS_INCLUDE_SUBDOMAINS=True
)
def test_https_requests_get_hsts_and_plain_http_is_redirected():
    client = Client()
    assert client.get("/accounts/login/").status_code == 301
    response = client.get("/accounts/login/", secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000; includeSubDomains")
