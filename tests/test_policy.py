from dataclasses import dataclass, field

import pytest

from meetings import policy
from meetings.policy import MeetingOptions

SAFE = MeetingOptions(cloud_recording=False, dial_in=False, waiting_room=True)


@dataclass
class FakeLevel:
    code: str = "secret"
    name: str = "SECRET"
    bookable: bool = True
    allow_cloud_recording: bool = False
    allow_dial_in: bool = False
    require_waiting_room: bool = True
    require_host_mfa: bool = True
    allowed_invitee_domains: list[str] = field(default_factory=list)
    min_passcode_bits: int = 80
    e2ee: str = "optional"
    allow_guests: bool = False
    allow_passcode_join: bool = False
    require_participant_mfa: bool = True


def fields_of(violations):
    return sorted(v.field for v in violations)


def test_safe_options_pass_a_strict_level():
    assert policy.check_meeting(FakeLevel(), SAFE, host_has_second_factor=True) == []


def test_every_violation_is_returned_at_once_with_field_and_level_name():
    violations = policy.check_meeting(
        FakeLevel(),
        MeetingOptions(cloud_recording=True, dial_in=True, waiting_room=False),
        host_has_second_factor=False,
    )
    assert fields_of(violations) == ["classification", "cloud_recording", "dial_in", "waiting_room"]
    assert all("SECRET" in v.message for v in violations)
    recording = next(v for v in violations if v.field == "cloud_recording")
    assert recording.message == "Cloud recording is not allowed for SECRET meetings."


def test_unbookable_level_is_refused_even_with_safe_options():
    violations = policy.check_meeting(
        FakeLevel(name="TOP SECRET", bookable=False), SAFE, host_has_second_factor=True
    )
    assert fields_of(violations) == ["classification"]
    assert "TOP SECRET meetings may not be held on this system" in violations[0].message


def test_host_without_second_factor_is_refused_only_where_required():
    assert fields_of(policy.check_meeting(FakeLevel(), SAFE, host_has_second_factor=False)) == [
        "classification"
    ]
    relaxed = FakeLevel(require_host_mfa=False)
    assert policy.check_meeting(relaxed, SAFE, host_has_second_factor=False) == []


def test_permissive_level_allows_everything():
    level = FakeLevel(
        name="OFFICIAL",
        allow_cloud_recording=True,
        allow_dial_in=True,
        require_waiting_room=False,
        require_host_mfa=False,
    )
    anything = MeetingOptions(cloud_recording=True, dial_in=True, waiting_room=False)
    assert policy.check_meeting(level, anything, host_has_second_factor=False) == []
    assert policy.option_locks(level) == {}


def test_invitee_domains_are_checked_case_insensitively():
    level = FakeLevel(allowed_invitee_domains=["example.gov"])
    violations = policy.check_meeting(
        level,
        SAFE,
        host_has_second_factor=True,
        invitees=["ann@EXAMPLE.gov", "eve@gmail.com"],
    )
    assert fields_of(violations) == ["invitees"]
    assert violations[0].message.startswith("eve@gmail.com:")
    assert "example.gov" in violations[0].message


def test_option_locks_give_value_and_reason():
    locks = policy.option_locks(FakeLevel())
    assert set(locks) == {"cloud_recording", "dial_in", "waiting_room"}
    assert locks["waiting_room"].value is True
    assert locks["cloud_recording"].value is False
    assert "SECRET" in locks["dial_in"].reason


def test_enforce_level_switches_only_towards_safety():
    changes = policy.enforce_level(
        FakeLevel(allow_dial_in=True),
        MeetingOptions(cloud_recording=True, dial_in=True, waiting_room=False),
    )
    assert {(c.field, c.old, c.new) for c in changes} == {
        ("cloud_recording", True, False),
        ("waiting_room", False, True),
    }


def test_loosening_changes_nothing():
    loose = FakeLevel(allow_cloud_recording=True, allow_dial_in=True, require_waiting_room=False)
    assert policy.enforce_level(loose, SAFE) == []


@pytest.mark.parametrize(("minimum", "expected"), [(10, 60), (60, 60), (80, 80), (128, 128)])
def test_required_passcode_bits_never_below_sixty(minimum, expected):
    assert policy.required_passcode_bits(FakeLevel(min_passcode_bits=minimum)) == expected


@pytest.mark.parametrize(
    ("by_staff_with_factor", "started", "expected"),
    [
        (False, False, "declassification_needs_staff"),
        (False, True, "declassification_needs_staff"),  # who asks is decided first
        (True, True, "already_started"),
        (True, False, None),
    ],
)
def test_lowering_a_level_needs_staff_with_a_factor_and_an_unstarted_meeting(
    by_staff_with_factor, started, expected
):
    refusal = policy.declassification_refusal(
        from_name="SECRET", to_name="OFFICIAL", by_staff_with_factor=by_staff_with_factor, started=started
    )
    assert (refusal.code if refusal else None) == expected
    if refusal is not None:
        assert "SECRET" in refusal.message


OPEN = {"allow_guests": True, "allow_passcode_join": True, "require_participant_mfa": False}


@pytest.mark.parametrize(
    ("level", "person", "stays"),
    [
        # Passcode entrants: only where passcodes, and (unsigned) guests, are still admitted.
        (OPEN, {"source": "passcode"}, True),
        ({**OPEN, "allow_passcode_join": False}, {"source": "passcode", "signed_in_email": "a@x.org"}, False),
        ({**OPEN, "allow_guests": False}, {"source": "passcode"}, False),
        ({**OPEN, "allow_guests": False}, {"source": "passcode", "signed_in_email": "a@x.org"}, True),
        (
            {**OPEN, "require_participant_mfa": True},
            {"source": "passcode", "signed_in_email": "a@x.org"},
            False,
        ),
        # Invitees: their link's rule, with what they showed when they entered.
        ({**OPEN, "allow_guests": False}, {"source": "invitation"}, False),
        ({**OPEN, "allow_guests": False}, {"source": "invitation", "signed_in_email": "a@x.org"}, True),
        (
            {**OPEN, "require_participant_mfa": True},
            {"source": "invitation", "signed_in_email": "a@x.org"},
            False,
        ),
        (
            {**OPEN, "require_participant_mfa": True},
            {"source": "invitation", "signed_in_email": "A@x.org", "had_second_factor": True},
            True,
        ),
        (
            {**OPEN, "require_participant_mfa": True},
            {"source": "invitation", "signed_in_email": "b@x.org", "had_second_factor": True},
            False,
        ),
    ],
)
def test_who_may_stay_when_a_level_rises(level, person, stays):
    asked = {"invited_email": "a@x.org", "signed_in_email": None, "had_second_factor": False, **person}
    if asked["source"] == "passcode":
        asked["invited_email"] = None
    refusal = policy.entry_refusal(FakeLevel(**level), **asked)
    assert (refusal is None) == stays, refusal


# --- Issue 21: the red team's policy walk-arounds -----------------------------------------


@dataclass
class RulesLevel(FakeLevel):
    rank: int = 30
    max_link_lifetime_hours: int = 72
    link_in_calendar: bool = False
    retention_days: int = 90


# Each rule, and a value of it that allows more than RulesLevel's (SECRET-like) default.
LOOSER_VALUE = {
    "bookable": ({"bookable": False}, {"bookable": True}),  # from an unbookable level to a bookable one
    "allow_cloud_recording": ({}, {"allow_cloud_recording": True}),
    "allow_dial_in": ({}, {"allow_dial_in": True}),
    "require_waiting_room": ({}, {"require_waiting_room": False}),
    "allow_guests": ({}, {"allow_guests": True}),
    "allow_passcode_join": ({}, {"allow_passcode_join": True}),
    "require_host_mfa": ({}, {"require_host_mfa": False}),
    "require_participant_mfa": ({}, {"require_participant_mfa": False}),
    "max_link_lifetime_hours": ({}, {"max_link_lifetime_hours": 73}),
    "allowed_invitee_domains": ({"allowed_invitee_domains": ["gov.uk"]}, {"allowed_invitee_domains": []}),
    "min_passcode_bits": ({}, {"min_passcode_bits": 79}),
    "e2ee": ({"e2ee": "required"}, {"e2ee": "optional"}),
    "link_in_calendar": ({}, {"link_in_calendar": True}),
}


def test_every_rule_of_a_level_is_compared_when_deciding_what_lowers_a_meeting():
    from meetings.services.levels import LEVEL_CHANGEABLE

    # A new level field must be classified here: name, rank and retention say nothing
    # about what a meeting may do.
    assert set(LEVEL_CHANGEABLE) - {"name", "rank", "retention_days"} == set(policy.LEVEL_RULE_FIELDS)
    assert set(LOOSER_VALUE) == set(policy.LEVEL_RULE_FIELDS)


@pytest.mark.parametrize("rule", sorted(LOOSER_VALUE))
def test_a_level_that_allows_one_thing_more_lowers_whatever_its_rank(rule):
    current_values, target_values = LOOSER_VALUE[rule]
    current = RulesLevel(**current_values)
    # The red team's move: the looser level was given the higher rank.
    target = RulesLevel(**{**current_values, **target_values}, code="looser", rank=current.rank + 5)
    assert policy.level_loosenings(current, target) == [rule]
    assert policy.level_loosenings(target, current) == []
    violation = policy.rank_order_violation(target, [current])
    assert violation is not None and violation.field == "rank"


def test_invitee_domains_widen_only_beyond_the_current_list():
    current = RulesLevel(allowed_invitee_domains=["gov.uk", "mod.uk"])
    assert policy.level_loosenings(current, RulesLevel(allowed_invitee_domains=["GOV.uk"])) == []
    assert policy.level_loosenings(current, RulesLevel(allowed_invitee_domains=["gmail.com"])) == [
        "allowed_invitee_domains"
    ]
    assert policy.level_loosenings(RulesLevel(), current) == []  # any address -> a list: stricter


def test_levels_that_each_allow_something_the_other_forbids_may_rank_either_way():
    recording = RulesLevel(code="a", allow_cloud_recording=True, rank=10)
    dial_in = RulesLevel(code="b", allow_dial_in=True, rank=20)
    assert policy.rank_order_violation(recording, [dial_in]) is None
    assert policy.rank_order_violation(dial_in, [recording]) is None
    # ... and a move between them lowers, both ways.
    assert policy.level_loosenings(recording, dial_in) == ["allow_dial_in"]
    assert policy.level_loosenings(dial_in, recording) == ["allow_cloud_recording"]


@pytest.mark.parametrize("allow_passcode_join", [False, True])
@pytest.mark.parametrize("signed_in_email", [None, "bob@example.org"])
def test_passcode_entry_is_refused_where_the_level_needs_participant_mfa(
    allow_passcode_join, signed_in_email
):
    level = FakeLevel(
        allow_passcode_join=allow_passcode_join, allow_guests=True, require_participant_mfa=True
    )
    refusal = policy.passcode_join_refusal(
        level, signed_in_email=signed_in_email, cancelled=False, ended=False, locked=False, passcode_bits=80
    )
    assert refusal is not None and refusal.code == "invitation_needed"
    # The same answer at every later door (admission, media room, key relay).
    entrant = policy.entry_refusal(
        level, source="passcode", invited_email=None, signed_in_email=signed_in_email, had_second_factor=True
    )
    assert entrant == refusal


def test_a_started_meeting_stays_reachable_past_its_end_until_it_is_ended():
    from datetime import UTC, datetime, timedelta

    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    long_ago = now - timedelta(days=2)
    asked = {"cancelled": False, "ends_at": long_ago, "grace_minutes": 15, "now": now}
    assert policy.meeting_reachable(**asked, ended_at=None, started_at=long_ago) is True
    assert policy.meeting_reachable(**asked, ended_at=now, started_at=long_ago) is False
    assert policy.meeting_reachable(**asked, ended_at=None, started_at=None) is False
    assert (
        policy.meeting_reachable(**{**asked, "cancelled": True}, ended_at=None, started_at=long_ago) is False
    )
    soon = {**asked, "ends_at": now - timedelta(minutes=5)}
    assert policy.meeting_reachable(**soon, ended_at=None, started_at=None) is True
