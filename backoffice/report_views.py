"""The usage report page and the CSV exports, served inside the admin (MjwebAdminSite)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from backoffice import reports

REPORTS = "mjweb.view_reports"


def _require(request: HttpRequest, *permissions: str) -> None:
    if not request.user.has_perms((REPORTS, *permissions)):
        raise PermissionDenied


@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    """Who spent what, on which actions and modes, what failed, what was refunded, and how
    the provider answered, for a date range (and optionally one user)."""
    _require(request)
    form = reports.PeriodForm.from_query(request.GET)
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Usage report",
        "form": form,
    }
    if form.is_valid():
        period, user = form.period, form.subject
        query = urlencode(
            {"since": period.since, "until": period.until, "user": user.username if user else ""}
        )
        context.update(
            reports.figures(period, user),
            period=period,
            subject=user,
            exports=_exports(request, query),
            time_zone=settings.TIME_ZONE,
        )
    return TemplateResponse(request, "admin/reports/usage.html", context)


def _exports(request: HttpRequest, query: str) -> list[tuple[str, str]]:
    links = [
        ("Usage by user, action and mode", "admin:reports_usage_csv"),
        ("Provider cost and margin", "admin:reports_costs_csv"),
        ("Provider endpoints", "admin:reports_endpoints_csv"),
    ]
    if request.user.has_perm("billing.view_ledgerentry"):
        links.append(("Ledger entries", "admin:reports_ledger_csv"))
    if request.user.has_perm("gallery.view_job"):
        links.append(("Jobs", "admin:reports_jobs_csv"))
    return [(label, f"{reverse(name)}?{query}") for label, name in links]


def _csv(
    request: HttpRequest,
    name: str,
    rows: Callable[[reports.Period, Any], Iterator[str]],
    *permissions: str,
) -> HttpResponse:
    _require(request, *permissions)
    form = reports.PeriodForm.from_query(request.GET, max_days=reports.MAX_EXPORT_DAYS)
    if not form.is_valid():
        errors = "; ".join(f"{key}: {' '.join(value)}" for key, value in form.errors.items())
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    period, user = form.period, form.subject
    suffix = f"-{user.username}" if user else ""
    response = StreamingHttpResponse(rows(period, user), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="mjweb-{name}-{period.slug()}{suffix}.csv"'
    )
    return response


@require_GET
def usage_csv(request: HttpRequest) -> HttpResponse:
    return _csv(request, "usage", reports.usage_csv)


@require_GET
def costs_csv(request: HttpRequest) -> HttpResponse:
    return _csv(request, "costs", reports.costs_csv)


@require_GET
def endpoints_csv(request: HttpRequest) -> HttpResponse:
    return _csv(request, "endpoints", reports.endpoints_csv)


@require_GET
def ledger_csv(request: HttpRequest) -> HttpResponse:
    return _csv(request, "ledger", reports.ledger_csv, "billing.view_ledgerentry")


@require_GET
def jobs_csv(request: HttpRequest) -> HttpResponse:
    return _csv(request, "jobs", reports.jobs_csv, "gallery.view_job")


SIGNUP_DAYS = (1, 7, 30, 365)


@require_GET
def signups(request: HttpRequest) -> HttpResponse:
    """Sign-ups per address over the last days (?days=1|7|30|365): the addresses that made
    the most accounts first, each linked to its accounts in the user list."""
    _require(request)
    try:
        days = int(request.GET.get("days", "30"))
    except ValueError:
        days = 30
    days = days if days in SIGNUP_DAYS else 30
    rows = [
        {
            **row,
            "accounts_url": reverse("admin:mjweb_user_changelist")
            + "?"
            + urlencode({"q": row["signup_ip"]}),
        }
        for row in reports.signups_by_address(days)
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Sign-ups per address",
        "rows": rows,
        "days": days,
        "choices": SIGNUP_DAYS,
    }
    return TemplateResponse(request, "admin/reports/signups.html", context)
