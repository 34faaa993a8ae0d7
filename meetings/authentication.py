"""API tokens (`Authorization: Token <key>` or `Bearer <key>`) and the second-factor question."""

import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from meetings.credentials import token_digest
from meetings.models import ApiToken


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"
    # `Bearer` too: the scheme OpenAPI names and generated clients send (RFC 6750). The same
    # key either way.
    keywords = (b"token", b"bearer")

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: use 'Authorization: Token <key>' or 'Bearer <key>'."
            )
        try:
            key = parts[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        token = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=token_digest(key), revoked_at__isnull=True)
            .first()
        )
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        now = timezone.now()
        # One write a minute at most, whatever the request rate.
        ApiToken.objects.filter(pk=token.pk).exclude(last_used_at__gt=now - timedelta(minutes=1)).update(
            last_used_at=now
        )
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return self.keyword


def has_second_factor(request: Any) -> bool:
    """True when this request carries a token, or its session passed a second factor.

    SECURITY: tokens are only issued to sessions that passed a second factor (or by an
    operator), so a token counts as one.
    """
    if isinstance(getattr(request, "auth", None), ApiToken):
        return True
    user = getattr(request, "user", None)
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified())


def signed_in_user(request: Any) -> User:
    """The request's user, for views that require sign-in (the permission already checked)."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise exceptions.NotAuthenticated()
    return user


# --- Participants: the lobby entry a browser session holds --------------------------

SESSION_LOBBY_KEY = "lobby_entries"


def lobby_secret_bind(session: Any, entry_id: int, secret: str) -> None:
    """Keep an entry's raw secret in the session (server-side), never in a URL or page."""
    held = dict(session.get(SESSION_LOBBY_KEY, {}))
    held[str(entry_id)] = secret
    session[SESSION_LOBBY_KEY] = held


def lobby_secret_bind_after_join(session: Any, entry_id: int, secret: str) -> None:
    """lobby_secret_bind for a passcode join, under a new session key.

    SECURITY: session fixation. A key the browser came with may have been planted by
    someone else (a shared machine, a cookie set from a sibling site); the seat this join
    wins must not be reachable through it. cycle_key keeps what the session held (its
    other entries, a sign-in) and deletes the old key.
    """
    session.cycle_key()
    lobby_secret_bind(session, entry_id, secret)


def lobby_secret_for(session: Any, entry_id: int) -> str | None:
    held = session.get(SESSION_LOBBY_KEY, {})
    secret = held.get(str(entry_id)) if isinstance(held, dict) else None
    return secret if isinstance(secret, str) else None


def client_address(request: Any) -> str:
    """The peer address the limiter counts.

    SECURITY: REMOTE_ADDR only; X-Forwarded-For is whatever the client says. Behind our
    nginx, TrustedProxyMiddleware has set it from X-Real-IP (ANTECHAMBER_TRUSTED_PROXIES).
    """
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def axes_username(request: Any, credentials: dict[str, Any] | None) -> str | None:
    """The username django-axes counts failures against.

    From authenticate()'s credentials when it has them; from the sign-in wizard's
    password step otherwise (its fields are prefixed "auth-").
    """
    if credentials and credentials.get("username"):
        return str(credentials["username"])
    data = getattr(request, "POST", None) or {}
    return data.get("auth-username") or data.get("username")


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Describes the API token in the OpenAPI document (registered on import): two schemes,
    either of which will do, for one key. `bearerAuth` is the standard HTTP scheme that
    generated clients speak (openapi-python-client's AuthenticatedClient sends `Bearer`);
    `tokenAuth` is the `Token <key>` header the docs and older clients use."""

    target_class = "meetings.authentication.ApiTokenAuthentication"
    name = ["tokenAuth", "bearerAuth"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        # Alternatives (OR), not both at once (AND, which a single dict would mean).
        return [{"tokenAuth": []}, {"bearerAuth": []}]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        where = "create one on the API tokens page or with `create_api_token`."
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": f"`Authorization: Token <key>` (or `Bearer <key>`); {where}",
            },
            {
                "type": "http",
                "scheme": "bearer",
                "description": f"`Authorization: Bearer <key>` (or `Token <key>`); {where}",
            },
        ]


SESSION_BROWSER_KEY = "antechamber.browser"


def session_key_for(request: Any) -> str:
    """What the limiter counts this browser's entries under (meetings.limits.entry_keys): a
    random name kept in its session, made at its first join (a submission: a join binds its
    waiting-room entry to the session anyway).

    SECURITY: not the session key. Limiter counters are named by it in the database, and
    no stored name holds a session key (meetings.sessions); and a passcode join cycles
    the session key (session fixation), which must not reset this browser's count.
    """
    session = request.session
    name = session.get(SESSION_BROWSER_KEY)
    if not isinstance(name, str):
        name = secrets.token_hex(16)
        session[SESSION_BROWSER_KEY] = name
    return name
