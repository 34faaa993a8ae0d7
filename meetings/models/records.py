"""Records around the meetings: API tokens, the audit log, the outbox, host profiles."""

from typing import Any

from django.conf import settings
from django.db import models

from meetings.models.core import Invitation, Meeting


class ApiToken(models.Model):
    """A per-user API key; only its SHA-256 is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="The first characters, to tell tokens apart.")
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """SECURITY: the log is append-only; bulk changes are refused at the ORM too."""

    def update(self, **kwargs: Any) -> int:
        raise AuditLogIsAppendOnly("Audit events cannot be changed.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("Audit events cannot be deleted.")


class AuditLogIsAppendOnly(Exception):
    pass


class AuditEvent(models.Model):
    """One security-relevant action. Written only by meetings.audit.audit_record.

    Appended with content_hash (SHA-256 over its content), then sealed by
    meetings.audit.audit_seal: seal_seq is its place in the chain, row_hash is SHA-256
    over its content and prev_hash, and prev_hash is the row_hash of the row before it in
    the chain, so a changed, removed or inserted row breaks the chain there (verify_audit).
    """

    created_at = models.DateTimeField()
    # A convenience link, not evidence: deleting the user nulls it, so it is not hashed.
    # actor_label is the hashed record of who acted.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Snapshots, so the row still says who and what after the user or meeting is gone.
    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64)
    meeting_public_id = models.CharField(max_length=16, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    # Null only on rows inserted behind the application's back (verify_audit names them).
    content_hash = models.CharField(max_length=64, null=True, blank=True)
    # Set by the sealer, all four at once; null while the row waits to be chained.
    seal_seq = models.BigIntegerField(null=True, blank=True)
    sealed_at = models.DateTimeField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, null=True, blank=True)
    row_hash = models.CharField(max_length=64, null=True, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        # Every index is written by each audited action and again by its seal (which changes
        # indexed columns): only those something reads. Plain btrees, not Django's db_index,
        # which adds a second (LIKE) index to each text column on PostgreSQL. row_hash has
        # none: nothing looks a row up by it, and verify_audit checks every one.
        indexes = [
            # The sealer's and verify_audit's "what is still unsealed", kept small.
            models.Index(fields=["id"], condition=models.Q(seal_seq__isnull=True), name="audit_unsealed"),
            models.Index(fields=["action"], name="audit_action"),
            models.Index(fields=["meeting_public_id"], name="audit_meeting"),
        ]
        constraints = [
            # One row per place in the chain; unsealed rows (null) are not in the index.
            models.UniqueConstraint(
                fields=["seal_seq"], condition=models.Q(seal_seq__isnull=False), name="audit_seal_seq_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.subject}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("Audit events cannot be deleted.")


class OutboundMessage(models.Model):
    """The outbox: written in the same transaction as what it reports."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    meeting = models.ForeignKey(
        Meeting, null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    invitation = models.ForeignKey(
        Invitation, null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    kind = models.CharField(max_length=40)
    to_email = models.EmailField()
    subject = models.CharField(max_length=300)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    ics_method = models.CharField(max_length=10, blank=True)
    ics_text = models.TextField(blank=True)
    # The one-time join link, sealed (meetings/sealing.py) until sent, then erased; the
    # bodies hold sealing.LINK_PLACEHOLDER in its place.
    sealed_link = models.TextField(blank=True)
    # The meeting's dial-in code, sealed beside the link the same way (bodies hold
    # sealing.DIAL_IN_PLACEHOLDER), erased with it when sent.
    sealed_dial_in_code = models.TextField(blank=True)
    message_id = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            # The invitee list's latest message per invitation (see JoinLink's index).
            models.Index(fields=["invitation", "id"], name="outbound_invitation_latest"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to_email} ({self.status})"


class HostProfile(models.Model):
    """A person's own preferences. Blank zone: pages use the browser's zone."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="host_profile"
    )
    timezone = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"profile of {self.user_id}"
