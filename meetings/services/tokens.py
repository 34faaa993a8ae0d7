"""API tokens: issue and revoke."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from meetings import credentials, errors
from meetings.audit import audit_record
from meetings.models import ApiToken


def api_token_create(*, user: User, label: str = "", created_by: User | None = None) -> tuple[ApiToken, str]:
    """Issue a token; returns it with its key, which is never stored and cannot be shown again.

    Callers must have checked that the session passed a second factor, or be an operator.
    """
    key = credentials.new_token()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, key_hash=credentials.token_digest(key), prefix=key[:8], label=label
        )
        audit_record(
            action="api_token_created",
            actor=created_by or user,
            subject=user.get_username(),
            detail={"token_id": token.pk, "prefix": token.prefix, "label": label},
        )
    return token, key


def api_token_revoke(*, token_id: int, user: User) -> ApiToken:
    """Revoke one of the user's own tokens. Unknown, someone else's or already revoked: NotFound.

    One conditional update, so a token is revoked (and audited) exactly once.
    """
    now = timezone.now()
    with transaction.atomic():
        won = ApiToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).update(revoked_at=now)
        if won != 1:
            raise errors.NotFound("No such active token.", code="no_such_token")
        token = ApiToken.objects.get(pk=token_id)
        audit_record(
            action="api_token_revoked",
            actor=user,
            subject=user.get_username(),
            detail={"token_id": token.pk, "prefix": token.prefix, "label": token.label},
        )
    return token
