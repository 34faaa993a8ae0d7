"""Accounts: staff invite a host by e-mail; the host sets a password from a one-time link,
and keeps a time zone."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from meetings import emails, errors, policy, sealing
from meetings.audit import audit_record
from meetings.models import HostProfile
from meetings.services import outbox


def welcome_link(user: User) -> str:
    """The one-time set-password link: Django's password-reset token (an HMAC over the
    password hash and last sign-in, so it dies once used; expires after
    PASSWORD_RESET_TIMEOUT). Nothing of it is stored."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return f"{settings.SITE_URL}{reverse('welcome', kwargs={'uidb64': uid, 'token': token})}"


def host_invite(*, actor: User, email: str, username: str, display_name: str) -> User:
    """Create a host account with no usable password and mail them the set-password link
    (sealed in the outbox like a join link). Staff only: the caller checks."""
    email = email.strip().lower()
    violations = []
    if User.objects.filter(username__iexact=username).exists():
        violations.append(policy.Violation("username", f"{username} is taken: choose another user name."))
    if User.objects.filter(email__iexact=email).exists():
        violations.append(policy.Violation("email", f"{email} already has an account."))
    if violations:
        raise errors.Refused(violations)
    with transaction.atomic():
        user = User(username=username, email=email, first_name=display_name[:150])
        user.set_unusable_password()
        user.save()
        message = emails.host_welcome(user=user, inviter=actor, link_url=sealing.LINK_PLACEHOLDER)
        outbox.outbox_write(
            [
                outbox.outbox_row(
                    message=message, kind="host_invitation", to_email=email, link=welcome_link(user)
                )
            ]
        )
        audit_record(action="host_invited", actor=actor, subject=username, detail={"email": email})
    return user


def host_password_set(*, user: User, password: str) -> User:
    """The password an onboarding link allowed (validated by the caller's form), set and
    audited in one transaction: never a password set without its audit row."""
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        audit_record(action="host_password_set", actor=user, subject=user.get_username())
    return user


def host_profile_update(*, user: User, timezone_name: str) -> HostProfile:
    """The host's own time zone, in which pages show times (a preference: not audited)."""
    profile, _created = HostProfile.objects.update_or_create(user=user, defaults={"timezone": timezone_name})
    return profile
