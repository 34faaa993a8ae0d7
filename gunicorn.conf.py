# gunicorn reads ./gunicorn.conf.py when started without --config (the Procfile, the
# tests and the benchmarks all start it from here). Command-line flags still apply.
import os

# SECURITY: the access log prints request paths, and a join link's path is a credential.
logger_class = "scheduler.gunicorn_logging.ScrubbingLogger"

# SECURITY: gunicorn believes X-Forwarded-Proto (and its other scheme headers) from the
# peers named here; its default is every loopback peer. The same peers as the app's
# TrustedProxyMiddleware: ANTECHAMBER_TRUSTED_PROXIES (nginx's proxy_bind address in the
# Procfile layout), none when unset.
forwarded_allow_ips = os.environ.get("ANTECHAMBER_TRUSTED_PROXIES", "")
