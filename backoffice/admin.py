"""Registers every ModelAdmin with the admin site (Django's autodiscover imports this)."""

from backoffice import credits, jobs, users  # noqa: F401
