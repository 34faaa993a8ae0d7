"""Settings, read from the environment (see .env.example).

Every value that can be wrong fails loudly with ImproperlyConfigured rather than
falling back silently.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def envbool(name: str, default: bool) -> bool:
    raw = env.str(name, default="")
    if raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0/true/false/yes/no/on/off, got {raw!r}")


DEBUG = envbool("DJANGO_DEBUG", False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        # SECURITY: a production site must never invent its key: sessions, CSRF tokens
        # and password-reset links would all be forgeable by anyone who reads the code.
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to at least 50 random characters "
            "(or set DJANGO_DEBUG=1 for local development)."
        )
    SECRET_KEY = "insecure-development-key-only-used-when-DJANGO_DEBUG-is-on-" + "x" * 16

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[SITE_URL])

INSTALLED_APPS = [
    # The admin, with a site that requires a second factor (meetings/admin_site.py).
    "meetings.apps.SecondFactorAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "two_factor",
    "axes",
    "csp",
    "django_structlog",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "meetings",
]

MIDDLEWARE = [
    # First: behind nginx, REMOTE_ADDR becomes the client's (ANTECHAMBER_TRUSTED_PROXIES).
    "meetings.middleware.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "meetings.middleware.NullOriginMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so that it sees the lockout flag the authentication backend set.
    "axes.middleware.AxesMiddleware",
    # A NUL in a URL part, a query parameter or a form field: a 400 naming it, before a view
    # hands it to PostgreSQL (which refuses it).
    "meetings.middleware.UnstorableTextMiddleware",
    # Innermost, so their process_exception runs first: Redis or the database down is a
    # 503, not a 500 (meetings.middleware.server_error answers the same for middleware).
    "meetings.middleware.DatabaseUnavailableMiddleware",
    "meetings.middleware.CacheUnavailableMiddleware",
]

ROOT_URLCONF = "scheduler.urls"
WSGI_APPLICATION = "scheduler.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'antechamber.sqlite3'}")}
# Survive a database restart without restarting the app.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault(
    "CONN_MAX_AGE", 0 if DATABASES["default"]["ENGINE"].endswith("sqlite3") else 60
)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A writer waits for the lock instead of failing at once under concurrent requests.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
elif env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
    # PostgreSQL plans a statement each time it gets its text; a prepared one is planned
    # once per connection. Parameters go to the server (server-side binding) and psycopg
    # prepares a statement the second time a connection runs it: the join-link lookup (a
    # four-table join) spent 0.7 ms planning against 0.25 ms running. Set
    # DATABASE_PREPARED_STATEMENTS=0 behind a pooler that cannot keep prepared statements
    # (PgBouncer in transaction mode before 1.21).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"server_side_binding": True, "prepare_threshold": 2}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's RedisCache, one redis-py client per pool (scheduler/redis_cache.py).
            "BACKEND": "scheduler.redis_cache.ReusedClientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("ANTECHAMBER_CACHE_PREFIX", default="antechamber"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    # A request that reads its session (every participant page after a redemption) gets
    # it from Redis, and the database only when Redis has lost it; writes go to both.
    # meetings.sessions: Django's cached_db, reading the database when Redis is down.
    SESSION_ENGINE = "meetings.sessions"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    SESSION_ENGINE = "meetings.sessions_db"
# SECURITY: either way a session row (and Redis entry) is named by a keyed digest of the
# cookie's key and its data sealed under a key only that cookie gives (meetings.sessions).

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out username/address before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Sign-in is django-two-factor-auth's wizard: password, then TOTP (or a backup code).
LOGIN_URL = "two_factor:login"
LOGIN_REDIRECT_URL = "meetings:list"
LOGOUT_REDIRECT_URL = "two_factor:login"
TWO_FACTOR_LOGIN_TIMEOUT = 300
# No "remember this browser": a session passes its second factor or it does not.
TWO_FACTOR_REMEMBER_COOKIE_AGE = None
OTP_TOTP_ISSUER = "Antechamber"
OTP_TOTP_THROTTLE_FACTOR = 1

# Password sign-in lockout (django-axes). Counted per username and client address, so
# one attacker cannot lock out a user from everywhere by guessing from one place.
# SECURITY: the counters live in the database every web process shares, never in the
# cache: Redis evicting keys (allkeys-lru) would reset a lockout, and a full Redis
# (noeviction) would refuse to count a failure (as the passcode limiter, meetings.limits).
AXES_ENABLED = envbool("ANTECHAMBER_AXES_ENABLED", True)
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env.int("ANTECHAMBER_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("ANTECHAMBER_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# two_factor's wizard prefixes the password step's fields with its step name.
AXES_USERNAME_CALLABLE = "meetings.authentication.axes_username"
# Masked in the failed attempt's row (AccessAttempt.post_data): no credential at rest.
AXES_SENSITIVE_PARAMETERS = [
    "password",
    "auth-password",
    "token-otp_token",
    "backup-otp_token",
    "csrfmiddlewaretoken",
]
# Peers whose X-Real-IP names the client (our nginx: 127.0.0.1 when on the same machine).
ANTECHAMBER_TRUSTED_PROXIES = frozenset(env.list("ANTECHAMBER_TRUSTED_PROXIES", default=[]))
# Behind a reverse proxy set ANTECHAMBER_PROXY_COUNT so the client address is the real one.
AXES_IPWARE_PROXY_COUNT = env.int("ANTECHAMBER_PROXY_COUNT", default=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS: list[Any] = [BASE_DIR / "static"]
# The browser side of Janus, from Debian's packages (libjs-janus-gateway and
# libjs-webrtc-adapter), served as our own static files: same origin for the CSP, and
# the same version as the janus package on the media server host.
for _prefix, _folder in (
    ("vendor/janus-gateway", Path("/usr/share/javascript/janus-gateway")),
    ("vendor/webrtc-adapter", Path("/usr/share/javascript/webrtc-adapter")),
):
    if _folder.is_dir():
        STATICFILES_DIRS.append((_prefix, _folder))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# E-mail: SMTP when EMAIL_HOST is set, the console otherwise.
EMAIL_HOST = env.str("EMAIL_HOST", default="")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Antechamber <antechamber@localhost>")

# Celery: a real broker when REDIS_URL is set; otherwise tasks run in-process.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "socket_timeout": 5,
    "socket_connect_timeout": 2,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# A publish during a broker outage gives up quickly: the outbox row is already committed
# and the periodic flush sends it once the broker is back.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# audit_seal has a queue of its own, so that a backlog of mail (5,000 invitations are 50
# batch tasks) cannot hold it past verify_audit's one-minute limit: every worker started
# without -Q consumes both queues, taking from each in turn.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES: dict[str, dict[str, Any]] = {"celery": {}, "audit": {}}
CELERY_TASK_ROUTES = {"meetings.tasks.audit_seal": {"queue": "audit"}}
CELERY_BEAT_SCHEDULE = {
    "outbox-flush": {
        "task": "meetings.tasks.outbox_flush",
        "schedule": timedelta(seconds=env.int("ANTECHAMBER_OUTBOX_FLUSH_SECONDS", default=30)),
    },
    "retention-purge": {"task": "meetings.tasks.retention_purge", "schedule": timedelta(hours=24)},
    # Chains the audit rows appended since the last seal (meetings.audit). A run that
    # waited in the queue too long is dropped: the next one seals the same rows.
    "audit-seal": {
        "task": "meetings.tasks.audit_seal",
        "schedule": timedelta(seconds=env.int("ANTECHAMBER_AUDIT_SEAL_SECONDS", default=2)),
        "options": {"expires": 20},
    },
    "media-rooms-sync": {
        "task": "meetings.tasks.media_rooms_sync_open",
        "schedule": timedelta(seconds=env.int("ANTECHAMBER_CONFERENCE_SYNC_SECONDS", default=60)),
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "meetings.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # JSON bodies only (415 for any other): one media type per body in the schema, which
    # generated clients need. JSON nested too deeply for the decoder is a 400, not a 500.
    "DEFAULT_PARSER_CLASSES": ["meetings.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "meetings.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Antechamber API",
    "DESCRIPTION": (
        "Book policy-checked meetings. Authenticate with `Authorization: Token <key>` or "
        "`Authorization: Bearer <key>`. Bodies are JSON."
    ),
    "VERSION": "1.0.0",
    # Where this deployment answers (paths in the document start with /api/v1/).
    "SERVERS": [{"url": SITE_URL}],
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our own static files: no CDN, and nothing the CSP would have to allow.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "MeetingStatusEnum": "meetings.models.Meeting.Status",
        "LobbyEntryStatusEnum": "meetings.models.LobbyEntry.Status",
    },
}

# --- Headers and cookies -------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# SECURITY: the CSRF token is read from the form, never by scripts, so the cookie
# can be HttpOnly too.
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG and envbool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_AGE = env.int("ANTECHAMBER_SESSION_AGE_SECONDS", default=12 * 3600)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# HTTPS only when not in debug. Behind a TLS-terminating proxy set
# DJANGO_SECURE_PROXY_SSL_HEADER=1 so Django trusts its X-Forwarded-Proto.
SECURE_SSL_REDIRECT = envbool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = 0 if DEBUG else env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
if envbool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Media (Janus VideoRoom); unset JANUS_URL: meeting rooms have no audio or video -----
# The URL Antechamber's server uses for the Janus HTTP API (room control).
JANUS_URL = env.str("JANUS_URL", default="").rstrip("/")
# The VideoRoom plugin's admin_key: needed to create rooms and to forward RTP.
JANUS_ADMIN_KEY = env.str("JANUS_ADMIN_KEY", default="")
if JANUS_URL and not JANUS_ADMIN_KEY:
    raise ImproperlyConfigured("JANUS_URL is set but JANUS_ADMIN_KEY is not: rooms could not be created.")
# The URL browsers use for the same API (often the same server behind the site's proxy).
ANTECHAMBER_JANUS_BROWSER_URL = env.str("ANTECHAMBER_JANUS_BROWSER_URL", default=JANUS_URL).rstrip("/")
ANTECHAMBER_JANUS_TIMEOUT_SECONDS = env.float("ANTECHAMBER_JANUS_TIMEOUT_SECONDS", default=5.0)
# RTCPeerConnection iceServers, as JSON (e.g. [{"urls": "stun:stun.example.org:3478"}]).
# Empty by default: no STUN or TURN server learns who is in a meeting unless the operator says so.
ANTECHAMBER_ICE_SERVERS = env.json("ANTECHAMBER_ICE_SERVERS", default=[])
if not isinstance(ANTECHAMBER_ICE_SERVERS, list):
    raise ImproperlyConfigured("ANTECHAMBER_ICE_SERVERS must be a JSON list.")


def _origin(url: str) -> str:
    parts = url.split("/")
    return "/".join(parts[:3]) if len(parts) >= 3 else ""


# django-csp 4: scripts only from our own origin (no inline script, no eval), never framed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # The admin and Swagger UI set style attributes; styles cannot run code.
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        # The browser talks to Janus's HTTP API directly (janus.js long-polls it).
        "connect-src": ["'self'"]
        + ([_origin(ANTECHAMBER_JANUS_BROWSER_URL)] if ANTECHAMBER_JANUS_BROWSER_URL else []),
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Antechamber's own settings.
ANTECHAMBER_ARGON2_TIME_COST = env.int("ANTECHAMBER_ARGON2_TIME_COST", default=2)
ANTECHAMBER_ARGON2_MEMORY_KIB = env.int("ANTECHAMBER_ARGON2_MEMORY_KIB", default=65536)
ANTECHAMBER_ARGON2_PARALLELISM = env.int("ANTECHAMBER_ARGON2_PARALLELISM", default=1)
if ANTECHAMBER_ARGON2_MEMORY_KIB < 19456 or ANTECHAMBER_ARGON2_TIME_COST < 2:
    raise ImproperlyConfigured(
        "Argon2 parameters below OWASP's minimum (m=19456 KiB, t=2, p=1) are not allowed."
    )
ANTECHAMBER_DIAL_IN_NUMBER = env.str("ANTECHAMBER_DIAL_IN_NUMBER", default="+44 20 7946 0000")
ANTECHAMBER_REQUIRE_SERVICES = envbool("ANTECHAMBER_REQUIRE_SERVICES", False)
# With tasks in-process there is no beat: each audited transaction seals on commit.
ANTECHAMBER_AUDIT_SEAL_ON_COMMIT = envbool("ANTECHAMBER_AUDIT_SEAL_ON_COMMIT", not REDIS_URL)
# Outbox rows per send task, all sent over one SMTP connection.
ANTECHAMBER_OUTBOX_BATCH = env.int("ANTECHAMBER_OUTBOX_BATCH", default=100)
if ANTECHAMBER_OUTBOX_BATCH < 1:
    raise ImproperlyConfigured("ANTECHAMBER_OUTBOX_BATCH must be at least 1.")
# The outbox: a message claimed this long ago by a worker that never finished is re-sent;
# the periodic flush leaves messages younger than the grace to their own task.
ANTECHAMBER_OUTBOX_STALE_CLAIM_SECONDS = env.int("ANTECHAMBER_OUTBOX_STALE_CLAIM_SECONDS", default=600)
ANTECHAMBER_OUTBOX_FLUSH_GRACE_SECONDS = env.int("ANTECHAMBER_OUTBOX_FLUSH_GRACE_SECONDS", default=30)
# A failed send is retried after base, 2 x base, 4 x base ... seconds (at most an hour).
# The key that seals one-time join links in outbox rows until they are sent (meetings/sealing.py).
# Unset: derived from DJANGO_SECRET_KEY (with a label of its own). Never stored in the database.
ANTECHAMBER_OUTBOX_KEY = env.str("ANTECHAMBER_OUTBOX_KEY", default="")
ANTECHAMBER_OUTBOX_RETRY_BASE_SECONDS = env.int("ANTECHAMBER_OUTBOX_RETRY_BASE_SECONDS", default=30)
if ANTECHAMBER_OUTBOX_RETRY_BASE_SECONDS < 1:
    raise ImproperlyConfigured("ANTECHAMBER_OUTBOX_RETRY_BASE_SECONDS must be at least 1.")

# --- Logging --------------------------------------------------------------------------
# Structured request logs (django-structlog: request_started/request_finished with a
# request_id), rendered through the standard library so that one filter scrubs every
# record, ours and Django's, before any handler writes it (see meetings/logging.py).
LOG_FORMAT = env.str("ANTECHAMBER_LOG_FORMAT", default="console")
if LOG_FORMAT not in {"console", "json"}:
    raise ImproperlyConfigured(f"ANTECHAMBER_LOG_FORMAT must be console or json, got {LOG_FORMAT!r}")
LOG_LEVEL = env.str("DJANGO_LOG_LEVEL", default="INFO")
# Django's dictConfig, then ScrubSecrets on any handler LOGGING does not name.
LOGGING_CONFIG = "meetings.logging.configure_logging"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"scrub_secrets": {"()": "meetings.logging.ScrubSecrets"}},
    "formatters": {
        "structured": {"()": "meetings.logging.structured_formatter", "as_json": LOG_FORMAT == "json"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["scrub_secrets"], "formatter": "structured"}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # SECURITY: Django's DEFAULT_LOGGING gives these loggers handlers of their own that
    # the scrubber is not on: runserver's request lines ("GET /j/<token>/ ...") and, with
    # DEBUG, django.request's "Gone: /j/<token>/". Naming them here drops those handlers;
    # their records go to the root's. (Its mail_admins handler goes too: ADMINS is unset.)
    "loggers": {
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
    },
}

# Passcode joins: per meeting, after this many failures within the window every further
# attempt is refused (429) until the window passes; per client address, a looser limit.
ANTECHAMBER_JOIN_MEETING_FAILURES = env.int("ANTECHAMBER_JOIN_MEETING_FAILURES", default=10)
ANTECHAMBER_JOIN_CLIENT_FAILURES = env.int("ANTECHAMBER_JOIN_CLIENT_FAILURES", default=50)
# Invitations: at most this many addresses in one request, and new invitees per meeting per hour.
ANTECHAMBER_INVITES_PER_REQUEST = env.int("ANTECHAMBER_INVITES_PER_REQUEST", default=500)
ANTECHAMBER_INVITES_PER_MEETING_PER_HOUR = env.int("ANTECHAMBER_INVITES_PER_MEETING_PER_HOUR", default=2000)
# Waiting-room entries by passcode per meeting and window, successful ones included.
ANTECHAMBER_JOIN_ENTRIES_PER_SESSION = env.int("ANTECHAMBER_JOIN_ENTRIES_PER_SESSION", default=5)
ANTECHAMBER_JOIN_ENTRIES_PER_ADDRESS = env.int("ANTECHAMBER_JOIN_ENTRIES_PER_ADDRESS", default=30)
ANTECHAMBER_JOIN_WINDOW_SECONDS = env.int("ANTECHAMBER_JOIN_WINDOW_SECONDS", default=15 * 60)
# How long after its scheduled end a meeting the host did not end still takes joiners.
ANTECHAMBER_JOIN_GRACE_MINUTES = env.int("ANTECHAMBER_JOIN_GRACE_MINUTES", default=60)
if ANTECHAMBER_JOIN_MEETING_FAILURES < 1 or ANTECHAMBER_JOIN_CLIENT_FAILURES < 1:
    raise ImproperlyConfigured("ANTECHAMBER_JOIN_*_FAILURES must be at least 1.")

DJANGO_STRUCTLOG_CELERY_ENABLED = False
# SECURITY: the client address is personal data and is not needed to trace a request.
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False
