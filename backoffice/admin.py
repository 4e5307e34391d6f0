"""Registers every ModelAdmin with the admin site (Django's autodiscover imports this)."""

from backoffice import credits, duplicates, invites, jobs, users  # noqa: F401
