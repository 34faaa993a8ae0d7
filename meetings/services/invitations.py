"""Invitations and their one-time links: invite, resend, revoke, redeem, and the mail
that tells invitees about changes."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from meetings import credentials, emails, errors, policy, sealing, selectors, sql
from meetings.audit import audit_appended, audit_event, audit_insert, audit_record
from meetings.models import ClassificationLevel, Invitation, JoinLink, Meeting
from meetings.services import locking, outbox, places
from meetings.services.checks import refuse_if_closed, refuse_if_unreachable, require_host_factor


def normalise_emails(raw: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for email in raw:
        seen.setdefault(email.strip().lower(), None)
    return list(seen)


def _link_url(token: str) -> str:
    return f"{settings.SITE_URL}/j/{token}/"


def _new_link(
    invitation: Invitation, meeting: Meeting, level: ClassificationLevel, now: datetime
) -> tuple[JoinLink, str]:
    token = credentials.new_token()
    link = JoinLink(
        invitation=invitation,
        token_hash=credentials.token_digest(token),
        expires_at=policy.link_expiry(
            max_link_lifetime_hours=level.max_link_lifetime_hours, meeting_ends_at=meeting.ends_at, now=now
        ),
    )
    return link, token


def _send_links(
    *,
    meeting: Meeting,
    invitations: list[Invitation],
    now: datetime,
    update: bool,
    kind: str,
    changes: dict[str, Any] | None = None,
) -> None:
    """A fresh link for each invitation, and its message, in the caller's transaction."""
    level = meeting.classification
    # SECURITY: the bodies name the link by a placeholder; each row holds its link sealed.
    messages = emails.invitations(
        meeting=meeting,
        emails=[invitation.email for invitation in invitations],
        link_url=sealing.LINK_PLACEHOLDER,
        update=update,
        changes=changes,
    )
    links, rows = [], []
    for invitation, message in zip(invitations, messages, strict=True):
        link, token = _new_link(invitation, meeting, level, now)
        links.append(link)
        rows.append(
            outbox.outbox_row(
                message=message,
                kind=kind,
                to_email=invitation.email,
                meeting=meeting,
                invitation=invitation,
                link=_link_url(token),
            )
        )
    JoinLink.objects.bulk_create(links)
    outbox.outbox_write(rows)


def check_invite_caps(*, meeting: Meeting | None, count: int, field: str, now: datetime) -> None:
    """At most ANTECHAMBER_INVITES_PER_REQUEST addresses at once (400 naming the field), and
    ANTECHAMBER_INVITES_PER_MEETING_PER_HOUR new invitees per meeting (429)."""
    per_request = settings.ANTECHAMBER_INVITES_PER_REQUEST
    if count > per_request:
        raise errors.Refused(
            [policy.Violation(field, f"At most {per_request} addresses at once; this request has {count}.")],
            code="too_many_invitees",
        )
    if meeting is None:
        return
    per_hour = settings.ANTECHAMBER_INVITES_PER_MEETING_PER_HOUR
    recent = Invitation.objects.filter(meeting=meeting, created_at__gte=now - timedelta(hours=1)).count()
    if recent + count > per_hour:
        raise errors.Limited(
            f"This meeting has invited {recent} people in the last hour; at most {per_hour} an hour. "
            "Try again later.",
            code="invitations_limited",
        )


def invite(*, meeting: Meeting, actor: User, emails_to_invite: list[str], now: datetime) -> list[Invitation]:
    """Create invitations with their links and mail. Call holding the meeting (or booking it)."""
    invitations = Invitation.objects.bulk_create(
        [Invitation(meeting=meeting, email=email, invited_by=actor) for email in emails_to_invite]
    )
    _send_links(meeting=meeting, invitations=invitations, now=now, update=False, kind="invitation")
    audit_record(
        action="invitations_sent",
        actor=actor,
        meeting=meeting,
        subject=f"{len(invitations)} invitee(s)",
        detail={"emails": emails_to_invite},
    )
    return invitations


def invitations_create(
    *, meeting: Meeting, actor: User, emails_to_invite: list[str], host_has_second_factor: bool
) -> list[Invitation]:
    """Invite people; each gets a personal one-time link by e-mail (written to the outbox)."""
    wanted = normalise_emails(emails_to_invite)
    now = timezone.now()
    with transaction.atomic():
        meeting = locking.meeting_for_update(meeting.pk)
        refuse_if_closed(meeting, now, action="changed")
        require_host_factor(meeting, host_has_second_factor)
        check_invite_caps(meeting=meeting, count=len(wanted), field="emails", now=now)
        violations = policy.invitee_violations(meeting.classification, wanted, field="emails")
        existing = dict(
            Invitation.objects.filter(meeting=meeting, email__in=wanted).values_list("email", "revoked_at")
        )
        violations += [
            policy.Violation(
                "emails",
                f"{email} was invited and revoked: resend that invitation to invite them again."
                if revoked_at
                else f"{email} is already invited: resend or revoke that invitation instead.",
            )
            for email, revoked_at in existing.items()
        ]
        if violations:
            raise errors.Refused(violations)
        return invite(meeting=meeting, actor=actor, emails_to_invite=wanted, now=now)


def notify_invitees_of_change(*, meeting: Meeting, now: datetime, changes: dict[str, Any]) -> None:
    """METHOD:REQUEST with the raised SEQUENCE. Unspent links are replaced by fresh ones
    (the new message carries the link); people who already joined keep their session."""
    invitations = selectors.active_invitations(meeting)
    if not invitations:
        return
    spent = set(
        JoinLink.objects.filter(invitation__in=invitations, redeemed_at__isnull=False).values_list(
            "invitation_id", flat=True
        )
    )
    JoinLink.objects.filter(
        invitation__in=invitations, redeemed_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now, revoked_reason=JoinLink.Revoked.REPLACED)
    unspent = [inv for inv in invitations if inv.pk not in spent]
    _send_links(
        meeting=meeting, invitations=unspent, now=now, update=True, kind="invitation_update", changes=changes
    )
    spent_invitations = [inv for inv in invitations if inv.pk in spent]
    spent_messages = emails.invitations(
        meeting=meeting,
        emails=[inv.email for inv in spent_invitations],
        link_url=None,
        update=True,
        changes=changes,
    )
    outbox.outbox_write(
        [
            outbox.outbox_row(
                message=message, kind="invitation_update", to_email=inv.email, meeting=meeting, invitation=inv
            )
            for inv, message in zip(spent_invitations, spent_messages, strict=True)
        ]
    )


def sequence_raise(meeting: Meeting) -> None:
    """The calendar SEQUENCE for a message to some invitees only (resend, revoke).

    Per meeting, not per invitation: RFC 5546 has one SEQUENCE per event, and every
    invitee's copy then only ever sees it rise. Call holding the meeting's row lock.
    """
    Meeting.objects.filter(pk=meeting.pk).update(sequence=F("sequence") + 1)
    meeting.refresh_from_db(fields=["sequence"])


def notify_invitees_of_cancellation(*, meeting: Meeting, invitations: list[Invitation], reason: str) -> None:
    messages = emails.invitations_cancelled(
        meeting=meeting, emails=[inv.email for inv in invitations], reason=reason
    )
    outbox.outbox_write(
        [
            outbox.outbox_row(
                message=message, kind="invitation_cancel", to_email=inv.email, meeting=meeting, invitation=inv
            )
            for inv, message in zip(invitations, messages, strict=True)
        ]
    )


def _host_invitation(
    invitation: Invitation, now: datetime, host_has_second_factor: bool, *, revoking: bool = False
) -> Invitation:
    """The invitation, re-read after locking its meeting; refuses a closed meeting (for a
    revocation, only one that is in fact over: it takes access away)."""
    meeting = locking.meeting_for_update(invitation.meeting_id)
    if revoking:
        refuse_if_unreachable(meeting, now)
    else:
        refuse_if_closed(meeting, now)
    require_host_factor(meeting, host_has_second_factor)
    invitation = Invitation.objects.get(pk=invitation.pk)
    invitation.meeting = meeting
    return invitation


def invitation_resend(*, invitation: Invitation, actor: User, host_has_second_factor: bool) -> Invitation:
    """A new link by e-mail; the old one answers 410 from now on. Also re-invites a revoked invitee."""
    now = timezone.now()
    with transaction.atomic():
        invitation = _host_invitation(invitation, now, host_has_second_factor)
        meeting = invitation.meeting
        violations = policy.invitee_violations(meeting.classification, [invitation.email], field="emails")
        if violations:
            raise errors.Refused(violations)
        # SECURITY: every earlier link dies, a spent one too: the browser that redeemed it
        # loses its way back in (/invited/), and its place in the waiting or media room.
        revoke_links_and_places(
            meeting=meeting, invitations=[invitation], actor=actor, now=now,
            reason="resent", link_reason=JoinLink.Revoked.REPLACED,
        )  # fmt: skip
        Invitation.objects.filter(pk=invitation.pk).update(revoked_at=None)
        invitation.revoked_at = None
        sequence_raise(meeting)
        _send_links(meeting=meeting, invitations=[invitation], now=now, update=False, kind="invitation")
        audit_record(action="invitation_resent", actor=actor, meeting=meeting, subject=invitation.email)
    return invitation


def invitation_revoke(*, invitation: Invitation, actor: User, host_has_second_factor: bool) -> Invitation:
    now = timezone.now()
    with transaction.atomic():
        invitation = _host_invitation(invitation, now, host_has_second_factor, revoking=True)
        won = Invitation.objects.filter(pk=invitation.pk, revoked_at__isnull=True).update(revoked_at=now)
        if won != 1:
            raise errors.Conflict("This invitation is already revoked.", code="already_revoked")
        invitation.revoked_at = now
        revoke_links_and_places(meeting=invitation.meeting, invitations=[invitation], actor=actor, now=now)
        sequence_raise(invitation.meeting)
        notify_invitees_of_cancellation(
            meeting=invitation.meeting,
            invitations=[invitation],
            reason="The host withdrew your invitation to this meeting.",
        )
        audit_record(
            action="invitation_revoked", actor=actor, meeting=invitation.meeting, subject=invitation.email
        )
    return invitation


def revoke_links_and_places(
    *,
    meeting: Meeting,
    invitations: list[Invitation],
    actor: User,
    now: datetime,
    reason: str = "revoked",
    link_reason: str = JoinLink.Revoked.REVOKED,
) -> None:
    """Revocation ends access: every link of these invitations dies (spent ones too, so the
    browser that redeemed one cannot come back), and their holders leave the waiting and
    media rooms. Call holding the meeting's lock."""
    JoinLink.objects.filter(invitation__in=invitations, revoked_at__isnull=True).update(
        revoked_at=now, revoked_reason=link_reason
    )
    places.places_end_by_revocation(
        meeting=meeting, invitation_ids=[inv.pk for inv in invitations], actor=actor, reason=reason
    )


class RidesWithRedemption(Protocol):
    """What a caller adds to a redemption: rows that commit with it or not at all (the
    browser session that will carry it), and what to do once it has (apply)."""

    inserts: Sequence[sql.Insert]

    def apply(self) -> None: ...


def invitation_redeem(
    *,
    link: JoinLink,
    user: User | None,
    has_second_factor: bool,
    with_redemption: Callable[[Invitation], RidesWithRedemption] | None = None,
) -> Invitation:
    """Spend a one-time link. Of any number of simultaneous calls exactly one wins: the
    decision is one conditional UPDATE on the link's own row.

    The spend, its audit row and the rows `with_redemption` gives (the view's: the browser
    session under a new key) commit together or not at all: on PostgreSQL in one statement
    (meetings.sql.update_then_insert), elsewhere in one transaction. Only the winner's
    apply() runs, after the commit; called inside another transaction (which could roll
    the spend back after the browser got its session) it raises RuntimeError, spending
    nothing. A row that cannot be written (a session key that exists already: not
    expected of 32 random characters) undoes the whole statement, and the redemption is
    tried again with rows made afresh.

    Raises Refused (nothing spent) when the person may not use it, or LinkGone.
    """
    now = timezone.now()
    invitation = link.invitation
    meeting = invitation.meeting
    state = link_state_now(link, now)
    if state != policy.LinkState.LIVE:
        raise errors.LinkGone(state)
    violation = policy.redemption_violation(
        meeting.classification,
        invited_email=invitation.email,
        signed_in_email=user.email if user is not None else None,
        has_second_factor=has_second_factor,
    )
    if violation is not None:
        raise errors.Refused([violation])
    at = connection.ops.adapt_datetimefield_value(now)
    for attempt in range(1, REDEEM_ATTEMPTS + 1):
        event = audit_event(
            action="invitation_redeemed",
            actor=user,
            meeting=meeting,
            subject=invitation.email,
            detail={"link_id": link.pk, "signed_in": user is not None},
        )
        rider = with_redemption(invitation) if with_redemption is not None else None
        rows = [audit_insert(event), *(rider.inserts if rider is not None else ())]
        try:
            # durable: the winner's session is applied below as committed, so this must not
            # run inside a transaction that could still roll the spend back.
            won, ids = sql.update_then_insert(
                _link_spend_sql(connection.vendor), [at, link.pk, at], rows, durable=True
            )
        except IntegrityError:
            if attempt == REDEEM_ATTEMPTS:
                raise
            continue
        break
    if won != 1:
        link.refresh_from_db()
        raise errors.LinkGone(link_state_now(link, timezone.now()))
    audit_appended(event, ids[0])
    if rider is not None:
        rider.apply()
    return invitation


REDEEM_ATTEMPTS = 3


@functools.cache
def _link_spend_sql(vendor: str) -> str:
    """The one conditional UPDATE that decides a redemption: 1 for the winner, 0 otherwise.
    Written once per process, not compiled by the ORM on every click (the storm's hottest
    statement, docs/BENCHMARKS.md); the same statement as
    JoinLink.objects.filter(pk=..., redeemed_at__isnull=True, revoked_at__isnull=True,
    expires_at__gt=now).update(redeemed_at=now). Parameters: now, the link's id, now."""
    redeemed, revoked, expires = (
        sql.column(JoinLink, name) for name in ("redeemed_at", "revoked_at", "expires_at")
    )
    return (
        f"UPDATE {sql.table(JoinLink)} SET {redeemed} = %s WHERE {sql.column(JoinLink, 'id')} = %s"  # noqa: S608 - names from the model
        f" AND {redeemed} IS NULL AND {revoked} IS NULL AND {expires} > %s"
    )


def link_state_now(link: JoinLink, now: datetime) -> policy.LinkState:
    meeting = link.invitation.meeting
    return policy.link_state(
        meeting_ended=meeting.is_ended,
        redeemed=link.redeemed_at is not None,
        revoked_reason=link.revoked_reason,
        expires_at=link.expires_at,
        meeting_cancelled=meeting.is_cancelled,
        meeting_ends_at=meeting.ends_at,
        now=now,
    )
