"""Joins the two 0009 migrations (host profiles; sealed join links in the outbox)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("meetings", "0009_host_profile"),
        ("meetings", "0009_outbox_sealed_link"),
    ]
    operations = []
