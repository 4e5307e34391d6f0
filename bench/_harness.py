"""What every benchmark needs, done on import: Django set up for a throwaway database.

    import _harness  # first: sets the environment and calls django.setup()

`throwaway_database()` creates a test database of its own (a file in a temporary directory
on SQLite; `mjweb_bench_<pid>` on the DATABASE_URL server) and drops it afterwards, so a
benchmark never touches real data nor a test run's database on the same server.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
warnings.filterwarnings("ignore", message="No directory at")  # no collectstatic for a bench
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mjweb.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")
os.environ.setdefault("MJWEB_HTTPS", "0")
os.environ["MJWEB_LOGIN_THROTTLE"] = "0"
TMP = tempfile.TemporaryDirectory(prefix="mjweb-bench-")
if not os.environ.get("DATABASE_URL"):
    os.environ["MJWEB_DATA_DIR"] = TMP.name

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402


@contextmanager
def throwaway_database() -> Iterator[None]:
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    test = connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "sqlite":
        # A file, not Django's default in-memory test database: closer to a real install.
        test["NAME"] = str(Path(TMP.name) / "bench.sqlite3")
    else:
        test["NAME"] = f"mjweb_bench_{os.getpid()}"
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        yield
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0, keepdb=False)
        TMP.cleanup()
