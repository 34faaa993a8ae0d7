"""Policy and meetings: levels, meetings, their waiting rooms, media rooms, invitations and links."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower

from meetings import conference
from meetings.credentials import format_meeting_id
from meetings.policy import MAX_DURATION_MINUTES, PASSCODE_FLOOR_BITS
from meetings.sealed_fields import DialInCodeField
from meetings.validators import validate_plain_text_fields


class ClassificationLevel(models.Model):
    """A level an admin edits; it decides what meetings at that level may do."""

    class E2ee(models.TextChoices):
        FORBIDDEN = "forbidden", "Forbidden"
        OPTIONAL = "optional", "Optional (the host chooses)"
        REQUIRED = "required", "Required"

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=80)
    rank = models.IntegerField(unique=True, help_text="Higher is more sensitive.")
    bookable = models.BooleanField(default=True)
    allow_cloud_recording = models.BooleanField(default=False)
    allow_dial_in = models.BooleanField(default=False)
    require_waiting_room = models.BooleanField(default=True)
    allow_guests = models.BooleanField(default=False)
    allow_passcode_join = models.BooleanField(default=False)
    require_host_mfa = models.BooleanField(default=True)
    require_participant_mfa = models.BooleanField(default=False)
    max_link_lifetime_hours = models.PositiveIntegerField(default=72)
    allowed_invitee_domains = models.JSONField(default=list, blank=True)
    min_passcode_bits = models.PositiveSmallIntegerField(default=PASSCODE_FLOOR_BITS)
    retention_days = models.PositiveIntegerField(default=90)
    # False: the invitation's calendar entry says to use the link in the mail instead.
    link_in_calendar = models.BooleanField(
        default=False, help_text="The calendar entry may carry the personal one-time join link."
    )
    e2ee = models.CharField(
        max_length=10,
        choices=E2ee.choices,
        default=E2ee.OPTIONAL,
        help_text="End-to-end encrypted media: forbidden, the host's choice, or required.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rank"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_passcode_bits__gte=PASSCODE_FLOOR_BITS, min_passcode_bits__lte=256),
                name="level_passcode_bits_range",
            ),
            models.CheckConstraint(
                condition=Q(max_link_lifetime_hours__gte=1, max_link_lifetime_hours__lte=8760),
                name="level_link_lifetime_range",
            ),
            models.CheckConstraint(condition=Q(retention_days__gte=1), name="level_retention_positive"),
            models.CheckConstraint(
                condition=Q(e2ee__in=["forbidden", "optional", "required"]), name="level_e2ee_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        validate_plain_text_fields(self, "name")


class Meeting(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        CANCELLED = "cancelled", "Cancelled"

    # SECURITY: the public ID is random (see credentials.new_meeting_id); the
    # database key never leaves the server.
    public_id = models.CharField(max_length=16, unique=True, editable=False)
    host = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="meetings")
    title = models.CharField(max_length=200)
    starts_at = models.DateTimeField()
    duration_minutes = models.PositiveIntegerField()
    # Stored (not derived in queries) so "meetings that have not ended" is an indexed filter.
    ends_at = models.DateTimeField(db_index=True)
    timezone = models.CharField(max_length=64, default="UTC")
    classification = models.ForeignKey(ClassificationLevel, on_delete=models.PROTECT, related_name="meetings")
    cloud_recording = models.BooleanField(default=False)
    dial_in = models.BooleanField(default=False)
    waiting_room = models.BooleanField(default=True)
    # End-to-end encrypted media: the browsers hold the keys, the media server cannot read it.
    e2ee = models.BooleanField(default=False)
    passcode_hash = models.CharField(max_length=256)
    passcode_bits = models.PositiveSmallIntegerField()
    passcode_rotated_at = models.DateTimeField()
    # Sealed at rest, bound to the meeting ID; reads as the code (meetings/sealed_fields.py).
    dial_in_code = DialInCodeField(max_length=100, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SCHEDULED)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Raised on every change invitees must hear of (the ICS SEQUENCE).
    sequence = models.PositiveIntegerField(default=0)
    # The calendar UID: stable for the meeting's life, and not the meeting ID, so a
    # synced calendar does not hold half of the passcode-join credential.
    ics_uid = models.UUIDField(default=uuid.uuid4, editable=False)
    # The host's lifecycle: started (admitted people get in), locked (no new entries),
    # ended (everyone moved out, no more joins).
    started_at = models.DateTimeField(null=True, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [models.Index(fields=["host", "starts_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(duration_minutes__gte=1, duration_minutes__lte=MAX_DURATION_MINUTES),
                name="meeting_duration_range",
            ),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="meeting_ends_after_start"),
            models.CheckConstraint(
                condition=(Q(status="cancelled") & Q(cancelled_at__isnull=False))
                | (Q(status="scheduled") & Q(cancelled_at__isnull=True)),
                name="meeting_cancelled_at_matches_status",
            ),
            models.CheckConstraint(
                condition=Q(dial_in=True) | Q(dial_in_code=""), name="meeting_dial_in_code_only_with_dial_in"
            ),
            models.CheckConstraint(
                condition=Q(passcode_bits__gte=PASSCODE_FLOOR_BITS), name="meeting_passcode_bits_min"
            ),
            # The server cannot record or bridge to a phone what it cannot decrypt.
            models.CheckConstraint(
                condition=Q(e2ee=False) | Q(cloud_recording=False, dial_in=False),
                name="meeting_e2ee_excludes_recording_and_dial_in",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.display_id})"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("meetings:detail", kwargs={"meeting_id": self.display_id})

    def clean(self) -> None:
        validate_plain_text_fields(self, "title")

    @property
    def display_id(self) -> str:
        return format_meeting_id(self.public_id)

    @property
    def is_cancelled(self) -> bool:
        return self.status == self.Status.CANCELLED

    @property
    def is_started(self) -> bool:
        return self.started_at is not None and self.ended_at is None

    @property
    def is_locked(self) -> bool:
        return self.locked_at is not None

    @property
    def is_ended(self) -> bool:
        return self.ended_at is not None


class LobbyEntry(models.Model):
    """One person in a meeting's waiting room, from entering until they leave.

    SECURITY: `secret_digest` is the SHA-256 of a per-entry secret that lives only in
    the participant's browser session; it is what authorises their status and room pages.
    """

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        ADMITTED = "admitted", "Admitted"
        DENIED = "denied", "Denied"
        LEFT = "left", "Left"

    class Source(models.TextChoices):
        PASSCODE = "passcode", "Meeting ID and passcode"
        INVITATION = "invitation", "Invitation"

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="lobby_entries")
    display_name = models.CharField(max_length=80)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    source = models.CharField(max_length=12, choices=Source.choices)
    # Which invitation, when they came by a one-time link.
    invitation = models.ForeignKey(
        "Invitation", null=True, blank=True, on_delete=models.CASCADE, related_name="lobby_entries"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    secret_digest = models.CharField(max_length=64, unique=True)
    # Whether they had passed a second factor when they entered: asked again if the
    # meeting's level rises or tightens while they wait or are in (policy.entry_refusal).
    second_factor = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # Media: drawn afresh at each admission (None: never admitted). The publisher ID this
    # person joins the media room under (anyone in the room under another ID is kicked),
    # and with the room number what their media token is derived from
    # (conference.media_token: SECURITY: the token itself is never stored). Kept after
    # they leave so that every sync can take their token off the list again.
    media_feed_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        # The host's lobby poll: one query on this index.
        indexes = [models.Index(fields=["meeting", "created_at"])]
        verbose_name_plural = "lobby entries"

    def __str__(self) -> str:
        return f"{self.display_name} ({self.status})"

    def clean(self) -> None:
        validate_plain_text_fields(self, "display_name")


class ConferenceRoom(models.Model):
    """The media room of a started meeting, created and controlled only by Antechamber.

    SECURITY: `secret` controls the room on the media server (allowed list, kick,
    recording, destroy) and never leaves the server. `pin` is needed to join; it goes
    only to admitted people's room pages, alongside each one's own token. Both, and the
    host's token, are derived from the room number under a key that is not in the
    database (meetings.conference): no column holds any of them.
    """

    meeting = models.OneToOneField(Meeting, on_delete=models.CASCADE, related_name="conference_room")
    number = models.BigIntegerField(unique=True)
    # Decided by policy.conference_recording when the room is made; the media server
    # refuses any later change without the secret (lock_record).
    record = models.BooleanField(default=False)
    # Created with require_e2ee on the media server: every publisher must encrypt.
    e2ee = models.BooleanField(default=False)
    host_feed_id = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    # When the media server confirmed the room, and when it was destroyed.
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"room for meeting {self.meeting_id}"

    @property
    def secret(self) -> str:
        return conference.room_secret(self.number)

    @property
    def pin(self) -> str:
        return conference.room_pin(self.number)

    @property
    def host_token(self) -> str:
        return conference.host_token(self.number, feed_id=self.host_feed_id)


class Invitation(models.Model):
    """One invitee of one meeting. Its links come and go; the invitation stays."""

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(help_text="Stored lower-cased.")
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["meeting", "email"], name="invitation_unique_per_meeting"),
            models.CheckConstraint(condition=Q(email=Lower("email")), name="invitation_email_lowercase"),
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.meeting_id}"


class JoinLink(models.Model):
    """A personal one-time join link. Only the SHA-256 of its token is stored."""

    class Revoked(models.TextChoices):
        REPLACED = "replaced", "replaced by a newer link"
        REVOKED = "revoked", "revoked by the host"
        CANCELLED = "cancelled", "the meeting was cancelled"

    # Indexed by joinlink_invitation_latest (invitation, id), which serves lookups by
    # invitation alone too: no second index to write for every link.
    invitation = models.ForeignKey(Invitation, on_delete=models.CASCADE, related_name="links", db_index=False)
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    redeemed_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=12, choices=Revoked.choices, blank=True)

    class Meta:
        ordering = ["id"]
        # The invitee list picks each invitation's latest link (ORDER BY id DESC LIMIT 1):
        # without this the planner may walk the primary key backwards for every invitee.
        indexes = [models.Index(fields=["invitation", "id"], name="joinlink_invitation_latest")]
        constraints = [
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=True, revoked_reason="")
                | Q(revoked_at__isnull=False) & ~Q(revoked_reason=""),
                name="joinlink_revoked_reason_matches",
            ),
            # Looked up by equality only: a constraint, not unique=True, which on PostgreSQL
            # adds a LIKE index beside the unique one.
            models.UniqueConstraint(fields=["token_hash"], name="joinlink_token_hash_unique"),
        ]

    def __str__(self) -> str:
        return f"link {self.pk} for invitation {self.invitation_id}"
