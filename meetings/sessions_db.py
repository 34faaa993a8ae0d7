"""SESSION_ENGINE without Redis: sessions in the database only, keys as digests and data
sealed (meetings.sessions.DatabaseStore)."""

from meetings.sessions import DatabaseStore as SessionStore

__all__ = ["SessionStore"]
