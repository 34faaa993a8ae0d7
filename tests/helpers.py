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
    """Rows a refused request must not write (its own refusal audit row aside)."""
    audited = AuditEvent.objects.exclude(action="request_refused").count()
    return (Meeting.objects.count(), audited, OutboundMessage.objects.count())


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


def database_text() -> str:
    """Every row of every table, as text: what someone with a copy of the database reads."""
    from django.db import connection

    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - our tables
            parts.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(parts)


def assert_nowhere_in_database(*secrets: str) -> None:
    """SECURITY: none of these secrets (a join token, an API key, a passcode) is stored."""
    assert secrets and all(len(secret) >= 16 for secret in secrets), "give the secrets themselves"
    text = database_text()
    leaked = [secret[:6] + "…" for secret in secrets if secret in text]
    assert not leaked, f"stored in the database: {leaked}"


def token_of(row) -> str:
    """The one-time token of an outbox row's mail: from the mail where it was sent already
    (in-process tasks, locmem backend), else opened from the sealed row, as sending does."""
    import re

    from django.core import mail

    from meetings import sealing

    row.refresh_from_db()
    if row.sealed_link:
        link = sealing.unseal(row.sealed_link, row_id=row.message_id)
    else:
        [message] = [m for m in mail.outbox if m.extra_headers.get("Message-ID") == row.message_id]
        [link] = re.findall(r"https?://\S+/j/[A-Za-z0-9_-]{43}/", message.body)
    return link.rstrip("/").rsplit("/", 1)[-1]
