"""Secrets at rest: sealed (AES-GCM) or digested (HMAC) under keys that are not in the database.

Every key here is derived (HKDF-SHA256, one label per purpose) from DJANGO_SECRET_KEY and
its fallbacks (ANTECHAMBER_OUTBOX_KEY first where set), so a dump of the database, or of
Redis, opens nothing. `subkeys(label)` gives the current key first, then the fallbacks'
(to open or look up what an older key made). `seal`/`unseal` (and `seal_bytes`/`unseal_bytes`, for a
binary secret in a narrow column) and `keyed_digest` are the primitives; the outbox's
join link below is their first user. The labels of the other secrets at rest are below
too, one per purpose (meetings/sealed_fields.py puts them on model fields).

The one-time join link at rest in the outbox: sealed until the mail is sent.

SECURITY: a live join token may exist in the sent mail and nowhere else. Until then the
outbox row's bodies carry LINK_PLACEHOLDER, and the link itself is sealed with AES-GCM
under a key that is not in the database: derived (HKDF-SHA256, with a label of its own)
from DJANGO_SECRET_KEY, or ANTECHAMBER_OUTBOX_KEY where set. The row's Message-ID is the
associated data, so a sealed link moved to another row does not open. Sending opens it,
puts it into the mail, and erases it from the row.
"""

import base64
import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

# Letters, digits and hyphens only: nothing a template, HTML or iCalendar escapes or folds
# at a special character, so it can be found and replaced in every part.
LINK_PLACEHOLDER = "ANTECHAMBER-SEALED-JOIN-LINK-0000"
# The dial-in code in a stored mail body, opened (like the link) when the mail is sent.
DIAL_IN_PLACEHOLDER = "ANTECHAMBER-SEALED-DIAL-IN-CODE-0000"
_LABEL = b"antechamber outbox join link v1"
# One label per secret at rest (the row each is bound to is named where it is sealed).
TOTP_SEED_LABEL = b"antechamber totp seed v1"  # bound to the device's user
BACKUP_CODE_LABEL = b"antechamber backup code v1"  # a keyed digest, not sealed
MEETING_DIAL_IN_LABEL = b"antechamber meeting dial-in code v1"  # bound to the meeting ID
OUTBOX_DIAL_IN_LABEL = b"antechamber outbox dial-in code v1"  # bound to the Message-ID
_NONCE_BYTES = 12


class Unsealable(Exception):
    """A sealed value does not open with any configured key (the key changed, or the row was altered)."""


def _secrets() -> list[str]:
    secrets = [settings.ANTECHAMBER_OUTBOX_KEY] if settings.ANTECHAMBER_OUTBOX_KEY else []
    return secrets + [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def subkeys(label: bytes) -> list[bytes]:
    """The keys for one purpose (`label`): the current one first, then the fallbacks'."""
    return [_derive(secret, label) for secret in _secrets()]


@lru_cache(maxsize=64)
def _derive(secret: str, label: bytes) -> bytes:
    """The key for a secret and a label (computed once each: a fan-out seals thousands of links)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret.encode())


def keyed_digest(value: str, *, label: bytes, key: bytes | None = None) -> str:
    """HMAC-SHA256 (hex) of `value` under the current key for `label` (or `key`, one of
    `subkeys(label)`, to find what a fallback key made): a lookup key or a derived
    credential that nobody can compute without the key."""
    return hmac.new(key or subkeys(label)[0], value.encode(), hashlib.sha256).hexdigest()


def seal(link: str, *, row_id: str, label: bytes = _LABEL) -> str:
    """The value (a link, by default), encrypted under the current key for `label`, bound
    to `row_id` (the outbox row's Message-ID, or whatever names the row it lives in)."""
    return seal_bytes(link.encode(), row_id=row_id, label=label)


def unseal(sealed: str, *, row_id: str, label: bytes = _LABEL) -> str:
    return unseal_bytes(sealed, row_id=row_id, label=label).decode()


def seal_bytes(value: bytes, *, row_id: str, label: bytes) -> str:
    """`seal` for bytes: base64 of nonce, ciphertext and tag (28 bytes more than `value`)."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(subkeys(label)[0]).encrypt(nonce, value, row_id.encode())
    return base64.b64encode(nonce + sealed).decode()


def unseal_bytes(sealed: str, *, row_id: str, label: bytes) -> bytes:
    try:
        raw = base64.b64decode(sealed, validate=True)
    except ValueError as exc:  # binascii.Error: not base64, so nothing we sealed
        raise Unsealable("the sealed value is not base64") from exc
    nonce, body = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
    for key in subkeys(label):
        try:
            return AESGCM(key).decrypt(nonce, body, row_id.encode())
        except (InvalidTag, ValueError):
            continue
    raise Unsealable("the sealed value does not open with any configured key")


def put_link(text: str, link: str) -> str:
    """Replace the placeholder with the link in a text or HTML body."""
    return text.replace(LINK_PLACEHOLDER, link)


def put_link_in_calendar(ics: str, link: str) -> str:
    """The same for an iCalendar text, whose long lines are folded (RFC 5545 §3.1):
    unfold, replace, fold again."""
    return put_in_calendar(ics, LINK_PLACEHOLDER, link)


def put_in_calendar(ics: str, placeholder: str, value: str) -> str:
    """Replace `placeholder` (LINK_PLACEHOLDER, DIAL_IN_PLACEHOLDER) with `value` in an
    iCalendar text: unfold, replace, fold again."""
    if placeholder not in ics.replace("\r\n ", "").replace("\n ", ""):
        return ics
    lines = ics.replace("\r\n ", "").replace("\n ", "").splitlines()
    return "".join(_fold(line.replace(placeholder, value)) for line in lines)


def _fold(line: str, limit: int = 75) -> str:
    """One content line folded at `limit` octets, never inside a UTF-8 character."""
    out, width = [], 0
    for char in line:
        size = len(char.encode())
        if width + size > limit:
            out.append("\r\n ")
            width = 1
        out.append(char)
        width += size
    return "".join(out) + "\r\n"
