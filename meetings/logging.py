"""Logs that never hold a secret, and structured request logs.

ScrubSecrets is attached to every handler: those in settings.LOGGING (whose loggers,
Django's `django` and runserver's `django.server` included, all write through the root's),
any handler configured before them (scrub_every_handler, run by LOGGING_CONFIG), gunicorn's
error and access logs (scheduler/gunicorn_logging.py, named by gunicorn.conf.py) and
Celery's (scheduler/celery.py). It rewrites the record in place, before any formatter sees
it, so a later handler on the same record (a test's capture, an error mailer) also gets
the scrubbed copy.

SECURITY: this is the second line of defence. The first is not logging secrets at all:
passcodes and keys are never passed to a logger, and only their hashes are stored.
The filter catches what frameworks log on their own: request paths and `next=` values
(which carry one-time join, onboarding and reset tokens: meetings/token_routes.py),
headers, form and JSON bodies in error reports.
"""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any

import structlog

from meetings.token_routes import SCRUBBED as SCRUBBED
from meetings.token_routes import scrub_token_routes

# Names whose values are secrets wherever they appear: as a dict key, a form field,
# a JSON member or a header. "key" and "token" also cover api_key, otp_token, auth-token.
_SECRET_NAME = r"[\w-]*(?:passcode|password|token|key|secret|sessionid|csrftoken|cookie|authorization)[\w-]*"
_SECRET_NAME_RE = re.compile(rf"^{_SECRET_NAME}$", re.IGNORECASE)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization: Token <key> / Bearer <key> / Basic <credentials>.
    (re.compile(r"\b(Token|Bearer|Basic)(\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1\2{SCRUBBED}"),
    # JSON members and Python reprs: "passcode": "abc", 'token': 'abc'.
    (
        re.compile(rf"""(["']{_SECRET_NAME}["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2""", re.IGNORECASE),
        rf"\1\2{SCRUBBED}\2",
    ),
    # Form bodies, query strings, cookie headers: passcode=abc&..., sessionid=abc; ...
    (re.compile(rf"(\b{_SECRET_NAME}=)[^&;\s\"',]+", re.IGNORECASE), rf"\1{SCRUBBED}"),
    # Header lines: Authorization: ..., Cookie: ..., X-Api-Key: ..., X-CSRFToken: ...
    (
        re.compile(r"\b((?:authorization|cookie|x-api-key|x-csrftoken)\s*:\s*)[^\r\n]+", re.IGNORECASE),
        rf"\1{SCRUBBED}",
    ),
]


def scrub_text(text: str) -> str:
    # SECURITY: first the token routes (meetings/token_routes.py, the list nginx's access
    # log map is written from too): paths and query values that carry a credential.
    text = scrub_token_routes(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub_value(value: Any, *, key: str = "") -> Any:
    if key and _SECRET_NAME_RE.match(key) and value not in (None, "", True, False):
        return SCRUBBED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: scrub_value(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_value(v) for v in value)
    return value


class ScrubSecrets(logging.Filter):
    """Remove join tokens, passcodes, API keys and session cookies from a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._scrub(record)
        except Exception:  # a log line must never take a request down
            record.msg, record.args = "[log record dropped: it could not be scrubbed]", None
        return True

    def _scrub(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            # A structlog event dict: scrub it in place (the formatter renders this object).
            scrubbed = scrub_value(record.msg)
            record.msg.clear()
            record.msg.update(scrubbed)
            if record.args:
                record.args = scrub_value(record.args)
        else:
            # Interpolate once, then scrub the whole line: arguments (paths, request
            # reprs) are where secrets hide.
            record.msg, record.args = scrub_text(record.getMessage()), None
        if record.exc_info:
            # SECURITY: tracebacks carry local values and URLs; render, scrub, and keep
            # only the scrubbed text.
            traceback = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
            if isinstance(record.msg, dict):
                record.msg["exception"] = scrub_text(traceback)
            else:
                record.msg = f"{record.msg}\n{scrub_text(traceback)}"
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info)


def scrub_every_handler() -> None:
    """Attach ScrubSecrets to every handler of every logger that exists now.

    Call it after anything configures logging: Django (configure_logging below), gunicorn
    and Celery each set up handlers of their own.
    """
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, ScrubSecrets) for f in handler.filters):
                handler.addFilter(ScrubSecrets())


def configure_logging(config: dict[str, Any]) -> None:
    """settings.LOGGING_CONFIG: Django's dictConfig, then the scrubber on every handler.

    SECURITY: Django configures its DEFAULT_LOGGING first; settings.LOGGING replaces the
    handlers of the loggers it names, and this catches any handler it does not name.
    """
    logging.config.dictConfig(config)
    scrub_every_handler()


_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def structured_formatter(*, as_json: bool = False) -> structlog.stdlib.ProcessorFormatter:
    """The one formatter: structlog events and plain stdlib records alike, with request_id."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=_SHARED_PROCESSORS,
    )


def configure_structlog() -> None:
    """Send structlog events through the standard library, so the same filter and handlers apply."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED_PROCESSORS,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
