"""gunicorn's logger, with the secret scrubber on its error and access logs.

gunicorn sets up its own loggers (`gunicorn.error`, `gunicorn.access`) before it loads
the app and does not propagate them, so Django's LOGGING never sees those records. The
access log prints each request line, and a one-time join link's path carries its token.
Named by gunicorn.conf.py (read by gunicorn from the working directory).
"""

from typing import Any

from gunicorn.glogging import Logger

from meetings.logging import ScrubSecrets, scrub_every_handler


class ScrubbingLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # SECURITY: on the loggers, so a record is scrubbed whichever handler writes it
        # (stream, file, syslog, or one from --log-config); on the handlers as well, for
        # handlers gunicorn's own logconfig puts on other loggers.
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, ScrubSecrets) for f in log.filters):
                log.addFilter(ScrubSecrets())
        scrub_every_handler()
