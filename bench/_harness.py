"""What every benchmark needs, done on import: Django set up for a throwaway database.

    import _harness  # first: sets the environment and calls django.setup()

`throwaway_database()` creates a test database of its own (a file in a temporary directory
on SQLite; `mjweb_bench_<pid>` on the DATABASE_URL server) and drops it afterwards, so a
benchmark never touches real data nor a test run's database on the same server.

`database_copy(tag)`, inside it, makes a copy of that migrated database for one run of
separate processes (a web server, a worker): it yields the copy's DATABASE_URL, points this
process's connection at the copy meanwhile, and drops the copy afterwards.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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


def _point_at(name: str) -> None:
    connection.close()
    connection.settings_dict["NAME"] = name
    settings.DATABASES[connection.alias]["NAME"] = name


@contextmanager
def database_copy(tag: str) -> Iterator[str]:
    """A fresh copy of the throwaway database, for processes started with its DATABASE_URL
    (yielded); this process's connection uses the copy until the block ends, then it is
    dropped. Call it inside `throwaway_database()`; nothing may be connected to the original
    while it is copied (PostgreSQL copies it as a template)."""
    source = str(connection.settings_dict["NAME"])
    connection.close()
    if connection.vendor == "sqlite":
        target = str(Path(source).with_name(f"{Path(source).stem}-{tag}.sqlite3"))
        with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
        url = f"sqlite:///{target}"  # an absolute path: sqlite:////tmp/...
    else:
        target = f"{source}_{tag}"
        with connection.creation._nodb_cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
        parts = urlsplit(settings.DATABASE_URL)
        url = urlunsplit(parts._replace(path=f"/{target}"))
    _point_at(target)
    try:
        yield url
    finally:
        _point_at(source)
        if connection.vendor == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(target + suffix).unlink(missing_ok=True)
        else:
            with connection.creation._nodb_cursor() as cursor:
                # FORCE: a killed process may have left a session behind.
                cursor.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
