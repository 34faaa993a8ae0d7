import itertools
import os

import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client
from rest_framework.test import APIClient

from meetings.services import tokens
from tests import real_services as real

# One hash for every fixture user: argon2 is slow on purpose and tests need many users.
_PASSWORD = "correct horse battery staple"
_PASSWORD_HASH: list[str] = []


def _password_hash() -> str:
    if not _PASSWORD_HASH:
        _PASSWORD_HASH.append(make_password(_PASSWORD))
    return _PASSWORD_HASH[0]


def _user(django_user_model, username: str, **extra):
    return django_user_model.objects.create(
        username=username, email=f"{username}@example.org", password=_password_hash(), **extra
    )


@pytest.fixture
def password() -> str:
    return _PASSWORD


@pytest.fixture
def alice(django_user_model):
    """Alice hosts."""
    return _user(django_user_model, "alice")


@pytest.fixture
def bob(django_user_model):
    """Bob is another host, who must see nothing of Alice's."""
    return _user(django_user_model, "bob")


@pytest.fixture
def carol(django_user_model):
    """Carol is staff: a policy admin."""
    return _user(django_user_model, "carol", is_staff=True)


def _token_client(user) -> APIClient:
    _token, key = tokens.api_token_create(user=user, label="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def alice_api(alice) -> APIClient:
    return _token_client(alice)


@pytest.fixture
def bob_api(bob) -> APIClient:
    return _token_client(bob)


@pytest.fixture
def carol_api(carol) -> APIClient:
    return _token_client(carol)


@pytest.fixture
def alice_web(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def verified_client():
    """verified_client(user): a browser session of `user` that passed a second factor
    (a real TOTP device, marked as passed in the session as django-otp does)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    def make(user) -> Client:
        device = TOTPDevice.objects.filter(user=user).first() or TOTPDevice.objects.create(
            user=user, name="phone", confirmed=True
        )
        client = Client()
        client.force_login(user)
        session = client.session
        session["otp_device_id"] = device.persistent_id
        session.save()
        return client

    return make


@pytest.fixture
def alice_web_verified(alice, verified_client) -> Client:
    """Alice signed in with a second factor."""
    return verified_client(alice)


@pytest.fixture
def meeting_factory(alice):
    """meeting_factory(**overrides): a meeting booked through the service (Alice hosts,
    OFFICIAL, tomorrow, 60 minutes, unless overridden). Returns services.booking.Booked."""
    from datetime import timedelta

    from django.utils import timezone

    from meetings.models import ClassificationLevel
    from meetings.services import booking

    def make(**overrides):
        level = overrides.pop("classification", "official")
        values = {
            "host": alice,
            "title": "Weekly sync",
            "starts_at": timezone.now() + timedelta(days=1),
            "duration_minutes": 60,
            "classification": ClassificationLevel.objects.get(code=level),
            "host_has_second_factor": True,
            **overrides,
        }
        return booking.meeting_book(**values)

    return make


# --- Real services -----------------------------------------------------------------


@pytest.fixture(scope="session")
def smtp_server():
    controller, mailbox = real.start_smtp()
    yield controller, mailbox
    controller.stop()


@pytest.fixture
def mailbox(smtp_server, settings):
    """A real SMTP server on loopback; the app sends to it (here and in the worker)."""
    controller, box = smtp_server
    box.clear()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = controller.hostname
    settings.EMAIL_PORT = controller.port
    return box


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, smtp_server):
    """With REDIS_URL: a real worker process on the test database. Without: tasks run in-process."""
    from django.conf import settings

    if not settings.REDIS_URL:
        yield None
        return
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        real.missing("a Celery worker process needs PostgreSQL (the SQLite test database is in memory)")
    controller, _box = smtp_server
    from scheduler.celery import app

    app.control.purge()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "scheduler.settings_test",
        "DATABASE_URL": real.database_url_for_test_db(),
        "REDIS_URL": settings.REDIS_URL,
        "EMAIL_HOST": controller.hostname,
        "EMAIL_PORT": str(controller.port),
    }
    worker = real.celery("worker", env, f"test-{os.getpid()}")
    worker.start(ready=b"ready.")
    yield worker
    worker.stop()


@pytest.fixture
def tasks_in_process():
    """Tasks run in this process when queued, whatever REDIS_URL says: for tests of what a
    task does (a mail's content, the media room's state), not of how it gets to a worker
    (tasks_run covers that)."""
    from scheduler.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def tasks_run(celery_worker_process, mailbox):
    """Tasks run for real: in a worker process with Redis, in-process without. Use with
    @pytest.mark.django_db(transaction=True) so that the worker sees committed rows."""
    return mailbox


@pytest.fixture(autouse=True)
def _seeded_levels(request):
    """Transactional tests flush every table, the migration's seed included: put it back."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        return
    request.getfixturevalue("transactional_db")
    import importlib

    from django.apps import apps

    for migration in ("0002_seed_levels", "0008_mail_sequence", "0012_e2ee"):
        importlib.import_module(f"meetings.migrations.{migration}").seed(apps, None)


_cache_namespaces = itertools.count()


@pytest.fixture(autouse=True)
def _own_cache_namespace(settings):
    """Each test keeps its cache entries (sessions, E2EE keys) under its own key prefix.

    Never cache.clear(): with Redis that would FLUSHDB a database others may share.
    """
    base = settings.CACHES["default"].get("KEY_PREFIX", "")
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "KEY_PREFIX": f"{base}test-{os.getpid()}-{next(_cache_namespaces)}",
        }
    }


# --- Janus (the media server) ------------------------------------------------------------


@pytest.fixture(scope="session")
def janus_server():
    """A real Janus (VideoRoom + HTTP only) from tests/janus/, on a free loopback port."""
    from tests import janus_server as janus

    if not janus.janus_available():
        real.missing("Janus is not installed (apt-get install janus; .ci/run installs it)")
    server = janus.start_janus()
    yield server
    server.stop()


@pytest.fixture
def janus(janus_server, settings, tasks_in_process):
    """The app pointed at the real Janus for this test; media room syncs (a task) run in
    this process, so that they see this test's settings."""
    settings.JANUS_URL = janus_server.url
    settings.JANUS_ADMIN_KEY = janus_server.admin_key
    settings.ANTECHAMBER_JANUS_BROWSER_URL = janus_server.url
    return janus_server
