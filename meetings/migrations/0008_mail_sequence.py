"""The level field `link_in_calendar`, seeded per the specification's table."""

from django.db import migrations, models

# Only OFFICIAL invitations may carry the personal link in their calendar entry.
LINK_IN_CALENDAR = {"official": True, "official-sensitive": False, "secret": False, "top-secret": False}


def seed(apps, schema_editor):
    Level = apps.get_model("meetings", "ClassificationLevel")
    for code, allowed in LINK_IN_CALENDAR.items():
        Level.objects.filter(code=code).update(link_in_calendar=allowed)


class Migration(migrations.Migration):
    dependencies = [("meetings", "0007_conference_room")]
    operations = [
        migrations.AddField(
            model_name="classificationlevel",
            name="link_in_calendar",
            field=models.BooleanField(
                default=False, help_text="The calendar entry may carry the personal one-time join link."
            ),
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
