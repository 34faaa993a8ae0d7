"""Data and its invariants. Writes go through meetings.services only.

core.py: levels, meetings, waiting-room entries, media rooms, invitations, one-time links.
records.py: API tokens, the audit log, the outbox, host profiles.
sessions.py: browser sessions (keys as digests, data sealed).
limits.py: the join limiter's counters.
"""

from meetings.models.core import (
    ClassificationLevel,
    ConferenceRoom,
    Invitation,
    JoinLink,
    LobbyEntry,
    Meeting,
)
from meetings.models.limits import LimitCounter
from meetings.models.records import (
    ApiToken,
    AuditEvent,
    AuditEventQuerySet,
    AuditLogIsAppendOnly,
    HostProfile,
    OutboundMessage,
)
from meetings.models.sessions import Session

__all__ = [
    "ApiToken",
    "AuditEvent",
    "AuditEventQuerySet",
    "AuditLogIsAppendOnly",
    "ClassificationLevel",
    "ConferenceRoom",
    "HostProfile",
    "Invitation",
    "JoinLink",
    "LimitCounter",
    "LobbyEntry",
    "Meeting",
    "OutboundMessage",
    "Session",
]
