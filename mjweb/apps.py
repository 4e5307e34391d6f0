from django.apps import AppConfig


class MjwebConfig(AppConfig):
    name = "mjweb"
    verbose_name = "Accounts"
