"""The four levels of the specification. Admins edit them afterwards."""

from django.db import migrations

LEVELS = [
    # code, name, rank, rec, dial, wait, guests, passcode, host mfa, part. mfa, bookable, link h, bits, keep days
    ("official", "OFFICIAL", 10, True, True, False, True, True, False, False, True, 720, 60, 365),
    ("official-sensitive", "OFFICIAL-SENSITIVE", 20, False, True, True, True, True, True, False, True, 168, 70, 180),
    ("secret", "SECRET", 30, False, False, True, False, False, True, True, True, 72, 80, 90),
    ("top-secret", "TOP SECRET", 40, False, False, True, False, False, True, True, False, 24, 100, 30),
]


def seed(apps, schema_editor):
    Level = apps.get_model("meetings", "ClassificationLevel")
    for code, name, rank, rec, dial, wait, guests, pc, hmfa, pmfa, book, hours, bits, days in LEVELS:
        Level.objects.update_or_create(
            code=code,
            defaults=dict(
                name=name,
                rank=rank,
                allow_cloud_recording=rec,
                allow_dial_in=dial,
                require_waiting_room=wait,
                allow_guests=guests,
                allow_passcode_join=pc,
                require_host_mfa=hmfa,
                require_participant_mfa=pmfa,
                bookable=book,
                max_link_lifetime_hours=hours,
                allowed_invitee_domains=[],
                min_passcode_bits=bits,
                retention_days=days,
            ),
        )


def unseed(apps, schema_editor):
    apps.get_model("meetings", "ClassificationLevel").objects.filter(
        code__in=[row[0] for row in LEVELS], meetings__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("meetings", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
