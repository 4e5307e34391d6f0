from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import ledger, payments
from billing.models import CreditPack, LedgerEntry, Purchase

STATEMENT_PAGE_SIZE = 50


@require_GET
@login_required
@never_cache
def statement(request: HttpRequest) -> HttpResponse:
    """Every credit movement of the signed-in user, newest first, with the running balance."""
    account = ledger.account_for(request.user)
    entries = LedgerEntry.objects.filter(account=account).select_related("job").order_by("-id")
    page = Paginator(entries, STATEMENT_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"account": account, "page": page, "purchases": payments.recent(request.user)}
    return render(request, "billing/statement.html", context)


@require_GET
@login_required
@never_cache
def balance(request: HttpRequest) -> HttpResponse:
    """The header's balance, fetched again when a page hears that credits moved."""
    return render(request, "billing/_balance.html")


@require_http_methods(["GET", "POST"])
@login_required
@never_cache
def buy(request: HttpRequest) -> HttpResponse:
    """The credit packs, and a pack chosen: off to Stripe's Checkout page."""
    if not payments.enabled():
        raise Http404(_("Buying credits is not available on this site."))
    packs = CreditPack.objects.filter(active=True)
    if request.method == "POST":
        pack = packs.filter(pk=request.POST.get("pack") or 0).first()
        if pack is None:
            messages.error(request, _("Choose one of the packs below."))
            return redirect("billing:buy")
        done = request.build_absolute_uri(reverse("billing:bought"))
        try:
            url = payments.start(
                request.user,
                pack,
                success_url=f"{done}?session={{CHECKOUT_SESSION_ID}}",
                cancel_url=request.build_absolute_uri(reverse("billing:buy")),
            )
        except payments.PaymentError as exc:
            messages.error(request, str(exc))
            return redirect("billing:buy")
        return redirect(url)
    account = ledger.account_for(request.user)
    return render(request, "billing/buy.html", {"packs": packs, "account": account})


@require_GET
@login_required
@never_cache
def bought(request: HttpRequest) -> HttpResponse:
    """Back from Checkout: the purchase as the webhook has left it (the credits arrive with
    Stripe's confirmation, often before the buyer is back)."""
    session = request.GET.get("session", "")
    if not session:
        raise Http404("No purchase was named.")
    purchase = get_object_or_404(Purchase, user=request.user, session_id=session)
    return render(request, "billing/bought.html", {"purchase": purchase})


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    if not payments.enabled():
        raise Http404()
    outcome = payments.handle(request.body, request.headers.get("Stripe-Signature", ""))
    ok = outcome.status < 400
    return JsonResponse(
        {"ok": ok, "result" if ok else "error": outcome.message}, status=outcome.status
    )
