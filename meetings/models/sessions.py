"""Browser sessions, stored so that a dump of the database opens none of them."""

from django.conf import settings
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models


class Session(AbstractBaseSession):
    """One browser session (meetings.sessions).

    SECURITY: `session_key` here is not the cookie's key but its keyed digest
    (meetings.sessions.row_id), and `session_data` is sealed under a key derived from the
    cookie's key: the row alone neither resumes the session nor says what it holds.
    `user` (the signed-in person, if any) lets one person's sessions be ended.
    """

    session_key = models.CharField(max_length=64, primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    class Meta(AbstractBaseSession.Meta):  # type: ignore[name-defined] # Django's, not in the stubs
        abstract = False
        db_table = "meetings_session"

    @classmethod
    def get_session_store_class(cls) -> type:
        from meetings.sessions import DatabaseStore

        return DatabaseStore
