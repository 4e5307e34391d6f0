"""The back office: every ModelAdmin, the admin site and its kit, the usage report and the
CSV exports. It imports the other apps; nothing imports it."""
