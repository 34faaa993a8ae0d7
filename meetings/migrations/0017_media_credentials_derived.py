"""Janus room secrets, pins and media tokens are derived (meetings.conference), never stored.

Before the clear columns go, every room still open is destroyed on the media server with
the secret its row held (the last time that secret is read), and given a new number with
`opened_at` cleared: the next sync creates it again under credentials derived from the new
number, puts the host's and every admitted person's derived token on its list, and their
room pages join it again when reloaded. A room the media server cannot be told about now
(unreachable, or JANUS_URL unset here) is logged; its old secret is gone with the column,
so restart Janus (its rooms are not permanent) to end it.
"""

import logging

from django.db import migrations, models

logger = logging.getLogger(__name__)


def close_rooms_with_stored_secrets(apps, schema_editor):
    from meetings import conference

    ConferenceRoom = apps.get_model("meetings", "ConferenceRoom")
    backend = conference.backend()
    for room in ConferenceRoom.objects.filter(closed_at=None).order_by("pk"):
        if room.opened_at is not None and not backend.configured:
            logger.warning("media room %s not destroyed (JANUS_URL unset): restart Janus", room.number)
        elif room.opened_at is not None:
            try:
                backend.end_room(conference.Room(number=room.number, secret=room.secret, pin=room.pin))
            except conference.ConferenceError:
                logger.warning("media room %s not destroyed: restart Janus", room.number)
        number = conference.new_room_number()
        while ConferenceRoom.objects.filter(number=number).exists():
            number = conference.new_room_number()
        ConferenceRoom.objects.filter(pk=room.pk).update(number=number, opened_at=None)


class Migration(migrations.Migration):
    dependencies = [("meetings", "0016_sealed_sessions")]

    operations = [
        # Reversing leaves the rooms as they are: the secrets are not stored again.
        migrations.RunPython(close_rooms_with_stored_secrets, migrations.RunPython.noop, elidable=True),
        # blank=True changes nothing in the database; it lets the removals below be
        # reversed onto existing rows (the columns come back empty).
        *(
            migrations.AlterField(
                model_name="conferenceroom", name=name, field=models.CharField(max_length=64, blank=True)
            )
            for name in ("secret", "pin", "host_token")
        ),
        migrations.RemoveField(model_name="conferenceroom", name="host_token"),
        migrations.RemoveField(model_name="conferenceroom", name="pin"),
        migrations.RemoveField(model_name="conferenceroom", name="secret"),
        migrations.RemoveField(model_name="lobbyentry", name="media_token"),
    ]
