from django.urls import path

from billing import views

app_name = "billing"
urlpatterns = [
    path("credits/", views.statement, name="statement"),
    path("credits/balance/", views.balance, name="balance"),
]
