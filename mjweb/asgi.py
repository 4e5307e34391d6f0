"""The site's entry point for ASGI servers: uvicorn in `make run` (runall) and gunicorn with
uvicorn workers in production (mjweb.workers). Sync views run as before, each request in a
thread of its own; async views (the push stream, gallery.push) run on the event loop."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mjweb.settings")
# Read by the settings: no persistent database connections under ASGI (see there).
os.environ["MJWEB_ASGI"] = "1"
application = get_asgi_application()
