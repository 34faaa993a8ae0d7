"""Meeting IDs, passcodes, one-time tokens and API keys.

Everything random here comes from `secrets`. Nothing here touches the database.
"""

import hashlib
import math
import secrets
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from django.conf import settings

from meetings.policy import PASSCODE_FLOOR_BITS

# Crockford's base32: no I, L, O or U, so IDs read aloud or typed survive.
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE_ALIASES = str.maketrans({"I": "1", "L": "1", "O": "0"})
MEETING_ID_CHARS = 16  # 16 x 5 = 80 bits
BITS_PER_CHAR = 5
DIAL_IN_CODE_DIGITS = 10


def _random_base32(length: int) -> str:
    return "".join(secrets.choice(CROCKFORD) for _ in range(length))


def _group(value: str, size: int = 4) -> str:
    return "-".join(value[i : i + size] for i in range(0, len(value), size))


def new_meeting_id() -> str:
    """80 random bits as 16 Crockford characters (stored without dashes)."""
    return _random_base32(MEETING_ID_CHARS)


def format_meeting_id(public_id: str) -> str:
    return _group(public_id)


def normalize_meeting_id(raw: str) -> str | None:
    """Accept any case, spaces and dashes, and Crockford's look-alikes; None if it cannot be an ID."""
    cleaned = "".join(raw.split()).replace("-", "").upper().translate(_DECODE_ALIASES)
    if len(cleaned) != MEETING_ID_CHARS or any(c not in CROCKFORD for c in cleaned):
        return None
    return cleaned


def passcode_length(min_bits: int) -> int:
    return math.ceil(max(min_bits, PASSCODE_FLOOR_BITS) / BITS_PER_CHAR)


def new_passcode(min_bits: int) -> tuple[str, int]:
    """A passcode of at least max(PASSCODE_FLOOR_BITS, min_bits) random bits, grouped for reading. Returns (passcode, bits)."""
    length = passcode_length(min_bits)
    return _group(_random_base32(length)), length * BITS_PER_CHAR


def normalize_passcode(raw: str) -> str:
    """Passcodes are compared in the canonical form, so case, spaces and dashes do not matter."""
    cleaned = "".join(raw.split()).replace("-", "").upper().translate(_DECODE_ALIASES)
    return _group(cleaned)


@lru_cache(maxsize=1)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID)


def passcode_hasher() -> PasswordHasher:
    return _hasher(
        settings.ANTECHAMBER_ARGON2_TIME_COST,
        settings.ANTECHAMBER_ARGON2_MEMORY_KIB,
        settings.ANTECHAMBER_ARGON2_PARALLELISM,
    )


def hash_passcode(passcode: str) -> str:
    return passcode_hasher().hash(normalize_passcode(passcode))


@lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    passcode, _bits = new_passcode(80)
    return _hasher(time_cost, memory_cost, parallelism).hash(normalize_passcode(passcode))


def dummy_passcode_hash() -> str:
    """A hash of a random passcode nobody knows, made with the real parameters (and cached).

    SECURITY: verifying against it when a meeting ID is unknown makes an unknown ID cost
    the same argon2 work as a wrong passcode, so timing does not tell them apart.
    """
    return _dummy_hash(
        settings.ANTECHAMBER_ARGON2_TIME_COST,
        settings.ANTECHAMBER_ARGON2_MEMORY_KIB,
        settings.ANTECHAMBER_ARGON2_PARALLELISM,
    )


def verify_passcode(passcode_hash: str, passcode: str) -> bool:
    try:
        return passcode_hasher().verify(passcode_hash, normalize_passcode(passcode))
    except (VerificationError, InvalidHashError):
        return False


def new_dial_in_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(DIAL_IN_CODE_DIGITS))


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    # SECURITY: SHA-256 (not argon2) is right for 256-bit random tokens: there is
    # nothing to brute-force, and lookups by digest must be indexable.
    return hashlib.sha256(token.encode()).hexdigest()
