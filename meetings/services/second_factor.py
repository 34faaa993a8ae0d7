"""Second factors: a new set of backup codes."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

from meetings.audit import audit_record

BACKUP_CODES = 10


def backup_codes_replace(*, user: User) -> list[str]:
    """A new set of backup codes for `user`, replacing any left; returns the codes.

    SECURITY: the database keeps only their keyed digests (meetings/sealed_fields.py):
    these are the only copies, for the one response that shows them.
    """
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODES)]
    with transaction.atomic():
        device, _ = StaticDevice.objects.select_for_update().get_or_create(
            user=user, defaults={"name": "backup"}
        )
        device.token_set.all().delete()
        StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
        audit_record(action="backup_codes_replaced", actor=user, subject=user.get_username())
    return codes
