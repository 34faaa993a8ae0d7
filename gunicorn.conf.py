# gunicorn reads ./gunicorn.conf.py when started without --config (the Procfile, the
# tests and the benchmarks all start it from here). Command-line flags still apply.
# SECURITY: the access log prints request paths, and a join link's path is a credential.
logger_class = "scheduler.gunicorn_logging.ScrubbingLogger"
