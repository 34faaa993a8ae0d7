"""End-to-end encrypted media: the level field `e2ee` (seeded per the specification's
table), the meeting option `e2ee`, and the media room's `e2ee` flag."""

from django.db import migrations, models
from django.db.models import Q
from django.utils import timezone

E2EE = {"official": "optional", "official-sensitive": "optional", "secret": "required", "top-secret": "required"}


def seed(apps, schema_editor):
    Level = apps.get_model("meetings", "ClassificationLevel")
    Meeting = apps.get_model("meetings", "Meeting")
    for code, e2ee in E2EE.items():
        Level.objects.filter(code=code).update(e2ee=e2ee)
    # Meetings already booked at a level that now requires E2EE and not yet over get it,
    # so that the next change to them is not refused for a rule they never chose. (The
    # seeded required levels forbid recording and dial-in, so nothing else changes.)
    Meeting.objects.filter(
        classification__e2ee="required",
        status="scheduled",
        ended_at=None,
        ends_at__gt=timezone.now(),
        cloud_recording=False,
        dial_in=False,
    ).update(e2ee=True)


class Migration(migrations.Migration):
    dependencies = [("meetings", "0011_host_profile")]
    operations = [
        migrations.AddField(
            model_name="classificationlevel",
            name="e2ee",
            field=models.CharField(
                choices=[
                    ("forbidden", "Forbidden"),
                    ("optional", "Optional (the host chooses)"),
                    ("required", "Required"),
                ],
                default="optional",
                help_text="End-to-end encrypted media: forbidden, the host's choice, or required.",
                max_length=10,
            ),
        ),
        migrations.AddField(model_name="conferenceroom", name="e2ee", field=models.BooleanField(default=False)),
        migrations.AddField(model_name="meeting", name="e2ee", field=models.BooleanField(default=False)),
        migrations.AddConstraint(
            model_name="classificationlevel",
            constraint=models.CheckConstraint(
                condition=Q(e2ee__in=["forbidden", "optional", "required"]), name="level_e2ee_valid"
            ),
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="meeting",
            constraint=models.CheckConstraint(
                condition=Q(e2ee=False) | Q(cloud_recording=False, dial_in=False),
                name="meeting_e2ee_excludes_recording_and_dial_in",
            ),
        ),
    ]
