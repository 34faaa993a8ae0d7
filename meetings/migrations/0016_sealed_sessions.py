# Sessions move to meetings_session: named by a keyed digest of the cookie's key, data
# sealed under a key only that cookie gives (meetings.sessions).
#
# SECURITY: every existing session is ended here, not carried over: a django_session row
# (and a Redis entry of Django's cached_db) is named by the raw key and holds its data in
# the clear, and nothing should be left to read from a later dump. Everyone signs in again
# once; a participant in a waiting room comes back through their link or the passcode.

import logging

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

logger = logging.getLogger(__name__)

# Django's cached_db entries, under the cache's KEY_PREFIX and version ("prefix:1:name").
OLD_CACHE_PREFIX = "django.contrib.sessions.cached_db"


def end_old_sessions(apps, schema_editor):
    apps.get_model("sessions", "Session").objects.using(schema_editor.connection.alias).all().delete()
    forget_old_cached_sessions()


def forget_old_cached_sessions(limit: int = 1_000_000) -> int:
    """Delete Django's cached_db entries from Redis (a bounded SCAN): they hold raw keys
    in their names and the data in the clear. Redis down: logged; they expire on their
    own within SESSION_COOKIE_AGE."""
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        return 0
    pattern = cache.make_key(OLD_CACHE_PREFIX) + "*"
    deleted = 0
    try:
        client = cache._cache.get_client(write=True)
        batch = []
        for seen, name in enumerate(client.scan_iter(match=pattern, count=1000)):
            if seen >= limit:
                break
            batch.append(name)
            if len(batch) == 1000:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
    except Exception as exc:  # noqa: BLE001 - the database part stands; these expire anyway
        logger.warning("old cached sessions not deleted from Redis (%s); they expire on their own", exc)
    return deleted


class Migration(migrations.Migration):

    dependencies = [
        ("meetings", "0015_lean_indexes"),
        ("sessions", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Session",
            fields=[
                ("session_data", models.TextField(verbose_name="session data")),
                ("expire_date", models.DateTimeField(db_index=True, verbose_name="expire date")),
                ("session_key", models.CharField(max_length=64, primary_key=True, serialize=False)),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "session",
                "verbose_name_plural": "sessions",
                "db_table": "meetings_session",
                "abstract": False,
            },
        ),
        migrations.RunPython(end_old_sessions, migrations.RunPython.noop, elidable=True),
    ]
