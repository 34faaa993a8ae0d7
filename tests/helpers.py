from datetime import timedelta

from django.utils import timezone

from meetings.models import AuditEvent, Meeting, OutboundMessage


def future(hours: int = 24) -> str:
    return (timezone.now() + timedelta(hours=hours)).replace(microsecond=0).isoformat()


def booking_body(**overrides):
    """A valid booking request body for the API, with `overrides`."""
    data = {
        "title": "Quarterly review",
        "starts_at": future(),
        "duration_minutes": 60,
        "timezone": "Europe/London",
        "classification": "official",
        "cloud_recording": False,
        "dial_in": False,
        "waiting_room": True,
    }
    data.update(overrides)
    return data


def row_counts():
    return (Meeting.objects.count(), AuditEvent.objects.count(), OutboundMessage.objects.count())


def totp_now(device) -> str:
    """The code an authenticator app would show now for this TOTP device."""
    from django_otp.oath import totp

    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return f"{code:0{device.digits}d}"


def login_password_step(client, username: str, password: str):
    """Step one of the sign-in wizard (django-two-factor-auth's LoginView)."""
    return client.post(
        "/accounts/login/",
        {"login_view-current_step": "auth", "auth-username": username, "auth-password": password},
    )


def login_token_step(client, code: str):
    return client.post("/accounts/login/", {"login_view-current_step": "token", "token-otp_token": code})
