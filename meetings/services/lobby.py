"""The waiting room: entering it (by passcode or invitation) and the host's decisions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from meetings import credentials, emails, errors, limits, policy
from meetings.audit import audit_record
from meetings.models import Invitation, JoinLink, LobbyEntry, Meeting
from meetings.services import locking, media, outbox
from meetings.services.checks import refuse_if_over, require_host_factor

WRONG_PASSCODE = "Unknown meeting ID or wrong passcode."
LIMITED = "Too many attempts for this meeting or from your address. Try again later."
LIMITER_DOWN = "Joining with a passcode is unavailable right now. Try again in a few minutes."
ENTRIES_LIMITED = (
    "You have entered this meeting's waiting room too often from here. Wait a few minutes, "
    "or ask the host to admit you."
)


@dataclass(frozen=True)
class Entered:
    entry: LobbyEntry
    secret: str  # bind to the participant's session; never put it in a URL


def lobby_enter(
    *,
    meeting: Meeting,
    display_name: str,
    source: str,
    user: User | None = None,
    invitation: Invitation | None = None,
    second_factor: bool = False,
    check: Callable[[Meeting], None] | None = None,
) -> Entered:
    """Put someone in the waiting room (or straight in, where policy.lobby_bypass says so).

    Callers have checked the credential (passcode or invitation). `check` decides on the
    meeting as read under its lock (raising to refuse), so a lock, end or cancel that
    won meanwhile is seen.
    """
    secret = credentials.new_token()
    with transaction.atomic():
        meeting = locking.meeting_for_update(meeting.pk)
        if check is not None:
            check(meeting)
        bypass = policy.lobby_bypass(meeting.classification, meeting.waiting_room, source)
        now = timezone.now()
        entry = LobbyEntry.objects.create(
            meeting=meeting,
            display_name=display_name,
            source=source,
            invitation=invitation,
            user=user if user is not None and user.is_authenticated else None,
            secret_digest=credentials.token_digest(secret),
            second_factor=second_factor,
            status=LobbyEntry.Status.ADMITTED if bypass else LobbyEntry.Status.WAITING,
            decided_at=now if bypass else None,
            **(media.media_admission() if bypass else {}),
        )
        audit_record(
            action="lobby_entered",
            actor=user,
            meeting=meeting,
            subject=display_name,
            detail={
                "entry_id": entry.pk,
                "source": source,
                "invitation": invitation.email if invitation is not None else None,
                "bypassed_waiting_room": bypass,
            },
        )
        if bypass:
            media.media_sync_on_commit(meeting.pk)
    return Entered(entry=entry, secret=secret)


def _client_label(address: str) -> str:
    return address[:64]


def lobby_join_by_passcode(
    *,
    raw_meeting_id: str,
    passcode: str,
    display_name: str,
    user: User | None,
    client_address: str,
    client_session: str = "",
) -> Entered:
    """Join with meeting ID and passcode: limits first, then argon2, then policy.

    `client_session`: the browser session's key, where there is one: entries are limited
    per session and per address (limits.reserve_entry), successful ones included.

    Raises JoinDenied. No lock is held during the argon2 work; the policy decision is
    made again on the meeting read under its lock (lobby_enter's `check`).
    `raw_meeting_id` must already be in a valid format (the serializer checks it).
    """
    public_id = credentials.normalize_meeting_id(raw_meeting_id)
    if public_id is None:
        raise ValueError("meeting ID format is checked by the caller")
    try:
        reservation = limits.reserve(public_id=public_id, address=client_address)
    except limits.LimiterUnavailable as exc:
        # SECURITY: fail closed: without the limiter, no passcode is checked at all.
        raise errors.JoinDenied("unavailable", LIMITER_DOWN) from exc
    if isinstance(reservation, limits.Limited):
        raise errors.JoinDenied("limited", LIMITED)
    try:
        entry_slots = limits.reserve_entry(
            public_id=public_id, address=client_address, session_key=client_session
        )
    except limits.LimiterUnavailable as exc:
        limits.release(reservation)
        raise errors.JoinDenied("unavailable", LIMITER_DOWN) from exc
    if isinstance(entry_slots, limits.Limited):
        limits.release(reservation)
        raise errors.JoinDenied("limited", ENTRIES_LIMITED)
    try:
        return _join_checked(
            public_id=public_id,
            passcode=passcode,
            display_name=display_name,
            user=user,
            client_address=client_address,
            reservation=reservation,
        )
    except Exception:
        limits.release_entry(entry_slots)
        raise


def _join_checked(
    *,
    public_id: str,
    passcode: str,
    display_name: str,
    user: User | None,
    client_address: str,
    reservation: limits.Reservation,
) -> Entered:
    """lobby_join_by_passcode once the limits let the attempt through."""

    meeting = Meeting.objects.select_related("classification", "host").filter(public_id=public_id).first()
    # SECURITY: an unknown ID costs the same argon2 work as a wrong passcode, and both
    # answer alike below.
    stored_hash = meeting.passcode_hash if meeting is not None else credentials.dummy_passcode_hash()
    right = credentials.verify_passcode(stored_hash, passcode)
    if meeting is None or not right:
        if meeting is not None:
            _passcode_failure_record(meeting=meeting, reservation=reservation, client_address=client_address)
        raise errors.JoinDenied("wrong", WRONG_PASSCODE)

    limits.release(reservation)
    signed_in_email = user.email if user is not None and user.is_authenticated else None

    def check(locked: Meeting) -> None:
        if locked.passcode_hash != meeting.passcode_hash:
            # Rotated while we verified: the passcode given was the old one.
            raise errors.JoinDenied("wrong", WRONG_PASSCODE)
        refusal = policy.passcode_join_refusal(
            locked.classification,
            signed_in_email=signed_in_email,
            cancelled=locked.is_cancelled,
            ended=policy.meeting_over(
                ended_at=locked.ended_at,
                ends_at=locked.ends_at,
                grace_minutes=settings.ANTECHAMBER_JOIN_GRACE_MINUTES,
                now=timezone.now(),
            ),
            locked=locked.is_locked,
            passcode_bits=locked.passcode_bits,
        )
        if refusal is not None:
            raise errors.JoinDenied(refusal.code, refusal.message)

    check(meeting)  # refuse early, without a lock, what is already refused
    return lobby_enter(
        meeting=meeting, display_name=display_name, source=LobbyEntry.Source.PASSCODE, user=user, check=check
    )


def _passcode_failure_record(
    *, meeting: Meeting, reservation: limits.Reservation, client_address: str
) -> None:
    """Audit a failed guess (the limiter bounds how many) and, once, the lockout."""
    with transaction.atomic():
        audit_record(
            action="passcode_join_failed",
            meeting=meeting,
            subject=meeting.title,
            detail={"attempt": reservation.meeting_count, "client": _client_label(client_address)},
        )
        if limits.locks_meeting(reservation) and limits.claim_lockout_notice(meeting.public_id):
            window_minutes = settings.ANTECHAMBER_JOIN_WINDOW_SECONDS // 60
            audit_record(
                action="passcode_join_locked",
                meeting=meeting,
                subject=meeting.title,
                detail={
                    "failures": settings.ANTECHAMBER_JOIN_MEETING_FAILURES,
                    "window_minutes": window_minutes,
                },
            )
            outbox.outbox_enqueue(
                message=emails.passcode_lockout(
                    meeting=meeting,
                    failures=settings.ANTECHAMBER_JOIN_MEETING_FAILURES,
                    window_minutes=window_minutes,
                ),
                kind="passcode_lockout",
                to_email=meeting.host.email,
                meeting=meeting,
            )


def lobby_enter_by_invitation(
    *, invitation: Invitation, link_id: int, user: User | None, display_name: str, has_second_factor: bool
) -> Entered:
    """An invitee whose browser redeemed their link (`link_id`) enters the waiting room (again).

    Callers have checked that this session redeemed that link; this checks, under the
    meeting's lock, that the invitation and that link still stand (a revocation or a
    resend ends them), that the meeting still takes people, and that this person still
    meets the link's rule at the meeting's level as it is now (it may have risen since).
    """

    def check(meeting: Meeting) -> None:
        invitation.refresh_from_db(fields=["revoked_at"])
        link_revoked = (
            JoinLink.objects.filter(pk=link_id, invitation=invitation, revoked_at__isnull=True).first()
            is None
        )
        if invitation.revoked_at is not None or link_revoked:
            raise errors.LinkGone(policy.LinkState.REVOKED)
        if meeting.is_cancelled:
            raise errors.LinkGone(policy.LinkState.CANCELLED)
        if meeting.is_ended:
            raise errors.LinkGone(policy.LinkState.ENDED)
        if meeting.is_locked:
            # The same rule as for passcode joiners: a locked meeting takes no one new.
            raise errors.Conflict(policy.LOCKED_MESSAGE, code="meeting_locked")
        refusal = policy.entry_refusal(
            meeting.classification,
            source=LobbyEntry.Source.INVITATION,
            invited_email=invitation.email,
            signed_in_email=user.email if user is not None else None,
            had_second_factor=has_second_factor,
        )
        if refusal is not None:
            raise errors.Forbidden(refusal.message, code=refusal.code)

    meeting = Meeting.objects.select_related("classification").get(pk=invitation.meeting_id)
    return lobby_enter(
        meeting=meeting,
        display_name=display_name,
        source=LobbyEntry.Source.INVITATION,
        user=user,
        invitation=invitation,
        second_factor=has_second_factor,
        check=check,
    )


# Which state each host decision moves an entry from, and to.
_DECISIONS = {
    "admit": ((LobbyEntry.Status.WAITING,), LobbyEntry.Status.ADMITTED, "lobby_admitted"),
    "deny": ((LobbyEntry.Status.WAITING,), LobbyEntry.Status.DENIED, "lobby_denied"),
    "remove": (
        (LobbyEntry.Status.WAITING, LobbyEntry.Status.ADMITTED),
        LobbyEntry.Status.LEFT,
        "lobby_removed",
    ),
}


def _lobby_decide(
    *, meeting: Meeting, entry_id: int, actor: User, decision: str, host_has_second_factor: bool
) -> LobbyEntry:
    from_states, to_state, action = _DECISIONS[decision]
    now = timezone.now()
    with transaction.atomic():
        meeting = locking.meeting_for_update(meeting.pk)
        require_host_factor(meeting, host_has_second_factor)
        entry = LobbyEntry.objects.filter(pk=entry_id, meeting=meeting).first()
        if entry is None:
            raise errors.NotFound("No such lobby entry.")
        if decision != "remove":
            refuse_if_over(meeting, now, action="joined")
        if decision == "admit":
            # SECURITY: the level as it is now decides, as at the door (policy.entry_refusal).
            refusal = policy.entrant_refusal(meeting.classification, entry)
            if refusal is not None:
                raise errors.Forbidden(refusal.message, code="level_not_met")
        # One conditional UPDATE: of two hosts' clicks exactly one changes the row; the
        # other is told.
        media_fields = media.media_admission() if to_state == LobbyEntry.Status.ADMITTED else {}
        won = LobbyEntry.objects.filter(pk=entry_id, meeting=meeting, status__in=from_states).update(
            status=to_state, decided_at=now, **media_fields
        )
        entry.refresh_from_db()
        if won != 1:
            raise errors.Conflict(
                f"{entry.display_name} is {entry.get_status_display().lower()}.", code="already_decided"
            )
        audit_record(
            action=action,
            actor=actor,
            meeting=meeting,
            subject=entry.display_name,
            detail={"entry_id": entry.pk, "source": entry.source},
        )
        # Admission puts the new token on the room's list; deny and remove take the
        # token off and kick (the sync works out which from the rows).
        media.media_sync_on_commit(meeting.pk)
    return entry


def _decision(decision: str) -> Callable[..., LobbyEntry]:
    def decide(*, meeting: Meeting, entry_id: int, actor: User, host_has_second_factor: bool) -> LobbyEntry:
        return _lobby_decide(
            meeting=meeting,
            entry_id=entry_id,
            actor=actor,
            decision=decision,
            host_has_second_factor=host_has_second_factor,
        )

    decide.__name__ = decide.__qualname__ = f"lobby_{decision}"
    decide.__doc__ = f"The host's {decision!r} of one waiting-room entry (see _DECISIONS)."
    return decide


lobby_admit = _decision("admit")
lobby_deny = _decision("deny")
lobby_remove = _decision("remove")


def lobby_admit_all(*, meeting: Meeting, actor: User, host_has_second_factor: bool) -> int:
    """Admit everyone waiting now; returns how many this call admitted.

    Row by row, each a conditional UPDATE, so that every admission is audited with the
    entry it admitted and an entry a concurrent deny won is left alone.
    """
    admitted = 0
    now = timezone.now()
    with transaction.atomic():
        meeting = locking.meeting_for_update(meeting.pk)
        require_host_factor(meeting, host_has_second_factor)
        refuse_if_over(meeting, now, action="joined")
        waiting = [
            (entry.pk, entry.display_name, entry.source)
            for entry in LobbyEntry.objects.filter(meeting=meeting, status=LobbyEntry.Status.WAITING)
            .select_related("user", "invitation")
            .order_by("id")
            # SECURITY: those the level would not let in now stay waiting (policy.entry_refusal).
            if policy.entrant_refusal(meeting.classification, entry) is None
        ]
        for entry_id, display_name, source in waiting:
            won = LobbyEntry.objects.filter(pk=entry_id, status=LobbyEntry.Status.WAITING).update(
                status=LobbyEntry.Status.ADMITTED, decided_at=now, **media.media_admission()
            )
            if won == 1:
                admitted += 1
                audit_record(
                    action="lobby_admitted",
                    actor=actor,
                    meeting=meeting,
                    subject=display_name,
                    detail={"entry_id": entry_id, "source": source, "admit_all": True},
                )
        if admitted:
            media.media_sync_on_commit(meeting.pk)
    return admitted
