"""Registers every ModelAdmin with the admin site (Django's autodiscover imports this)."""

from backoffice import credits, duplicates, jobs, users  # noqa: F401
