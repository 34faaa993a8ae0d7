"""Audit rows for what libraries decide on their own: lockouts and second factors.

Signals are the only hook these libraries offer; each receiver records, nothing more.
"""

from typing import Any

from meetings.audit import audit_record


def on_user_locked_out(sender: Any, request: Any = None, username: str | None = None, **kwargs: Any) -> None:
    # SECURITY: the username is what was typed (it may not exist); never the password.
    audit_record(action="login_locked_out", subject=(username or "")[:150])


def on_user_verified(
    sender: Any, request: Any = None, user: Any = None, device: Any = None, **kwargs: Any
) -> None:
    audit_record(
        action="second_factor_passed",
        actor=user,
        subject=user.get_username() if user is not None else "",
        detail={"device": type(device).__name__ if device is not None else ""},
    )
