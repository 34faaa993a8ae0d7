"""The one-time join link at rest in the outbox: sealed until the mail is sent.

SECURITY: a live join token may exist in the sent mail and nowhere else. Until then the
outbox row's bodies carry LINK_PLACEHOLDER, and the link itself is sealed with AES-GCM
under a key that is not in the database: derived (HKDF-SHA256, with a label of its own)
from DJANGO_SECRET_KEY, or ANTECHAMBER_OUTBOX_KEY where set. The row's Message-ID is the
associated data, so a sealed link moved to another row does not open. Sending opens it,
puts it into the mail, and erases it from the row.
"""

import base64
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
_LABEL = b"antechamber outbox join link v1"
_NONCE_BYTES = 12


class Unsealable(Exception):
    """The sealed link does not open with any configured key (the key changed, or the row was altered)."""


def _keys() -> list[bytes]:
    secrets = [settings.ANTECHAMBER_OUTBOX_KEY] if settings.ANTECHAMBER_OUTBOX_KEY else []
    secrets += [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [_derive(secret) for secret in secrets]


@lru_cache(maxsize=16)
def _derive(secret: str) -> bytes:
    """The key for a secret (computed once per secret: a fan-out seals thousands of links)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(secret.encode())


def seal(link: str, *, row_id: str) -> str:
    """The link, encrypted under the current key, bound to the row's Message-ID."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_keys()[0]).encrypt(nonce, link.encode(), row_id.encode())
    return base64.b64encode(nonce + sealed).decode()


def unseal(sealed: str, *, row_id: str) -> str:
    raw = base64.b64decode(sealed)
    nonce, body = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
    for key in _keys():
        try:
            return AESGCM(key).decrypt(nonce, body, row_id.encode()).decode()
        except InvalidTag:
            continue
    raise Unsealable("the sealed join link does not open with any configured key")


def put_link(text: str, link: str) -> str:
    """Replace the placeholder with the link in a text or HTML body."""
    return text.replace(LINK_PLACEHOLDER, link)


def put_link_in_calendar(ics: str, link: str) -> str:
    """The same for an iCalendar text, whose long lines are folded (RFC 5545 §3.1):
    unfold, replace, fold again."""
    if LINK_PLACEHOLDER not in ics.replace("\r\n ", "").replace("\n ", ""):
        return ics
    lines = ics.replace("\r\n ", "").replace("\n ", "").splitlines()
    return "".join(_fold(line.replace(LINK_PLACEHOLDER, link)) for line in lines)


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
