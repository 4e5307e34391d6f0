"""gunicorn's worker class for the ASGI site (the Dockerfile's `-k mjweb.workers.UvicornWorker`).

gunicorn supervises the processes (restarts, graceful reloads, WEB_CONCURRENCY); uvicorn
serves each one. The settings here are those `make run` gives uvicorn on its command line.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker as BaseWorker


class UvicornWorker(BaseWorker):
    CONFIG_KWARGS: dict[str, Any] = {
        **BaseWorker.CONFIG_KWARGS,
        # Django speaks no lifespan protocol.
        "lifespan": "off",
        # The settings decide whom to trust for X-Forwarded-* (MJWEB_BEHIND_PROXY), as they did
        # under gunicorn's WSGI workers.
        "proxy_headers": False,
        # Push streams last minutes: at shutdown they are cut after this many seconds (the
        # browser reconnects to another worker) instead of holding the old worker.
        "timeout_graceful_shutdown": 5,
    }
