"""Django's SQLite backend, keeping the query planner's statistics current.

SQLite plans a query from the statistics ANALYZE stores, and without them it guesses that
any indexed column narrows to ten rows: `owner_id = ?` and `code IN (...)` look alike, and
the live poll read a user's whole gallery to find three jobs (bench/gallery.py). Nothing
runs ANALYZE by itself. SQLite's advice for long-lived use is a sampled ANALYZE through
`PRAGMA optimize` every hour or so; its optimize of this version (3.40, Debian 12) looks
only at tables the closing connection used, and re-analyzes a table at every call while any
of its indexes is empty (a partial one, say), so this runs the sampled ANALYZE itself: as a
connection closes, at most once an hour per database in each process. A database busy with
a writer skips it (within 50 ms) rather than hold up the end of the request; a later close
tries again.
"""

from __future__ import annotations

import time

from django.db.backends.sqlite3 import base
from django.db.backends.sqlite3.base import Database

ANALYZE_EVERY = 3600.0  # seconds
ANALYSIS_LIMIT = 400  # rows sampled per index (SQLite's suggestion): ~10 ms at 100,000 jobs
BUSY_MS = 50

# When this process last analyzed each database (by its file), in monotonic seconds.
_analyzed_at: dict[str, float] = {}


class DatabaseWrapper(base.DatabaseWrapper):
    def _close(self) -> None:
        if self.connection is not None and not self.in_atomic_block:
            _analyze(self.connection, str(self.settings_dict["NAME"]))
        super()._close()


def _analyze(connection: Database.Connection, name: str) -> None:
    now = time.monotonic()
    last = _analyzed_at.get(name)
    if last is not None and now - last < ANALYZE_EVERY:
        return
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        connection.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
        connection.execute("ANALYZE")
    except Database.Error:
        return  # busy or read-only: a later close tries again
    _analyzed_at[name] = now
