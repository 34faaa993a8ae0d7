"""Session keys (issue 21): no session for merely viewing a page, no raw key at rest, a new
key at a passcode join, old sessions ended by migration 0016, and the link page's sign-in
with the join token out of every URL."""

import json
import re
from types import SimpleNamespace

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test import Client

from meetings.models import ClassificationLevel, LobbyEntry, OutboundMessage, Session
from meetings.sessions import CACHE_PREFIX, SessionStore
from tests.helpers import booking_body, database_text, token_of
from tests.join_helpers import book, join_data

pytestmark = pytest.mark.django_db

COOKIE = django_settings.SESSION_COOKIE_NAME
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def _redis():
    """redis-py on the test's own Redis database, or None without Redis."""
    if not django_settings.REDIS_URL:
        return None
    import redis

    return redis.Redis.from_url(django_settings.REDIS_URL)


def _redis_session_names() -> set[bytes]:
    client = _redis()
    if client is None:
        return set()
    return set(client.scan_iter(match=f"*{CACHE_PREFIX}*", count=1000))


def _csrf(page) -> str:
    return CSRF_RE.search(page.content.decode()).group(1)


def _invite(alice_api, email: str = "ann@example.org") -> str:
    booked = alice_api.post("/api/v1/meetings/", booking_body(invitees=[email]), format="json")
    assert booked.status_code == 201, booked.content
    return token_of(OutboundMessage.objects.get(kind="invitation", to_email=email))


def _welcome_path(carol, verified_client, settings) -> str:
    from meetings.services import delivery
    from tests.mail import part, sent

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    invited = verified_client(carol).post(
        "/accounts/hosts/invite/", {"email": "hana@example.org", "username": "hana", "display_name": "Hana"}
    )
    assert invited.status_code == 302
    delivery.outbox_send(message_id=OutboundMessage.objects.get(kind="host_invitation").pk)
    return re.search(
        r"https?://\S+?(/accounts/welcome/[^/\s]+/[^/\s]+/)", part(sent()[-1], "text/plain")
    ).group(1)


# --- No session for merely viewing a page ---------------------------------------------------


@pytest.mark.parametrize("page", ["sign-in", "join form", "link", "link needing sign-in", "onboarding"])
def test_viewing_a_page_starts_no_session(page, alice_api, carol, verified_client, settings):
    if page == "link needing sign-in":
        ClassificationLevel.objects.filter(code="official").update(allow_guests=False)
    paths = {
        "sign-in": lambda: "/accounts/login/",
        "join form": lambda: "/join/",
        "link": lambda: f"/j/{_invite(alice_api)}/",
        "link needing sign-in": lambda: f"/j/{_invite(alice_api)}/",
        "onboarding": lambda: _welcome_path(carol, verified_client, settings),
    }
    path = paths[page]()
    rows, names = Session.objects.count(), _redis_session_names()
    browser = Client()
    shown = browser.get(path, follow=True)
    assert shown.status_code == 200, (path, shown.status_code)
    assert COOKIE not in browser.cookies, f"{page}: a session cookie for a GET"
    assert Session.objects.count() == rows, f"{page}: a meetings_session row for a GET"
    assert _redis_session_names() == names, f"{page}: a session in Redis for a GET"


def test_the_sign_in_form_viewed_without_a_session_still_submits(alice, password):
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/accounts/login/")
    assert COOKIE not in browser.cookies
    signed_in = browser.post(
        "/accounts/login/",
        {
            "csrfmiddlewaretoken": _csrf(page),
            "login_view-current_step": "auth",
            "auth-username": "alice",
            "auth-password": password,
        },
    )
    assert signed_in.status_code == 302, signed_in.content
    assert browser.get("/meetings/").status_code == 200  # signed in


def test_the_join_form_viewed_without_a_session_still_submits(alice_api):
    meeting_id, passcode = book(alice_api)
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/join/")
    assert COOKIE not in browser.cookies
    joined = browser.post("/join/", {"csrfmiddlewaretoken": _csrf(page), **join_data(meeting_id, passcode)})
    assert joined.status_code == 302, joined.content
    assert browser.get(joined["Location"]).status_code == 200  # the waiting room


def test_the_onboarding_token_leaves_the_url_in_a_sealed_cookie_not_a_session(
    carol, verified_client, settings
):
    from meetings.views.accounts import WELCOME_COOKIE

    path = _welcome_path(carol, verified_client, settings)
    token = path.strip("/").rsplit("/", 1)[-1]
    browser = Client(enforce_csrf_checks=True)
    landing = browser.get(path)
    assert landing.status_code == 302 and token not in landing["Location"]
    kept = landing.cookies[WELCOME_COOKIE]
    assert token not in kept.value and kept["httponly"] and kept["path"] == landing["Location"]
    form_page = browser.get(landing["Location"])
    assert form_page.status_code == 200 and "Set your password" in form_page.content.decode()
    assert COOKIE not in browser.cookies
    # The cookie opens for this link's uid only.
    from meetings import sealing
    from meetings.views.accounts import WELCOME_LABEL

    uid = path.split("/")[3]
    other = Client()
    other.cookies[WELCOME_COOKIE] = sealing.seal(token, row_id=uid + "x", label=WELCOME_LABEL)
    assert "no longer works" in other.get(landing["Location"]).content.decode()
    other.cookies[WELCOME_COOKIE] = kept.value
    assert "Set your password" in other.get(landing["Location"]).content.decode()
    new_password = "a long and unusual passphrase 4711"
    done = browser.post(
        landing["Location"],
        {
            "csrfmiddlewaretoken": _csrf(form_page),
            "new_password1": new_password,
            "new_password2": new_password,
        },
    )
    assert done.status_code == 302
    assert User.objects.get(username="hana").check_password(new_password)
    assert done.cookies[WELCOME_COOKIE].value == ""  # dropped once used


# --- No raw session key at rest -------------------------------------------------------------


def test_a_signed_in_session_key_is_in_no_row_and_no_redis_key_or_value(alice, password):
    from tests.helpers import login_password_step

    browser = Client()
    assert login_password_step(browser, "alice", password).status_code == 302
    assert browser.get("/meetings/").status_code == 200
    key = browser.cookies[COOKIE].value
    assert len(key) == 32
    assert Session.objects.filter(user=alice).exists()
    assert key not in database_text()
    client = _redis()
    if client is not None:
        names = list(client.scan_iter(count=1000))
        assert any(CACHE_PREFIX.encode() in name for name in names)  # the session is cached
        assert not [n for n in names if key.encode() in n]
        values = [client.get(n) for n in names if client.type(n) == b"string"]
        assert not [v for v in values if v and key.encode() in v]


# --- Session fixation at a passcode join ----------------------------------------------------


def test_a_planted_session_key_gives_nothing_of_a_passcode_join(alice_api):
    meeting_id, passcode = book(alice_api)
    attacker = Client()
    # The attacker makes a session of their own (a wrong passcode is a submission)...
    attacker.post("/join/", join_data(meeting_id, "WRONG-WRONG-WRONG"))
    planted = attacker.cookies[COOKIE].value
    victim = Client()
    victim.cookies[COOKIE] = planted  # ...and plants its key in the victim's browser.

    joined = victim.post("/join/", join_data(meeting_id, passcode, "Vic"))
    assert joined.status_code == 302, joined.content
    assert victim.cookies[COOKIE].value != planted
    waiting = joined["Location"]
    entry = LobbyEntry.objects.get(display_name="Vic")
    assert victim.get(waiting).status_code == 200
    assert attacker.get(waiting).status_code == 404
    assert attacker.get(f"/join/{entry.pk}/status/").status_code == 404
    assert attacker.get(f"/join/{entry.pk}/room/").status_code == 404
    assert SessionStore(planted).load().get("lobby_entries", {}) == {}


# --- Sessions from before 0016 --------------------------------------------------------------


def test_migration_0016_ends_the_sessions_stored_under_raw_keys(alice):
    """Sessions as the store before 0016 kept them (django_session, and Django's cached_db
    entries in Redis, named by the raw key): deleted, and their keys sign no one in."""
    from importlib import import_module

    from django.contrib.sessions.backends import cached_db
    from django.contrib.sessions.models import Session as OldSession
    from django.db.migrations.loader import MigrationLoader

    migration = import_module("meetings.migrations.0016_sealed_sessions")
    old = cached_db.SessionStore()
    old["_auth_user_id"] = str(alice.pk)
    old["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    old["_auth_user_hash"] = alice.get_session_auth_hash()
    old.create()
    key = old.session_key
    assert OldSession.objects.filter(session_key=key).exists()
    cached_name = old.cache_key
    if django_settings.REDIS_URL:
        assert cache.get(cached_name) is not None

    state = MigrationLoader(connection).project_state(("meetings", "0016_sealed_sessions"))
    migration.end_old_sessions(state.apps, SimpleNamespace(connection=connection))

    assert not OldSession.objects.exists()
    if django_settings.REDIS_URL:  # (what 0016 clears: Redis, not a process's own memory)
        assert cache.get(cached_name) is None
    browser = Client()
    browser.cookies[COOKIE] = key
    response = browser.get("/meetings/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- The link page's sign-in: the token in no URL --------------------------------------------


@pytest.fixture
def ann(django_user_model, password):
    from django.contrib.auth.hashers import make_password

    return django_user_model.objects.create(
        username="ann", email="ann@example.org", password=make_password(password)
    )


def _urls_in(page) -> list[str]:
    return re.findall(r'(?:href|action|src|formaction)="([^"]*)"', page.content.decode())


def test_the_link_page_signs_in_with_the_token_in_no_url(alice_api, ann, password):
    ClassificationLevel.objects.filter(code="official").update(allow_guests=False)  # sign-in needed
    token = _invite(alice_api)
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(f"/j/{token}/")
    assert page.status_code == 200 and "Sign in to use this link" in page.content.decode()
    assert [url for url in _urls_in(page) if token in url] == []  # its form posts to itself
    assert COOKIE not in browser.cookies

    requested: list[str] = []
    kept = browser.post(f"/j/{token}/", {"csrfmiddlewaretoken": _csrf(page), "sign_in": "1"}, follow=True)
    requested += [url for url, _ in kept.redirect_chain]
    assert kept.status_code == 200 and "/accounts/login/" in requested[-1]
    stored = Session.objects.get().session_data
    assert token not in stored and token not in database_text()  # sealed
    login_at = requested[-1]
    signed_in = browser.post(
        login_at,
        {
            "csrfmiddlewaretoken": _csrf(kept),
            "login_view-current_step": "auth",
            "auth-username": "ann",
            "auth-password": password,
        },
        follow=True,
    )
    requested += [login_at, *[url for url, _ in signed_in.redirect_chain]]
    assert requested[-1] == "/j/continue/", requested
    body = signed_in.content.decode()
    assert signed_in.status_code == 200 and "ann@example.org" in body and 'id="join"' in body
    assert "Sign in to use this link" not in body
    assert [url for url in _urls_in(signed_in) if token in url] == []

    joined = browser.post(
        "/j/continue/", {"csrfmiddlewaretoken": _csrf(signed_in), "display_name": "Ann"}, follow=True
    )
    requested += ["/j/continue/", *[url for url, _ in joined.redirect_chain]]
    assert joined.status_code == 200 and "the host will let you in" in joined.content.decode()
    assert not [url for url in requested if token in url], requested
    # The token is gone from the session once used; the link page is back to where it leads.
    held = SessionStore(browser.cookies[COOKIE].value).load()
    assert token not in json.dumps(held) and "antechamber.link_pending" not in held
    assert browser.get("/j/continue/").status_code == 404


def test_continuing_without_a_kept_link_finds_nothing_and_get_spends_nothing(alice_api, ann, password):
    from meetings.models import JoinLink
    from tests.helpers import login_password_step

    assert Client().get("/j/continue/").status_code == 404
    ClassificationLevel.objects.filter(code="official").update(allow_guests=False)
    token = _invite(alice_api)
    browser = Client()
    assert browser.post(f"/j/{token}/", {"sign_in": "1"}).status_code == 302
    assert login_password_step(browser, "ann", password).status_code == 302
    for _ in range(2):
        assert browser.get("/j/continue/").status_code == 200
    assert JoinLink.objects.get().redeemed_at is None
    assert User.objects.get(username="ann").is_authenticated
