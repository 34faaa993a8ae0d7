"""Test settings: the real settings, with the environment a test run needs."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-" + "k" * 60)
os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")
# The test client speaks plain HTTP; tests of the redirect itself override this.
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
# pytest-django's live_server and Playwright's sync API share the main thread.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from scheduler.settings import *  # noqa: E402,F403
from scheduler.settings import REST_FRAMEWORK, STORAGES  # noqa: E402

# DRF's test client sends JSON unless told otherwise: the API takes nothing else.
REST_FRAMEWORK = {**REST_FRAMEWORK, "TEST_REQUEST_DEFAULT_FORMAT": "json"}

# Templates use {% static %}; the manifest needs collectstatic, which tests do not run.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not shared-cache memory: tests that drive the app from several threads
    # (the passcode brute-force test, the live server) need SQLite's real locking and
    # busy timeout, which shared-cache memory databases do not honour.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}  # noqa: F405
