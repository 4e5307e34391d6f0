"""The usage report and the CSV exports: figures for a date range, from jobs, the ledger and
the provider calls.

Time bases: jobs count by when they were created, credits by when their ledger entry was
written, provider calls by when they were made, all in the site's time zone (TIME_ZONE).
So the credit figures of a range add up to exactly what the ledger export of that range
holds, and a user's `balance_change` over all time equals their balance.

Everything that can grow with the data is aggregated in SQL or streamed with
`.iterator(chunk_size=...)`; nothing loads a whole table into memory.

The modules: `period` (the date range, its form, the base querysets and shared sums),
`usage` (jobs and credits by user, action and mode; failures; the ledger by kind),
`calls` (the provider's endpoints), `charts` (the daily chart), `page` (every figure of the
report page) and `exports` (the CSVs).
Everything public is re-exported here. To change a module-level setting such as
`FLUSH_BYTES`, set it on the module that owns it (`exports`), not on this package.
"""

from backoffice.reports.calls import Endpoint, endpoint, endpoints
from backoffice.reports.charts import Bar, Chart, Series, daily
from backoffice.reports.costs import COST_HEADER, CostLine, cost_rows, costs, costs_csv
from backoffice.reports.exports import (
    ENDPOINT_HEADER,
    FLUSH_BYTES,
    JOB_COLUMNS,
    LEDGER_COLUMNS,
    USAGE_HEADER,
    csv_lines,
    endpoints_csv,
    jobs_csv,
    ledger_csv,
    usage_csv,
)
from backoffice.reports.page import figures
from backoffice.reports.period import (
    CHUNK,
    CREDIT_FIELDS,
    CREDIT_SUMS,
    FIGURES,
    JOB_COUNTS,
    JOB_FIELDS,
    MAX_EXPORT_DAYS,
    MAX_REPORT_DAYS,
    Period,
    PeriodForm,
    calls_in,
    entries_in,
    jobs_in,
    last_days,
)
from backoffice.reports.signups import signups_by_address
from backoffice.reports.usage import (
    ACTIONS,
    FAILED,
    MODES,
    Line,
    UserLine,
    by_action_and_mode,
    by_mode,
    by_user,
    credits_outside_jobs,
    failures,
    ledger_by_kind,
    total_of,
    usage_rows,
)

__all__ = [
    "ACTIONS",
    "CHUNK",
    "COST_HEADER",
    "CREDIT_FIELDS",
    "CREDIT_SUMS",
    "ENDPOINT_HEADER",
    "FAILED",
    "FIGURES",
    "FLUSH_BYTES",
    "JOB_COLUMNS",
    "JOB_COUNTS",
    "JOB_FIELDS",
    "LEDGER_COLUMNS",
    "MAX_EXPORT_DAYS",
    "MAX_REPORT_DAYS",
    "MODES",
    "USAGE_HEADER",
    "Bar",
    "Chart",
    "CostLine",
    "Endpoint",
    "Line",
    "Period",
    "PeriodForm",
    "Series",
    "UserLine",
    "by_action_and_mode",
    "by_mode",
    "by_user",
    "calls_in",
    "cost_rows",
    "costs",
    "costs_csv",
    "credits_outside_jobs",
    "csv_lines",
    "daily",
    "endpoint",
    "endpoints",
    "endpoints_csv",
    "entries_in",
    "failures",
    "figures",
    "jobs_csv",
    "jobs_in",
    "last_days",
    "ledger_by_kind",
    "ledger_csv",
    "signups_by_address",
    "total_of",
    "usage_csv",
    "usage_rows",
]
