from django.urls import path

from billing import views

app_name = "billing"
urlpatterns = [
    path("credits/", views.statement, name="statement"),
    path("credits/balance/", views.balance, name="balance"),
    path("credits/buy/", views.buy, name="buy"),
    path("credits/buy/done/", views.bought, name="bought"),
    path("credits/stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
]
