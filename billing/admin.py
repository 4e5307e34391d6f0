from django.contrib import admin

from billing.models import Quota


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = ["user", "allowed_modes"]
    search_fields = ["user__username", "user__email"]
    raw_id_fields = ["user"]
