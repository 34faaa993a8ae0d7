"""Model fields whose secret is sealed or digested at rest (meetings/sealing.py does the
cryptography): the meeting's dial-in code, django-otp's TOTP seed and backup codes.

A sealed field stores "sealed:" + seal(...), bound to something that names its row (the
meeting ID, the device's user), and is opened where it is read, so the code that uses
the value (django-otp's `TOTPDevice.bin_key`, a template) sees the plain value:

- from the database a value arrives as `_Sealed` (from_db_value) and stays so until
  read; the attribute (`_SealedAttribute`) opens it then, with the row's binding;
- save() seals the plain value (pre_save) with the row as it is then; a value never
  read is written back as it came;
- anything else that would write a plain value (QuerySet.update, bulk_update) is
  refused (get_prep_value): a plain secret never reaches the database.

SECURITY: a value that does not open (the key is gone, or the value was moved to
another row) reads as a stand-in that is no credential (a TOTP seed nobody knows, no
dial-in code), is logged, and is kept as it was if the row is saved: restoring the key
brings it back, and copying a sealed value to another row gains nothing.

Backup codes are digested, not sealed (nothing ever shows them again): the column holds
keyed_digest(code)[:16], and a lookup by code (django-otp's `token_set.filter(token=…)`)
digests the code it is given under every configured key.
"""

from __future__ import annotations

import binascii
import logging
import secrets
from typing import Any, ClassVar

from django.db import models
from django.db.models.lookups import In
from django.db.models.query_utils import DeferredAttribute

from meetings import sealing

logger = logging.getLogger(__name__)

SEALED_PREFIX = "sealed:"


class _Sealed(str):
    """A field's value as the database holds it: sealed, not yet opened."""


class _Unopened(str):
    """The stand-in for a sealed value that did not open; `sealed` is what was stored."""

    sealed: str

    def __new__(cls, stand_in: str, sealed: str) -> _Unopened:
        value = super().__new__(cls, stand_in)
        value.sealed = sealed
        return value


class _SealedAttribute(DeferredAttribute):
    """Opens the stored value the first time it is read (with the row's binding). A data
    descriptor (it has __set__), so the value in the instance's __dict__ does not hide it."""

    field: SealedCharField

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.field.attname] = value

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, _Sealed):
            value = self.field.open(instance, value)
            instance.__dict__[self.field.attname] = value
        return value


class SealedCharField(models.CharField):
    """A secret sealed at rest. Subclasses name the label, the row binding, and how the
    plain value is packed into bytes (a hex seed as its 20 bytes, to fit its column)."""

    descriptor_class = _SealedAttribute
    label: ClassVar[bytes]

    def row_id(self, instance: Any) -> str:
        raise NotImplementedError

    def pack(self, plain: str) -> bytes:
        return plain.encode()

    def unpack(self, raw: bytes) -> str:
        return raw.decode()

    def stand_in(self) -> str:
        """What a value that does not open reads as: no credential at all."""
        return ""

    def seal_plain(self, plain: str, *, row_id: str) -> str:
        sealed = SEALED_PREFIX + sealing.seal_bytes(self.pack(plain), row_id=row_id, label=self.label)
        if self.max_length is not None and len(sealed) > self.max_length:
            raise ValueError(f"{self.model.__name__}.{self.name} sealed is over {self.max_length} characters")
        return sealed

    def open(self, instance: Any, stored: str) -> str:
        try:
            if not stored.startswith(SEALED_PREFIX):
                raise sealing.Unsealable("not sealed")  # SECURITY: a plain value is refused, not used
            raw = sealing.unseal_bytes(
                stored[len(SEALED_PREFIX) :], row_id=self.row_id(instance), label=self.label
            )
            return self.unpack(raw)
        except (sealing.Unsealable, ValueError, binascii.Error) as exc:
            logger.error(
                "sealed value does not open",
                extra={
                    "model": self.model.__name__,
                    "field": self.name,
                    "pk": instance.pk,
                    "error": str(exc),
                },
            )
            return _Unopened(self.stand_in(), stored)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return _Sealed(value) if value else value

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)
        if isinstance(value, str) and value.startswith(SEALED_PREFIX) and type(value) is str:
            return _Sealed(value)  # e.g. from a fixture (value_to_string writes it sealed)
        return value

    def pre_save(self, model_instance: Any, add: bool) -> Any:
        value = model_instance.__dict__.get(self.attname)
        if isinstance(value, _Unopened):
            return str(value.sealed)
        if isinstance(value, _Sealed) or not value:
            return value
        return self.seal_plain(value, row_id=self.row_id(model_instance))

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        if isinstance(value, _Sealed):
            return str(value)
        # SECURITY: only save() seals (it knows the row); any other way a plain value
        # would be written (QuerySet.update, bulk_update, a lookup by the secret) is refused.
        raise ValueError(f"{self.model.__name__}.{self.name} is stored sealed: set it and save() the row")

    def value_to_string(self, obj: Any) -> str:
        """Sealed in a dump (dumpdata), as in the database."""
        return str(self.pre_save(obj, add=False) or "")


class DialInCodeField(SealedCharField):
    """Meeting.dial_in_code: bound to the meeting ID (set before the row is first saved)."""

    label = sealing.MEETING_DIAL_IN_LABEL

    def row_id(self, instance: Any) -> str:
        return meeting_dial_in_row_id(instance.public_id)


def meeting_dial_in_row_id(public_id: str) -> str:
    return f"meeting:{public_id}"


class TOTPSeedField(SealedCharField):
    """django-otp's TOTPDevice.key (installed by `install`): a hex seed, sealed as its bytes
    (a 20-byte seed is 71 characters sealed: its column holds 80), bound to the user."""

    label = sealing.TOTP_SEED_LABEL

    def row_id(self, instance: Any) -> str:
        return totp_seed_row_id(instance.user_id)

    def pack(self, plain: str) -> bytes:
        return binascii.unhexlify(plain.encode())

    def unpack(self, raw: bytes) -> str:
        return binascii.hexlify(raw).decode()

    def stand_in(self) -> str:
        # SECURITY: a seed nobody knows, so a device whose seed does not open verifies no
        # code (an empty key would make every code computable).
        return secrets.token_hex(20)

    def deconstruct(self) -> Any:
        # The column is django-otp's own: its migrations, not ours, describe it.
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.CharField", args, kwargs


def totp_seed_row_id(user_id: int) -> str:
    return f"totp-device:user={user_id}"


BACKUP_CODE_DIGEST_CHARS = 16  # django-otp's StaticToken.token column: 64 bits of HMAC


def backup_code_digests(code: str) -> list[str]:
    """The stored form of a backup code under each configured key, the current one first."""
    normal = code.strip().lower()  # django-otp makes them lower-case; typing them is not
    return [
        sealing.keyed_digest(normal, label=sealing.BACKUP_CODE_LABEL, key=key)[:BACKUP_CODE_DIGEST_CHARS]
        for key in sealing.subkeys(sealing.BACKUP_CODE_LABEL)
    ]


class _Digest(str):
    """A backup code's digest as the database holds it."""


class BackupCodeField(models.CharField):
    """django-otp's StaticToken.token (installed by `install`): saved as the code's keyed
    digest; `token=code` finds the digest under any configured key. A value read from
    the database is a digest already and is never digested again; a string given by
    anyone else is a code and always is, so a digest typed as a code matches nothing."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return _Digest(value) if value is not None else value

    def get_prep_value(self, value: Any) -> Any:
        if value is None or isinstance(value, _Digest):
            return None if value is None else str(value)
        return backup_code_digests(str(value))[0]

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.CharField", args, kwargs


@BackupCodeField.register_lookup
class _BackupCodeExact(In):
    """`token=code` as `token IN (digest under each key)`: codes made before a key
    rotation (SECRET_KEY_FALLBACKS) still work."""

    lookup_name = "exact"

    def get_prep_lookup(self) -> Any:
        if not isinstance(self.rhs, _Digest) and isinstance(self.rhs, str):
            self.rhs = [_Digest(digest) for digest in backup_code_digests(self.rhs)]
        elif isinstance(self.rhs, str):
            self.rhs = [self.rhs]
        return super().get_prep_lookup()


def install() -> None:
    """Put the sealed seed and the digested backup code on django-otp's models (once, from
    MeetingsConfig.ready). The columns are unchanged: migration 0018 converted their rows."""
    from django_otp.plugins.otp_static.models import StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    for model, name, cls in ((TOTPDevice, "key", TOTPSeedField), (StaticToken, "token", BackupCodeField)):
        field = model._meta.get_field(name)
        if type(field) is cls:
            continue
        # SECURITY: fail at start-up, not at rest, if django-otp ever changes the field.
        if type(field) is not models.CharField:
            raise TypeError(f"{model.__name__}.{name} is {type(field).__name__}, not the CharField expected")
        field.__class__ = cls
        if cls is TOTPSeedField:
            setattr(model, field.attname, _SealedAttribute(field))
