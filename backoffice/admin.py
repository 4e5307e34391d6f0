"""Registers every ModelAdmin with the admin site (Django's autodiscover imports this)."""

from backoffice import accounts, credits, duplicates, invites, jobs, purchases, users  # noqa: F401
