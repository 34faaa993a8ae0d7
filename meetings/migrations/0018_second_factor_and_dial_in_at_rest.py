# Secrets that were stored in the clear, converted in place (meetings/sealed_fields.py):
# - TOTP seeds (django-otp's otp_totp_totpdevice.key): sealed, bound to the device's user;
# - backup codes (otp_static_statictoken.token): replaced by their keyed digest;
# - dial-in codes in meeting rows: sealed, bound to the meeting ID;
# - dial-in codes in outbox bodies: a placeholder, the code sealed beside the link for a
#   mail still to be sent (none for one sent already).
# Every row is read and written once; on PostgreSQL in one transaction. Reversing opens the
# seeds and codes again; backup codes cannot come back (make new ones).

import binascii
import re

from django.db import migrations, models

from meetings import sealing
from meetings.sealed_fields import (
    SEALED_PREFIX,
    DialInCodeField,
    backup_code_digests,
    meeting_dial_in_row_id,
    totp_seed_row_id,
)

# The invitation templates' words around the code (text and calendar; HTML has <strong>).
_CODE_IN_BODY = re.compile(r"conference code (?:<strong>)?(\d+)")
_UNSENT = ("pending", "sending")


def _seal(value: bytes, *, row_id: str, label: bytes) -> str:
    return SEALED_PREFIX + sealing.seal_bytes(value, row_id=row_id, label=label)


def _open(stored: str, *, row_id: str, label: bytes) -> bytes:
    return sealing.unseal_bytes(str(stored)[len(SEALED_PREFIX) :], row_id=row_id, label=label)


def _unfold(ics: str) -> str:
    return ics.replace("\r\n ", "").replace("\n ", "")


def forwards(apps, schema_editor):
    TOTPDevice = apps.get_model("otp_totp", "TOTPDevice")
    for pk, user_id, key in TOTPDevice.objects.values_list("pk", "user_id", "key").iterator():
        if key.startswith(SEALED_PREFIX):
            continue
        sealed = _seal(binascii.unhexlify(key), row_id=totp_seed_row_id(user_id), label=sealing.TOTP_SEED_LABEL)
        if len(sealed) > 80:
            raise ValueError(f"TOTP device {pk}: a {len(key) // 2}-byte seed does not fit its column sealed")
        TOTPDevice.objects.filter(pk=pk).update(key=sealed)

    StaticToken = apps.get_model("otp_static", "StaticToken")
    for pk, token in StaticToken.objects.values_list("pk", "token").iterator():
        StaticToken.objects.filter(pk=pk).update(token=backup_code_digests(token)[0])

    Meeting = apps.get_model("meetings", "Meeting")
    rows = Meeting.objects.exclude(dial_in_code="").values_list("pk", "public_id", "dial_in_code")
    for pk, public_id, code in rows.iterator():
        if str(code).startswith(SEALED_PREFIX):
            continue
        sealed = _seal(
            str(code).encode(), row_id=meeting_dial_in_row_id(public_id), label=sealing.MEETING_DIAL_IN_LABEL
        )
        Meeting.objects.filter(pk=pk).update(dial_in_code=sealed)

    OutboundMessage = apps.get_model("meetings", "OutboundMessage")
    for row in OutboundMessage.objects.filter(body_text__contains="conference code").iterator():
        found = _CODE_IN_BODY.search(row.body_text)
        if found is None:
            continue
        code = found.group(1)
        placeholder = sealing.DIAL_IN_PLACEHOLDER
        row.body_text = row.body_text.replace(f"conference code {code}", f"conference code {placeholder}")
        row.body_html = row.body_html.replace(f"<strong>{code}</strong>", f"<strong>{placeholder}</strong>")
        if f"conference code {code}" in _unfold(row.ics_text):
            row.ics_text = sealing.put_in_calendar(
                row.ics_text, f"conference code {code}", f"conference code {placeholder}"
            )
        sealed = ""
        if row.status in _UNSENT:
            sealed = sealing.seal(code, row_id=row.message_id, label=sealing.OUTBOX_DIAL_IN_LABEL)
        OutboundMessage.objects.filter(pk=row.pk).update(
            body_text=row.body_text, body_html=row.body_html, ics_text=row.ics_text, sealed_dial_in_code=sealed
        )


def backwards(apps, schema_editor):
    OutboundMessage = apps.get_model("meetings", "OutboundMessage")
    for row in OutboundMessage.objects.exclude(sealed_dial_in_code="").iterator():
        code = sealing.unseal(row.sealed_dial_in_code, row_id=row.message_id, label=sealing.OUTBOX_DIAL_IN_LABEL)
        OutboundMessage.objects.filter(pk=row.pk).update(
            body_text=row.body_text.replace(sealing.DIAL_IN_PLACEHOLDER, code),
            body_html=row.body_html.replace(sealing.DIAL_IN_PLACEHOLDER, code),
            ics_text=sealing.put_in_calendar(row.ics_text, sealing.DIAL_IN_PLACEHOLDER, code),
        )

    Meeting = apps.get_model("meetings", "Meeting")
    rows = Meeting.objects.exclude(dial_in_code="").values_list("pk", "public_id", "dial_in_code")
    for pk, public_id, stored in rows.iterator():
        code = _open(stored, row_id=meeting_dial_in_row_id(public_id), label=sealing.MEETING_DIAL_IN_LABEL)
        # Straight to the column: the field class would refuse a plain value.
        Meeting.objects.filter(pk=pk).update(dial_in_code=models.Value(code.decode(), models.CharField()))

    TOTPDevice = apps.get_model("otp_totp", "TOTPDevice")
    for pk, user_id, key in TOTPDevice.objects.values_list("pk", "user_id", "key").iterator():
        if key.startswith(SEALED_PREFIX):
            seed = _open(key, row_id=totp_seed_row_id(user_id), label=sealing.TOTP_SEED_LABEL)
            TOTPDevice.objects.filter(pk=pk).update(key=binascii.hexlify(seed).decode())


class Migration(migrations.Migration):
    dependencies = [
        ("meetings", "0017_media_credentials_derived"),
        ("otp_totp", "0003_add_timestamps"),
        ("otp_static", "0003_add_timestamps"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboundmessage",
            name="sealed_dial_in_code",
            field=models.TextField(blank=True),
        ),
        migrations.AlterField(
            model_name="meeting",
            name="dial_in_code",
            field=DialInCodeField(blank=True, max_length=100),
        ),
        migrations.RunPython(forwards, backwards),
    ]
