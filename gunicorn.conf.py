"""gunicorn's settings for the web server, read from the environment (gunicorn loads this
file from the working directory): `gunicorn mjweb.asgi:application` is the whole command.

    GUNICORN_BIND      where to listen (default 0.0.0.0:8000; PORT=N is a shorter way)
    WEB_CONCURRENCY    web processes (default: 2 per CPU + 1, at most 8)
    GUNICORN_TIMEOUT   seconds a worker may be silent before it is restarted (default 60)
    GUNICORN_ACCESS_LOG  "-" (stdout, the default) or a path; "" turns it off

Each process is a uvicorn worker (mjweb.workers.UvicornWorker): the site is served through
ASGI, for the push stream.
"""

from __future__ import annotations

import os

_cpus = os.cpu_count() or 1

bind = [os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"]
workers = int(os.environ.get("WEB_CONCURRENCY") or min(8, 2 * _cpus + 1))
worker_class = "mjweb.workers.UvicornWorker"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
