import hashlib
import math

import pytest
from argon2 import extract_parameters

from meetings import credentials


def test_ten_thousand_meeting_ids_are_distinct_and_carry_80_bits():
    ids = [credentials.new_meeting_id() for _ in range(10_000)]
    assert len(set(ids)) == 10_000
    # By construction: 16 characters, each drawn uniformly from a 32-symbol alphabet.
    assert len(set(credentials.CROCKFORD)) == 32
    assert all(len(i) == 16 and set(i) <= set(credentials.CROCKFORD) for i in ids)
    assert credentials.MEETING_ID_CHARS * math.log2(len(credentials.CROCKFORD)) >= 80
    # Not sequential: consecutive IDs share no long common prefix.
    shared_prefixes = sum(a[:4] == b[:4] for a, b in zip(ids, ids[1:], strict=False))
    assert shared_prefixes < 5  # expected about 10_000 / 32**4 < 0.01
    # Every symbol turns up in every position: no fixed or low-entropy position.
    for position in range(16):
        assert len({i[position] for i in ids}) == 32


@pytest.mark.parametrize(
    "typed",
    ["abcd-efgh-jkmn-pqrs", "ABCDEFGHJKMNPQRS", " abcd efgh jkmn pqrs ", "ABCD-EFGH-JKMN-PQRS"],
)
def test_meeting_id_input_accepts_any_case_spaces_and_dashes(typed):
    assert credentials.normalize_meeting_id(typed) == "ABCDEFGHJKMNPQRS"


def test_meeting_id_reads_look_alikes_as_digits():
    assert credentials.normalize_meeting_id("OOOO-IIII-LLLL-0000") == "0000111111110000"


@pytest.mark.parametrize(
    "bad", ["", "abc", "ABCD-EFGH-JKMN-PQRSX", "ABCD-EFGH-JKMN-PQR!", "UUUUUUUUUUUUUUUU", "1" * 200]
)
def test_malformed_meeting_ids_are_rejected(bad):
    assert credentials.normalize_meeting_id(bad) is None


def test_meeting_id_is_shown_in_groups_of_four():
    assert credentials.format_meeting_id("ABCDEFGHJKMNPQRS") == "ABCD-EFGH-JKMN-PQRS"


@pytest.mark.parametrize("minimum", [0, 60, 61, 80, 100, 128])
def test_passcodes_meet_the_minimum_and_never_fall_below_sixty_bits(minimum):
    passcode, bits = credentials.new_passcode(minimum)
    symbols = passcode.replace("-", "")
    assert bits == len(symbols) * 5
    assert bits >= max(60, minimum)
    assert set(symbols) <= set(credentials.CROCKFORD)


def test_passcode_hash_is_argon2id_at_or_above_owasp_minimum(settings):
    passcode, _bits = credentials.new_passcode(60)
    hashed = credentials.hash_passcode(passcode)
    assert hashed.startswith("$argon2id$")
    params = extract_parameters(hashed)
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
    assert passcode not in hashed


def test_passcode_verification_ignores_case_and_dashes_but_not_content():
    passcode, _bits = credentials.new_passcode(60)
    hashed = credentials.hash_passcode(passcode)
    assert credentials.verify_passcode(hashed, passcode.lower().replace("-", " "))
    wrong = ("0" if passcode[0] != "0" else "1") + passcode[1:]
    assert not credentials.verify_passcode(hashed, wrong)
    assert not credentials.verify_passcode("not a hash", passcode)


def test_tokens_are_256_bits_and_only_a_digest_is_kept():
    token = credentials.new_token()
    assert len(token) >= 43  # 32 bytes in URL-safe base64
    digest = credentials.token_digest(token)
    # What is kept is the SHA-256 of the token, nothing of the token itself.
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert credentials.token_digest(credentials.new_token()) != digest


def test_dial_in_codes_are_numeric():
    codes = {credentials.new_dial_in_code() for _ in range(200)}
    assert all(code.isdigit() and len(code) == 10 for code in codes)
    assert len(codes) == 200
