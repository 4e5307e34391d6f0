"""The back office's pages outside the admin: /metrics (backoffice.metrics)."""

from __future__ import annotations

from django.urls import path

from backoffice import metrics

urlpatterns = [path("metrics", metrics.metrics, name="metrics")]
