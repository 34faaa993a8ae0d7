"""Pure policy decisions about people: one-time links, who may spend them, who waits,
who may join by passcode, and who may stay when a meeting's level rises.

No I/O here. See policy/meetings.py for the meetings' own rules.
"""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from meetings.policy.meetings import Level, Refusal, Violation, required_passcode_bits

__all__ = [
    "LINK_GRACE",
    "LinkState",
    "link_expiry",
    "link_state",
    "ParticipantLevel",
    "redemption_violation",
    "SOURCE_INVITATION",
    "SOURCE_PASSCODE",
    "lobby_bypass",
    "LOCKED_MESSAGE",
    "passcode_join_refusal",
    "meeting_over",
    "entry_refusal",
    "Entrant",
    "entrant_refusal",
    "meeting_reachable",
]


# --- One-time join links ---------------------------------------------------------

LINK_GRACE = timedelta(minutes=15)


class LinkState(StrEnum):
    LIVE = "live"
    SPENT = "spent"
    EXPIRED = "expired"
    REVOKED = "revoked"
    CANCELLED = "cancelled"
    ENDED = "ended"


def link_expiry(*, max_link_lifetime_hours: int, meeting_ends_at: datetime, now: datetime) -> datetime:
    """The earlier of the meeting's end plus a short grace and now + the level's maximum."""
    return min(meeting_ends_at + LINK_GRACE, now + timedelta(hours=max_link_lifetime_hours))


def link_state(
    *,
    meeting_ended: bool = False,
    redeemed: bool,
    revoked_reason: str,
    expires_at: datetime,
    meeting_cancelled: bool,
    meeting_ends_at: datetime,
    now: datetime,
) -> LinkState:
    if meeting_cancelled or revoked_reason == "cancelled":
        return LinkState.CANCELLED
    if redeemed:
        return LinkState.SPENT
    if revoked_reason:
        return LinkState.REVOKED
    if meeting_ended or meeting_ends_at + LINK_GRACE <= now:
        return LinkState.ENDED
    if expires_at <= now:
        return LinkState.EXPIRED
    return LinkState.LIVE


class ParticipantLevel(Protocol):
    name: str
    allow_guests: bool
    allow_passcode_join: bool
    require_participant_mfa: bool


def redemption_violation(
    level: ParticipantLevel,
    *,
    invited_email: str,
    signed_in_email: str | None,
    has_second_factor: bool,
) -> Violation | None:
    """Who may spend a link: anyone where guests are allowed, else a signed-in person; where
    the level needs participant MFA, only the invited address with a second factor."""
    if level.require_participant_mfa:
        if signed_in_email is None or signed_in_email.lower() != invited_email.lower():
            return Violation(
                "detail",
                f"{level.name} meetings admit only the invited person: sign in as {invited_email} "
                "and pass your second factor, then open this link again.",
            )
        if not has_second_factor:
            return Violation(
                "detail",
                f"{level.name} meetings need a second factor: sign in with your authenticator app, "
                "then open this link again.",
            )
        return None
    if not level.allow_guests and signed_in_email is None:
        return Violation(
            "detail", f"{level.name} meetings do not admit guests: sign in, then open this link again."
        )
    return None


# --- Joining and the waiting room ----------------------------------------------------

SOURCE_INVITATION = "invitation"
SOURCE_PASSCODE = "passcode"


def lobby_bypass(level: Level, meeting_waiting_room: bool, source: str) -> bool:
    """Whether someone goes straight into the meeting instead of the waiting room.

    Only invitees, only where the level does not require the waiting room and the host
    turned it off. SECURITY: passcode joiners always wait: a passcode is shared, so it
    says nothing about who is typing it.
    """
    return source == SOURCE_INVITATION and not level.require_waiting_room and not meeting_waiting_room


LOCKED_MESSAGE = "The host has locked this meeting: no one new can join."


def passcode_join_refusal(
    level: Level,
    *,
    signed_in_email: str | None,
    cancelled: bool,
    ended: bool,
    locked: bool,
    passcode_bits: int,
) -> Refusal | None:
    """Why someone who typed the right passcode still may not enter (None: they may wait).

    Who may come in by passcode at all is entry_refusal's answer, the same one asked at
    admission, at the media room and when a level rises or tightens.

    SECURITY: ask only after the passcode was verified right: each answer says the
    meeting exists, which a guesser must not learn.
    """
    if cancelled:
        return Refusal("cancelled", "This meeting was cancelled.")
    if ended:
        return Refusal("ended", "This meeting has ended.")
    refusal = entry_refusal(
        level,
        source=SOURCE_PASSCODE,
        invited_email=None,
        signed_in_email=signed_in_email,
        had_second_factor=False,
    )
    if refusal is not None:
        return refusal
    if locked:
        return Refusal("locked", LOCKED_MESSAGE)
    if passcode_bits < required_passcode_bits(level):
        # The level was tightened after this passcode was made: it is too weak now.
        return Refusal(
            "weak_passcode",
            f"This passcode is weaker than {level.name} meetings now need. Ask the host for a new one.",
        )
    return None


def meeting_over(*, ended_at: datetime | None, ends_at: datetime, grace_minutes: int, now: datetime) -> bool:
    """A meeting takes no joiners once the host ended it or well after its scheduled end."""
    return ended_at is not None or now >= ends_at + timedelta(minutes=grace_minutes)


def meeting_reachable(
    *, cancelled: bool, ended_at: datetime | None, started_at: datetime | None, ends_at: datetime,
    grace_minutes: int, now: datetime,
) -> bool:  # fmt: skip
    """Whether revocation, raising and a tightening still reach a meeting: until it is in
    fact over, not merely past its scheduled end. A started meeting runs until the host
    ends it (people may still be in it, with media tokens); one never started is over once
    nobody can join it any more (meeting_over), and can then no longer be started."""
    if cancelled or ended_at is not None:
        return False
    return started_at is not None or not meeting_over(
        ended_at=ended_at, ends_at=ends_at, grace_minutes=grace_minutes, now=now
    )


def entry_refusal(
    level: ParticipantLevel,
    *,
    source: str,
    invited_email: str | None,
    signed_in_email: str | None,
    had_second_factor: bool,
) -> Refusal | None:
    """Whether someone may be in this meeting's waiting or media room under its level as
    it is now (None: they may). The one answer asked at every door: a passcode entry
    (passcode_join_refusal), an invitee's entry, an admission, the media room's
    configuration and key relay, and when the level rises or tightens (places_recheck).

    Invitees are held to their link's rule (policy.redemption_violation) with what they
    showed when they entered. A passcode says nothing about who typed it, so passcode
    entrants are refused where passcodes admit no one, where the level needs the invited
    person with a second factor (require_participant_mfa), and, unless signed in, where
    guests are not admitted.
    """
    if source == SOURCE_INVITATION and invited_email is not None:
        violation = redemption_violation(
            level,
            invited_email=invited_email,
            signed_in_email=signed_in_email,
            has_second_factor=had_second_factor,
        )
        return Refusal("level_not_met", violation.message) if violation is not None else None
    if not level.allow_passcode_join:
        return Refusal(
            "invitation_needed",
            f"{level.name} meetings cannot be joined with a passcode: an invitation is needed. "
            "Ask the host to invite you.",
        )
    if level.require_participant_mfa:
        # SECURITY: whatever allow_passcode_join says, a level that needs the invited person
        # with a second factor admits no one by a shared passcode.
        return Refusal(
            "invitation_needed",
            f"{level.name} meetings admit only invited people with a second factor: "
            "ask the host to invite you.",
        )
    if not level.allow_guests and signed_in_email is None:
        return Refusal("sign_in", f"Sign in to join {level.name} meetings; guests are not allowed.")
    return None


class _Email(Protocol):
    email: str


class Entrant(Protocol):
    """A waiting-room entry as entry_refusal needs it (models.LobbyEntry)."""

    source: str
    second_factor: bool

    @property
    def invitation(self) -> _Email | None: ...

    @property
    def user(self) -> _Email | None: ...


def entrant_refusal(level: ParticipantLevel, entry: Entrant) -> Refusal | None:
    """entry_refusal for someone already in the waiting room, with what they showed then."""
    return entry_refusal(
        level,
        source=entry.source,
        invited_email=entry.invitation.email if entry.invitation is not None else None,
        signed_in_email=entry.user.email if entry.user is not None else None,
        had_second_factor=entry.second_factor,
    )
