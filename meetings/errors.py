"""Every exception a service raises, each with a stable `code` and its HTTP status.

The API (api_errors.exception_handler) and the pages (views.common) turn them into answers the
same way, so a refusal reads alike on both. Bodies: `{"field": ["message"]}` for bad input
that names fields, `{"detail": "message", "code": "..."}` for everything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meetings import policy


class ServiceError(Exception):
    """Base: a message for the person, a code for programs, a status for HTTP."""

    status, code = 400, "invalid"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def as_dict(self) -> dict[str, object]:
        return {"detail": self.message, "code": self.code}


class Refused(ServiceError):
    """Bad input or a rule it breaks (400). Carries every violation, each naming its field."""

    status, code = 400, "refused"

    def __init__(self, violations: list[policy.Violation], *, code: str | None = None):
        super().__init__("; ".join(v.message for v in violations), code=code)
        self.violations = violations

    def as_dict(self) -> dict[str, object]:
        if all(v.field == "detail" for v in self.violations):
            return {"detail": self.message, "code": self.code}
        by_field: dict[str, list[str]] = {}
        for violation in self.violations:
            by_field.setdefault(violation.field, []).append(violation.message)
        return dict(by_field)


def refused(message: str, *, field: str = "detail", code: str | None = None) -> Refused:
    """A Refused with one violation."""
    from meetings.policy import Violation

    return Refused([Violation(field, message)], code=code)


class Forbidden(ServiceError):
    """The actor may not do this (403): e.g. a second factor is missing."""

    status, code = 403, "forbidden"


class NotFound(ServiceError):
    """No such object, or not the actor's (404; one answer for both)."""

    status, code = 404, "not_found"


class Conflict(ServiceError):
    """The object's state refuses the action (409): cancelled, ended, already decided."""

    status, code = 409, "conflict"


class Gone(ServiceError):
    """Spent, expired, revoked, or of a meeting that is over (410)."""

    status, code = 410, "gone"


class Limited(ServiceError):
    """Too many attempts (429)."""

    status, code = 429, "limited"


class LinkGone(Gone):
    """A one-time link (or the invitation behind it) that can no longer be used."""

    def __init__(self, state: policy.LinkState):
        super().__init__(state.value, code=f"link_{state.value}")
        self.state = state


# How each passcode-join refusal answers. "wrong" covers an unknown meeting ID and a
# wrong passcode alike (deliberately indistinguishable); the rest come only after a
# right passcode (policy.Refusal codes of passcode_join_refusal).
JOIN_STATUS = {
    "wrong": 403,
    "limited": 429,
    "unavailable": 503,
    "invitation_needed": 403,
    "sign_in": 403,
    # A state that refuses the join (the API's 409), said only after a right passcode.
    "locked": 409,
    "cancelled": 409,
    "ended": 409,
}


class JoinDenied(ServiceError):
    """A join that may not proceed; `code` says why, `status` follows from it."""

    def __init__(self, code: str, message: str):
        super().__init__(message, code=code)
        self.status = JOIN_STATUS.get(code, 403)


def meeting_closed(*, cancelled: bool, action: str = "changed") -> Conflict:
    """The 409 for acting on a cancelled or ended meeting."""
    if cancelled:
        return Conflict(
            f"This meeting was cancelled; it can no longer be {action}.", code="meeting_cancelled"
        )
    return Conflict(f"This meeting has ended; it can no longer be {action}.", code="meeting_ended")
