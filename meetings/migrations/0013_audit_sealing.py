"""Audit rows are appended with a content_hash and chained later by one sealer.

New columns: content_hash (set on append), seal_seq and sealed_at (set by the sealer);
prev_hash and row_hash become null until a row is sealed. Existing rows, already chained
in id order by 0006, keep their hashes and get seal_seq in that order, so verify_audit
passes from the start.
"""

from django.db import migrations, models
from django.utils import timezone


def seal_existing(apps, schema_editor):
    from meetings.audit import content_hash, row_content

    AuditEvent = apps.get_model("meetings", "AuditEvent")
    now = timezone.now()
    for seq, event in enumerate(AuditEvent.objects.order_by("id").iterator(), start=1):
        # The historical model has a plain manager: this backfill is the one update allowed.
        AuditEvent.objects.filter(pk=event.pk).update(
            content_hash=content_hash(row_content(event)), seal_seq=seq, sealed_at=now
        )


class Migration(migrations.Migration):
    dependencies = [("meetings", "0012_e2ee")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="content_hash",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="seal_seq",
            field=models.BigIntegerField(blank=True, null=True, unique=True),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="sealed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="row_hash",
            field=models.CharField(blank=True, max_length=64, null=True, unique=True),
        ),
        migrations.RunPython(seal_existing, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("seal_seq__isnull", True)), fields=["id"], name="audit_unsealed"
            ),
        ),
    ]
