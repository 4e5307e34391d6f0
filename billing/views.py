from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from billing import ledger
from billing.models import LedgerEntry

STATEMENT_PAGE_SIZE = 50


@require_GET
@login_required
@never_cache
def statement(request: HttpRequest) -> HttpResponse:
    """Every credit movement of the signed-in user, newest first, with the running balance."""
    account = ledger.account_for(request.user)
    entries = LedgerEntry.objects.filter(account=account).select_related("job").order_by("-id")
    page = Paginator(entries, STATEMENT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "billing/statement.html", {"account": account, "page": page})


@require_GET
@login_required
@never_cache
def balance(request: HttpRequest) -> HttpResponse:
    """The header's balance, fetched again when a page hears that credits moved."""
    return render(request, "billing/_balance.html")
