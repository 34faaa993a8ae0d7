"""The routes whose URL carries a credential: the one list every log scrubber reads.

meetings.logging.ScrubSecrets (Django, runserver, gunicorn, Celery) compiles these
patterns, and deploy/render_nginx.py writes nginx's access-log map from the same ones, so
a route added here is scrubbed by every server at once (tests/test_logging.py and
tests/test_nginx.py check that each scrubber follows this list).

A token route is matched wherever it appears in a line: as a request path, inside an
absolute URL, or as the value of a query parameter (`?next=/j/<token>/`), raw or
URL-encoded once or twice (`%2Fj%2F<token>%2F`, `%252F…`).

SECURITY: this module is imported by render_nginx.py outside Django: standard library only.
The patterns are written in the syntax Python's `re` and nginx's PCRE share (lookaheads,
`(?P<name>…)`, no possessive or atomic groups), matched case-insensitively by both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCRUBBED = "[scrubbed]"

# A "/" as it appears in a logged URL: raw, encoded once (a `next=` value), or twice (a
# `next=` inside another `next=`).
SEPARATOR = r"(?:/|%2F|%252F)"
# Where a route starts: after a separator, or where no path or word goes on before it (a
# resolver's "path: 'join/<token>/'" has lost its leading slash).
LEAD = rf"(?:{SEPARATOR}|(?<![\w.~%/-]))"
# One character of a path segment: never a separator, nor what ends a URL in a log line.
SEGMENT_CHAR = r"""(?:(?!%2F|%252F)[^/\s?#&;"'<>])"""


@dataclass(frozen=True)
class TokenRoute:
    """`/<prefix…>/<`before` segments>/<token>/…`."""

    prefix: tuple[str, ...]
    # Segments between the prefix and the token (the uid of a set-password link); kept.
    before: int = 0
    # Shorter segments are not tokens (an entry id under /join/, Django's "done").
    min_length: int = 21
    # Fixed steps that stand where the token stood (Django's "set-password"); kept.
    not_tokens: tuple[str, ...] = ()
    why: str = ""


TOKEN_ROUTES: tuple[TokenRoute, ...] = (
    TokenRoute(("j",), why="one-time join link: 256-bit token (43 characters)"),
    # No route carries a token under these today (/join/<entry id>/ is short); kept so
    # that an old or future link shape is never logged whole.
    TokenRoute(("join",), why="reserved: a join token under /join/"),
    TokenRoute(("invite",), why="reserved: an invitation token under /invite/"),
    TokenRoute(
        ("accounts", "welcome"),
        before=1,
        min_length=10,
        not_tokens=("set-password",),
        why="onboarding: Django's password-reset token, /accounts/welcome/<uidb64>/<token>/",
    ),
    TokenRoute(
        ("accounts", "reset"),
        before=1,
        min_length=10,
        not_tokens=("set-password",),
        why="password reset: Django's PasswordResetConfirmView, /accounts/reset/<uidb64>/<token>/",
    ),
)


def head_pattern(route: TokenRoute) -> str:
    """What comes before the token: `/prefix/…/` and the kept segments."""
    fixed = LEAD + SEPARATOR.join(re.escape(part) for part in route.prefix) + SEPARATOR
    return fixed + f"{SEGMENT_CHAR}+{SEPARATOR}" * route.before


def token_pattern(route: TokenRoute) -> str:
    """The token itself (not one of the route's fixed steps)."""
    step_end = rf"""(?:{SEPARATOR}|[\s?#&;"'<>]|$)"""
    skip = "".join(f"(?!{re.escape(step)}{step_end})" for step in route.not_tokens)
    return f"{skip}{SEGMENT_CHAR}{{{route.min_length},}}"


def route_pattern(route: TokenRoute) -> str:
    """The whole route with the head captured as `head` (for `\\g<head>` and nginx's `$head`)."""
    return f"(?P<head>{head_pattern(route)}){token_pattern(route)}"


def compiled(routes: tuple[TokenRoute, ...] = TOKEN_ROUTES) -> list[re.Pattern[str]]:
    return [re.compile(route_pattern(route), re.IGNORECASE) for route in routes]


PATTERNS = compiled()


def scrub_token_routes(text: str, patterns: list[re.Pattern[str]] = PATTERNS) -> str:
    """Every token in `text` that stands in a token route replaced by SCRUBBED."""
    for pattern in patterns:
        text = pattern.sub(rf"\g<head>{SCRUBBED}", text)
    return text
