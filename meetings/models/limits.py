"""The join limiter's counters (meetings.limits), in the database."""

from django.db import models


class LimitCounter(models.Model):
    """Attempts (or entries) counted under `key` in the window that ends at `expires_at`.

    SECURITY: in the database, not the cache, so that no eviction, flush or full cache can
    reset a count: a meeting locked by guesses stays locked until its window ends. A row
    past `expires_at` counts nothing; the next attempt starts a new window in it, and
    meetings.limits and the retention task delete such rows.
    """

    key = models.CharField(max_length=200, primary_key=True)
    count = models.IntegerField()
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count} until {self.expires_at:%Y-%m-%d %H:%M:%S}"
