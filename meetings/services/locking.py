"""The one lock order every service takes, so that no two services can deadlock.

Order: **levels first (ascending id), then meetings (ascending id), then a meeting's
children (invitations, links, lobby entries), then the media room row.** Audit rows take
no lock (audit.audit_record appends; the sealer chains them later in its own transaction).

Why this order: a level change (`levels.level_update`) must reach every meeting at that
level, so it holds the level and then walks its meetings; anything that works on one
meeting and depends on its level (booking, changing, inviting) takes the level first too,
FOR SHARE, so many of them run side by side while a level change waits for them, and
they for it. If one service took the meeting and then the level while another took the
level and then its meetings, each could hold what the other waits for: PostgreSQL would
detect the cycle after `deadlock_timeout` and abort one of them (a 500).

Rows are locked `FOR NO KEY UPDATE OF <the row's own table>` (`of=("self",), no_key=True`):
only the row itself, not the rows a `select_related` joins in (the level, the host), and
without blocking inserts of children that merely reference it (those take KEY SHARE).

Decide on the row read under the lock, never on a copy read before it.

SQLite has no row locks: Django ignores `select_for_update` there, and the database
serialises writers (transaction_mode IMMEDIATE), so the order holds trivially.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import QuerySet

from meetings import errors
from meetings.models import ClassificationLevel, Meeting


def levels_for_share(pks: Iterable[int]) -> dict[int, ClassificationLevel]:
    """Lock levels FOR SHARE in ascending id, so a concurrent level change waits for us."""
    wanted = sorted(set(pks))
    if connection.vendor != "postgresql":
        return ClassificationLevel.objects.in_bulk(wanted)
    table = ClassificationLevel._meta.db_table
    placeholders = ", ".join(["%s"] * len(wanted))
    rows = ClassificationLevel.objects.raw(
        f'SELECT * FROM "{table}" WHERE id IN ({placeholders}) ORDER BY id FOR SHARE',  # noqa: S608 - our table
        wanted,
    )
    return {level.pk: level for level in rows}


def level_for_share(pk: int) -> ClassificationLevel:
    return levels_for_share([pk])[pk]


def level_for_update(pk: int) -> ClassificationLevel:
    """Lock a level to change it: waits for every service holding it FOR SHARE."""
    return ClassificationLevel.objects.select_for_update(of=("self",), no_key=True).get(pk=pk)


def meetings_at_level_for_update(level: ClassificationLevel) -> QuerySet[Meeting]:
    """The meetings at a level, locked in ascending id. Call while holding the level."""
    return (
        Meeting.objects.select_for_update(of=("self",), no_key=True)
        .select_related("host")
        .filter(classification=level)
        .order_by("id")
    )


def meeting_for_update(pk: int, *, other_levels: Iterable[int] = ()) -> Meeting:
    """Lock a meeting's level (and `other_levels`) FOR SHARE, then the meeting itself.

    The meeting's level is read without a lock first, to know which level to lock; if the
    meeting moved to another level in between (a concurrent change of its level), the
    caller is told with a 409 rather than holding the wrong level.
    """
    level_id = Meeting.objects.filter(pk=pk).values_list("classification_id", flat=True).first()
    if level_id is None:
        raise errors.NotFound("No such meeting.")
    levels = levels_for_share([level_id, *other_levels])
    meeting = Meeting.objects.select_for_update(of=("self",), no_key=True).select_related("host").get(pk=pk)
    if meeting.classification_id != level_id:
        raise errors.Conflict(
            "This meeting's level changed while your request was running; try again.",
            code="changed_meanwhile",
        )
    meeting.classification = levels[level_id]
    return meeting
