"""The audit log becomes hash-chained: prev_hash and row_hash on every row.

Existing rows are chained in id order, so verify_audit passes from the start.
"""

from django.db import migrations, models


def chain_existing(apps, schema_editor):
    from meetings.audit import GENESIS, chain_hash, row_content

    AuditEvent = apps.get_model("meetings", "AuditEvent")
    prev_hash = GENESIS
    for event in AuditEvent.objects.order_by("id").iterator():
        row_hash = chain_hash(row_content(event), prev_hash)
        # The historical model has a plain manager: this backfill is the one update allowed.
        AuditEvent.objects.filter(pk=event.pk).update(prev_hash=prev_hash, row_hash=row_hash)
        prev_hash = row_hash


class Migration(migrations.Migration):
    dependencies = [("meetings", "0005_lobby_invitation")]

    operations = [
        migrations.AddField(
            model_name="auditevent", name="prev_hash", field=models.CharField(default="", max_length=64), preserve_default=False
        ),
        migrations.AddField(
            model_name="auditevent", name="row_hash", field=models.CharField(default="", max_length=64), preserve_default=False
        ),
        migrations.RunPython(chain_existing, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="auditevent", name="row_hash", field=models.CharField(max_length=64, unique=True)
        ),
    ]
